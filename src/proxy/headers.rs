//! The wire contract's headers (CONTRACT §4): what goes to the origin with each
//! try, and what the client gets back. Hop-by-hop headers stay on their hop.

use bytes::Bytes;
use http::header::{self, HeaderName, HeaderValue};
use http::request::Parts;
use http::uri::{PathAndQuery, Scheme};
use http::{HeaderMap, Request, Response, Uri, Version};

use super::Ctx;
use crate::config::OriginProtocol;
use crate::facts::{IssuedToken, WRITE_COOKIE, WRITE_HEADER};
use crate::pool::RequestBody;
use crate::routing::Decision;
use crate::snapshot::{OriginEntry, RegionIdx, Snapshot};

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
static KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
static PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");

/// An HTTP/1.1 request asking to switch protocols (WebSocket and the like).
pub fn is_upgrade<B>(req: &Request<B>) -> bool {
    req.version() == Version::HTTP_11
        && req.headers().contains_key(header::UPGRADE)
        && req
            .headers()
            .get_all(header::CONNECTION)
            .iter()
            .any(|v| has_token(v.as_bytes(), b"upgrade"))
}

/// A comma-separated header value lists `token` (case-insensitive).
fn has_token(value: &[u8], token: &[u8]) -> bool {
    value
        .split(|b| *b == b',')
        .any(|t| t.trim_ascii().eq_ignore_ascii_case(token))
}

/// Drops the headers that belong to one connection (RFC 9110 §7.6.1), and any
/// header a `Connection` header names; an upgrade keeps its `Connection` and
/// `Upgrade`, and `TE: trailers` stays (gRPC needs it).
///
/// One walk over the headers finds them: most messages carry none, or only
/// `Connection: keep-alive` (every HTTP/1.1 origin answer), which costs one
/// removal and no allocation. Five lookups by name per message cost more.
fn strip_hop_by_hop(headers: &mut HeaderMap, upgrade: bool) {
    let (mut connection, mut transfer_encoding, mut te) = (false, false, false);
    let (mut keep_alive, mut proxy_connection, mut upgrade_header) = (false, false, false);
    // Headers a `Connection` header names beyond the usual options: rare.
    let mut named: Vec<HeaderName> = Vec::new();
    for (name, value) in headers.iter() {
        if name == header::CONNECTION {
            connection = true;
            for token in value.as_bytes().split(|b| *b == b',') {
                let token = token.trim_ascii();
                let usual = [&b"keep-alive"[..], b"close", b"upgrade", b""]
                    .iter()
                    .any(|u| token.eq_ignore_ascii_case(u));
                if !usual {
                    named.extend(HeaderName::from_bytes(token).ok());
                }
            }
        } else if name == header::UPGRADE {
            upgrade_header = true;
        } else if name == header::TRANSFER_ENCODING {
            transfer_encoding = true;
        } else if name == header::TE {
            te |= value.as_bytes() != b"trailers";
        } else if name == KEEP_ALIVE {
            keep_alive = true;
        } else if name == PROXY_CONNECTION {
            proxy_connection = true;
        }
    }
    if connection && !upgrade {
        headers.remove(header::CONNECTION);
        // `Upgrade` goes with the `Connection` that announced it.
        if upgrade_header {
            headers.remove(header::UPGRADE);
        }
    }
    if transfer_encoding {
        headers.remove(header::TRANSFER_ENCODING);
    }
    if te {
        headers.remove(header::TE);
    }
    if keep_alive {
        headers.remove(&KEEP_ALIVE);
    }
    if proxy_connection {
        headers.remove(&PROXY_CONNECTION);
    }
    for n in named {
        headers.remove(n);
    }
}

