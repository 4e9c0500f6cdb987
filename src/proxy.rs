//! The Pingora glue: gather the request's facts, ask `decide`, carry the
//! decision out (peer, retries across origins and regions, headers), record it.

use std::net::IpAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use bytes::Bytes;
use http::header::{HeaderName, HeaderValue};
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::prelude::*;
use pingora::protocols::l4::socket::SocketAddr as PSocketAddr;
use pingora::proxy::{FailToProxy, ProxyHttp, Session};
use pingora::upstreams::peer::HttpPeer;
use pingora::{ErrorSource, ErrorType};

use crate::config::{RetryMethods, RetryOn};
use crate::facts::{self, RawRequest, WRITE_COOKIE, WRITE_HEADER};
use crate::geo::Country;
use crate::routing::{self, Decision, LiveHealth, TokenUse};
use crate::snapshot::{RegionIdx, Snapshot};
use crate::state::{now_ms, Shared};

// Header names looked up on every request, parsed once: a `&str` name is parsed
// again at each lookup.
static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
static X_WRITE_TOKEN: HeaderName = HeaderName::from_static(WRITE_HEADER);

/// The proxy service: one per process, shared by all listeners.
pub struct Proxy {
    pub shared: Arc<Shared>,
}

/// Per-request state.
pub struct Ctx {
    snap: Option<Arc<Snapshot>>,
    decision: Option<Decision>,
    started: Instant,
    /// Index into the decision's order of the region being tried.
    region_pos: usize,
    /// Origins of the current region already tried (bit per origin).
    tried: u64,
    /// Tries made so far.
    attempts: u32,
    /// Region and origin of the current try.
    current: Option<(RegionIdx, usize)>,
    /// When the current try started (time to first byte feeds the EWMA).
    attempt_started: Instant,
    /// The client as gathered (trusted X-Forwarded-For or the peer).
    client_ip: Option<IpAddr>,
    /// The TCP peer (appended to X-Forwarded-For upstream).
    peer_ip: Option<IpAddr>,
    country: Option<Country>,
    request_id: Option<String>,
    is_write: bool,
    tls: bool,
    /// The origin's outstanding counter was raised and must be lowered.
    outstanding: bool,
}

impl Ctx {
    fn snap(&self) -> &Snapshot {
        self.snap
            .as_deref()
            .expect("snapshot loaded in request_filter")
    }
}

fn status_class(status: u16) -> &'static str {
    match status {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        500..=599 => "5xx",
        _ => "none",
    }
}

/// A request id: the client's when it is short and printable, else a new random one.
fn request_id(given: Option<&[u8]>) -> String {
    match given {
        Some(v) if !v.is_empty() && v.len() <= 128 && v.iter().all(|b| b.is_ascii_graphic()) => {
            String::from_utf8_lossy(v).into_owned()
        }
        _ => {
            // 32 hex digits, written by hand: `format!` costs several times more.
            let mut id = String::with_capacity(32);
            let bits = rand::random::<u128>();
            for shift in (0..32).rev() {
                id.push(char::from(
                    b"0123456789abcdef"[(bits >> (shift * 4)) as usize & 15],
                ));
            }
            id
        }
    }
}

/// Writes a gateway-made JSON error (CONTRACT §4).
async fn respond_json(session: &mut Session, status: u16, error: &str, detail: &str) -> Result<()> {
    let body = serde_json::json!({ "error": error, "detail": detail }).to_string();
    let mut resp = ResponseHeader::build(status, Some(3))?;
    resp.insert_header("content-type", "application/json")?;
    resp.insert_header("content-length", body.len().to_string())?;
    resp.insert_header("cache-control", "no-store")?;
    session.write_response_header(Box::new(resp), false).await?;
    session
        .write_response_body(Some(Bytes::from(body)), true)
        .await
}

/// A Host header is a DNS name or IP literal with an optional port: anything else
/// (spaces, slashes, quotes, `@`, control bytes) is refused before it reaches a
/// route match, a log line or an origin.
fn valid_host(host: &[u8]) -> bool {
    host.len() <= 255
        && host.iter().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b':' | b'[' | b']')
        })
}

