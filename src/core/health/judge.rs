//! Judging one probe answer (README, "Health, failover and retries") and folding verdicts into an origin's
//! state with rise/fall thresholds. Pure: no I/O, no clock.

use serde::Deserialize;

use super::ProbeState;

/// What one probe said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Pass,
    /// Passing, at reduced weight.
    Degraded,
    Fail(FailReason),
}

crate::util::label_set::label_set! {
    /// Why a probe failed: the `reason` label of `probe_failures_total`.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum FailReason {
        Timeout => "timeout",
        Refused => "refused",
        Status => "status",
        Unhealthy => "unhealthy",
        /// The TLS handshake failed (expired, not yet valid, wrong host, unknown CA, ...).
        Tls => "tls",
        Error => "error",
    }
}

/// A judged answer: the verdict, the replication lag reported, and whether a deep
/// probe found no usable JSON (then the status code alone decided).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Judgement {
    pub verdict: Verdict,
    pub replication_lag_ms: Option<u32>,
    pub body_unparsed: bool,
}

#[derive(Deserialize)]
struct DeepHealth {
    status: String,
    #[serde(default)]
    replication_lag_ms: Option<f64>,
    #[serde(default)]
    checks: std::collections::BTreeMap<String, Check>,
}

#[derive(Deserialize)]
struct Check {
    #[serde(default)]
    status: Option<String>,
}

/// Judges an HTTP answer to a health probe. A wrong status fails whatever the
/// body says; with `deep`, `healthy`/`degraded`/`unhealthy` decide, and a failing
/// entry in `checks` makes a healthy answer degraded (the origin still serves,
/// but something it depends on is hurting).
pub fn judge(status: u16, body: &[u8], expect: &[u16], deep: bool) -> Judgement {
    let mut j = Judgement {
        verdict: Verdict::Pass,
        replication_lag_ms: None,
        body_unparsed: false,
    };
    if !expect.contains(&status) {
        j.verdict = Verdict::Fail(FailReason::Status);
        return j;
    }
    if !deep {
        return j;
    }
    let Ok(doc) = serde_json::from_slice::<DeepHealth>(body) else {
        j.body_unparsed = true;
        return j;
    };
    j.replication_lag_ms = doc
        .replication_lag_ms
        .filter(|l| l.is_finite() && *l >= 0.0)
        .map(|l| l.min(f64::from(u32::MAX - 1)) as u32);
    let failing_check = doc
        .checks
        .values()
        .any(|c| c.status.as_deref() == Some("fail"));
    j.verdict = match doc.status.as_str() {
        "healthy" | "pass" | "ok" if failing_check => Verdict::Degraded,
        "healthy" | "pass" | "ok" => Verdict::Pass,
        "degraded" | "warn" => Verdict::Degraded,
        "unhealthy" | "fail" => Verdict::Fail(FailReason::Unhealthy),
        _ => {
            j.body_unparsed = true;
            Verdict::Pass
        }
    };
    j
}

/// Rise/fall counters of one origin.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Streak {
    pub passes: u32,
    pub fails: u32,
}

/// The next state after `verdict`. A new origin (Unknown) becomes eligible on its
/// first pass and unhealthy on its first failure: it has no record to protect.
/// Afterwards it takes `rise` passes in a row to come back and `fall` failures in a
/// row to go down.
pub fn next_state(
    state: ProbeState,
    streak: &mut Streak,
    verdict: Verdict,
    rise: u32,
    fall: u32,
) -> ProbeState {
    match verdict {
        Verdict::Fail(_) => {
            streak.fails += 1;
            streak.passes = 0;
        }
        _ => {
            streak.passes += 1;
            streak.fails = 0;
        }
    }
    let passing = match verdict {
        Verdict::Pass => ProbeState::Healthy,
        Verdict::Degraded => ProbeState::Degraded,
        Verdict::Fail(_) => ProbeState::Unhealthy,
    };
    match (state, passing) {
        (ProbeState::Unknown, s) => s,
        (ProbeState::Unhealthy, ProbeState::Unhealthy) => ProbeState::Unhealthy,
        (ProbeState::Unhealthy, s) if streak.passes >= rise.max(1) => s,
        (ProbeState::Unhealthy, _) => ProbeState::Unhealthy,
        (_, ProbeState::Unhealthy) if streak.fails >= fall.max(1) => ProbeState::Unhealthy,
        // Still up; a failure below the threshold keeps the previous passing state.
        (s, ProbeState::Unhealthy) => s,
        (_, s) => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn judges_bodies() {
        let ok = [200];
        let j = |s, b: &str| judge(s, b.as_bytes(), &ok, true);
        assert_eq!(j(200, r#"{"status":"healthy"}"#).verdict, Verdict::Pass);
        assert_eq!(
            j(200, r#"{"status":"degraded"}"#).verdict,
            Verdict::Degraded
        );
        assert_eq!(
            j(200, r#"{"status":"unhealthy"}"#).verdict,
            Verdict::Fail(FailReason::Unhealthy)
        );
        assert_eq!(
            j(500, r#"{"status":"healthy"}"#).verdict,
            Verdict::Fail(FailReason::Status)
        );
        let lag = j(200, r#"{"status":"healthy","replication_lag_ms":350}"#);
        assert_eq!(lag.replication_lag_ms, Some(350));
        let checks = j(
            200,
            r#"{"status":"healthy","checks":{"db":{"status":"fail","latency":3}}}"#,
        );
        assert_eq!(checks.verdict, Verdict::Degraded);
        let plain = j(200, "OK");
        assert_eq!((plain.verdict, plain.body_unparsed), (Verdict::Pass, true));
        let shallow = judge(200, br#"{"status":"unhealthy"}"#, &ok, false);
        assert_eq!(shallow.verdict, Verdict::Pass);
        assert_eq!(
            j(200, r#"{"status":"healthy","replication_lag_ms":-5}"#).replication_lag_ms,
            None
        );
    }

    #[test]
    fn rise_and_fall() {
        use ProbeState::*;
        let pass = Verdict::Pass;
        let fail = Verdict::Fail(FailReason::Timeout);
        let mut k = Streak::default();
        assert_eq!(next_state(Unknown, &mut k, pass, 2, 3), Healthy);
        let mut s = Healthy;
        for want in [Healthy, Healthy, Unhealthy] {
            s = next_state(s, &mut k, fail, 2, 3);
            assert_eq!(s, want);
        }
        for want in [Unhealthy, Healthy] {
            s = next_state(s, &mut k, pass, 2, 3);
            assert_eq!(s, want);
        }
        // An interrupted streak starts over.
        s = next_state(s, &mut k, fail, 2, 3);
        s = next_state(s, &mut k, fail, 2, 3);
        s = next_state(s, &mut k, pass, 2, 3);
        s = next_state(s, &mut k, fail, 2, 3);
        assert_eq!(s, Healthy);
        let mut k = Streak::default();
        assert_eq!(next_state(Unknown, &mut k, fail, 2, 3), Unhealthy);
        assert_eq!(
            next_state(Healthy, &mut k, Verdict::Degraded, 2, 3),
            Degraded
        );
    }
}
