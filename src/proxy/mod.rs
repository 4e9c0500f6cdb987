//! The data path on hyper: a request's facts gathered, `decide` asked, the
//! decision carried out (tries across origins and regions, the wire contract's
//! headers, write tokens), and the request recorded when its answer ends.
//!
//! Policy lives beside `decide` and is pure (`routing::Walk` for where each try
//! goes, `routing::retry` for whether a failure may be retried, `host` for the
//! Host rules, `facts::issue_write_token`); this file only gathers and carries.

pub mod blame;
mod body;
mod fork;
pub mod form;
mod headers;
pub mod host;
pub mod listener;
pub mod overload;
pub mod sni;
pub mod upstream;
mod wait;

pub mod pool;
pub mod proxy_protocol;
pub mod retry_budget;
pub mod tls;

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::Ordering::{Relaxed, SeqCst};
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, Uri};
use http_body::Body as _;
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use rand::thread_rng;

use blame::{ClientFault, Fault};
use body::End;
pub use body::ResponseBody;

use crate::core::config::units::MaxInflight;
use crate::core::health::endpoints::Endpoint;
use crate::core::routing::retry::{self, Failure, Next, Repeatable};
use crate::core::routing::{self, Decision, LiveOrigins, Reasons, TokenUse, Walk};
use crate::core::snapshot::{Asking, RegionIdx, Snapshot};
use crate::proxy::pool::{RequestBody, Upload};
use crate::request::facts::{self, RawRequest};
use crate::request::geo::{Country, GeoResult};
use crate::request::rate_limit::{Admitted, Denied, RouteLimit};
use crate::request::tokens::TokenOutcome;
use crate::services::shared::Shared;
use crate::telemetry::labels::{Reject, RetryDenied, XffHeader};
use crate::telemetry::rates::Overflow;
use crate::util::clock::{monotonic_ms, now_ms};

/// Request bodies up to this size are kept whole when `retries.methods: all`, so
/// a retry can send them again; larger ones stream and are sent once.
const RETRY_BODY_LIMIT: u64 = 64 * 1024;

/// What the connection a request came on tells about it.
#[derive(Debug, Clone, Copy)]
pub struct ConnInfo {
    /// The client's address: the TCP peer, or what a PROXY header said.
    pub peer: SocketAddr,
    pub tls: bool,
}

/// The proxy: one per process, shared by all listeners.
pub struct Proxy {
    pub shared: Arc<Shared>,
    /// Caps retries to a share of the request rate (`routing.retries.budget`);
    /// only the data path counts and spends it.
    pub retry_budget: crate::proxy::retry_budget::RetryBudget,
    /// No policy at all (`MERIDIAN_PASSTHROUGH=1`): the floor meridian's own
    /// per-request work is measured against (loadtest/perf's `engine` row).
    /// Only in a build with the `bench-engine` feature, never in the product.
    #[cfg(feature = "bench-engine")]
    pub passthrough: bool,
    /// `geo_lookups_total{result}` for each `GeoResult`, resolved once.
    geo_lookups: [prometheus::IntCounter; GeoResult::ALL.len()],
}

/// Per-request facts the answer and the record need.
struct Ctx {
    snap: Arc<Snapshot>,
    started: Instant,
    client_ip: IpAddr,
    country: Option<Country>,
    request_id: HeaderValue,
    is_write: bool,
    tls: bool,
    /// What the route's rate limit left the request's key, for the answer's
    /// `RateLimit` (None on a route without one).
    rate_left: Option<Admitted>,
    method: Method,
    uri: Uri,
}

impl Ctx {
    /// A request's context as it arrives, before its facts are gathered.
    fn new(
        snap: Arc<Snapshot>,
        req: &Request<Incoming>,
        seen: &headers::Seen<'_>,
        peer_ip: IpAddr,
        tls: bool,
    ) -> Ctx {
        Ctx {
            snap,
            started: Instant::now(),
            client_ip: peer_ip,
            country: None,
            request_id: request_id(seen.request_id),
            is_write: false,
            tls,
            rate_left: None,
            method: req.method().clone(),
            uri: req.uri().clone(),
        }
    }
}

/// What is recorded of a request when its answer ends.
pub struct Record {
    shared: Arc<Shared>,
    ctx: Ctx,
    route: i64,
    reasons: Option<Reasons>,
    /// Region and origin that answered (or were tried last).
    target: Option<(RegionIdx, usize)>,
    /// The endpoint in flight, whose in-flight count was raised and must be
    /// lowered (held, not indexed: the origin's addresses may change meanwhile).
    outstanding: Option<Arc<Endpoint>>,
    status: u16,
    tries: u32,
    /// Body bytes the client was sent, and whether the answer went out whole
    /// (set by the answer's body as it ends).
    bytes: usize,
    complete: bool,
    /// The origin's answer failed on its way (an error or a stall in its
    /// body): a body cut short for that reason is the origin's doing.
    origin_failed: bool,
    /// The client's fault, when a failure was found to be.
    fault: Option<ClientFault>,
    /// A gateway-made answer's `error`, for the access log: an index into
    /// `GATEWAY_ERRORS` (a byte, not a `&str`: every request's future holds
    /// its record, and is moved into its box).
    error: u8,
    /// Written down already (by [`Record::finish`]): its drop does nothing.
    written: bool,
}

/// The draft-ietf-httpapi-ratelimit-headers fields of a rate-limited answer.
const RATELIMIT_POLICY: http::HeaderName = http::HeaderName::from_static("ratelimit-policy");
const RATELIMIT: http::HeaderName = http::HeaderName::from_static("ratelimit");

/// Every `error` a gateway-made answer gives; the first, "", is none.
const GATEWAY_ERRORS: [&str; 12] = [
    "",
    "upstream_unreachable",
    "upstream_timeout",
    "no_healthy_region",
    "bad_request",
    "method_not_allowed",
    "not_implemented",
    "client_gone",
    "request_timeout",
    "payload_too_large",
    "overloaded",
    "rate_limited",
];

/// `error`'s index in `GATEWAY_ERRORS` (0 when it is not there).
fn error_index(error: &str) -> u8 {
    GATEWAY_ERRORS
        .iter()
        .position(|e| *e == error)
        .map_or(0, |i| i as u8)
}

