//! The pure part of DNS reconciliation: from the configured records, the quorum's
//! verdicts and what Route 53 holds now, the weights it should hold and the
//! smallest set of UPSERTs that gets it there.
//!
//! The in/out state of a region lives in Route 53 itself (weight 0 = out), so the
//! plan needs no memory of its own and every instance computes the same answer.

use std::collections::BTreeMap;

use super::record::{by_set_identifier, RecordSet, RecordSpec};
use super::votes::Verdict;

/// Why a region gets the weight it gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Why {
    /// A quorum saw it healthy for `hold_down`.
    Healthy,
    /// A quorum saw it down for `hold_down`.
    Down,
    /// No quorum either way: it keeps its current state (new records start in).
    Holding,
    /// Every region would be out: all keep their configured weights.
    FailOpen,
}

impl Why {
    /// Its name in `/admin/state`.
    pub fn label(self) -> &'static str {
        match self {
            Why::Healthy => "healthy",
            Why::Down => "down",
            Why::Holding => "holding",
            Why::FailOpen => "fail_open",
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Why::Healthy => "healthy",
            Why::Down => "down for hold_down",
            Why::Holding => "no quorum, unchanged",
            Why::FailOpen => "fail open, every region looks down",
        }
    }
}

impl Planned {
    /// As `/admin/state` shows it.
    pub fn doc(&self) -> crate::services::api::RecordDoc {
        crate::services::api::RecordDoc {
            region: self.region.clone(),
            set_identifier: self.set_identifier.clone(),
            configured_weight: self.configured_weight,
            current_weight: self.current_weight,
            desired_weight: self.desired_weight,
            why: self.why.label().to_string(),
        }
    }
}

/// The decision for one region record.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Planned {
    pub region: String,
    pub set_identifier: String,
    pub configured_weight: u32,
    /// What Route 53 holds now; `None` = no such record yet.
    pub current_weight: Option<u32>,
    pub desired_weight: u32,
    pub why: Why,
}

/// One UPSERT and the reason for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub record: RecordSet,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub records: Vec<Planned>,
    /// Only the record sets that differ from Route 53.
    pub changes: Vec<Change>,
}

/// Route 53 allows 256 characters of ChangeBatch comment.
pub const COMMENT_MAX: usize = 256;

impl Plan {
    /// The ChangeBatch comment: every reason, cut to what Route 53 accepts.
    pub fn comment(&self) -> String {
        let reasons: Vec<&str> = self.changes.iter().map(|c| c.reason.as_str()).collect();
        let mut s = format!("meridian: {}", reasons.join("; "));
        if s.len() > COMMENT_MAX {
            let mut cut = COMMENT_MAX - 3;
            while !s.is_char_boundary(cut) {
                cut -= 1;
            }
            s.truncate(cut);
            s.push_str("...");
        }
        s
    }
}

