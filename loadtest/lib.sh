# Shared by the load scripts: free ports, waiting for them, and the nginx origin.
# Expects $out (a temp dir) and the array pids (stopped by the caller's trap).

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 100); do (echo > /dev/tcp/127.0.0.1/$1) 2>/dev/null && return 0; sleep 0.1; done; echo "port $1 never opened" >&2; return 1; }
# need_geoip: exits naming what to run when the GeoIP database the load configs use is missing
# (meridian would exit at start, and the scripts would only see its port never open).
need_geoip() {
  [ -f geoip/geo-whois-asn-country.mmdb ] && return 0
  echo "geoip/geo-whois-asn-country.mmdb is missing: run geoip/fetch --city first" >&2
  exit 1
}

# start_origin PORT: nginx answering a small fixed body, 2 workers (not the thing measured).
start_origin() {
  local origin=$1
mkdir -p "$out/origin"
cat > "$out/origin.conf" <<CONF
worker_processes 2;
pid $out/origin.pid;
error_log $out/origin.err;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 1000000;
  server {
    listen 127.0.0.1:$origin;
    location /health { return 200 '{"status":"healthy","replication_lag_ms":0}'; }
    location / { return 200 'hello from the origin\n'; }
  }
}
CONF
nginx -c "$out/origin.conf" -p "$out/origin" -g 'daemon off;' & pids+=($!)

}

# start_meridian LISTEN ADMIN ORIGIN [extra yaml]: loadtest/meridian.yaml, one worker thread.
start_meridian() {
  need_geoip
  sed -e "s/{{LISTEN}}/127.0.0.1:$1/" -e "s/{{ADMIN}}/127.0.0.1:$2/" -e "s/{{ORIGIN}}/127.0.0.1:$3/" \
      -e "s#{{REPO}}#$PWD#" loadtest/meridian.yaml > "$out/meridian-$1.yaml"
  printf '%s\n' "${4:-}" >> "$out/meridian-$1.yaml"
  MERIDIAN_THREADS=1 target/release/meridian run -c "$out/meridian-$1.yaml" 2> "$out/meridian-$1.log" & pids+=($!)
  wait_port "$1"
  for _ in $(seq 100); do curl -fs "http://127.0.0.1:$2/readyz" >/dev/null && return 0; sleep 0.1; done
  echo "meridian on $1 never ready" >&2; return 1
}
