//! The one API meridian calls in its hyper fork (`vendor/hyper`, patch 0002 of
//! docs/hyper/UPSTREAM.md: header lines sent beside an HTTP/1 request), and what
//! stands in for it when meridian is built against stock hyper (the default
//! `hyper-fork` feature off; `scripts/stock-hyper`): the same bytes on the wire, more
//! work per request. The fork's other patches change no API.

use hyper::body::Incoming;
use hyper::client::conn::http1;
use std::future::Future;

#[cfg(feature = "hyper-fork")]
pub use hyper::ext::PreEncodedHeaders;
#[cfg(not(feature = "hyper-fork"))]
pub use lines::PreEncodedHeaders;

/// Sends `req` to an HTTP/1 origin with `lines` written after its own headers.
#[cfg(feature = "hyper-fork")]
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
#[cfg(not(feature = "hyper-fork"))]
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

#[cfg(not(feature = "hyper-fork"))]
mod lines {
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