/// The fallback for a request that never reaches its named end
/// ([`Record::finish`], called as its answer's body ends): its future dropped
/// before an answer, the client gone (recorded with status 0).
impl Drop for Record {
    fn drop(&mut self) {
        self.write_down();
    }
}

impl Record {
    /// The request's normal end: its answer's body ended after `bytes` bytes,
    /// read whole (`complete`) or cut short, by the origin when `origin_failed`.
    /// In place (the record is large): dropping it afterwards records nothing.
    pub fn finish(&mut self, bytes: usize, complete: bool, origin_failed: bool) {
        if !self.written {
            (self.bytes, self.complete, self.origin_failed) = (bytes, complete, origin_failed);
            self.write_down();
        }
    }

    /// Metrics, the region's rolling counts and the access log line, once:
    /// by [`Record::finish`], or by the drop of a record never finished.
    fn write_down(&mut self) {
        if self.written {
            return;
        }
        self.written = true;
        self.release_outstanding();
        self.settle_fault();
        let snap = &*self.ctx.snap;
        // A body cut short is a failed answer whatever its status said.
        let status = if self.complete { self.status } else { 0 };
        let region = self
            .target
            .map_or("none", |(r, _)| snap.regions[r].name.as_str());
        let decision = self.reasons.unwrap_or_default().label_index();
        let status_idx = status_class(self.status);
        let labels = [
            region,
            Reasons::label_of(decision),
            if self.ctx.is_write { "write" } else { "read" },
            STATUS_CLASSES[status_idx],
        ];
        // One reading of the clock for the duration and the rolling rates.
        let end = Instant::now();
        let elapsed = end.saturating_duration_since(self.ctx.started);
        let failed = status == 0 || status >= 500;
        let slot =
            (decision * 2 + usize::from(self.ctx.is_write)) * STATUS_CLASSES.len() + status_idx;
        self.count(&labels, slot, failed, end, elapsed);
        self.log_access(&labels, elapsed);
    }

    /// Settles whose fault the request's end was: unanswered (the client's
    /// connection ended, dropping the request), or its answer cut short with
    /// nothing wrong on the origin's side, the client left. A client's fault
    /// sets the status it is recorded with.
    fn settle_fault(&mut self) {
        let left = self.status == 0 || (!self.complete && !self.origin_failed);
        if self.fault.is_none() && left {
            self.fault = Some(ClientFault::Gone);
            self.count_rejected(ClientFault::Gone);
            self.error = error_index(ClientFault::Gone.error());
        }
        if let Some(fault) = self.fault {
            self.status = fault.status();
        }
    }

    /// `requests_total` (`labels`; `slot`: their index in the region's kept
    /// series), the duration, and the region's and origin's rolling counts.
    fn count(
        &self,
        labels: &[&str; 4],
        slot: usize,
        failed: bool,
        end: Instant,
        elapsed: std::time::Duration,
    ) {
        let (snap, m) = (&*self.ctx.snap, &self.shared.metrics);
        match self.target {
            // A client's fault is no origin's or region's failure, nor
            // evidence of their health: it leaves their counts alone.
            Some((r, o)) if self.fault.is_none() => {
                let region = &snap.regions[r];
                let state = &region.state;
                state.responses.fetch_add(1, Relaxed);
                if failed {
                    state.errors.fetch_add(1, Relaxed);
                }
                state.series.count_request(m, slot, labels);
                state
                    .series
                    .observe_duration(m, &region.name, elapsed.as_secs_f64());
                let origin = region.origins.get(o).map(|o| &o.endpoints.rates);
                let now = crate::util::clock::monotonic_ms_at(end);
                crate::telemetry::rates::record(&state.rates, origin, failed, elapsed, now);
            }
            _ => {
                m.requests.with_label_values(labels).inc();
                m.request_duration
                    .with_label_values(&[labels[0]])
                    .observe(elapsed.as_secs_f64());
            }
        }
    }

    /// The access log line, when the log is on and the request is sampled.
    fn log_access(&self, labels: &[&str; 4], elapsed: std::time::Duration) {
        let snap = &*self.ctx.snap;
        let sample = snap.data_path.access_log_sample;
        if sample > 0.0
            && tracing::enabled!(target: "meridian::access", tracing::Level::INFO)
            && (sample >= 1.0 || rand::random::<f64>() < sample)
        {
            let entry = crate::telemetry::access_log::Entry {
                request_id: self.ctx.request_id.to_str().unwrap_or(""),
                client: self.ctx.client_ip,
                country: self.ctx.country.as_ref().map_or("XX", |c| c.as_str()),
                method: self.ctx.method.as_str(),
                path: self.ctx.uri.path(),
                route: self.route,
                decision: labels[1],
                reasons: self.reasons,
                region: labels[0],
                origin: self
                    .target
                    .map_or("", |(r, o)| snap.regions[r].origins[o].address.as_str()),
                status: self.status,
                bytes: self.bytes,
                duration: elapsed,
                tries: self.tries,
                error: GATEWAY_ERRORS[usize::from(self.error)],
            };
            crate::telemetry::access_log::log(&entry, crate::telemetry::logging::json());
        }
    }

    /// Counts a client's fault once, when it is found.
    fn count_rejected(&self, fault: ClientFault) {
        self.shared
            .metrics
            .requests_rejected
            .with_label_values(&[fault.reason()])
            .inc();
    }

    /// Marks the request as failed by its client (see `blame`).
    fn blame_client(&mut self, fault: ClientFault) {
        if self.fault.is_none() {
            self.fault = Some(fault);
            self.count_rejected(fault);
        }
    }

    /// Gives back the place the try in flight holds (`OriginEntry::admit`).
    fn release_outstanding(&mut self) {
        if let Some(endpoint) = self.outstanding.take() {
            endpoint.health.outstanding.fetch_sub(1, SeqCst);
            self.shared.room.place_freed();
        }
    }

    /// Starts a try at `endpoint` of `target`, which admitted it (its place is
    /// taken): it is now the one in flight.
    fn begin(&mut self, target: (RegionIdx, usize), endpoint: &Arc<Endpoint>) {
        self.release_outstanding();
        self.target = Some(target);
        self.outstanding = Some(endpoint.clone());
        self.tries += 1;
    }
}

/// `requests_total`'s `status_class` values; `status_class` numbers them.
const STATUS_CLASSES: [&str; 6] = ["1xx", "2xx", "3xx", "4xx", "5xx", "none"];

