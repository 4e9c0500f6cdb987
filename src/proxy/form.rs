//! Request forms meridian refuses before routing: those an origin could read
//! differently from meridian, or that mean nothing at a reverse proxy. Pure.

use http::{Method, Uri};

use crate::telemetry::labels::Reject;

/// Why a request's form was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BadForm {
    /// `CONNECT`: meridian is not a forward proxy (its target names no
    /// resource of any origin).
    Connect,
    /// The `*` target belongs to `OPTIONS` only (RFC 9112 §3.2.4).
    Asterisk,
    /// A transfer coding besides `chunked`: meridian does not implement it,
    /// and forwarding the bytes without it would change the body's meaning
    /// (RFC 9112 §6.1).
    TransferCoding,
}

impl BadForm {
    pub fn status(self) -> u16 {
        match self {
            BadForm::Connect => 405,
            BadForm::Asterisk => 400,
            BadForm::TransferCoding => 501,
        }
    }

    /// `requests_rejected_total{reason}`.
    pub fn reason(self) -> &'static str {
        match self {
            BadForm::Connect => Reject::Connect,
            BadForm::Asterisk => Reject::BadTarget,
            BadForm::TransferCoding => Reject::TransferCoding,
        }
        .as_str()
    }

    /// The `error` of the gateway's JSON answer.
    pub fn error(self) -> &'static str {
        match self {
            BadForm::Connect => "method_not_allowed",
            BadForm::Asterisk => "bad_request",
            BadForm::TransferCoding => "not_implemented",
        }
    }

    pub fn detail(self) -> &'static str {
        match self {
            BadForm::Connect => "CONNECT is not served: this is a reverse proxy",
            BadForm::Asterisk => "the * target is only for OPTIONS",
            BadForm::TransferCoding => "only the chunked transfer coding is implemented",
        }
    }

    /// Every refusal, for the counters created at 0.
    pub const ALL: [BadForm; 3] = [BadForm::Connect, BadForm::Asterisk, BadForm::TransferCoding];
}

/// Checks a request's method, target and transfer codings (`other_coding`:
/// `Transfer-Encoding` names a coding besides `chunked`).
pub fn check(method: &Method, uri: &Uri, other_coding: bool) -> Result<(), BadForm> {
    if method == Method::CONNECT {
        return Err(BadForm::Connect);
    }
    if uri.path() == "*" && uri.authority().is_none() && method != Method::OPTIONS {
        return Err(BadForm::Asterisk);
    }
    if other_coding {
        return Err(BadForm::TransferCoding);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(method: &str, target: &str, other_coding: bool) -> Result<(), BadForm> {
        let m = Method::from_bytes(method.as_bytes()).unwrap();
        check(&m, &target.parse().unwrap(), other_coding)
    }

    #[test]
    fn connect_and_a_star_target_other_than_options_are_refused() {
        assert_eq!(
            form("CONNECT", "h.example:443", false),
            Err(BadForm::Connect)
        );
        assert_eq!(form("GET", "*", false), Err(BadForm::Asterisk));
        assert_eq!(form("POST", "*", false), Err(BadForm::Asterisk));
        assert_eq!(form("OPTIONS", "*", false), Ok(()));
        assert_eq!(form("GET", "/x", false), Ok(()));
        assert_eq!(form("GET", "http://h.example/x", false), Ok(()));
    }

    #[test]
    fn a_coding_besides_chunked_is_not_implemented() {
        assert_eq!(form("POST", "/x", true), Err(BadForm::TransferCoding));
        assert_eq!(BadForm::TransferCoding.status(), 501);
        assert_eq!(BadForm::Connect.status(), 405);
    }

    #[test]
    fn every_refusal_has_a_reason_in_the_fixed_label_set() {
        for f in BadForm::ALL {
            let known = Reject::ALL.map(Reject::as_str);
            assert!(known.contains(&f.reason()), "{}", f.reason());
        }
    }
}
