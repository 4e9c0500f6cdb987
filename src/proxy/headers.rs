//! The wire contract's headers (README, "On the wire"): what goes to the origin with each
//! try, and what the client gets back. Hop-by-hop headers stay on their hop.

use std::sync::OnceLock;

use super::fork::PreEncodedHeaders;
use bytes::Bytes;
use http::header::{self, HeaderName, HeaderValue};
use http::request::Parts;
use http::uri::PathAndQuery;
use http::{HeaderMap, Request, Response, Uri, Version};
use smallvec::SmallVec;

use super::Ctx;
use crate::core::config::OriginProtocol;
use crate::core::routing::Decision;
use crate::core::snapshot::{OriginEntry, RegionIdx, Snapshot};
use crate::proxy::pool::RequestBody;
use crate::request::facts::{IssuedToken, WRITE_COOKIE, WRITE_HEADER};
use crate::request::geo::Country;

// Header names used on every request, parsed once: a `&str` name is parsed
// again at each use.
pub static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
pub static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
pub static X_WRITE_TOKEN: HeaderName = HeaderName::from_static(WRITE_HEADER);
static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
static X_CLIENT_COUNTRY: HeaderName = HeaderName::from_static("x-meridian-client-country");
static X_EDGE_REGION: HeaderName = HeaderName::from_static("x-meridian-edge-region");
static X_REGION: HeaderName = HeaderName::from_static("x-meridian-region");
static X_DECISION: HeaderName = HeaderName::from_static("x-meridian-decision");
/// The contract's forwarding headers (README, "On the wire"), in the order origins get
/// them: meridian sets each, whatever the client sent.
static FORWARDING: [&HeaderName; 6] = [
    &X_FORWARDED_FOR,
    &X_FORWARDED_PROTO,
    &X_FORWARDED_HOST,
    &X_REQUEST_ID,
    &X_CLIENT_COUNTRY,
    &X_EDGE_REGION,
];
static KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
static PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");
static HTTP2_SETTINGS: HeaderName = HeaderName::from_static("http2-settings");

/// Headers a client cannot take off a request by naming them in `Connection`:
/// the Host, the body's framing, and the forwarding headers meridian itself
/// sets (an origin trusts them because meridian always sends them).
fn kept_whatever_connection_says(name: &HeaderName) -> bool {
    let n = name.as_str();
    name == header::HOST
        || name == header::CONTENT_LENGTH
        || name == header::TRANSFER_ENCODING
        || name == header::CONNECTION
        || n == "forwarded"
        || n == "x-request-id"
        || n.starts_with("x-forwarded-")
        || n.starts_with("x-meridian-")
}

/// The hop-by-hop headers (RFC 9110 §7.6.1) a message carries, found by
/// `HopByHop::note` during a walk over its headers.
#[derive(Default)]
pub struct HopByHop {
    connection: bool,
    upgrade: bool,
    transfer_encoding: bool,
    /// A `TE` other than `trailers` (gRPC needs `TE: trailers` to reach it).
    te: bool,
    keep_alive: bool,
    proxy_connection: bool,
    /// `Connection` lists `upgrade`.
    connection_upgrade: bool,
    /// `Upgrade` offers `h2c`: a switch to cleartext HTTP/2 over this
    /// connection would hand the client a tunnel past every per-request
    /// decision, so it never goes on.
    h2c: bool,
    http2_settings: bool,
    /// `Transfer-Encoding` names a coding other than `chunked`, which meridian
    /// does not implement (and must not forward undeclared).
    other_coding: bool,
    /// Headers a `Connection` header names beyond the usual options: rare.
    named: Vec<HeaderName>,
}