/// The request's host without a port: from Host, else the URI (HTTP/2 `:authority`).
fn request_host(req: &RequestHeader) -> &str {
    let host = req
        .headers
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| req.uri.host())
        .unwrap_or("");
    // A byte scan: hosts are short, and `rsplit_once` costs several times more.
    match host.bytes().rposition(|b| b == b':') {
        Some(i)
            if host.as_bytes()[i + 1..].iter().all(u8::is_ascii_digit)
                && !host[..i].ends_with(':') =>
        {
            &host[..i]
        }
        _ => host,
    }
}

impl Proxy {
    /// A response with a status from `routing.retries.on`, for a method that may be
    /// repeated, with somewhere left to go: the retry's target.
    fn status_retry_target(
        &self,
        session: &Session,
        ctx: &mut Ctx,
        status: u16,
    ) -> Option<(RegionIdx, usize)> {
        let retries = &ctx.snap().config.routing.retries;
        let method_ok = match retries.methods {
            RetryMethods::Idempotent => session.req_header().method.is_idempotent(),
            RetryMethods::All => true,
        };
        if !method_ok || !retries.on.contains(&RetryOn::Status(status)) {
            return None;
        }
        let to = self.retry_target(ctx)?;
        self.take_retry(ctx).then_some(to)
    }

    /// Takes a retry from the budget; counts a denial.
    fn take_retry(&self, ctx: &Ctx) -> bool {
        let b = &ctx.snap().config.routing.retries.budget;
        let ok = self
            .shared
            .retry_budget
            .try_retry(now_ms() / 1000, b.ratio, b.min_per_second);
        if !ok {
            self.shared
                .metrics
                .retries_denied
                .with_label_values(&["budget"])
                .inc();
        }
        ok
    }

    /// Feeds one live result of the current try to outlier detection and, for
    /// answers, its time to first byte to the latency EWMA.
    fn record_result(&self, ctx: &Ctx, failed: bool) {
        let Some((r, o)) = ctx.current else {
            return;
        };
        let snap = ctx.snap();
        let region = &snap.regions[r];
        let origin = &region.origins[o];
        if !failed {
            let us = ctx.attempt_started.elapsed().as_micros();
            origin
                .health
                .observe_latency_us(us.min(u128::from(u32::MAX)) as u32);
        }
        let policy = &snap.config.outlier_detection;
        if let Some(ms) = crate::health::outlier::record(
            &origin.health,
            &region.origins,
            failed,
            now_ms(),
            policy,
        ) {
            tracing::warn!(
                region = %region.name,
                origin = %origin.address,
                ejected_ms = ms,
                "origin ejected by outlier detection"
            );
        }
    }

    /// Counts what gathering the facts and deciding found (GeoIP, XFF, tokens).
    fn record_facts(&self, found: &facts::Findings, decision: &Decision) {
        let m = &self.shared.metrics;
        if let Some(r) = found.geo_result {
            m.geo_lookups.with_label_values(&[r.as_str()]).inc();
        }
        if found.xff_malformed > 0 {
            m.xff_malformed
                .with_label_values(&["x-forwarded-for"])
                .inc_by(u64::from(found.xff_malformed));
        }
        let token = match decision.token {
            TokenUse::Honored => Some("honored"),
            TokenUse::RegionUnhealthy => Some("region_unhealthy"),
            TokenUse::OutsideResidency => Some("outside_residency"),
            TokenUse::None => found.token_outcome,
        };
        if let Some(outcome) = token {
            m.write_tokens.with_label_values(&[outcome]).inc();
        }
    }

    /// After a write below 500 on a read-your-writes route, hands the client a token
    /// pinning its reads to the region that took the write (CONTRACT §4).
    fn issue_write_token(&self, resp: &mut ResponseHeader, ctx: &Ctx) -> Result<()> {
        let (Some((r, _)), Some(d)) = (ctx.current, ctx.decision.as_ref()) else {
            return Ok(());
        };
        let snap = ctx.snap();
        let Some(window) = &snap.routes[d.route].read_your_writes else {
            return Ok(());
        };
        if !ctx.is_write || resp.status.as_u16() >= 500 {
            return Ok(());
        }
        let now = now_ms();
        let window_ms = facts::ryw_window_ms(snap, window, now);
        let token = snap.keys.sign_write(&snap.regions[r].name, now + window_ms);
        let cookie = crate::cookie::set_cookie_value(
            WRITE_COOKIE,
            &token,
            window_ms.div_ceil(1000),
            ctx.tls,
        );
        resp.append_header(http::header::SET_COOKIE, cookie)?;
        resp.insert_header(WRITE_HEADER, token)?;
        self.shared
            .metrics
            .write_tokens
            .with_label_values(&["issued"])
            .inc();
        Ok(())
    }

