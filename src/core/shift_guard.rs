//! A shift's guard: whether the `to` region's error ratio over the shift's
//! `abort_if.over` window breaks its limit. Pure: the samples, the policy and the
//! time come in; the probe supervisor feeds it and carries out an abort.

use std::collections::VecDeque;

/// Fewer responses than this in the window say nothing about an error ratio.
pub const MIN_RESPONSES: u64 = 20;

/// One reading of the `to` region's counters: (unix ms, responses, errors) so far.
pub type Sample = (u64, u64, u64);

/// What broke the limit, for the journal.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Abort {
    pub responses: u64,
    pub errors: u64,
    /// How long the window the ratio was taken over is (ms).
    pub over_ms: u64,
}

/// Adds `sample` (taken at `now`) to `window`, drops what fell out of `over_ms`
/// (keeping the newest sample at least that old, as the baseline),
/// and judges: an abort once the window covers at least half of `over_ms`, holds
/// [`MIN_RESPONSES`] or more, and more than `limit` of them were errors.
pub fn judge(
    window: &mut VecDeque<Sample>,
    sample: Sample,
    limit: f64,
    over_ms: u64,
) -> Option<Abort> {
    let now = sample.0;
    window.push_back(sample);
    while window.len() > 1 && window[1].0 + over_ms <= now {
        window.pop_front();
    }
    let (t0, r0, e0) = window[0];
    let (responses, errors) = (sample.1.saturating_sub(r0), sample.2.saturating_sub(e0));
    let covered = now.saturating_sub(t0);
    (covered * 2 >= over_ms
        && responses >= MIN_RESPONSES
        && errors as f64 > limit * responses as f64)
        .then_some(Abort {
            responses,
            errors,
            over_ms: covered,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aborts_only_on_a_full_enough_window_with_enough_responses_over_the_limit() {
        let mut w = VecDeque::new();
        // 10 s window, 10 % limit; responses and errors counted since start.
        assert_eq!(judge(&mut w, (0, 0, 0), 0.1, 10_000), None);
        // Half the window, 50 responses, 20 errors: 40 % > 10 %.
        let a = judge(&mut w, (5_000, 50, 20), 0.1, 10_000);
        assert_eq!(
            a,
            Some(Abort {
                responses: 50,
                errors: 20,
                over_ms: 5_000
            })
        );
    }

    #[test]
    fn too_few_responses_or_too_short_a_window_say_nothing() {
        let mut w = VecDeque::new();
        judge(&mut w, (0, 0, 0), 0.1, 10_000);
        assert_eq!(
            judge(&mut w, (4_999, 100, 100), 0.1, 10_000),
            None,
            "under half the window"
        );
        let mut w = VecDeque::new();
        judge(&mut w, (0, 0, 0), 0.1, 10_000);
        assert_eq!(
            judge(&mut w, (6_000, 19, 19), 0.1, 10_000),
            None,
            "19 responses"
        );
        assert_eq!(
            judge(&mut w, (7_000, 100, 10), 0.1, 10_000),
            None,
            "10 % is not above 10 %"
        );
    }

    #[test]
    fn old_samples_leave_the_window() {
        let mut w = VecDeque::new();
        judge(&mut w, (0, 0, 0), 0.5, 10_000);
        // Errors long ago, then a calm window: no abort.
        judge(&mut w, (1_000, 100, 100), 0.5, 10_000);
        judge(&mut w, (12_000, 200, 100), 0.5, 10_000);
        assert_eq!(judge(&mut w, (20_000, 400, 100), 0.5, 10_000), None);
        // The newest sample at least a window old stays, as the baseline.
        assert_eq!(w.front().map(|s| s.0), Some(1_000));
    }
}