// Every series a region's requests can have fits its table of kept series.
const _: () = assert!(
    routing::Reasons::LABEL_COUNT * 2 * STATUS_CLASSES.len()
        <= crate::telemetry::metrics::REQUEST_SLOTS
);

/// A status's class, as an index into `STATUS_CLASSES`.
fn status_class(status: u16) -> usize {
    match status {
        100..=599 => usize::from(status / 100 - 1),
        _ => STATUS_CLASSES.len() - 1,
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// A request id: the client's when it is short and printable, else a new random one.
fn request_id(given: Option<&HeaderValue>) -> HeaderValue {
    match given {
        Some(v)
            if !v.is_empty()
                && v.len() <= 128
                && v.as_bytes().iter().all(|b| b.is_ascii_graphic()) =>
        {
            v.clone()
        }
        _ => {
            // 32 hex digits, two per random byte, written by hand: `format!`
            // costs several times more.
            let mut id = [0u8; 32];
            let bits = rand::random::<u128>().to_le_bytes();
            for (pair, byte) in id.chunks_exact_mut(2).zip(bits) {
                pair[0] = HEX[usize::from(byte >> 4)];
                pair[1] = HEX[usize::from(byte & 15)];
            }
            HeaderValue::from_bytes(&id).unwrap_or(HeaderValue::from_static("-"))
        }
    }
}

/// An answer on its way, boxed (see `Proxy::handle`).
pub type Answer = std::pin::Pin<
    Box<dyn std::future::Future<Output = Result<Response<ResponseBody>, Infallible>> + Send>,
>;

/// Where deciding left a request. Its large variant is the common one and is
/// moved into the request's future at once: boxing it would cost every request
/// an allocation.
#[allow(clippy::large_enum_variant)]
enum Decided {
    /// On its way to origins.
    Tries(Exchange),
    /// OriginAnswer by the gateway itself (a bad Host, no region to serve it).
    ByGateway(Response<ResponseBody>),
}

/// A request decided and made ready for origins: what its tries need.
struct Exchange {
    rec: Record,
    decision: Decision,
    /// The client's request head, its headers made ready for origins.
    parts: http::request::Parts,
    /// Its headers made ready once for every try.
    prepared: headers::Prepared,
    /// Wall-clock ms when it was decided.
    decided_ms: u64,
    /// The client's body, until the tries take it.
    body: Option<Incoming>,
    /// The client's side of a protocol switch, when it asked for one.
    upgrade: Option<hyper::upgrade::OnUpgrade>,
}

/// A request the gateway refuses before deciding (its form or its Host).
struct Refused {
    status: u16,
    error: &'static str,
    detail: &'static str,
    /// The connection closes after the answer.
    close: bool,
}

impl Refused {
    fn answer(self, rec: Record) -> Response<ResponseBody> {
        let mut resp = gateway_error(rec, self.status, self.error, self.detail);
        if self.close {
            resp.headers_mut()
                .insert(http::header::CONNECTION, HeaderValue::from_static("close"));
        }
        resp
    }
}

/// What one try got: the answer's head and, for HTTP/1, its connection to
/// return once the body was read.
struct OriginAnswer {
    resp: Response<Incoming>,
    reuse: Option<hyper::client::conn::http1::SendRequest<RequestBody>>,
    status: u16,
    /// When the try started (its time to first byte feeds the latency EWMA).
    started: Instant,
}

/// How one try failed, and so whose fault it is and what the client hears if
/// it is the last.
enum TryFailure {
    /// The origin's side: no connection, or no good answer after sending.
    Failed { failure: Failure, timed_out: bool },
    /// The client's side: its body broke, stalled or grew past its limit.
    Client(ClientFault),
    /// A streamed body already went with an earlier try.
    BodyGone,
}

impl TryFailure {
    /// What retry eligibility looks at.
    fn failure(&self) -> Failure {
        match self {
            TryFailure::Failed { failure, .. } => *failure,
            // Not retryable: the body cannot be sent again.
            TryFailure::Client(_) | TryFailure::BodyGone => Failure::AfterSend,
        }
    }

    /// The try ran out of time (rather than failing outright).
    fn timed_out(&self) -> bool {
        matches!(
            self,
            TryFailure::Failed {
                timed_out: true,
                ..
            }
        )
    }

    /// The gateway's answer when this failure ends the request.
    fn gateway_error(&self, rec: Record) -> Response<ResponseBody> {
        let (status, error, detail) = self.gateway_answer();
        gateway_error(rec, status, error, detail)
    }

    /// The gateway's answer when no try is left: status, `error`, `detail`
    /// (never an upstream library's words: those go to the log).
    fn gateway_answer(&self) -> (u16, &'static str, &'static str) {
        match self {
            TryFailure::Failed {
                failure: Failure::Connect,
                timed_out: true,
            } => (
                504,
                "upstream_timeout",
                "no connection within timeouts.connect",
            ),
            TryFailure::Failed {
                failure: Failure::Connect,
                ..
            } => (
                502,
                "upstream_unreachable",
                "the origin could not be reached",
            ),
            TryFailure::Failed {
                timed_out: true, ..
            } => (504, "upstream_timeout", "no answer within timeouts.read"),
            TryFailure::Failed { .. } => (
                502,
                "upstream_unreachable",
                "the origin's connection failed",
            ),
            TryFailure::Client(_) | TryFailure::BodyGone => {
                (502, "upstream_unreachable", "body already sent")
            }
        }
    }
}

/// The request's body as the tries will send it.
enum Payload {
    /// None, or kept whole: every try sends it.
    Whole(Option<Bytes>),
    /// Streamed: the first try that sends takes it; its progress stays here.
    Once {
        body: Option<Incoming>,
        /// The route's `limits.max_body`.
        limit: Option<u64>,
        progress: Option<Arc<Upload>>,
    },
}

impl Payload {
    /// The client's body as the tries will send it: kept whole when retries
    /// may repeat any method and it is small (`RETRY_BODY_LIMIT`), else streamed
    /// once. Reading it whole can find the client at fault.
    async fn read(x: &mut Exchange) -> Result<Payload, ClientFault> {
        let (body, snap, request_id) = (x.body.take(), &x.rec.ctx.snap, &x.rec.ctx.request_id);
        let route = x.decision.route;
        let (all_methods, max_body) = (
            snap.data_path.retries.all_methods,
            snap.routes[route].max_body,
        );
        let body = match body {
            Some(body) if !body.is_end_stream() => body,
            _ => return Ok(Payload::Whole(None)),
        };
        let small = body
            .size_hint()
            .upper()
            .is_some_and(|n| n <= RETRY_BODY_LIMIT);
        if !(all_methods && small) {
            return Ok(Payload::Once {
                body: Some(body),
                limit: max_body,
                progress: None,
            });
        }
        match Limited::new(body, RETRY_BODY_LIMIT as usize)
            .collect()
            .await
        {
            Ok(b) => Ok(Payload::Whole(Some(b.to_bytes()))),
            Err(e) => {
                tracing::debug!(request_id = ?request_id, "reading the request body failed: {e}");
                Err(match e.downcast_ref::<hyper::Error>() {
                    Some(e) => blame::of_body_error(e),
                    None => ClientFault::BadFraming,
                })
            }
        }
    }

    /// Whether a request with this body and `method` may be sent again.
    fn repeatable(&self, method: &Method) -> Repeatable {
        Repeatable {
            method: method.is_idempotent(),
            body: matches!(self, Payload::Whole(_)),
        }
    }

    /// The body for the next try, and for a streamed one its progress; None
    /// once a streamed body was sent.
    fn take(&mut self) -> Option<(RequestBody, Option<Arc<Upload>>)> {
        match self {
            Payload::Whole(b) => Some((RequestBody::Full(b.clone()), None)),
            Payload::Once {
                body,
                limit,
                progress,
            } => body.take().map(|b| {
                let upload = Arc::new(Upload::new(*limit));
                *progress = Some(upload.clone());
                (RequestBody::Stream(b, upload.clone()), Some(upload))
            }),
        }
    }

    /// Where the client's body is (see `blame::Upload`).
    fn upload(&self) -> blame::Upload {
        match self {
            Payload::Once {
                progress: Some(u), ..
            } => u.outcome(),
            _ => blame::Upload::Whole,
        }
    }
}

/// Waits for `answer` while something moves: it times out once `read` passed
/// with neither an answer nor a byte of the request body sent (a slow upload
/// is not a silent origin), or, while meridian waits on the client's body,
/// once `client_body` passed without its next bytes (`blame` then finds the
/// client stalled). None on timeout.
async fn within<F: std::future::Future>(
    read: std::time::Duration,
    client_body: std::time::Duration,
    upload: Option<&Upload>,
    mut answer: std::pin::Pin<&mut F>,
) -> Option<F::Output> {
    let tick = match upload {
        Some(_) => read.min(client_body),
        None => read,
    };
    let sent = |u: &Upload| u.sent.load(Relaxed);
    let mut seen = upload.map(sent);
    let mut quiet = std::time::Duration::ZERO;
    loop {
        match tokio::time::timeout(tick, answer.as_mut()).await {
            Ok(out) => return Some(out),
            Err(_) => {
                let now = upload.map(sent);
                if now != seen {
                    (seen, quiet) = (now, std::time::Duration::ZERO);
                    continue;
                }
                quiet += tick;
                let on_client =
                    upload.is_some_and(|u| u.outcome() == blame::Upload::WaitingOnClient);
                if quiet >= if on_client { client_body } else { read } {
                    return None;
                }
            }
        }
    }
}

impl Proxy {
    pub fn new(shared: Arc<Shared>) -> Proxy {
        let geo_lookups =
            GeoResult::ALL.map(|r| shared.metrics.geo_lookups.with_label_values(&[r.as_str()]));
        Proxy {
            shared,
            retry_budget: Default::default(),
            #[cfg(feature = "bench-engine")]
            passthrough: false,
            geo_lookups,
        }
    }

    /// The engine with no policy at all, when `on` (a bench-engine build only).
    #[cfg(feature = "bench-engine")]
    pub fn passthrough(self, on: bool) -> Proxy {
        Proxy {
            passthrough: on,
            ..self
        }
    }

    /// Answers one request; never fails (failures are answers).
    ///
    /// Everything up to the first wait (facts, decision, the request made ready
    /// for origins) runs here, synchronously; the future returned holds only
    /// what the tries need. It is boxed, and hyper moves it into its box once
    /// per request, so what it holds costs every request: an `async fn` here
    /// would hold the request, its parts and their copies side by side.
    pub fn handle(self: Arc<Self>, req: Request<Incoming>, conn: ConnInfo) -> Answer {
        #[cfg(feature = "bench-engine")]
        if self.passthrough {
            return self.pass_through(req);
        }
        match self.prepare(req, conn) {
            Decided::Tries(exchange) => Box::pin(self.carry_out(exchange)),
            Decided::ByGateway(answer) => Box::pin(std::future::ready(Ok(answer))),
        }
    }

    /// The request's facts, its decision and its record; a gateway answer
    /// when it goes no further. In order: its form and Host checked, its facts
    /// gathered, its route's rate limit asked, the decision, and the request
    /// made ready for origins.
    fn prepare(&self, mut req: Request<Incoming>, conn: ConnInfo) -> Decided {
        let peer_ip = conn.peer.ip().to_canonical();
        let seen = headers::Seen::read(req.headers());
        let mut ctx = Ctx::new(
            self.shared.snapshot.load_full(),
            &req,
            &seen,
            peer_ip,
            conn.tls,
        );
        let host = match self.check_form(&req, &seen) {
            Ok(host) => host,
            Err(refused) => return Decided::ByGateway(refused.answer(self.record(ctx, None))),
        };
        let snap = ctx.snap.clone();
        let now = now_ms();
        let (facts, found) = self.gather(&mut ctx, &req, &seen, host, now);
        if let Some(limit) = &snap.routes[facts.route].rate_limit {
            match limit.admit(found.client, facts.country, req.headers(), ctx.started) {
                Ok(left) => ctx.rate_left = Some(left),
                Err(denied) => {
                    let answer = self.rate_limited(ctx, (facts.route, limit), &found, denied);
                    return Decided::ByGateway(answer);
                }
            }
        }
        self.retry_budget.on_request(now / 1000);
        // One reading of every region's health: the decision sees one state.
        let health = snap.health_view(now);
        let decision = routing::decide(&snap, &health, &facts, &mut thread_rng());
        self.record_facts(&found, Some(&decision));
        let rec = self.record(ctx, Some(&decision));
        if decision.rejected() {
            let detail = "no region your data may be served from is available";
            return Decided::ByGateway(gateway_error(rec, 503, "no_healthy_region", detail));
        }
        // A body its length says is too large goes nowhere.
        let max_body = snap.routes[decision.route].max_body;
        if let (Some(max), Some(len)) = (max_body, req.body().size_hint().exact()) {
            if len > max {
                let answer = self.client_failed(rec, now, ClientFault::TooLarge);
                return Decided::ByGateway(answer);
            }
        }
        // The target's authority (absolute-form, HTTP/2's `:authority`) goes on
        // as `Host` in place of the client's.
        let target_host = req
            .uri()
            .authority()
            .and_then(|a| HeaderValue::from_str(a.as_str()).ok());
        let found = seen.into_found(peer_ip, target_host);
        // Made ready for origins here, in the value returned: what a helper
        // took by value (the request, the record) would be copied once more.
        let upgrade = found
            .hop
            .asks_upgrade(req.version())
            .then(|| hyper::upgrade::on(&mut req));
        let (mut parts, body) = req.into_parts();
        let prepared = headers::prepare(&mut parts, found, &rec.ctx, &snap, upgrade.is_some());
        Decided::Tries(Exchange {
            rec,
            decision,
            parts,
            prepared,
            decided_ms: now,
            body: Some(body),
            upgrade,
        })
    }

    /// The request's facts (`facts::gather`), and what they tell its context.
    fn gather<'r>(
        &self,
        ctx: &mut Ctx,
        req: &'r Request<Incoming>,
        seen: &'r headers::Seen<'r>,
        host: &'r str,
        now: u64,
    ) -> (routing::RequestFacts, facts::Findings) {
        let raw = RawRequest {
            peer: ctx.client_ip,
            xff: seen.xff(req.headers()),
            cookies: &seen.cookies,
            token_header: seen.write_token,
            method: req.method().as_str(),
            host,
            path: req.uri().path(),
            now_ms: now,
        };
        let (facts, found) = facts::gather(&ctx.snap, raw);
        ctx.is_write = facts.is_write;
        ctx.country = facts.country;
        ctx.client_ip = found.client;
        (facts, found)
    }

    /// The request's form (`form::check`) and Host (`host::check`): the host it
    /// names, or what the gateway refuses it with (counted).
    fn check_form<'r>(
        &self,
        req: &'r Request<Incoming>,
        seen: &headers::Seen<'r>,
    ) -> Result<&'r str, Refused> {
        if let Err(bad) = form::check(req.method(), req.uri(), seen.hop.other_coding()) {
            self.count_rejected(bad.reason());
            // The body is unread, and for an unknown coding unreadable: the
            // connection cannot carry a next request.
            return Err(Refused {
                status: bad.status(),
                error: bad.error(),
                detail: bad.detail(),
                close: true,
            });
        }
        host::check(req.version(), req.uri(), seen.host, seen.host_repeated).map_err(|bad| {
            self.count_rejected(Reject::BadHost.as_str());
            Refused {
                status: 400,
                error: "bad_request",
                detail: bad.detail(),
                close: false,
            }
        })
    }

    /// Carries a decision out: the tries across origins and regions, until an
    /// answer goes back to the client. Each try is [`Proxy::try_once`], whose
    /// failure says what it was; `retry::next_step` says whether another follows
    /// and where, and the budget has the last word. An `async` block rather than
    /// an `async fn`: an `async fn` keeps its arguments twice in its state, a
    /// block uses what it captured in place.
    #[allow(clippy::manual_async_fn)]
    fn carry_out(
        self: Arc<Self>,
        mut x: Exchange,
    ) -> impl std::future::Future<Output = Result<Response<ResponseBody>, Infallible>> + Send {
        async move {
            let snap = x.rec.ctx.snap.clone();
            let mut payload = match Payload::read(&mut x).await {
                Ok(payload) => payload,
                Err(fault) => return Ok(self.client_failed(x.rec, x.decided_ms, fault)),
            };
            // Writes never spill: at capacity they wait or are shed where they are.
            let spill = !x.rec.ctx.is_write;
            let priority = snap.routes[x.decision.route].priority;
            let mut walk = Walk::new(spill);
            // When the request first found no room anywhere (its wait counts from then).
            let mut no_room_since = None;
            // The clock as of deciding, then as of each try's end (or wait): read once
            // for what each step needs (health, outlier counts, the budget, a write token).
            let mut now = x.decided_ms;
            let attempts = snap.data_path.retries.attempts;
            loop {
                let live = LiveOrigins::at(now, priority);
                let order = &x.decision.order;
                let Some(to) = walk.next(&snap, &live, order, attempts, &mut thread_rng()) else {
                    if !walk.may_wait() {
                        let detail = "no origin left to try";
                        return Ok(gateway_error(x.rec, 502, "upstream_unreachable", detail));
                    }
                    let room = &self.shared.room;
                    match room
                        .wait(&snap.overload, priority, &mut no_room_since)
                        .await
                    {
                        Ok(()) => (walk, now) = (Walk::new(spill), now_ms()),
                        Err(why) => return Ok(self.shed(x.rec, &x.decision, why)),
                    }
                    continue;
                };
                let Some(endpoint) = self.take_place(&snap, &mut x, &to, priority, now) else {
                    // The endpoint left its origin's set, or its last place went,
                    // since the walk looked: the walk picks again.
                    walk.untake(&to);
                    continue;
                };
                let at = (to.region, to.origin);
                let tried = self.try_once(&snap, at, &endpoint, &x, &mut payload).await;
                now = now_ms();
                let failure = match self.observe_try(&snap, at, &endpoint, &tried, now) {
                    Ok(failure) => failure,
                    Err(fault) => return Ok(self.client_failed(x.rec, x.decided_ms, fault)),
                };
                let request = payload.repeatable(&x.parts.method);
                let live = LiveOrigins::at(now, priority);
                let rng = &mut thread_rng();
                let next =
                    retry::next_step(&snap, &walk, &x.decision, failure, request, &live, rng);
                if let Next::Retry { to: region } = next {
                    let reason =
                        retry::reason(failure, tried.as_ref().is_err_and(TryFailure::timed_out));
                    if self.spend_retry(&snap, (to.region, region), reason, now) {
                        continue;
                    }
                }
                // Giving up: the last try's answer, or the gateway's for its failure.
                return Ok(match tried {
                    Ok(a) => self.answer(
                        x.rec,
                        &x.decision,
                        x.upgrade,
                        (to.region, &endpoint),
                        a,
                        now,
                    ),
                    Err(f) => f.gateway_error(x.rec),
                });
            }
        }
    }

    /// Feeds a try's result to its endpoint's health ([`Proxy::observe`]) and says
    /// how the try went, for what follows: an answer is `Failure::Status`. Err: the
    /// client failed the try, which ends the request and blames no origin.
    fn observe_try(
        &self,
        snap: &Snapshot,
        at: (RegionIdx, usize),
        endpoint: &Endpoint,
        tried: &Result<OriginAnswer, TryFailure>,
        now: u64,
    ) -> Result<Failure, ClientFault> {
        match tried {
            Ok(a) => {
                // A 5xx counts against the endpoint; any other answer feeds its latency.
                let answered = (a.status < 500).then_some(a.started);
                self.observe(snap, at, endpoint, answered, now);
                Ok(Failure::Status(a.status))
            }
            Err(TryFailure::Client(fault)) => Err(*fault),
            Err(f) => {
                self.observe(snap, at, endpoint, None, now);
                Ok(f.failure())
            }
        }
    }

    /// The answer to a request its client failed, which was counted at
    /// `counted_ms` (wall-clock): it buys the retry budget nothing.
    fn client_failed(
        &self,
        rec: Record,
        counted_ms: u64,
        fault: ClientFault,
    ) -> Response<ResponseBody> {
        self.retry_budget.forget_request(counted_ms / 1000);
        client_error(rec, fault)
    }

    /// Takes a place for the request's next try at `to` (its previous try's
    /// place goes back first, so a retry at another address of the same origin
    /// does not count itself twice): the endpoint now in flight, counted as a
    /// spillover when the walk passed a full region for it. None when the
    /// endpoint left its origin's set or its origin has no room after all.
    fn take_place(
        &self,
        snap: &Snapshot,
        x: &mut Exchange,
        to: &routing::Destination,
        priority: crate::core::config::Priority,
        now: u64,
    ) -> Option<Arc<Endpoint>> {
        let (r, o) = (to.region, to.origin);
        let origin = &snap.regions[r].origins[o];
        let endpoint = origin.endpoint(to.endpoint)?;
        x.rec.release_outstanding();
        let ask = Asking {
            dial: snap.regions[r].dial,
            degraded_factor: snap.degraded_factor,
            priority,
            now_ms: now,
        };
        if !origin.admit(&endpoint, &ask) {
            return None;
        }
        if let Some(from) = to.spilled_from {
            x.decision.reasons.add(routing::Reason::Spillover);
            x.rec.reasons = Some(x.decision.reasons);
            let (from, to) = (&snap.regions[from], &snap.regions[r]);
            self.shared
                .metrics
                .spillover
                .with_label_values(&[&from.name, &to.name])
                .inc();
            let at = monotonic_ms();
            from.state.overflow.add(at, Overflow::SpilledOut);
            to.state.overflow.add(at, Overflow::SpilledIn);
        }
        x.rec.begin((r, o), &endpoint);
        Some(endpoint)
    }

    /// One try at `endpoint` of origin `(r, o)`: a connection (kept or new), the
    /// request with its headers and body, the wait for the answer's head. A failure
    /// says what it was and whose fault; what to do next is the caller's.
    async fn try_once(
        &self,
        snap: &Snapshot,
        (r, o): (RegionIdx, usize),
        endpoint: &Endpoint,
        x: &Exchange,
        payload: &mut Payload,
    ) -> Result<OriginAnswer, TryFailure> {
        let t = &snap.data_path;
        let origin = &snap.regions[r].origins[o];
        let tx = match upstream::connection(origin, endpoint, t.connect_timeout, t.pool_idle).await
        {
            Ok(tx) => tx,
            Err(e) => {
                self.shared
                    .metrics
                    .upstream_connect_failures
                    .with_label_values(&[&snap.regions[r].name, &origin.address])
                    .inc();
                tracing::debug!(request_id = ?x.rec.ctx.request_id, origin = %origin.address, endpoint = %endpoint.addr, "connect failed: {e}");
                return Err(TryFailure::Failed {
                    failure: Failure::Connect,
                    timed_out: e.timed_out(),
                });
            }
        };
        // A streamed body went with an earlier try: there is nothing to resend
        // (retries never choose this; a defence, not a path).
        let Some((body, sent)) = payload.take() else {
            return Err(TryFailure::BodyGone);
        };
        let (up, lines) = headers::for_origin(&x.parts, &x.prepared, origin, body);
        let started = Instant::now();
        let answer = std::pin::pin!(upstream::send(tx, up, lines));
        match within(
            t.read_timeout,
            t.client_body_timeout,
            sent.as_deref(),
            answer,
        )
        .await
        {
            Some(Ok((resp, reuse))) => Ok(OriginAnswer {
                status: resp.status().as_u16(),
                resp,
                reuse,
                started,
            }),
            failed => {
                let timed_out = failed.is_none();
                if let Some(Err(e)) = &failed {
                    tracing::debug!(request_id = ?x.rec.ctx.request_id, origin = %origin.address, endpoint = %endpoint.addr, "try failed: {e}");
                }
                match blame::blame(payload.upload(), timed_out) {
                    Fault::Client(fault) => Err(TryFailure::Client(fault)),
                    _ => Err(TryFailure::Failed {
                        failure: Failure::AfterSend,
                        timed_out,
                    }),
                }
            }
        }
    }

    /// The origin's answer, on its way to the client: the contract's headers, a
    /// write token after a write, a protocol switch carried out, and the record
    /// and the connection's return handed to the body, which ends the request.
    fn answer(
        &self,
        mut rec: Record,
        decision: &Decision,
        upgrade: Option<hyper::upgrade::OnUpgrade>,
        (r, endpoint): (RegionIdx, &Endpoint),
        a: OriginAnswer,
        now: u64,
    ) -> Response<ResponseBody> {
        let snap = rec.ctx.snap.clone();
        let OriginAnswer {
            mut resp,
            reuse,
            status,
            ..
        } = a;
        rec.status = status;
        headers::downstream_response(&mut resp, &snap, r, decision);
        if let (Some(limit), Some(left)) =
            (&snap.routes[decision.route].rate_limit, rec.ctx.rate_left)
        {
            if limit.on_every_answer() {
                // Appended: an origin's own policies stay beside the route's.
                let h = resp.headers_mut();
                h.append(RATELIMIT_POLICY, limit.policy().clone());
                h.append(RATELIMIT, limit.service_left(left));
            }
        }
        if let Some(token) =
            facts::issue_write_token(&snap, decision.route, r, rec.ctx.is_write, status, now)
        {
            headers::write_token(&mut resp, &token, rec.ctx.tls);
            self.shared
                .metrics
                .write_tokens
                .with_label_values(&[TokenOutcome::Issued.as_str()])
                .inc();
        }
        if status == 101 {
            if let Some(client) = upgrade {
                splice(client, hyper::upgrade::on(&mut resp));
            }
        }
        let (parts, body) = resp.into_parts();
        let end = Box::new(End {
            record: Some(rec),
            reuse: reuse
                .filter(|_| status != 101)
                .map(|tx| (endpoint.pool.clone(), tx)),
            bytes: 0,
            complete: false,
            origin_failed: false,
        });
        let body = ResponseBody::origin(body, snap.data_path.read_timeout, Some(end));
        Response::from_parts(parts, body)
    }

    /// The engine alone: the request, hop-by-hop headers aside, to the local
    /// region's first origin over a pooled connection; its answer back.
    #[cfg(feature = "bench-engine")]
    fn pass_through(&self, req: Request<Incoming>) -> Answer {
        let snap = self.shared.snapshot.load_full();
        let (mut parts, body) = req.into_parts();
        headers::strip_for_origin(&mut parts);
        let up = Request::from_parts(
            parts,
            RequestBody::Stream(body, Arc::new(Upload::new(None))),
        );
        Box::pin(async move {
            let t = &snap.data_path;
            let Some(origin) = snap.regions[snap.local_region].origins.first() else {
                return Ok(bare_error(502));
            };
            let Some(endpoint) = origin.endpoint(0) else {
                return Ok(bare_error(502));
            };
            let Ok(tx) =
                upstream::connection(origin, &endpoint, t.connect_timeout, t.pool_idle).await
            else {
                return Ok(bare_error(502));
            };
            let answer = std::pin::pin!(upstream::send(tx, up, Default::default()));
            Ok(match tokio::time::timeout(t.read_timeout, answer).await {
                Ok(Ok((resp, reuse))) => {
                    let (parts, body) = resp.into_parts();
                    let end = Box::new(End {
                        record: None,
                        reuse: reuse.map(|tx| (endpoint.pool.clone(), tx)),
                        bytes: 0,
                        complete: false,
                        origin_failed: false,
                    });
                    Response::from_parts(
                        parts,
                        ResponseBody::origin(body, t.read_timeout, Some(end)),
                    )
                }
                _ => bare_error(502),
            })
        })
    }

    fn record(&self, ctx: Ctx, decision: Option<&Decision>) -> Record {
        Record {
            shared: self.shared.clone(),
            ctx,
            route: decision.map_or(-1, |d| d.route as i64),
            reasons: decision.map(|d| d.reasons),
            target: None,
            outstanding: None,
            status: 0,
            tries: 0,
            bytes: 0,
            complete: false,
            origin_failed: false,
            fault: None,
            error: 0,
            written: false,
        }
    }

    /// Sheds a request no region it may use had room for: 503, `Retry-After`,
    /// counted, and the start of a spell of shedding journaled.
    fn shed(
        &self,
        rec: Record,
        decision: &Decision,
        why: overload::Shed,
    ) -> Response<ResponseBody> {
        let shared = &self.shared;
        let route = decision.route;
        if let Some(&first) = decision.order.first() {
            let region = &rec.ctx.snap.regions[first];
            region.state.overflow.add(monotonic_ms(), Overflow::Shed);
        }
        shared
            .metrics
            .requests_shed
            .with_label_values(&[&route.to_string(), why.as_str()])
            .inc();
        if shared.room.count_shed() {
            shared.events.record(
                crate::telemetry::events::Kind::Overload,
                "requests",
                Some("admitting"),
                Some("shedding"),
                format!(
                    "no region had room for a request of route {route} ({})",
                    why.as_str()
                ),
            );
        }
        let mut resp = gateway_error(
            rec,
            503,
            "overloaded",
            "no region this request may be served from has room for it now",
        );
        resp.headers_mut()
            .insert(http::header::RETRY_AFTER, HeaderValue::from_static("1"));
        resp
    }

    fn count_rejected(&self, reason: &str) {
        self.shared
            .metrics
            .requests_rejected
            .with_label_values(&[reason])
            .inc();
    }

    /// For a retry the walk has somewhere to send (`from` one region `to` another):
    /// true when the budget allows it, counted as a retry with `reason`, or as a denial.
    fn spend_retry(
        &self,
        snap: &Snapshot,
        (from, to): (RegionIdx, RegionIdx),
        reason: &'static str,
        now: u64,
    ) -> bool {
        let policy = &snap.data_path.retries;
        let m = &self.shared.metrics;
        if !self.retry_budget.try_retry(
            now / 1000,
            policy.budget_ratio,
            policy.budget_min_per_second,
        ) {
            m.retries_denied
                .with_label_values(&[RetryDenied::Budget.as_str()])
                .inc();
            return false;
        }
        let (from, to) = (
            snap.regions[from].name.as_str(),
            snap.regions[to].name.as_str(),
        );
        m.retries.with_label_values(&[from, to, reason]).inc();
        true
    }

    /// Feeds one live result of a try to outlier detection and, for an answer
    /// (`answered_since`: when the try started), its time to first byte to the
    /// latency EWMA.
    fn observe(
        &self,
        snap: &Snapshot,
        (r, o): (RegionIdx, usize),
        endpoint: &Endpoint,
        answered_since: Option<Instant>,
        now: u64,
    ) {
        let region = &snap.regions[r];
        if let Some(since) = answered_since {
            let us = since.elapsed().as_micros().min(u128::from(u32::MAX)) as u32;
            endpoint.health.observe_latency_us(us);
            let origin = &region.origins[o];
            if origin.capacity.max_inflight == Some(MaxInflight::Adaptive) {
                let in_flight = origin.with_endpoints(|set| {
                    set.iter().map(|e| e.health.outstanding.load(Relaxed)).sum()
                });
                origin.endpoints.adaptive.sample(u64::from(us), in_flight);
            }
        }
        let failed = answered_since.is_none();
        let policy = &snap.outlier;
        // The ejection cap counts every address of the region: one ALB node
        // may go, the region's capacity may not.
        let peers = || {
            let sets: Vec<_> = region.origins.iter().map(|o| o.endpoints.load()).collect();
            let all = sets.iter().flat_map(|s| s.iter().map(|e| &*e.health));
            crate::core::health::outlier::ejected_among(all, now)
        };
        if let Some(ms) =
            crate::core::health::outlier::record(&endpoint.health, peers, failed, now, policy)
        {
            tracing::warn!(
                region = %region.name,
                endpoint = %endpoint.key,
                ejected_ms = ms,
                "origin ejected by outlier detection"
            );
        }
    }

    /// The gateway's 429 for a request over its route's rate limit: never sent
    /// to an origin, nor counted against one or a region (no target), nor a
    /// request the retry budget counts.
    fn rate_limited(
        &self,
        ctx: Ctx,
        (route, limit): (usize, &RouteLimit),
        found: &facts::Findings,
        denied: Denied,
    ) -> Response<ResponseBody> {
        self.record_facts(found, None);
        self.shared
            .metrics
            .requests_rate_limited
            .with_label_values(&[limit.label()])
            .inc();
        let mut rec = self.record(ctx, None);
        rec.route = route as i64;
        let secs = denied.retry_after_secs;
        let detail = format!("over this route's rate limit; retry in {secs} s");
        let mut resp = gateway_error(rec, 429, "rate_limited", &detail);
        let h = resp.headers_mut();
        h.insert(http::header::RETRY_AFTER, HeaderValue::from(secs));
        h.insert(RATELIMIT_POLICY, limit.policy().clone());
        h.insert(RATELIMIT, limit.service_limit(denied));
        resp
    }

    /// Counts what gathering the facts and deciding found (GeoIP, XFF, tokens).
    fn record_facts(&self, found: &facts::Findings, decision: Option<&Decision>) {
        let m = &self.shared.metrics;
        if let Some(r) = found.geo_result {
            // `geo_lookups` is in `GeoResult::ALL`'s order.
            self.geo_lookups[r as usize].inc();
        }
        if found.xff_malformed > 0 {
            m.xff_malformed
                .with_label_values(&[XffHeader::XForwardedFor.as_str()])
                .inc_by(u64::from(found.xff_malformed));
        }
        let token = match decision.map_or(TokenUse::None, |d| d.token) {
            TokenUse::Honored => Some(TokenOutcome::Honored),
            TokenUse::RegionUnhealthy => Some(TokenOutcome::RegionUnhealthy),
            TokenUse::OutsideResidency => Some(TokenOutcome::OutsideResidency),
            TokenUse::None => found.token_outcome,
        };
        if let Some(outcome) = token {
            m.write_tokens.with_label_values(&[outcome.as_str()]).inc();
        }
    }
}

