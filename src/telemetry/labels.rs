//! The label value sets no other module owns (`requests_rejected_total{reason}`
//! and the like). Apart from `metric_labels`, which creates their series at 0,
//! because the data path's lowest modules (`proxy::blame`) name them, and
//! `metric_labels` reaches `core::health`, whose endpoints own the connection
//! pools that reach `proxy::blame`: this module uses nothing but `util`.

use crate::util::label_set::label_set;

label_set! {
    /// `requests_rejected_total{reason}`, as `proxy` and `proxy::listener` count
    /// them: `proxy::form`'s refusals and `proxy::blame`'s client faults among them.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum Reject {
        BadBody => "bad_body",
        BodyTooLarge => "body_too_large",
        BadHost => "bad_host",
        BadTarget => "bad_target",
        ClientGone => "client_gone",
        ClientTimeout => "client_timeout",
        Connect => "connect",
        HeaderTimeout => "header_timeout",
        Malformed => "malformed",
        ProxyProtocol => "proxy_protocol",
        TransferCoding => "transfer_coding",
    }
}

label_set! {
    /// `retries_denied_total{reason}`: the retry budget is the only reason.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum RetryDenied {
        Budget => "budget",
    }
}

label_set! {
    /// `xff_malformed_total{header}`.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum XffHeader {
        XForwardedFor => "x-forwarded-for",
    }
}

label_set! {
    /// `config_reloads_total{result}`.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum ReloadResult {
        Ok => "ok",
        Error => "error",
    }
}
