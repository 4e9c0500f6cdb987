//! What meridian takes from its hyper fork (`vendor/hyper`, docs/hyper/UPSTREAM.md)
//! beyond what every hyper user gets, in one place, with what stands in for each
//! when meridian is built against stock hyper (`scripts/stock-hyper`): one feature
//! per patch whose API meridian calls, both on by default through `hyper-fork`.
//! The stand-ins send the same bytes and keep the same limits; they cost more work
//! per request, and one bound is coarser (see [`http1_server`]).

use hyper::body::Incoming;
use hyper::client::conn::http1;
use std::future::Future;
use std::time::Duration;

#[cfg(feature = "hyper-header-lines")]
pub use hyper::ext::PreEncodedHeaders;
#[cfg(not(feature = "hyper-header-lines"))]
pub use stock::PreEncodedHeaders;

/// Sends `req` to an HTTP/1 origin with `lines` written after its own headers.
#[cfg(feature = "hyper-header-lines")]
pub fn send_request_with<B>(
    tx: &mut http1::SendRequest<B>,
    req: http::Request<B>,
    lines: PreEncodedHeaders,
) -> impl Future<Output = hyper::Result<http::Response<Incoming>>>
where
    B: hyper::body::Body + 'static,
{
    tx.send_request_with(req, lines)
}

/// Stock hyper: the lines go into the request's map, after its own headers (the
/// order the fork writes them in).
#[cfg(not(feature = "hyper-header-lines"))]
pub fn send_request_with<B>(
    tx: &mut http1::SendRequest<B>,
    mut req: http::Request<B>,
    lines: PreEncodedHeaders,
) -> impl Future<Output = hyper::Result<http::Response<Incoming>>>
where
    B: hyper::body::Body + 'static,
{
    let headers = req.headers_mut();
    for (name, value) in lines.headers() {
        headers.append(name, value);
    }
    tx.send_request(req)
}

/// hyper's HTTP/1 server builder with the request-header bound (`header`: a
/// request head from its first byte, and a connection's first request from its
/// start) and the keep-alive bound (`idle`: a kept-alive client's silence
/// between requests) set apart, as the fork's `idle_timeout` allows.
#[cfg(feature = "hyper-idle-timeout")]
pub fn http1_server(header: Duration, idle: Duration) -> hyper::server::conn::http1::Builder {
    let mut b = hyper::server::conn::http1::Builder::new();
    b.timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(header)
        .idle_timeout(idle);
    b
}

/// Stock hyper's header timer also times the silence between requests, so one
/// bound must serve for both: the header bound, the stricter. A kept-alive client
/// is closed after `header` of silence rather than `idle` (it reconnects; no
/// request is lost, since a request in flight is never timed by it).
#[cfg(not(feature = "hyper-idle-timeout"))]
pub fn http1_server(header: Duration, _idle: Duration) -> hyper::server::conn::http1::Builder {
    let mut b = hyper::server::conn::http1::Builder::new();
    b.timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(header);
    b
}

#[cfg(not(feature = "hyper-header-lines"))]
mod stock {
    use http::{HeaderName, HeaderValue};
    use std::sync::Arc;

    /// Header lines made once for all of a request's tries, as names and values
    /// (the fork keeps them encoded). Shared, so a try's copy is a count.
    #[derive(Clone, Debug, Default)]
    pub struct PreEncodedHeaders {
        lines: Arc<[(HeaderName, HeaderValue)]>,
        skip: usize,
    }

    impl PreEncodedHeaders {
        pub fn from_headers<'a, I>(headers: I) -> PreEncodedHeaders
        where
            I: Iterator<Item = (&'a HeaderName, &'a HeaderValue)>,
        {
            let lines: Vec<_> = headers.map(|(n, v)| (n.clone(), v.clone())).collect();
            PreEncodedHeaders {
                lines: lines.into(),
                skip: 0,
            }
        }

        /// The lines after the first `n`.
        pub fn skip_lines(&self, n: usize) -> PreEncodedHeaders {
            PreEncodedHeaders {
                lines: self.lines.clone(),
                skip: (self.skip + n).min(self.lines.len()),
            }
        }

        pub fn headers(&self) -> impl Iterator<Item = (HeaderName, HeaderValue)> + '_ {
            self.lines[self.skip..].iter().cloned()
        }
    }
}