impl HopByHop {
    /// Notes one header of the walk.
    fn note(&mut self, name: &HeaderName, value: &HeaderValue) {
        if name == header::CONNECTION {
            self.connection = true;
            for token in value.as_bytes().split(|b| *b == b',') {
                let token = token.trim_ascii();
                self.connection_upgrade |= token.eq_ignore_ascii_case(b"upgrade");
                let usual = [&b"keep-alive"[..], b"close", b"upgrade", b""]
                    .iter()
                    .any(|u| token.eq_ignore_ascii_case(u));
                if !usual {
                    let named = HeaderName::from_bytes(token).ok();
                    self.named
                        .extend(named.filter(|n| !kept_whatever_connection_says(n)));
                }
            }
        } else if name == header::UPGRADE {
            self.upgrade = true;
            self.h2c |= value
                .as_bytes()
                .split(|b| *b == b',')
                .any(|p| p.trim_ascii().eq_ignore_ascii_case(b"h2c"));
        } else if name == header::TRANSFER_ENCODING {
            self.transfer_encoding = true;
            self.other_coding |= value
                .as_bytes()
                .split(|b| *b == b',')
                .any(|c| !c.trim_ascii().eq_ignore_ascii_case(b"chunked"));
        } else if name == header::TE {
            self.te |= value.as_bytes() != b"trailers";
        } else {
            // The rest are names the `http` crate does not know: told apart by
            // length first, so the common custom header costs one comparison.
            let n = name.as_str();
            match n.len() {
                10 => self.keep_alive |= name == KEEP_ALIVE,
                14 => self.http2_settings |= name == HTTP2_SETTINGS,
                16 => self.proxy_connection |= name == PROXY_CONNECTION,
                _ => {}
            }
        }
    }

    /// An HTTP/1.1 request asking to switch protocols (WebSocket and the like):
    /// `Upgrade`, and `Connection: upgrade`. Never to `h2c`.
    pub fn asks_upgrade(&self, version: Version) -> bool {
        version == Version::HTTP_11 && self.upgrade && self.connection_upgrade && !self.h2c
    }

    /// `Transfer-Encoding` names a coding besides `chunked` (RFC 9112 §6.1:
    /// a 501 from a server that does not implement it).
    pub fn other_coding(&self) -> bool {
        self.other_coding
    }

    /// Drops what was noted, and any header a `Connection` header names (but
    /// those `kept_whatever_connection_says`); an upgrade keeps its
    /// `Connection` and `Upgrade`. Most messages carry none, or only
    /// `Connection: keep-alive` (every HTTP/1.1 origin answer), which costs one
    /// removal and no allocation.
    fn strip(self, headers: &mut HeaderMap, upgrade: bool) {
        if self.connection && !upgrade {
            headers.remove(header::CONNECTION);
        }
        // `Upgrade` is hop-by-hop (RFC 9110 §7.6.1) with or without a
        // `Connection` naming it: only an upgrade meridian carries keeps it.
        if self.upgrade && !upgrade {
            headers.remove(header::UPGRADE);
        }
        if self.http2_settings {
            headers.remove(&HTTP2_SETTINGS);
        }
        if self.transfer_encoding {
            headers.remove(header::TRANSFER_ENCODING);
        }
        if self.te {
            headers.remove(header::TE);
        }
        if self.keep_alive {
            headers.remove(&KEEP_ALIVE);
        }
        if self.proxy_connection {
            headers.remove(&PROXY_CONNECTION);
        }
        for n in self.named {
            headers.remove(n);
        }
    }
}

/// Drops the headers that belong to one connection (see `HopByHop`), found in
/// one walk: five lookups by name per message cost more.
fn strip_hop_by_hop(headers: &mut HeaderMap, upgrade: bool) {
    let mut hop = HopByHop::default();
    for (name, value) in headers.iter() {
        hop.note(name, value);
    }
    hop.strip(headers, upgrade);
}