/// Computes the desired weights and the UPSERTs that differ.
pub fn plan(
    specs: &[RecordSpec],
    verdicts: &BTreeMap<String, Verdict>,
    current: &[RecordSet],
) -> Plan {
    let now = by_set_identifier(current);
    let mut records: Vec<Planned> = specs
        .iter()
        .map(|spec| {
            let cur = now.get(spec.record.set_identifier.as_str());
            let currently_in = cur.is_none_or(|c| c.weight > 0);
            let (is_in, why) = match verdicts.get(&spec.region).copied() {
                Some(Verdict::Down) => (false, Why::Down),
                Some(Verdict::Up) => (true, Why::Healthy),
                Some(Verdict::Hold) | None => (currently_in, Why::Holding),
            };
            Planned {
                region: spec.region.clone(),
                set_identifier: spec.record.set_identifier.clone(),
                configured_weight: spec.record.weight,
                current_weight: cur.map(|c| c.weight),
                desired_weight: if is_in { spec.record.weight } else { 0 },
                why,
            }
        })
        .collect();

    // DNS fails open, as Route 53 does when all health checks fail: draining every
    // region would answer nothing at all.
    let any_configured = records.iter().any(|p| p.configured_weight > 0);
    if any_configured && records.iter().all(|p| p.desired_weight == 0) {
        for p in &mut records {
            p.desired_weight = p.configured_weight;
            p.why = Why::FailOpen;
        }
    }

    let changes = specs
        .iter()
        .zip(&records)
        .filter_map(|(spec, p)| {
            let desired = RecordSet {
                weight: p.desired_weight,
                ..spec.record.clone()
            };
            let cur = now.get(spec.record.set_identifier.as_str());
            let reason = match cur {
                Some(c) if c.same_as(&desired) => return None,
                None => format!(
                    "{} created at weight {} ({})",
                    p.region,
                    p.desired_weight,
                    p.why.as_str()
                ),
                Some(c) if c.weight != desired.weight => format!(
                    "{} weight {} -> {} ({})",
                    p.region,
                    c.weight,
                    p.desired_weight,
                    p.why.as_str()
                ),
                Some(_) => format!("{} record differs from config", p.region),
            };
            Some(Change {
                record: desired,
                reason,
            })
        })
        .collect();
    Plan { records, changes }
}

#[cfg(test)]
mod tests {
    use super::super::record::Target;
    use super::*;

    fn spec(region: &str, weight: u32) -> RecordSpec {
        RecordSpec {
            region: region.into(),
            record: RecordSet {
                name: "api.example.com.".into(),
                record_type: "A".into(),
                set_identifier: region.into(),
                weight,
                ttl: Some(60),
                target: Target::Values(vec![format!("192.0.2.{}", weight % 250)]),
                health_check_id: None,
            },
        }
    }

    fn specs() -> Vec<RecordSpec> {
        vec![spec("ap", 20), spec("eu", 50), spec("us", 100)]
    }

    fn current(weights: &[(&str, u32)]) -> Vec<RecordSet> {
        let all = specs();
        weights
            .iter()
            .map(|(r, w)| {
                let s = all.iter().find(|s| s.region == *r).unwrap();
                RecordSet {
                    weight: *w,
                    ..s.record.clone()
                }
            })
            .collect()
    }

    fn verdicts(v: &[(&str, Verdict)]) -> BTreeMap<String, Verdict> {
        v.iter().map(|(r, v)| (r.to_string(), *v)).collect()
    }

