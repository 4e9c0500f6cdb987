//! The request's Host, checked before anything routes on it, logs it or sends
//! it to an origin. Pure.

use http::{HeaderValue, Uri, Version};

/// Why a request's Host was refused (the 400's detail).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BadHost {
    /// HTTP/1.1 requires exactly one Host (RFC 9112 §3.2).
    Missing,
    /// Two or more Host headers.
    Repeated,
    /// Characters outside a DNS name, IP literal and port.
    Invalid,
}

impl BadHost {
    pub fn detail(self) -> &'static str {
        match self {
            BadHost::Missing => "an HTTP/1.1 request needs a Host header",
            BadHost::Repeated => "repeated Host header",
            BadHost::Invalid => "invalid Host header",
        }
    }
}

/// The host to route on, without its port: the target's authority when it has
/// one (an absolute-form target, RFC 9112 §3.2.2, or HTTP/2's `:authority`,
/// RFC 9113 §8.3.1: either replaces any `Host`), else `Host`. "" when neither
/// has one (HTTP/1.0 may omit it). An HTTP/1.1 request needs a `Host` even
/// with an absolute-form target (RFC 9112 §3.2).
/// `host` is the request's first `Host` header, `repeated` whether it had more.
pub fn check<'a>(
    version: Version,
    uri: &'a Uri,
    host: Option<&'a HeaderValue>,
    repeated: bool,
) -> Result<&'a str, BadHost> {
    let header = match host {
        Some(_) if repeated => return Err(BadHost::Repeated),
        Some(h) => Some(h.to_str().map_err(|_| BadHost::Invalid)?),
        None if version == Version::HTTP_11 => return Err(BadHost::Missing),
        None => None,
    };
    let host = match (uri.authority(), header) {
        // A `Host` that is replaced is still checked: nothing malformed passes.
        (Some(_), Some(h)) if !valid(h.as_bytes()) => return Err(BadHost::Invalid),
        (Some(a), _) => a.as_str(),
        (None, h) => h.unwrap_or(""),
    };
    if !valid(host.as_bytes()) {
        return Err(BadHost::Invalid);
    }
    Ok(without_port(host))
}

/// A DNS name or IP literal with an optional port: anything else (spaces,
/// slashes, quotes, `@`, control bytes) never reaches a route match, a log line
/// or an origin.
fn valid(host: &[u8]) -> bool {
    host.len() <= 255
        && host.iter().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b':' | b'[' | b']')
        })
}

/// The host without a port. A byte scan: hosts are short, and `rsplit_once`
/// costs several times more.
fn without_port(host: &str) -> &str {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn host_of(version: Version, uri: &str, hosts: &[&str]) -> Result<String, BadHost> {
        let values: Vec<_> = hosts
            .iter()
            .map(|h| HeaderValue::from_str(h).unwrap())
            .collect();
        let uri: Uri = uri.parse().unwrap();
        check(version, &uri, values.first(), values.len() > 1).map(str::to_string)
    }

    #[test]
    fn the_port_is_cut_from_the_host_and_nothing_else() {
        let h = |host| host_of(Version::HTTP_11, "/", &[host]).unwrap();
        assert_eq!(h("api.example.com:8443"), "api.example.com");
        assert_eq!(h("api.example.com"), "api.example.com");
        assert_eq!(h("[2001:db8::1]:443"), "[2001:db8::1]");
        assert_eq!(h("[2001:db8::1]"), "[2001:db8::1]");
        assert_eq!(h("a.example:"), "a.example");
        assert_eq!(h("a.example:x1"), "a.example:x1");
    }

    #[test]
    fn http_1_1_needs_exactly_one_valid_host() {
        assert_eq!(host_of(Version::HTTP_11, "/", &[]), Err(BadHost::Missing));
        assert_eq!(
            host_of(Version::HTTP_11, "/", &["a.example", "b.example"]),
            Err(BadHost::Repeated)
        );
        assert_eq!(
            host_of(Version::HTTP_11, "/", &["a.example/x"]),
            Err(BadHost::Invalid)
        );
        assert_eq!(
            host_of(Version::HTTP_11, "/", &["a b"]),
            Err(BadHost::Invalid)
        );
    }

    #[test]
    fn the_targets_authority_replaces_host_and_http_1_1_still_needs_one() {
        assert_eq!(
            host_of(Version::HTTP_11, "http://other.example/x", &["h.example"]).unwrap(),
            "other.example"
        );
        assert_eq!(
            host_of(Version::HTTP_11, "http://h.example/x", &[]),
            Err(BadHost::Missing)
        );
        assert_eq!(
            host_of(Version::HTTP_10, "http://h.example:8080/x", &[]).unwrap(),
            "h.example"
        );
        assert_eq!(
            host_of(Version::HTTP_2, "https://a.example/x", &["b.example"]).unwrap(),
            "a.example"
        );
        assert_eq!(
            host_of(Version::HTTP_11, "http://a.example/x", &["b b"]),
            Err(BadHost::Invalid)
        );
    }

    #[test]
    fn http_1_0_may_omit_it_and_http_2_carries_the_authority() {
        assert_eq!(host_of(Version::HTTP_10, "/", &[]).unwrap(), "");
        assert_eq!(
            host_of(Version::HTTP_2, "https://api.example.com:8443/x", &[]).unwrap(),
            "api.example.com"
        );
    }
}