/// A gateway-made JSON error (`{"error": ..., "detail": ...}`, README "On the
/// wire"), recorded like any answer.
fn gateway_error(
    mut rec: Record,
    status: u16,
    error: &'static str,
    detail: &str,
) -> Response<ResponseBody> {
    rec.status = status;
    rec.error = error_index(error);
    let body = serde_json::json!({ "error": error, "detail": detail }).to_string();
    let end = Box::new(End {
        record: Some(rec),
        reuse: None,
        bytes: body.len(),
        complete: false,
        origin_failed: false,
    });
    let mut resp = Response::new(ResponseBody::full(Bytes::from(body), Some(end)));
    *resp.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY);
    let h = resp.headers_mut();
    h.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    h.insert(
        http::header::CACHE_CONTROL,
        HeaderValue::from_static("no-store"),
    );
    resp
}

/// The answer to a request its client failed (see `blame`): recorded as the
/// client's fault, counted, and kept from every origin's and region's counts.
fn client_error(mut rec: Record, fault: ClientFault) -> Response<ResponseBody> {
    rec.blame_client(fault);
    let detail = match fault {
        ClientFault::BadFraming => "the request body's framing is invalid",
        ClientFault::Gone => "the client closed the connection",
        ClientFault::Stalled => "the request body stopped arriving",
        ClientFault::TooLarge => "the request body is larger than this route accepts",
    };
    let mut resp = gateway_error(rec, fault.answer(), fault.error(), detail);
    // The rest of a broken or stalled body cannot be read as a next request.
    resp.headers_mut()
        .insert(http::header::CONNECTION, HeaderValue::from_static("close"));
    resp
}