    /// (case, verdicts, current weights, desired ap/eu/us, number of UPSERTs)
    #[test]
    fn plan_table() {
        use Verdict::*;
        let all_in = [("ap", 20), ("eu", 50), ("us", 100)];
        let eu_out = [("ap", 20), ("eu", 0), ("us", 100)];
        #[allow(clippy::type_complexity)]
        let cases: Vec<(&str, Vec<(&str, Verdict)>, &[(&str, u32)], [u32; 3], usize)> = vec![
            (
                "empty zone, no votes: create all",
                vec![],
                &[],
                [20, 50, 100],
                3,
            ),
            (
                "empty zone, eu down: created out",
                vec![("eu", Down)],
                &[],
                [20, 0, 100],
                3,
            ),
            (
                "all healthy, in sync",
                vec![("ap", Up), ("eu", Up), ("us", Up)],
                &all_in,
                [20, 50, 100],
                0,
            ),
            (
                "no quorum keeps in",
                vec![("eu", Hold)],
                &all_in,
                [20, 50, 100],
                0,
            ),
            (
                "no quorum keeps out",
                vec![("eu", Hold)],
                &eu_out,
                [20, 0, 100],
                0,
            ),
            (
                "down for hold_down: out",
                vec![("eu", Down)],
                &all_in,
                [20, 0, 100],
                1,
            ),
            (
                "already out: nothing",
                vec![("eu", Down)],
                &eu_out,
                [20, 0, 100],
                0,
            ),
            (
                "recovered: restored",
                vec![("eu", Up)],
                &eu_out,
                [20, 50, 100],
                1,
            ),
            (
                "two down, one left",
                vec![("eu", Down), ("us", Down)],
                &all_in,
                [20, 0, 0],
                2,
            ),
            (
                "all down: fail open, nothing sent",
                vec![("ap", Down), ("eu", Down), ("us", Down)],
                &all_in,
                [20, 50, 100],
                0,
            ),
            (
                "last one down while others out: fail open restores",
                vec![("ap", Down), ("eu", Down), ("us", Down)],
                &[("ap", 0), ("eu", 0), ("us", 100)],
                [20, 50, 100],
                2,
            ),
            (
                "holding out + last down: fail open",
                vec![("us", Down)],
                &[("ap", 0), ("eu", 0), ("us", 100)],
                [20, 50, 100],
                2,
            ),
            (
                "operator changed weight: follows config",
                vec![],
                &[("ap", 20), ("eu", 7), ("us", 100)],
                [20, 50, 100],
                1,
            ),
            (
                "one record missing: created",
                vec![],
                &[("ap", 20), ("us", 100)],
                [20, 50, 100],
                1,
            ),
        ];
        for (name, v, cur, want, n) in cases {
            let p = plan(&specs(), &verdicts(&v), &current(cur));
            let got: Vec<u32> = p.records.iter().map(|r| r.desired_weight).collect();
            assert_eq!(got, want, "{name}");
            assert_eq!(p.changes.len(), n, "{name}: {:?}", p.changes);
            for c in &p.changes {
                let r = p
                    .records
                    .iter()
                    .find(|r| r.set_identifier == c.record.set_identifier);
                assert_eq!(Some(c.record.weight), r.map(|r| r.desired_weight), "{name}");
            }
        }
    }

    #[test]
    fn zero_configured_weights_are_not_failed_open() {
        let specs = vec![spec("eu", 0), spec("us", 0)];
        let p = plan(&specs, &BTreeMap::new(), &[]);
        assert!(p
            .records
            .iter()
            .all(|r| r.desired_weight == 0 && r.why == Why::Holding));
    }

    #[test]
    fn differing_target_is_corrected_and_said_why() {
        let mut cur = current(&[("ap", 20), ("eu", 50), ("us", 100)]);
        cur[1].target = Target::Values(vec!["198.51.100.1".into()]);
        cur[2].ttl = Some(300);
        let p = plan(&specs(), &BTreeMap::new(), &cur);
        let reasons: Vec<&str> = p.changes.iter().map(|c| c.reason.as_str()).collect();
        assert_eq!(
            reasons,
            [
                "eu record differs from config",
                "us record differs from config"
            ]
        );
    }

    #[test]
    fn same_record_in_other_case_and_order_is_not_sent() {
        let mut s = spec("eu", 50);
        s.record.target = Target::Values(vec!["192.0.2.2".into(), "192.0.2.1".into()]);
        let mut cur = s.record.clone();
        cur.name = "API.example.com".into();
        cur.target = Target::Values(vec!["192.0.2.1".into(), "192.0.2.2".into()]);
        let p = plan(&[s], &BTreeMap::new(), &[cur]);
        assert!(p.changes.is_empty(), "{:?}", p.changes);
    }

    #[test]
    fn comment_fits_route53() {
        let p = plan(&[spec("eu", 50)], &BTreeMap::new(), &[]);
        assert_eq!(
            p.comment(),
            "meridian: eu created at weight 50 (no quorum, unchanged)"
        );
        let long = Plan {
            records: vec![],
            changes: (0..40)
                .map(|i| Change {
                    record: spec("eu", 1).record,
                    reason: format!("région-{i} weight 1 -> 0 (down for hold_down)"),
                })
                .collect(),
        };
        let c = long.comment();
        assert!(c.len() <= COMMENT_MAX && c.ends_with("..."), "{c}");
    }
}
