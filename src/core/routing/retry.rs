//! What follows a try: whether a failed try may be repeated, and where. Pure;
//! the budget (a rate) is checked by the caller after these say retry.

use rand::Rng;

use super::{Decision, OriginView, Walk};
use crate::core::snapshot::{RegionIdx, RetryPolicy, Snapshot};

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

/// What a request does after a try that did not end it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Another try, which the walk sends to region `to`.
    Retry { to: RegionIdx },
    /// No other try: the last try's outcome (the origin's answer, or the
    /// gateway's error for its failure) is the client's answer.
    GiveUp,
}

/// Whether the request itself may be sent again (see [`may_retry`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repeatable {
    /// The method may be repeated (RFC 9110 §9.2.2).
    pub method: bool,
    /// The body can be sent again (none, or kept whole).
    pub body: bool,
}

/// The step after a try that failed this way (an answer is `Failure::Status`):
/// a retry when the failure is eligible and the walk has a try and an origin
/// left, and where it goes; else give up. Takes nothing from the walk.
pub fn next_step<O: OriginView, R: Rng + ?Sized>(
    snap: &Snapshot,
    walk: &Walk,
    decision: &Decision,
    failure: Failure,
    request: Repeatable,
    origins: &O,
    rng: &mut R,
) -> Next {
    let policy = &snap.data_path.retries;
    if !may_retry(policy, failure, request.method, request.body) {
        return Next::GiveUp;
    }
    match walk.peek_retry(snap, origins, &decision.order, policy.attempts, rng) {
        Some(to) => Next::Retry { to },
        None => Next::GiveUp,
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

    mod after_a_try {
        use super::super::*;
        use crate::core::health::HealthView;
        use crate::core::routing::failover::tests::snapshot;
        use crate::core::routing::{Order, Reasons, TokenUse};

        fn decision() -> Decision {
            Decision {
                route: 0,
                residency: None,
                order: Order::from_slice(&[0, 1]),
                reasons: Reasons::default(),
                token: TokenUse::None,
            }
        }

        const ANY: Repeatable = Repeatable {
            method: true,
            body: true,
        };

        /// The step after `tries` tries, the last failing with `failure`.
        fn after(tries: usize, failure: Failure, request: Repeatable) -> Next {
            let (snap, d) = (snapshot(), decision());
            let health = HealthView::all_healthy(2);
            let mut rng = rand::thread_rng();
            let mut walk = Walk::default();
            for _ in 0..tries {
                walk.next(&snap, &health, &d.order, 2, &mut rng).unwrap();
            }
            next_step(&snap, &walk, &d, failure, request, &health, &mut rng)
        }

        #[test]
        fn a_retryable_failure_goes_where_the_walk_goes_next() {
            assert_eq!(after(1, Failure::Status(503), ANY), Next::Retry { to: 1 });
            assert_eq!(after(1, Failure::AfterSend, ANY), Next::Retry { to: 1 });
        }

        #[test]
        fn an_answer_not_listed_is_the_clients() {
            assert_eq!(after(1, Failure::Status(200), ANY), Next::GiveUp);
            assert_eq!(after(1, Failure::Status(500), ANY), Next::GiveUp);
        }

        #[test]
        fn a_request_that_cannot_be_repeated_stops_unless_nothing_was_sent() {
            let once = Repeatable {
                method: false,
                body: false,
            };
            assert_eq!(after(1, Failure::Status(503), once), Next::GiveUp);
            assert_eq!(after(1, Failure::AfterSend, once), Next::GiveUp);
            assert_eq!(after(1, Failure::Connect, once), Next::Retry { to: 1 });
        }

        #[test]
        fn no_retry_once_the_tries_are_used_up() {
            assert_eq!(after(2, Failure::Connect, ANY), Next::GiveUp);
        }
    }

    #[test]
    fn reasons_name_the_failure() {
        assert_eq!(reason(Failure::Status(503), false), "status_503");
        assert_eq!(reason(Failure::AfterSend, true), "timeout");
        assert_eq!(reason(Failure::AfterSend, false), "connection_error");
        assert_eq!(reason(Failure::Connect, false), "connect_failure");
    }
}
