//! Requests per second by decision reason over the last 5 minutes, for the status
//! page's chart (`GET /admin/series`). Sampled once a second from the
//! `meridian_requests_total` counters the data path already keeps, so the request
//! path pays nothing for it.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

use prometheus::core::Collector;
use serde_json::{json, Value};

use crate::telemetry::metrics::Metrics;
use crate::util::lock::lock;

/// How often a point is taken.
pub const STEP: Duration = Duration::from_secs(1);
/// Points kept: 5 minutes of them.
const KEEP: usize = 300;

/// The sampled series.
#[derive(Default)]
pub struct Series {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    /// Counter totals by decision at the last sample, and when it was taken.
    last: Option<(u64, HashMap<String, u64>)>,
    /// (unix ms, requests per second by decision), oldest first.
    points: VecDeque<(u64, BTreeMap<String, f64>)>,
}

/// `meridian_requests_total` summed by its `decision` label.
fn totals(metrics: &Metrics) -> HashMap<String, u64> {
    let mut out: HashMap<String, u64> = HashMap::new();
    for family in metrics.requests.collect() {
        for m in family.get_metric() {
            let decision = m
                .get_label()
                .iter()
                .find(|l| l.name() == "decision")
                .map_or("none", |l| l.value());
            *out.entry(decision.to_string()).or_default() += m.get_counter().value() as u64;
        }
    }
    out
}

impl Series {
    /// Takes one point at `now` (unix ms): the rate of each decision since the last.
    pub fn sample(&self, metrics: &Metrics, now: u64) {
        let totals = totals(metrics);
        let mut inner = lock(&self.inner);
        if let Some((at, last)) = &inner.last {
            let secs = now.saturating_sub(*at).max(1) as f64 / 1000.0;
            let rps = totals
                .iter()
                .map(|(d, n)| {
                    let before = last.get(d).copied().unwrap_or(0);
                    (
                        d.clone(),
                        (n.saturating_sub(before) as f64 / secs * 10.0).round() / 10.0,
                    )
                })
                .collect();
            inner.points.push_back((now, rps));
            while inner.points.len() > KEEP {
                inner.points.pop_front();
            }
        }
        inner.last = Some((now, totals));
    }

    /// `{"step_ms", "at_unix_ms": [...], "rps": {decision: [...]}}`: one array per
    /// decision seen in the window, aligned with `at_unix_ms`.
    pub fn doc(&self) -> Value {
        let inner = lock(&self.inner);
        let mut rps: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
        for (_, point) in &inner.points {
            for d in point.keys() {
                rps.entry(d).or_default();
            }
        }
        for (_, point) in &inner.points {
            for (d, values) in rps.iter_mut() {
                values.push(point.get(*d).copied().unwrap_or(0.0));
            }
        }
        json!({
            "step_ms": STEP.as_millis() as u64,
            "at_unix_ms": inner.points.iter().map(|(t, _)| *t).collect::<Vec<_>>(),
            "rps": rps,
        })
    }
}

/// Calls `sample` every `STEP` for as long as the process runs (started by the
/// admin server with the series and metrics to sample).
pub async fn every_step(mut sample: impl FnMut()) {
    let mut tick = tokio::time::interval(STEP);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        sample();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_by_decision_from_the_request_counters() {
        let m = Metrics::new();
        let s = Series::default();
        s.sample(&m, 10_000);
        m.requests
            .with_label_values(&["us-east-1", "geo", "read", "2xx"])
            .inc_by(30);
        m.requests
            .with_label_values(&["eu-west-1", "geo", "read", "2xx"])
            .inc_by(10);
        m.requests
            .with_label_values(&["eu-west-1", "failover", "read", "5xx"])
            .inc_by(4);
        s.sample(&m, 12_000);
        s.sample(&m, 13_000);
        let d = s.doc();
        assert_eq!(d["at_unix_ms"], json!([12_000, 13_000]));
        assert_eq!(d["rps"]["geo"], json!([20.0, 0.0]));
        assert_eq!(d["rps"]["failover"], json!([2.0, 0.0]));
    }
}
