//! Gathering a request's facts for `decide`: client address (trusted
//! X-Forwarded-For), GeoIP, write token and affinity cookie. Shared by the proxy
//! and `meridian explain`, so both see a request the same way.

use std::net::IpAddr;

use crate::core::routing::RequestFacts;
use crate::core::snapshot::Snapshot;
use crate::request::client_ip::client_ip;
use crate::request::cookie::find_cookie;
use crate::request::geo::{GeoInfo, GeoResult};
use crate::request::tokens::TokenOutcome;

/// Cookie carrying the write token (README, "On the wire").
pub const WRITE_COOKIE: &str = "meridian_rw";
/// Request and response header carrying the write token, for API clients.
pub const WRITE_HEADER: &str = "x-meridian-write-token";
/// Cookie pinning a client to a region on `affinity: cookie` routes.
pub const AFFINITY_COOKIE: &str = "meridian_affinity";

/// The parts of a request facts are made of, borrowed from wherever it lives.
pub struct RawRequest<'a, X>
where
    X: Iterator<Item = &'a str>,
{
    pub peer: IpAddr,
    /// X-Forwarded-For header values, in order.
    pub xff: X,
    /// Cookie header values, in order.
    pub cookies: &'a [&'a str],
    /// The `X-Meridian-Write-Token` request header.
    pub token_header: Option<&'a str>,
    pub method: &'a str,
    pub host: &'a str,
    pub path: &'a str,
    pub now_ms: u64,
}

/// What gathering the facts found out, beyond the facts: for metrics and explain.
#[derive(Debug, Clone, Copy)]
pub struct Findings {
    pub client: IpAddr,
    pub from_xff: bool,
    pub xff_malformed: u32,
    pub geo: GeoInfo,
    /// `None` without a GeoIP database.
    pub geo_result: Option<GeoResult>,
    /// Outcome label for `write_tokens_total` when a token was presented and checked.
    pub token_outcome: Option<TokenOutcome>,
    /// A presented affinity cookie that failed verification.
    pub affinity_rejected: bool,
}

/// POST, PUT, PATCH and DELETE change state: on routes with `writes: write_region`
/// they go to the write region.
pub fn is_write_method(method: &str) -> bool {
    matches!(method, "POST" | "PUT" | "PATCH" | "DELETE")
}

/// Turns a raw request into `decide`'s facts.
pub fn gather<'a, X>(snap: &Snapshot, req: RawRequest<'a, X>) -> (RequestFacts, Findings)
where
    X: Iterator<Item = &'a str>,
{
    let addr = client_ip(req.peer, req.xff, &snap.trusted_proxies);
    let (geo, geo_result) = match &snap.geo {
        Some(db) => {
            let (info, result) = db.lookup_with_result(addr.ip);
            (info, Some(result))
        }
        None => (GeoInfo::default(), None),
    };
    let is_write = is_write_method(req.method);
    let route_idx = crate::core::routing::match_route(snap, req.host, req.path);
    let route = &snap.routes[route_idx];

    // Tokens are only worth verifying where the route would use them.
    let mut token_outcome = None;
    let mut write_token = None;
    if route.read_your_writes.is_some() && !is_write {
        let presented = req
            .token_header
            .or_else(|| find_cookie(req.cookies.iter().copied(), WRITE_COOKIE));
        if let Some(t) = presented {
            let cap = route
                .read_your_writes
                .as_ref()
                .map_or(0, |w| window_cap_ms(w) + CLOCK_SKEW_MS);
            match snap.keys.verify_write(t, req.now_ms) {
                // No instance issues a token longer than the window's cap: one that
                // claims more was signed by a misconfigured or compromised peer.
                Ok(tok) if tok.not_after_ms > req.now_ms.saturating_add(cap) => {
                    token_outcome = Some(TokenOutcome::BeyondCap)
                }
                Ok(tok) => match snap.region_idx(tok.region) {
                    Some(r) => write_token = Some(r),
                    None => token_outcome = Some(TokenOutcome::RegionUnknown),
                },
                Err(e) => token_outcome = Some(e.outcome()),
            }
        }
    }
    let mut affinity = None;
    let mut affinity_rejected = false;
    if route.affinity {
        if let Some(t) = find_cookie(req.cookies.iter().copied(), AFFINITY_COOKIE) {
            match snap
                .keys
                .verify_affinity(t)
                .ok()
                .and_then(|r| snap.region_idx(r))
            {
                Some(r) => affinity = Some(r),
                None => affinity_rejected = true,
            }
        }
    }
    let facts = RequestFacts {
        country: geo.country,
        continent: geo.continent,
        location: geo.location,
        route: route_idx,
        is_write,
        write_token,
        affinity,
        now_ms: req.now_ms,
    };
    let findings = Findings {
        client: addr.ip,
        from_xff: addr.from_xff,
        xff_malformed: addr.malformed,
        geo,
        geo_result,
        token_outcome,
        affinity_rejected,
    };
    (facts, findings)
}

/// Clock difference between instances tolerated when checking a token's lifetime.
const CLOCK_SKEW_MS: u64 = 5_000;

/// The longest window a route may issue.
fn window_cap_ms(window: &crate::core::snapshot::Window) -> u64 {
    match *window {
        crate::core::snapshot::Window::Fixed(d) => d.as_millis() as u64,
        crate::core::snapshot::Window::Auto { max, .. } => max.as_millis() as u64,
    }
}

/// How long a write pins the client's reads on a route with `read_your_writes`:
/// fixed, or the largest replication lag reported by a healthy region's origins
/// plus the margin, capped at `max` (deep health reports the lag).
pub fn ryw_window_ms(snap: &Snapshot, window: &crate::core::snapshot::Window, now_ms: u64) -> u64 {
    use crate::core::snapshot::Window;
    match *window {
        Window::Fixed(d) => d.as_millis() as u64,
        Window::Auto { margin, max } => {
            let lag = max_replication_lag_ms(snap, now_ms).unwrap_or(0);
            (lag + margin.as_millis() as u64).min(max.as_millis() as u64)
        }
    }
}

/// A write token to hand the client after its write was answered (README, "On the wire").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedToken {
    pub token: String,
    /// The cookie's Max-Age: the read-your-writes window, rounded up.
    pub max_age_s: u64,
}

/// The token pinning a client's reads to `region` after a write below 500 on a
/// read-your-writes route; None for anything else.
pub fn issue_write_token(
    snap: &Snapshot,
    route: usize,
    region: crate::core::snapshot::RegionIdx,
    is_write: bool,
    status: u16,
    now_ms: u64,
) -> Option<IssuedToken> {
    let window = snap.routes.get(route)?.read_your_writes.as_ref()?;
    if !is_write || status >= 500 {
        return None;
    }
    let window_ms = ryw_window_ms(snap, window, now_ms);
    Some(IssuedToken {
        token: snap
            .keys
            .sign_write(&snap.regions[region].name, now_ms + window_ms),
        max_age_s: window_ms.div_ceil(1000),
    })
}

/// Largest replication lag any eligible endpoint reports, if any reports one.
pub fn max_replication_lag_ms(snap: &Snapshot, now_ms: u64) -> Option<u64> {
    snap.regions
        .iter()
        .filter_map(|r| r.replication_lag_ms(now_ms))
        .map(u64::from)
        .max()
}
