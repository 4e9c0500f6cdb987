-- The request mix loadtest/perf sends to every target: X-Forwarded-For from a pool
-- of real addresses (Germany, France, Ireland, UK, US, Brazil, Japan, Australia,
-- Singapore, one IPv6), /api reads with a write-token cookie on every 10th request
-- (MERIDIAN_TOKEN), and every 4th request on /static (weighted steering).
local pool = {
  "194.25.2.129", "193.252.19.3", "87.32.0.1", "81.2.69.142", "8.8.8.8",
  "200.160.2.3", "133.242.0.1", "1.1.1.1", "165.21.0.1", "2a00:1450:4001::1",
}
local token = os.getenv("MERIDIAN_TOKEN") or ""
local n = 0

request = function()
  n = n + 1
  local headers = { ["X-Forwarded-For"] = pool[(n % #pool) + 1] }
  if token ~= "" and n % 10 == 0 then
    headers["Cookie"] = "meridian_rw=" .. token
  end
  local path
  if n % 4 == 0 then path = "/static/app.js" else path = "/api/items/" .. (n % 1000) end
  return wrk.format("GET", path, headers)
end
