//! Whose fault a failed request is. Pure: the data path hands over what it saw
//! (how the client's body ended, how the try ended) and gets one verdict, which
//! drives the status, the counters, retries and outlier detection.
//!
//! A client's fault is answered with a 4xx (or nothing, when the client is
//! gone), counted in `requests_rejected_total{reason}`, never retried and never
//! held against an origin or a region: one client's garbage must not move a
//! region's traffic (RFC 9110 §15.5.1 makes bad framing a 400; §15.6.3 keeps
//! 502 for bad answers from upstream).

use std::io::ErrorKind;

use crate::telemetry::labels::Reject;

/// What the client did wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientFault {
    /// The request body's framing is broken (bad chunk size, bare LF, data
    /// longer than its chunk, an oversized chunk extension).
    BadFraming,
    /// The client went away before its answer was written.
    Gone,
    /// The client stopped sending in the middle of its body.
    Stalled,
    /// The body is larger than its route's `limits.max_body`.
    TooLarge,
}

impl ClientFault {
    /// The status recorded for it: 400 for bad framing, 408 for a stall, and
    /// nginx's 499 for a client that left (never sent: there is no one to read it).
    pub fn status(self) -> u16 {
        match self {
            ClientFault::BadFraming => 400,
            ClientFault::Gone => 499,
            ClientFault::Stalled => 408,
            ClientFault::TooLarge => 413,
        }
    }

    /// The status the client is answered with, should it still read.
    pub fn answer(self) -> u16 {
        match self {
            ClientFault::Gone => 400,
            other => other.status(),
        }
    }

    /// `requests_rejected_total{reason}`.
    pub fn reason(self) -> &'static str {
        match self {
            ClientFault::BadFraming => Reject::BadBody,
            ClientFault::Gone => Reject::ClientGone,
            ClientFault::Stalled => Reject::ClientTimeout,
            ClientFault::TooLarge => Reject::BodyTooLarge,
        }
        .as_str()
    }

    /// The `error` of the gateway's JSON answer.
    pub fn error(self) -> &'static str {
        match self {
            ClientFault::BadFraming => "bad_request",
            ClientFault::Gone => "client_gone",
            ClientFault::Stalled => "request_timeout",
            ClientFault::TooLarge => "payload_too_large",
        }
    }

    /// Every fault, for the counters created at 0.
    pub const ALL: [ClientFault; 4] = [
        ClientFault::BadFraming,
        ClientFault::Gone,
        ClientFault::Stalled,
        ClientFault::TooLarge,
    ];
}

/// Whose fault a failed try is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    Client(ClientFault),
    /// Refused, reset, timed out or answered badly: today's handling (retry
    /// when allowed, outlier detection, 502/504).
    Origin,
}

/// Where the client's request body was when the try failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Upload {
    /// None, kept whole, or streamed to its end.
    #[default]
    Whole,
    /// Streaming, and the origin connection is not asking for more (it is
    /// busy writing, or the origin stopped reading).
    Streaming,
    /// Streaming, and meridian waits for the client's next bytes.
    WaitingOnClient,
    /// Reading it failed.
    Failed(ClientFault),
}

/// The verdict on a failed try. The client's when its body failed first (the
/// origin connection then fails only because meridian stopped feeding it), or
/// when the try timed out while meridian waited on the client's body (the
/// origin cannot answer a request it has not received); the origin's otherwise.
pub fn blame(upload: Upload, timed_out: bool) -> Fault {
    match upload {
        Upload::Failed(fault) => Fault::Client(fault),
        Upload::WaitingOnClient if timed_out => Fault::Client(ClientFault::Stalled),
        _ => Fault::Origin,
    }
}

/// What the failure of reading a client's body says about the client.
/// `io`: the kind of the I/O error beneath it, when there is one;
/// `incomplete`: the connection ended before the body did.
///
/// hyper's decoder reports broken framing as `InvalidData` / `InvalidInput`
/// and a connection that ended mid-body as `UnexpectedEof`; a timeout is a
/// stall; anything else (a reset, an HTTP/2 stream the client cancelled) means
/// the client is gone.
pub fn body_failure(io: Option<ErrorKind>, incomplete: bool) -> ClientFault {
    match io {
        _ if incomplete => ClientFault::Gone,
        Some(ErrorKind::InvalidData | ErrorKind::InvalidInput) => ClientFault::BadFraming,
        Some(ErrorKind::TimedOut) => ClientFault::Stalled,
        _ => ClientFault::Gone,
    }
}

/// `body_failure` for hyper's error from a client's body stream: the I/O error
/// found in its chain of sources.
pub fn of_body_error(e: &hyper::Error) -> ClientFault {
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(e);
    let mut io = None;
    while let Some(s) = source {
        if let Some(err) = s.downcast_ref::<std::io::Error>() {
            io = Some(err.kind());
            break;
        }
        source = s.source();
    }
    body_failure(io, e.is_incomplete_message())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_upload_is_the_clients_fault_and_anything_else_the_origins() {
        for timed_out in [false, true] {
            assert_eq!(blame(Upload::Whole, timed_out), Fault::Origin);
            assert_eq!(blame(Upload::Streaming, timed_out), Fault::Origin);
            for f in ClientFault::ALL {
                assert_eq!(blame(Upload::Failed(f), timed_out), Fault::Client(f));
            }
        }
    }

    #[test]
    fn a_timeout_while_waiting_on_the_clients_body_is_the_clients() {
        assert_eq!(
            blame(Upload::WaitingOnClient, true),
            Fault::Client(ClientFault::Stalled)
        );
        // A connection error while the client is mid-body is the origin's.
        assert_eq!(blame(Upload::WaitingOnClient, false), Fault::Origin);
    }

    #[test]
    fn broken_framing_is_a_400_and_a_client_that_left_a_499_never_sent() {
        use ErrorKind::*;
        assert_eq!(
            body_failure(Some(InvalidData), false),
            ClientFault::BadFraming
        );
        assert_eq!(
            body_failure(Some(InvalidInput), false),
            ClientFault::BadFraming
        );
        assert_eq!(body_failure(Some(UnexpectedEof), false), ClientFault::Gone);
        assert_eq!(
            body_failure(Some(ConnectionReset), false),
            ClientFault::Gone
        );
        assert_eq!(body_failure(None, true), ClientFault::Gone);
        assert_eq!(body_failure(None, false), ClientFault::Gone);
        assert_eq!(body_failure(Some(TimedOut), false), ClientFault::Stalled);
        assert_eq!(ClientFault::BadFraming.status(), 400);
        assert_eq!(ClientFault::Gone.status(), 499);
        assert_eq!(ClientFault::Gone.answer(), 400);
        assert_eq!(ClientFault::Stalled.status(), 408);
    }

    #[test]
    fn every_client_fault_is_a_4xx_with_its_own_reason() {
        let mut reasons: Vec<_> = ClientFault::ALL.iter().map(|f| f.reason()).collect();
        reasons.dedup();
        assert_eq!(reasons.len(), ClientFault::ALL.len());
        assert!(ClientFault::ALL
            .iter()
            .all(|f| (400..500).contains(&f.status()) && (400..500).contains(&f.answer())));
        let known = Reject::ALL.map(Reject::as_str);
        assert!(reasons.iter().all(|r| known.contains(r)), "{reasons:?}");
    }
}
