//! Retry eligibility: whether a failed try may be repeated elsewhere. Pure;
//! the budget (a rate) is checked by the caller after these say yes.

use crate::core::snapshot::RetryPolicy;

/// How a try failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// No connection was made: nothing was sent.
    Connect,
    /// The origin answered with this status.
    Status(u16),
    /// The connection failed or timed out after the request went out.
    AfterSend,
}

/// True when a try that failed this way may be repeated. `idempotent`: the
/// request's method may be repeated (RFC 9110 §9.2.2); `replayable`: its body
/// can be sent again (none, or kept whole).
pub fn may_retry(
    policy: &RetryPolicy,
    failure: Failure,
    idempotent: bool,
    replayable: bool,
) -> bool {
    let method_ok = idempotent || policy.all_methods;
    match failure {
        // Nothing reached the origin: any request may go elsewhere.
        Failure::Connect => true,
        Failure::Status(s) => method_ok && replayable && policy.statuses.contains(&s),
        Failure::AfterSend => method_ok && replayable,
    }
}

/// The `retries_total{reason}` label for a retry after this failure.
pub fn reason(failure: Failure, timed_out: bool) -> &'static str {
    match failure {
        Failure::Connect => "connect_failure",
        Failure::Status(429) => "status_429",
        Failure::Status(500) => "status_500",
        Failure::Status(502) => "status_502",
        Failure::Status(503) => "status_503",
        Failure::Status(504) => "status_504",
        Failure::Status(_) => "status_other",
        Failure::AfterSend if timed_out => "timeout",
        Failure::AfterSend => "connection_error",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(all_methods: bool) -> RetryPolicy {
        RetryPolicy {
            attempts: 2,
            statuses: vec![503],
            all_methods,
            budget_ratio: 0.2,
            budget_min_per_second: 10,
        }
    }

    #[test]
    fn a_connect_failure_may_always_go_elsewhere() {
        let p = policy(false);
        assert!(may_retry(&p, Failure::Connect, false, false));
    }

    #[test]
    fn statuses_retry_only_when_listed_for_repeatable_requests() {
        let p = policy(false);
        assert!(may_retry(&p, Failure::Status(503), true, true));
        assert!(!may_retry(&p, Failure::Status(502), true, true));
        assert!(!may_retry(&p, Failure::Status(503), false, true));
        assert!(!may_retry(&p, Failure::Status(503), true, false));
        let all = policy(true);
        assert!(may_retry(&all, Failure::Status(503), false, true));
    }

    #[test]
    fn a_failure_after_sending_needs_a_repeatable_method_and_body() {
        let p = policy(false);
        assert!(may_retry(&p, Failure::AfterSend, true, true));
        assert!(!may_retry(&p, Failure::AfterSend, false, true));
        assert!(!may_retry(&p, Failure::AfterSend, true, false));
    }

    #[test]
    fn reasons_name_the_failure() {
        assert_eq!(reason(Failure::Status(503), false), "status_503");
        assert_eq!(reason(Failure::AfterSend, true), "timeout");
        assert_eq!(reason(Failure::AfterSend, false), "connection_error");
        assert_eq!(reason(Failure::Connect, false), "connect_failure");
    }
}