    /// Next (region, origin) to try, or None when the decision's order is used up.
    fn next_target(&self, ctx: &mut Ctx) -> Option<(RegionIdx, usize)> {
        let snap = ctx.snap.clone()?;
        let order = &ctx.decision.as_ref()?.order;
        let health = LiveHealth {
            snap: &snap,
            now_ms: now_ms(),
        };
        // The last try goes to another region when there is one: a region that just
        // failed a try may be going down, and only another region is known to be apart.
        let last_try = ctx.attempts + 1 >= snap.config.routing.retries.attempts;
        if ctx.attempts > 0 && last_try && ctx.region_pos + 1 < order.len() {
            ctx.region_pos += 1;
            ctx.tried = 0;
        }
        let mut rng = rand::thread_rng();
        while ctx.region_pos < order.len() {
            let r = order[ctx.region_pos];
            if let Some(o) = routing::pick_origin(&snap, &health, r, ctx.tried, &mut rng) {
                return Some((r, o));
            }
            ctx.region_pos += 1;
            ctx.tried = 0;
        }
        None
    }

    /// Counts a retry from the current target's region to `to`.
    fn count_retry(&self, ctx: &Ctx, to: RegionIdx, reason: &str) {
        let snap = ctx.snap();
        let from = ctx
            .current
            .map_or("", |(r, _)| snap.regions[r].name.as_str());
        self.shared
            .metrics
            .retries
            .with_label_values(&[from, snap.regions[to].name.as_str(), reason])
            .inc();
    }

    /// Where a retry would go: None when the tries are used up or no origin is
    /// left. Only peeks; the retry's `upstream_peer` chooses again.
    fn retry_target(&self, ctx: &mut Ctx) -> Option<(RegionIdx, usize)> {
        if ctx.attempts >= ctx.snap.as_ref()?.config.routing.retries.attempts {
            return None;
        }
        let before = (ctx.region_pos, ctx.tried);
        let next = self.next_target(ctx);
        (ctx.region_pos, ctx.tried) = before;
        next
    }

    fn release_outstanding(&self, ctx: &mut Ctx) {
        if ctx.outstanding {
            if let Some((r, o)) = ctx.current {
                ctx.snap().regions[r].origins[o]
                    .health
                    .outstanding
                    .fetch_sub(1, Relaxed);
            }
            ctx.outstanding = false;
        }
    }
}

#[async_trait]
impl ProxyHttp for Proxy {
    type CTX = Ctx;

    fn new_ctx(&self) -> Ctx {
        Ctx {
            snap: None,
            decision: None,
            started: Instant::now(),
            attempt_started: Instant::now(),
            region_pos: 0,
            tried: 0,
            attempts: 0,
            current: None,
            peer_ip: None,
            client_ip: None,
            country: None,
            request_id: None,
            is_write: false,
            tls: false,
            outstanding: false,
        }
    }

