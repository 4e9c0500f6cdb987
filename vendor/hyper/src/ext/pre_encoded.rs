use bytes::Bytes;
use http::header::{HeaderName, HeaderValue};

/// Header lines encoded once, written by the HTTP/1 client after a request's
/// own headers.
///
/// A proxy adds the same few headers (`X-Forwarded-For` and the like) to
/// every request it forwards, and sends a request again when a try fails.
/// Inserting them into the request's `HeaderMap` hashes each name on every
/// request; a request sent with them beside it
/// ([`SendRequest::send_request_with`]) has them encoded once, and each try
/// copies a pointer to the bytes. They travel beside the request rather than
/// in its extensions, whose map costs three allocations per request.
///
/// Only the HTTP/1 client writes them; an HTTP/2 request must carry its
/// headers in its `HeaderMap`. They are written as they are: nothing checks
/// them against the request's own headers, so a name that is in both is sent
/// twice.
///
/// [`SendRequest::send_request_with`]: crate::client::conn::http1::SendRequest::send_request_with
///
/// # Example
///
/// ```
/// use http::header::{HeaderName, HeaderValue};
/// use hyper::ext::PreEncodedHeaders;
///
/// let via = HeaderName::from_static("via");
/// let value = HeaderValue::from_static("1.1 edge");
/// let extra = PreEncodedHeaders::from_headers([(&via, &value)]);
/// assert_eq!(extra.as_bytes(), b"via: 1.1 edge\r\n");
/// // sender.send_request_with(http::Request::new(body), extra.clone())
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PreEncodedHeaders(Bytes);

impl PreEncodedHeaders {
    /// Encodes `name: value\r\n` for each header, in order. Names and values
    /// are valid by their types, so the lines are too.
    pub fn from_headers<'a, I>(headers: I) -> PreEncodedHeaders
    where
        I: IntoIterator<Item = (&'a HeaderName, &'a HeaderValue)>,
        I::IntoIter: Clone,
    {
        let headers = headers.into_iter();
        // Sized exactly, in a first pass: the buffer never grows, and its
        // bytes become a `Bytes` without another allocation.
        let len = headers
            .clone()
            .map(|(name, value)| name.as_str().len() + value.len() + 4)
            .sum();
        let mut buf = Vec::with_capacity(len);
        for (name, value) in headers {
            buf.extend_from_slice(name.as_str().as_bytes());
            buf.extend_from_slice(b": ");
            buf.extend_from_slice(value.as_bytes());
            buf.extend_from_slice(b"\r\n");
        }
        PreEncodedHeaders(Bytes::from(buf))
    }

    /// The encoded lines, each ending with `\r\n`.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The lines after the first `n`, sharing the encoded bytes (none when
    /// there are fewer).
    pub fn skip_lines(&self, n: usize) -> PreEncodedHeaders {
        let mut at = 0;
        for _ in 0..n {
            match self.0[at..].iter().position(|b| *b == b'\n') {
                Some(end) => at += end + 1,
                None => return PreEncodedHeaders::default(),
            }
        }
        PreEncodedHeaders(self.0.slice(at..))
    }

    /// Each header as a name and a value (the value shares the encoded bytes),
    /// for a request that goes out over HTTP/2 after all.
    pub fn headers(&self) -> impl Iterator<Item = (HeaderName, HeaderValue)> + '_ {
        let mut rest = self.0.clone();
        std::iter::from_fn(move || {
            let end = rest.iter().position(|b| *b == b'\r')?;
            let line = rest.split_to(end + 2);
            let colon = line.iter().position(|b| *b == b':')?;
            let name = HeaderName::from_bytes(&line[..colon]).ok()?;
            let value = HeaderValue::from_maybe_shared(line.slice(colon + 2..end)).ok()?;
            Some((name, value))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_round_trip() {
        let a = HeaderName::from_static("x-forwarded-for");
        let b = HeaderName::from_static("x-request-id");
        let (va, vb) = (
            HeaderValue::from_static("1.2.3.4, 5.6.7.8"),
            HeaderValue::from_static("abc"),
        );
        let pre = PreEncodedHeaders::from_headers([(&a, &va), (&b, &vb)]);
        assert_eq!(
            pre.as_bytes(),
            b"x-forwarded-for: 1.2.3.4, 5.6.7.8\r\nx-request-id: abc\r\n"
        );
        let back: Vec<_> = pre.headers().collect();
        assert_eq!(back, [(a, va), (b, vb)]);
        assert_eq!(PreEncodedHeaders::default().headers().count(), 0);
        assert_eq!(pre.skip_lines(1).as_bytes(), b"x-request-id: abc\r\n");
        assert_eq!(pre.skip_lines(2), PreEncodedHeaders::default());
        assert_eq!(pre.skip_lines(3), PreEncodedHeaders::default());
    }
}