/// An empty answer with `status` (passthrough mode's failures).
#[cfg(feature = "bench-engine")]
fn bare_error(status: u16) -> Response<ResponseBody> {
    let mut resp = Response::new(ResponseBody::full(Bytes::new(), None));
    *resp.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY);
    resp
}

/// Joins an upgraded client connection (WebSocket and the like) to the
/// upgraded origin connection once both sides switched protocols.
fn splice(client: hyper::upgrade::OnUpgrade, origin: hyper::upgrade::OnUpgrade) {
    tokio::spawn(async move {
        let (client, origin) = match tokio::try_join!(client, origin) {
            Ok(both) => both,
            Err(e) => {
                tracing::debug!("upgrade failed: {e}");
                return;
            }
        };
        let mut client = hyper_util::rt::TokioIo::new(client);
        let mut origin = hyper_util::rt::TokioIo::new(origin);
        if let Err(e) = tokio::io::copy_bidirectional(&mut client, &mut origin).await {
            tracing::debug!("upgraded connection ended: {e}");
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_gateway_error_is_in_the_access_logs_table() {
        let used = blame::ClientFault::ALL
            .iter()
            .map(|f| f.error())
            .chain(form::BadForm::ALL.iter().map(|f| f.error()))
            .chain([
                "upstream_unreachable",
                "upstream_timeout",
                "no_healthy_region",
                "bad_request",
                "rate_limited",
            ]);
        for e in used {
            assert_ne!(error_index(e), 0, "{e}");
            assert_eq!(GATEWAY_ERRORS[usize::from(error_index(e))], e);
        }
    }
}