/// The client's request made ready for origins once, whatever the tries: its
/// hop-by-hop headers dropped and the contract's forwarding headers set, in
/// its own header map (no copy). The map then carries the client's host as
/// `Host` (an HTTP/2 client's `:authority` included), which each try sends on
/// unless its origin names its own (`host_header`).
pub fn prepare(parts: &mut Parts, ctx: &Ctx, snap: &Snapshot, upgrade: bool) {
    let headers = &mut parts.headers;
    strip_hop_by_hop(headers, upgrade);
    // Append the peer to any X-Forwarded-For the client sent (one header,
    // comma-joined), written by hand: `format!` costs several times more.
    let mut xff = Vec::with_capacity(64);
    if let Some(prev) = headers.get(&X_FORWARDED_FOR) {
        xff.extend_from_slice(prev.as_bytes());
        xff.extend_from_slice(b", ");
    }
    crate::access_log::ip(&mut xff, ctx.peer_ip);
    if let Ok(v) = HeaderValue::from_maybe_shared(Bytes::from(xff)) {
        headers.insert(X_FORWARDED_FOR.clone(), v);
    }
    headers.insert(
        X_FORWARDED_PROTO.clone(),
        HeaderValue::from_static(if ctx.tls { "https" } else { "http" }),
    );
    if !headers.contains_key(header::HOST) {
        let authority = parts.uri.authority();
        if let Some(h) = authority.and_then(|a| HeaderValue::from_str(a.as_str()).ok()) {
            headers.insert(header::HOST, h);
        }
    }
    if let Some(h) = headers.get(header::HOST).cloned() {
        headers.insert(X_FORWARDED_HOST.clone(), h);
    }
    headers.insert(X_REQUEST_ID.clone(), ctx.request_id.clone());
    headers.insert(
        X_CLIENT_COUNTRY.clone(),
        HeaderValue::from_str(ctx.country.as_ref().map_or("XX", |c| c.as_str()))
            .unwrap_or(HeaderValue::from_static("XX")),
    );
    headers.insert(
        X_EDGE_REGION.clone(),
        snap.regions[snap.local_region].name_header.clone(),
    );
}

/// The request one try sends to `origin`: the prepared one, its header map
/// copied (a copy keeps every entry's hash: far cheaper than building a map),
/// with the host and target as that origin's protocol carries them.
pub fn for_origin(parts: &Parts, origin: &OriginEntry, body: RequestBody) -> Request<RequestBody> {
    let mut headers = parts.headers.clone();
    // The origin's own name, when it has one (the client's is in the map).
    let own_host = origin
        .host_header
        .as_deref()
        .map(|h| HeaderValue::from_str(h).ok());
    let path = parts
        .uri
        .path_and_query()
        .cloned()
        .unwrap_or_else(|| PathAndQuery::from_static("/"));
    let (version, uri) = match origin.protocol {
        // HTTP/2 carries the host as `:authority`, from an absolute URI.
        OriginProtocol::H2 | OriginProtocol::H2c => {
            let scheme = if origin.tls.is_some() {
                Scheme::HTTPS
            } else {
                Scheme::HTTP
            };
            let host = own_host.unwrap_or_else(|| parts.headers.get(header::HOST).cloned());
            let authority = host
                .as_ref()
                .and_then(|h| h.to_str().ok())
                .unwrap_or(origin.address.as_str());
            headers.remove(header::HOST);
            let uri = Uri::builder()
                .scheme(scheme)
                .authority(authority)
                .path_and_query(path)
                .build()
                .unwrap_or_default();
            (Version::HTTP_2, uri)
        }
        OriginProtocol::Http1 => {
            if let Some(Some(h)) = own_host {
                headers.insert(header::HOST, h);
            }
            (Version::HTTP_11, Uri::from(path))
        }
    };
    let mut req = Request::new(body);
    *req.method_mut() = parts.method.clone();
    *req.uri_mut() = uri;
    *req.version_mut() = version;
    *req.headers_mut() = headers;
    req
}

/// The client's request made fit for an HTTP/1 origin as it is (passthrough
/// mode): hop-by-hop headers dropped, the target in origin form.
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
    let cookie = crate::cookie::set_cookie_value(WRITE_COOKIE, &token.token, token.max_age_s, tls);
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

    #[test]
    fn connection_tokens_are_found_case_insensitively() {
        assert!(has_token(b"keep-alive, Upgrade", b"upgrade"));
        assert!(!has_token(b"keep-alive", b"upgrade"));
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
    fn an_upgrade_keeps_its_connection_and_upgrade_headers() {
        let mut h = HeaderMap::new();
        h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
        h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        strip_hop_by_hop(&mut h, true);
        assert_eq!(h.len(), 2);
    }
}