    async fn request_filter(&self, session: &mut Session, ctx: &mut Ctx) -> Result<bool> {
        let snap = self.shared.snapshot.load_full();
        let peer_ip = match session.client_addr() {
            Some(PSocketAddr::Inet(a)) => a.ip().to_canonical(),
            _ => IpAddr::from([127, 0, 0, 1]),
        };
        ctx.tls = session.digest().is_some_and(|d| d.ssl_digest.is_some());
        ctx.peer_ip = Some(peer_ip);
        let mut hosts = session
            .req_header()
            .headers
            .get_all(http::header::HOST)
            .iter();
        // None is fine (HTTP/2 carries `:authority`); two are never fine.
        let bad_host = match (hosts.next(), hosts.next()) {
            (Some(h), None) => !valid_host(h.as_bytes()),
            (None, _) => false,
            (Some(_), Some(_)) => true,
        };
        if bad_host {
            self.shared
                .metrics
                .requests_rejected
                .with_label_values(&["bad_host"])
                .inc();
            respond_json(
                session,
                400,
                "bad_request",
                "invalid or repeated Host header",
            )
            .await?;
            return Ok(true);
        }
        let req = session.req_header();
        ctx.request_id = Some(request_id(
            req.headers.get(&X_REQUEST_ID).map(|v| v.as_bytes()),
        ));
        let values = |name: &'static HeaderName| {
            req.headers
                .get_all(name)
                .into_iter()
                .filter_map(|v| v.to_str().ok())
        };
        // Usually none or one: an empty Vec does not allocate.
        let cookies: Vec<&str> = values(&http::header::COOKIE).collect();
        let raw = RawRequest {
            peer: peer_ip,
            xff: values(&X_FORWARDED_FOR),
            cookies: &cookies,
            token_header: values(&X_WRITE_TOKEN).next(),
            method: req.method.as_str(),
            host: request_host(req),
            path: req.uri.path(),
            now_ms: now_ms(),
        };
        let (facts, found) = facts::gather(&snap, raw);
        self.shared.retry_budget.on_request(facts.now_ms / 1000);
        ctx.is_write = facts.is_write;
        ctx.country = facts.country;
        ctx.client_ip = Some(found.client);
        let health = LiveHealth {
            snap: &snap,
            now_ms: facts.now_ms,
        };
        let decision = routing::decide(&snap, &health, &facts, &mut rand::thread_rng());
        self.record_facts(&found, &decision);
        let rejected = decision.rejected();
        if snap.config.routing.retries.methods == RetryMethods::All {
            // Keep the start of request bodies so a retry can resend them.
            session.enable_retry_buffering();
        }
        ctx.decision = Some(decision);
        ctx.snap = Some(snap);
        if rejected {
            respond_json(
                session,
                503,
                "no_healthy_region",
                "no region your data may be served from is available",
            )
            .await?;
            return Ok(true);
        }
        Ok(false)
    }

    async fn upstream_peer(&self, _session: &mut Session, ctx: &mut Ctx) -> Result<Box<HttpPeer>> {
        self.release_outstanding(ctx);
        let Some((r, o)) = self.next_target(ctx) else {
            return Err(Error::explain(
                ErrorType::ConnectNoRoute,
                "no origin left to try",
            ));
        };
        ctx.tried |= 1 << o;
        ctx.attempts += 1;
        ctx.current = Some((r, o));
        ctx.attempt_started = Instant::now();
        ctx.outstanding = true;
        let snap = ctx.snap();
        let origin = &snap.regions[r].origins[o];
        origin.health.outstanding.fetch_add(1, Relaxed);
        let t = &snap.config.timeouts;
        let mut peer = HttpPeer::new(origin.socket, origin.tls.is_some(), origin.sni.clone());
        peer.options.connection_timeout = Some(t.connect.get());
        peer.options.read_timeout = Some(t.read.get());
        peer.options.idle_timeout = Some(t.idle.get());
        if let Some(tls) = &origin.tls {
            peer.options.ca = tls.ca.clone();
            peer.client_cert_key = tls.client_cert.clone();
            if !tls.verify {
                peer.options.verify_cert = false;
                peer.options.verify_hostname = false;
            }
        }
        Ok(Box::new(peer))
    }

    async fn upstream_request_filter(
        &self,
        session: &mut Session,
        upstream: &mut RequestHeader,
        ctx: &mut Ctx,
    ) -> Result<()> {
        let snap = ctx.snap();
        let (r, o) = ctx.current.expect("upstream_peer chose a target");
        let origin = &snap.regions[r].origins[o];
        // Append the peer to any X-Forwarded-For the client sent (one header,
        // comma-joined), written by hand: `format!` costs several times more.
        let mut xff = Vec::with_capacity(64);
        if let Some(prev) = upstream.headers.get(&X_FORWARDED_FOR) {
            xff.extend_from_slice(prev.as_bytes());
            xff.extend_from_slice(b", ");
        }
        if let Some(ip) = ctx.peer_ip {
            crate::access_log::ip(&mut xff, ip);
        }
        let xff = HeaderValue::from_maybe_shared(Bytes::from(xff))
            .map_err(|_| Error::explain(ErrorType::InvalidHTTPHeader, "X-Forwarded-For"))?;
        upstream.insert_header("x-forwarded-for", xff)?;
        upstream.insert_header("x-forwarded-proto", if ctx.tls { "https" } else { "http" })?;
        if let Some(host) = session
            .req_header()
            .headers
            .get(http::header::HOST)
            .cloned()
        {
            upstream.insert_header("x-forwarded-host", host)?;
        }
        if let Some(id) = &ctx.request_id {
            upstream.insert_header("x-request-id", id.as_str())?;
        }
        upstream.insert_header(
            "x-meridian-client-country",
            ctx.country.as_ref().map_or("XX", |c| c.as_str()),
        )?;
        upstream.insert_header(
            "x-meridian-edge-region",
            snap.regions[snap.local_region].name.as_str(),
        )?;
        if let Some(h) = &origin.host_header {
            upstream.insert_header(http::header::HOST, h.as_str())?;
        }
        Ok(())
    }

    async fn response_filter(
        &self,
        _session: &mut Session,
        resp: &mut ResponseHeader,
        ctx: &mut Ctx,
    ) -> Result<()> {
        let snap = ctx.snap();
        if let Some((r, _)) = ctx.current {
            resp.insert_header("x-meridian-region", snap.regions[r].name.as_str())?;
        }
        if snap.config.debug_headers {
            if let Some(d) = &ctx.decision {
                resp.insert_header("x-meridian-decision", d.reasons.to_string())?;
            }
        }
        self.issue_write_token(resp, ctx)?;
        Ok(())
    }

    async fn upstream_response_filter(
        &self,
        session: &mut Session,
        resp: &mut ResponseHeader,
        ctx: &mut Ctx,
    ) -> Result<()> {
        let status = resp.status.as_u16();
        self.record_result(ctx, status >= 500);
        // Nothing of this answer went to the client yet: drop it and try the next
        // origin or region (upstream_peer picks it; the error carries the retry flag).
        let Some((to, _)) = self.status_retry_target(session, ctx, status) else {
            return Ok(());
        };
        self.count_retry(ctx, to, &format!("status_{status}"));
        let mut e = Error::explain(
            ErrorType::HTTPStatus(status),
            "retryable status from the origin",
        );
        e.set_retry(true);
        Err(e)
    }

    /// Pingora's policy (idempotent methods only, never with a truncated body
    /// buffer), widened to every method when `routing.retries.methods: all`.
    fn error_while_proxy(
        &self,
        peer: &HttpPeer,
        session: &mut Session,
        e: Box<Error>,
        ctx: &mut Ctx,
        client_reused: bool,
    ) -> Box<Error> {
        let mut e = e.more_context(format!("Peer: {peer}"));
        let all = ctx
            .snap
            .as_ref()
            .is_some_and(|s| s.config.routing.retries.methods == RetryMethods::All);
        let method_ok = all || session.req_header().method.is_idempotent();
        let upstream_failure = e.esource() == &ErrorSource::Upstream;
        if upstream_failure && !matches!(e.etype(), ErrorType::HTTPStatus(_)) {
            // A connection that died under a request counts against its origin.
            self.record_result(ctx, true);
        }
        // With nothing left to try, the error stands as it is (a 502/504, not a
        // "no route" from a retry that cannot happen).
        let target = if method_ok && !session.as_ref().retry_buffer_truncated() {
            self.retry_target(ctx)
        } else {
            None
        };
        let Some((to, _)) = target else {
            e.set_retry(false);
            return e;
        };
        if upstream_failure && session.response_written().is_none() {
            if !self.take_retry(ctx) {
                e.set_retry(false);
                return e;
            }
            let reason = match e.etype() {
                ErrorType::ReadTimedout | ErrorType::WriteTimedout => "timeout",
                _ => "connection_error",
            };
            self.count_retry(ctx, to, reason);
            // The origin failed before answering and the method may be repeated:
            // try elsewhere whether or not the connection was fresh (Pingora only
            // retries reused ones), so a dying region costs no idempotent request.
            e.set_retry(true);
        } else {
            e.retry.decide_reuse(client_reused);
        }
        e
    }

    fn fail_to_connect(
        &self,
        _session: &mut Session,
        _peer: &HttpPeer,
        ctx: &mut Ctx,
        mut e: Box<Error>,
    ) -> Box<Error> {
        self.record_result(ctx, true);
        if let Some((r, o)) = ctx.current {
            let snap = ctx.snap();
            let region = &snap.regions[r];
            self.shared
                .metrics
                .upstream_connect_failures
                .with_label_values(&[&region.name, &region.origins[o].address])
                .inc();
        }
        // Nothing was sent yet, so any request may go elsewhere.
        let Some((to, _)) = self.retry_target(ctx) else {
            return e;
        };
        if self.take_retry(ctx) {
            e.set_retry(true);
            self.count_retry(ctx, to, "connect_failure");
        }
        e
    }

    async fn fail_to_proxy(&self, session: &mut Session, e: &Error, _ctx: &mut Ctx) -> FailToProxy {
        let (code, error) = match e.etype() {
            ErrorType::HTTPStatus(code) => (*code, ""),
            ErrorType::ConnectTimedout | ErrorType::ReadTimedout | ErrorType::WriteTimedout => {
                (504, "upstream_timeout")
            }
            _ => match e.esource() {
                ErrorSource::Upstream | ErrorSource::Internal => (502, "upstream_unreachable"),
                ErrorSource::Downstream => match e.etype() {
                    ErrorType::WriteError | ErrorType::ReadError | ErrorType::ConnectionClosed => {
                        (0, "")
                    }
                    _ => (400, ""),
                },
                ErrorSource::Unset => (500, ""),
            },
        };
        // Only possible while nothing of the response went out yet.
        if code > 0 && session.response_written().is_none() {
            let res = if error.is_empty() {
                session.respond_error(code).await
            } else {
                respond_json(session, code, error, e.etype().as_str()).await
            };
            if let Err(we) = res {
                tracing::debug!("could not send error response: {we}");
            }
        }
        FailToProxy {
            error_code: code,
            can_reuse_downstream: false,
        }
    }

    async fn logging(&self, session: &mut Session, _e: Option<&Error>, ctx: &mut Ctx) {
        self.release_outstanding(ctx);
        let Some(snap) = ctx.snap.as_deref() else {
            return;
        };
        let status = session.response_written().map_or(0, |r| r.status.as_u16());
        let region = ctx
            .current
            .map_or("none", |(r, _)| snap.regions[r].name.as_str());
        if let Some((r, _)) = ctx.current {
            let state = &snap.regions[r].state;
            state.responses.fetch_add(1, Relaxed);
            if status == 0 || status >= 500 {
                state.errors.fetch_add(1, Relaxed);
            }
        }
        let decision = ctx.decision.as_ref().map_or("none", |d| d.reasons.label());
        let class = if ctx.is_write { "write" } else { "read" };
        let m = &self.shared.metrics;
        m.requests
            .with_label_values(&[region, decision, class, status_class(status)])
            .inc();
        let elapsed = ctx.started.elapsed();
        crate::rates::record(snap, ctx.current, status == 0 || status >= 500, elapsed);
        m.request_duration
            .with_label_values(&[region])
            .observe(elapsed.as_secs_f64());
        let log = &snap.config.access_log;
        if log.enabled
            && tracing::enabled!(target: "meridian::access", tracing::Level::INFO)
            && (log.sample >= 1.0 || rand::random::<f64>() < log.sample)
        {
            let req = session.req_header();
            let entry = crate::access_log::Entry {
                request_id: ctx.request_id.as_deref().unwrap_or(""),
                client: ctx.client_ip.unwrap_or(IpAddr::from([0, 0, 0, 0])),
                country: ctx.country.as_ref().map_or("XX", |c| c.as_str()),
                method: req.method.as_str(),
                path: req.uri.path(),
                route: ctx.decision.as_ref().map_or(-1, |d| d.route as i64),
                decision,
                reasons: ctx.decision.as_ref().map(|d| d.reasons),
                region,
                origin: ctx
                    .current
                    .map_or("", |(r, o)| snap.regions[r].origins[o].address.as_str()),
                status,
                bytes: session.body_bytes_sent(),
                duration: elapsed,
                tries: ctx.attempts,
            };
            crate::access_log::log(&entry, crate::logging::json());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host_of(host: &str) -> String {
        let mut req = RequestHeader::build("GET", b"/", None).unwrap();
        req.insert_header("host", host).unwrap();
        request_host(&req).to_string()
    }

    #[test]
    fn the_port_is_cut_from_the_host_and_nothing_else() {
        assert_eq!(host_of("api.example.com:8443"), "api.example.com");
        assert_eq!(host_of("api.example.com"), "api.example.com");
        assert_eq!(host_of("[2001:db8::1]:443"), "[2001:db8::1]");
        assert_eq!(host_of("[2001:db8::1]"), "[2001:db8::1]");
        assert_eq!(host_of("a.example:"), "a.example");
        assert_eq!(host_of("a.example:x1"), "a.example:x1");
    }
}