/// What meridian reads of a client's request headers, found in one walk over
/// them: a lookup by name hashes the name (most of these are long custom
/// names), and the eight lookups a request made cost three times the walk.
#[derive(Default)]
pub struct Seen<'a> {
    /// The first `Host`, and whether there were more.
    pub host: Option<&'a HeaderValue>,
    pub host_repeated: bool,
    pub request_id: Option<&'a HeaderValue>,
    /// The first `X-Forwarded-For`, and how many there were.
    xff: Option<&'a HeaderValue>,
    xff_count: u32,
    /// `Cookie` values, in order (usually none or one: an empty Vec does not allocate).
    pub cookies: Vec<&'a str>,
    pub write_token: Option<&'a str>,
    pub hop: HopByHop,
}

impl<'a> Seen<'a> {
    pub fn read(headers: &'a HeaderMap) -> Seen<'a> {
        let mut seen = Seen::default();
        for (name, value) in headers.iter() {
            if name == header::HOST {
                seen.host_repeated |= seen.host.is_some();
                seen.host.get_or_insert(value);
            } else if name == header::COOKIE {
                seen.cookies.extend(value.to_str().ok());
            } else if name == X_WRITE_TOKEN {
                if seen.write_token.is_none() {
                    seen.write_token = value.to_str().ok();
                }
            } else if name == X_FORWARDED_FOR {
                seen.xff_count += 1;
                seen.xff.get_or_insert(value);
            } else if name == X_REQUEST_ID {
                seen.request_id.get_or_insert(value);
            } else {
                seen.hop.note(name, value);
            }
        }
        seen
    }

    /// Every `X-Forwarded-For` value, in order (several headers form one list).
    pub fn xff(&self, headers: &'a HeaderMap) -> impl Iterator<Item = &'a str> {
        let one = if self.xff_count == 1 { self.xff } else { None };
        let many = (self.xff_count > 1).then(|| headers.get_all(&X_FORWARDED_FOR).iter());
        one.into_iter()
            .chain(many.into_iter().flatten())
            .filter_map(|v| v.to_str().ok())
    }

    /// What `prepare` needs of these headers, taken before they change hands.
    /// `target_host`: the request target's authority (absolute-form, or
    /// HTTP/2's `:authority`), which replaces any `Host` (RFC 9112 §3.2.2,
    /// RFC 9113 §8.3.1).
    pub fn into_found(self, peer: std::net::IpAddr, target_host: Option<HeaderValue>) -> Found {
        let from_target = target_host.is_some();
        Found {
            forwarded_for: self.forwarded_for(peer),
            host: target_host.or_else(|| self.host.cloned()),
            host_from_target: from_target,
            hop: self.hop,
        }
    }

    /// The client's `X-Forwarded-For` with `peer` appended (one header,
    /// comma-joined), written by hand: `format!` costs several times more.
    fn forwarded_for(&self, peer: std::net::IpAddr) -> Option<HeaderValue> {
        let mut xff = Vec::with_capacity(64);
        if let Some(prev) = self.xff {
            xff.extend_from_slice(prev.as_bytes());
            xff.extend_from_slice(b", ");
        }
        crate::telemetry::access_log::ip(&mut xff, peer);
        HeaderValue::from_maybe_shared(Bytes::from(xff)).ok()
    }
}

/// What `prepare` needs of the client's headers, read before they change hands.
pub struct Found {
    pub hop: HopByHop,
    forwarded_for: Option<HeaderValue>,
    /// The host the request goes on with: its target's authority, else the
    /// client's `Host`; none from an HTTP/1.0 client that sent neither.
    host: Option<HeaderValue>,
    /// `host` is the target's and must replace the client's `Host`.
    host_from_target: bool,
}

/// A request's headers made ready once for all of its tries (see `prepare`).
pub struct Prepared {
    /// Every header an HTTP/1 try sends beyond `framing`, encoded once: the
    /// client's own (its host as `Host` included; its forwarding headers left
    /// out), then the forwarding headers.
    lines: PreEncodedHeaders,
    /// How many of `lines` are the client's own; the rest are forwarding headers.
    own: usize,
    /// What hyper reads to frame the body and the connection: the client's
    /// `Content-Length`, and an upgrade's `Connection` and `Upgrade`. Usually
    /// empty, and an empty map copies without allocating.
    framing: HeaderMap,
    /// The request carries a `Host`; without one each try names its origin.
    has_host: bool,
}

impl Prepared {
    /// The client's map with the forwarding headers of `lines` inserted over
    /// the client's own: what a try that sends no encoded lines sends.
    fn map_with_forwarding(&self, client: &HeaderMap) -> HeaderMap {
        let mut headers = client.clone();
        for (name, value) in self.lines.skip_lines(self.own).headers() {
            headers.insert(name, value);
        }
        headers
    }
}

/// The client's request made ready for origins once, whatever the tries: its
/// hop-by-hop headers dropped and the contract's forwarding headers made. The
/// map then carries the client's host as `Host` (an HTTP/2 client's
/// `:authority` included), which each try sends on unless its origin names
/// its own (`host_header`).
///
/// Then every header but what hyper itself must read (`framing`) is encoded
/// once, here, the forwarding headers last, in place of any the client sent:
/// an HTTP/1 try hands hyper these bytes and `framing`, so it copies no map,
/// hashes no name and leaves hyper no small map to grow for the answer's
/// headers. An HTTP/2 try (and one to an origin with its own `host_header`)
/// copies the map and inserts the forwarding headers over the client's.
pub fn prepare(
    parts: &mut Parts,
    found: Found,
    ctx: &Ctx,
    snap: &Snapshot,
    upgrade: bool,
) -> Prepared {
    let headers = &mut parts.headers;
    found.hop.strip(headers, upgrade);
    let host = found.host;
    if let (true, Some(h)) = (found.host_from_target, &host) {
        headers.insert(header::HOST, h.clone());
    }
    static HTTP: HeaderValue = HeaderValue::from_static("http");
    static HTTPS: HeaderValue = HeaderValue::from_static("https");
    let country = country_value(ctx.country.as_ref());
    let values = [
        found.forwarded_for.as_ref(),
        Some(if ctx.tls { &HTTPS } else { &HTTP }),
        host.as_ref(),
        Some(&ctx.request_id),
        Some(&country),
        Some(&snap.regions[snap.local_region].name_header),
    ];
    // Nothing to send (no host known): the client's own must not go on either.
    for (name, value) in FORWARDING.iter().zip(values) {
        if value.is_none() {
            headers.remove(*name);
        }
    }
    let frames = |name: &HeaderName| {
        name == header::CONTENT_LENGTH
            || (upgrade && (name == header::CONNECTION || name == header::UPGRADE))
    };
    let mut framing = HeaderMap::new();
    let mut lines: SmallVec<[(&HeaderName, &HeaderValue); 16]> = SmallVec::new();
    for (name, value) in headers.iter() {
        if frames(name) {
            framing.append(name.clone(), value.clone());
        } else if !FORWARDING.contains(&name) {
            lines.push((name, value));
        }
    }
    let own = lines.len();
    lines.extend(
        FORWARDING
            .into_iter()
            .zip(values)
            .filter_map(|(n, v)| Some((n, v?))),
    );
    Prepared {
        lines: PreEncodedHeaders::from_headers(lines.iter().copied()),
        own,
        framing,
        has_host: host.is_some(),
    }
}

/// `X-Meridian-Client-Country`'s value for `country` ("XX" for none). Every
/// code has its value made once (from one leaked 1,352-byte string, so each is
/// static): a request copies a pointer rather than allocating two bytes.
fn country_value(country: Option<&Country>) -> HeaderValue {
    static VALUES: OnceLock<Vec<HeaderValue>> = OnceLock::new();
    let values = VALUES.get_or_init(|| {
        let letters = || (b'A'..=b'Z').map(char::from);
        let text: String = letters()
            .flat_map(|a| letters().flat_map(move |b| [a, b]))
            .collect();
        let text: &'static str = Box::leak(text.into_boxed_str());
        (0..26 * 26)
            .map(|i| HeaderValue::from_static(&text[2 * i..2 * i + 2]))
            .collect()
    });
    match country.map(|c| c.0) {
        None => HeaderValue::from_static("XX"),
        Some([a @ b'A'..=b'Z', b @ b'A'..=b'Z']) => {
            values[usize::from(a - b'A') * 26 + usize::from(b - b'A')].clone()
        }
        Some(other) => HeaderValue::from_bytes(&other).unwrap_or(HeaderValue::from_static("XX")),
    }
}

/// The request one try sends to `origin`, with the host and target as that
/// origin's protocol carries them; and the header lines an HTTP/1 origin gets
/// beside it (none for HTTP/2, whose map carries every header). A map is
/// copied only where one is needed (a copy keeps every entry's hash: far
/// cheaper than building a map).
pub fn for_origin(
    parts: &Parts,
    prepared: &Prepared,
    origin: &OriginEntry,
    body: RequestBody,
) -> (Request<RequestBody>, PreEncodedHeaders) {
    // The origin's own name, when it has one (the client's is in the map).
    let own_host = origin.host_header.as_ref();
    let path = parts
        .uri
        .path_and_query()
        .cloned()
        .unwrap_or_else(|| PathAndQuery::from_static("/"));
    let (version, uri, headers, lines) = match origin.protocol {
        OriginProtocol::H2 | OriginProtocol::H2c => {
            let host = own_host.or_else(|| parts.headers.get(header::HOST));
            let uri = super::upstream::h2_target(origin, host, path).unwrap_or_default();
            let mut headers = prepared.map_with_forwarding(&parts.headers);
            headers.remove(header::HOST);
            (Version::HTTP_2, uri, headers, PreEncodedHeaders::default())
        }
        OriginProtocol::Http1 => {
            // Rare: an HTTP/1.0 client that named no host still sends one on,
            // as HTTP/1.1 requires: the origin's own name, else its address.
            let fallback = || HeaderValue::from_str(&origin.address).ok();
            let host = own_host
                .cloned()
                .or_else(|| (!prepared.has_host).then(fallback).flatten());
            let (headers, lines) = match host {
                None => (prepared.framing.clone(), prepared.lines.clone()),
                // Rare: the encoded lines carry the client's host.
                Some(h) => {
                    let mut headers = prepared.map_with_forwarding(&parts.headers);
                    headers.insert(header::HOST, h);
                    (headers, PreEncodedHeaders::default())
                }
            };
            (Version::HTTP_11, Uri::from(path), headers, lines)
        }
    };
    let mut req = Request::new(body);
    *req.method_mut() = parts.method.clone();
    *req.uri_mut() = uri;
    *req.version_mut() = version;
    *req.headers_mut() = headers;
    (req, lines)
}

/// The client's request made fit for an HTTP/1 origin as it is (passthrough
/// mode): hop-by-hop headers dropped, the target in origin form.
#[cfg(feature = "bench-engine")]
pub fn strip_for_origin(parts: &mut Parts) {
    strip_hop_by_hop(&mut parts.headers, false);
    if let Some(pq) = parts.uri.path_and_query().cloned() {
        parts.uri = Uri::from(pq);
    }
    parts.version = Version::HTTP_11;
}

/// The origin's answer as the client gets it: hop-by-hop headers dropped,
/// `X-Meridian-Region` and, with `debug_headers`, the decision's reasons.
pub fn downstream_response<B>(
    resp: &mut Response<B>,
    snap: &Snapshot,
    region: RegionIdx,
    decision: &Decision,
) {
    let upgrade = resp.status() == http::StatusCode::SWITCHING_PROTOCOLS;
    let headers = resp.headers_mut();
    strip_hop_by_hop(headers, upgrade);
    headers.insert(X_REGION.clone(), snap.regions[region].name_header.clone());
    if snap.data_path.debug_headers {
        if let Ok(v) = HeaderValue::from_str(&decision.reasons.to_string()) {
            headers.insert(X_DECISION.clone(), v);
        }
    }
}

/// Hands the client its write token, as a cookie and as a header.
pub fn write_token<B>(resp: &mut Response<B>, token: &IssuedToken, tls: bool) {
    let cookie =
        crate::request::cookie::set_cookie_value(WRITE_COOKIE, &token.token, token.max_age_s, tls);
    let headers = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        headers.append(header::SET_COOKIE, v);
    }
    if let Ok(v) = HeaderValue::from_str(&token.token) {
        headers.insert(X_WRITE_TOKEN.clone(), v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (n, v) in pairs {
            h.append(*n, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn every_country_code_has_its_own_value() {
        for code in ["DE", "AA", "ZZ", "JP"] {
            let c = Country::parse(code).unwrap();
            assert_eq!(country_value(Some(&c)), code);
        }
        assert_eq!(country_value(None), "XX");
    }

    #[test]
    fn an_upgrade_is_asked_by_upgrade_and_a_connection_token_in_any_case() {
        let asks = |pairs: &[(&'static str, &'static str)], v| {
            let h = map(pairs);
            Seen::read(&h).hop.asks_upgrade(v)
        };
        let ws = [
            ("upgrade", "websocket"),
            ("connection", "keep-alive, Upgrade"),
        ];
        assert!(asks(&ws, Version::HTTP_11));
        assert!(!asks(&ws, Version::HTTP_10));
        assert!(!asks(&[("upgrade", "websocket")], Version::HTTP_11));
        assert!(!asks(
            &[("upgrade", "websocket"), ("connection", "keep-alive")],
            Version::HTTP_11
        ));
    }

    #[test]
    fn one_walk_finds_what_a_lookup_by_name_would() {
        let h = map(&[
            ("host", "a.example"),
            ("x-forwarded-for", "1.2.3.4"),
            ("cookie", "a=1"),
            ("X-Request-Id", "abc"),
            ("x-forwarded-for", "5.6.7.8, 9.9.9.9"),
            ("cookie", "b=2"),
            ("x-meridian-write-token", "t1"),
            ("host", "b.example"),
        ]);
        let seen = Seen::read(&h);
        assert_eq!(seen.host, h.get(header::HOST));
        assert!(seen.host_repeated);
        assert_eq!(seen.request_id, h.get(&X_REQUEST_ID));
        assert_eq!(seen.cookies, ["a=1", "b=2"]);
        assert_eq!(seen.write_token, Some("t1"));
        let xff: Vec<_> = seen.xff(&h).collect();
        assert_eq!(xff, ["1.2.3.4", "5.6.7.8, 9.9.9.9"]);
        let one = map(&[("x-forwarded-for", "1.2.3.4")]);
        let seen = Seen::read(&one);
        assert_eq!(seen.xff(&one).collect::<Vec<_>>(), ["1.2.3.4"]);
        assert_eq!(
            seen.forwarded_for("10.0.0.1".parse().unwrap()).unwrap(),
            "1.2.3.4, 10.0.0.1"
        );
        let none = HeaderMap::new();
        let seen = Seen::read(&none);
        assert_eq!(seen.xff(&none).count(), 0);
        assert!(!seen.host_repeated && seen.host.is_none());
        assert_eq!(seen.forwarded_for("::1".parse().unwrap()).unwrap(), "::1");
    }

    #[test]
    fn hop_by_hop_headers_and_those_connection_names_are_dropped() {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONNECTION,
            HeaderValue::from_static("close, x-secret"),
        );
        h.insert("x-secret", HeaderValue::from_static("1"));
        h.insert(
            header::TRANSFER_ENCODING,
            HeaderValue::from_static("chunked"),
        );
        h.insert(header::TE, HeaderValue::from_static("trailers"));
        h.insert("x-kept", HeaderValue::from_static("1"));
        strip_hop_by_hop(&mut h, false);
        // Removal may reorder different names (their order carries no meaning).
        let mut names: Vec<_> = h.keys().map(|k| k.as_str()).collect();
        names.sort_unstable();
        assert_eq!(names, ["te", "x-kept"]);
    }

    #[test]
    fn an_origin_answers_usual_connection_header_goes_and_nothing_else() {
        let mut h = HeaderMap::new();
        h.insert(header::CONNECTION, HeaderValue::from_static("keep-alive"));
        h.insert(header::CONTENT_LENGTH, HeaderValue::from_static("5"));
        h.insert(KEEP_ALIVE.clone(), HeaderValue::from_static("timeout=5"));
        h.append(header::TE, HeaderValue::from_static("trailers"));
        h.append(header::TE, HeaderValue::from_static("gzip"));
        strip_hop_by_hop(&mut h, false);
        let names: Vec<_> = h.keys().map(|k| k.as_str()).collect();
        assert_eq!(names, ["content-length"]);
    }

    #[test]
    fn connection_cannot_name_host_framing_or_forwarding_headers_away() {
        let mut h = map(&[
            (
                "connection",
                "keep-alive, Host, Content-Length, X-Forwarded-For, X-Meridian-Region, Forwarded, X-Request-Id, X-Secret",
            ),
            ("host", "h.example"),
            ("content-length", "5"),
            ("x-forwarded-for", "192.0.2.1"),
            ("x-meridian-region", "x"),
            ("forwarded", "for=192.0.2.1"),
            ("x-request-id", "r"),
            ("x-secret", "s"),
        ]);
        strip_hop_by_hop(&mut h, false);
        let mut names: Vec<_> = h.keys().map(|k| k.as_str()).collect();
        names.sort_unstable();
        assert_eq!(
            names,
            [
                "content-length",
                "forwarded",
                "host",
                "x-forwarded-for",
                "x-meridian-region",
                "x-request-id"
            ]
        );
    }

    #[test]
    fn h2c_is_never_an_upgrade_and_its_headers_always_go() {
        for pairs in [
            &[
                ("connection", "Upgrade, HTTP2-Settings"),
                ("upgrade", "h2c"),
                ("http2-settings", "AAMAAABkAARAAAAAAAIAAAAA"),
            ][..],
            &[
                ("upgrade", "h2c"),
                ("http2-settings", "AAMAAABkAARAAAAAAAIAAAAA"),
            ],
            &[("connection", "upgrade"), ("upgrade", "websocket, H2C")],
        ] {
            let mut h = map(pairs);
            let hop = Seen::read(&h).hop;
            assert!(!hop.asks_upgrade(Version::HTTP_11), "{pairs:?}");
            hop.strip(&mut h, false);
            assert!(h.is_empty(), "{pairs:?}: {h:?}");
        }
    }

    #[test]
    fn codings_besides_chunked_are_noticed_in_any_header() {
        let coding =
            |pairs: &[(&'static str, &'static str)]| Seen::read(&map(pairs)).hop.other_coding();
        assert!(!coding(&[("transfer-encoding", "chunked")]));
        assert!(!coding(&[("transfer-encoding", " Chunked ")]));
        assert!(coding(&[("transfer-encoding", "gzip, chunked")]));
        assert!(coding(&[
            ("transfer-encoding", "gzip"),
            ("transfer-encoding", "chunked")
        ]));
    }

    #[test]
    fn an_upgrade_keeps_its_connection_and_upgrade_headers() {
        let mut h = HeaderMap::new();
        h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
        h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        strip_hop_by_hop(&mut h, true);
        assert_eq!(h.len(), 2);
    }
}
