//! Health views published across regions, and the quorum over them.
//!
//! Every instance publishes what it sees of every region as a TXT record set under
//! `_meridian-health.<record_name>`, one set identifier per publishing region. A
//! region's DNS weight moves only when a majority of the *configured* voters (the
//! regions that have a record) agree, each from a fresh view: so one partitioned
//! instance, however sure of itself, can never drain a healthy region alone.

use std::collections::BTreeMap;

use super::record::{RecordSet, Target};

/// One region as one instance sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Observation {
    pub up: bool,
    /// Unix ms of the last change of `up` as this instance saw it.
    pub since_ms: u64,
}

/// Everything one instance sees, stamped with when it looked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct View {
    pub publisher: String,
    pub at_ms: u64,
    pub regions: BTreeMap<String, Observation>,
}

const TAG: &str = "meridian-v1";

impl View {
    /// TXT values, one per observed region (each well under the 255-byte string cap).
    pub fn to_txt(&self) -> Vec<String> {
        self.regions
            .iter()
            .map(|(region, o)| {
                let state = if o.up { "up" } else { "down" };
                format!(
                    "\"{TAG} at={} region={region} state={state} since={}\"",
                    self.at_ms, o.since_ms
                )
            })
            .collect()
    }

    /// Reads a published view back. Values that do not parse are skipped: a TXT
    /// record is input from elsewhere and never worth failing a sync over.
    pub fn from_record(set: &RecordSet) -> Option<View> {
        let Target::Values(values) = &set.target else {
            return None;
        };
        let mut view = View {
            publisher: set.set_identifier.clone(),
            at_ms: 0,
            regions: BTreeMap::new(),
        };
        for v in values {
            if let Some((at, region, o)) = parse_value(v) {
                view.at_ms = view.at_ms.max(at);
                view.regions.insert(region, o);
            }
        }
        (!view.regions.is_empty()).then_some(view)
    }
}

fn parse_value(v: &str) -> Option<(u64, String, Observation)> {
    let v = v.trim().trim_matches('"');
    let mut words = v.split_ascii_whitespace();
    if words.next()? != TAG {
        return None;
    }
    let (mut at, mut region, mut up, mut since) = (None, None, None, None);
    for w in words {
        match w.split_once('=')? {
            ("at", x) => at = x.parse().ok(),
            ("region", x) if !x.is_empty() => region = Some(x.to_string()),
            ("state", "up") => up = Some(true),
            ("state", "down") => up = Some(false),
            ("since", x) => since = x.parse().ok(),
            _ => {}
        }
    }
    Some((
        at?,
        region?,
        Observation {
            up: up?,
            since_ms: since?,
        },
    ))
}

/// What the voters agree on for one region.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// A quorum saw it down for at least `hold_down`.
    Down,
    /// A quorum saw it up for at least `hold_down`.
    Up,
    /// Neither: keep whatever Route 53 has now.
    Hold,
}

/// The vote on one region, kept for `/admin/state`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Tally {
    pub verdict: Verdict,
    /// Fresh views that say down (up) and have for `hold_down`.
    pub down_held: usize,
    pub up_held: usize,
    pub fresh_views: usize,
    pub quorum: usize,
}

impl Tally {
    /// As `/admin/state` shows it.
    pub fn doc(&self) -> crate::services::api::VoteDoc {
        crate::services::api::VoteDoc {
            verdict: match self.verdict {
                Verdict::Down => "down",
                Verdict::Up => "up",
                Verdict::Hold => "hold",
            }
            .to_string(),
            down_held: self.down_held as u64,
            up_held: self.up_held as u64,
            fresh_views: self.fresh_views as u64,
            quorum: self.quorum as u64,
        }
    }
}

/// The rules the tally follows.
#[derive(Debug, Clone, Copy)]
pub struct Rules {
    pub now_ms: u64,
    pub hold_down_ms: u64,
    /// A view older than this does not vote (three sync intervals).
    pub stale_after_ms: u64,
}

/// Counts the fresh views of `voters` on `region`; a majority of all voters decides.
pub fn tally(views: &[View], voters: &[String], region: &str, rules: Rules) -> Tally {
    let quorum = voters.len() / 2 + 1;
    let fresh = views.iter().filter(|v| {
        voters.contains(&v.publisher) && rules.now_ms.abs_diff(v.at_ms) <= rules.stale_after_ms
    });
    let (mut down_held, mut up_held, mut fresh_views) = (0, 0, 0);
    for v in fresh {
        fresh_views += 1;
        let Some(o) = v.regions.get(region) else {
            continue;
        };
        if rules.now_ms.saturating_sub(o.since_ms) < rules.hold_down_ms {
            continue;
        }
        if o.up {
            up_held += 1;
        } else {
            down_held += 1;
        }
    }
    let verdict = if down_held >= quorum {
        Verdict::Down
    } else if up_held >= quorum {
        Verdict::Up
    } else {
        Verdict::Hold
    };
    Tally {
        verdict,
        down_held,
        up_held,
        fresh_views,
        quorum,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOLD: u64 = 60_000;
    const NOW: u64 = 1_000_000;

    fn rules() -> Rules {
        Rules {
            now_ms: NOW,
            hold_down_ms: HOLD,
            stale_after_ms: 90_000,
        }
    }

    fn view(publisher: &str, age_ms: u64, eu: Option<(bool, u64)>) -> View {
        let mut regions = BTreeMap::new();
        if let Some((up, held_ms)) = eu {
            regions.insert(
                "eu".to_string(),
                Observation {
                    up,
                    since_ms: NOW - held_ms,
                },
            );
        }
        View {
            publisher: publisher.into(),
            at_ms: NOW - age_ms,
            regions,
        }
    }

    fn voters() -> Vec<String> {
        ["us", "eu", "ap"].map(String::from).to_vec()
    }

    #[test]
    fn quorum_table() {
        use Verdict::*;
        let down_long = Some((false, HOLD));
        let down_short = Some((false, HOLD - 1));
        let up_long = Some((true, HOLD + 5));
        let cases: Vec<(&str, Vec<View>, Verdict)> = vec![
            ("no views", vec![], Hold),
            ("one of three down", vec![view("us", 0, down_long)], Hold),
            (
                "one down, two up",
                vec![
                    view("us", 0, down_long),
                    view("eu", 0, up_long),
                    view("ap", 0, up_long),
                ],
                Up,
            ),
            (
                "two of three down",
                vec![view("us", 0, down_long), view("ap", 0, down_long)],
                Down,
            ),
            (
                "two down but one not for hold_down",
                vec![view("us", 0, down_long), view("ap", 0, down_short)],
                Hold,
            ),
            (
                "two down but one stale",
                vec![view("us", 0, down_long), view("ap", 90_001, down_long)],
                Hold,
            ),
            (
                "stale boundary still votes",
                vec![view("us", 0, down_long), view("ap", 90_000, down_long)],
                Down,
            ),
            (
                "a non-voter does not count",
                vec![view("us", 0, down_long), view("sa", 0, down_long)],
                Hold,
            ),
            (
                "a view without the region abstains",
                vec![view("us", 0, up_long), view("ap", 0, None)],
                Hold,
            ),
            (
                "two up for hold_down",
                vec![view("us", 0, up_long), view("eu", 0, up_long)],
                Up,
            ),
        ];
        for (name, views, want) in cases {
            let t = tally(&views, &voters(), "eu", rules());
            assert_eq!(t.verdict, want, "{name}: {t:?}");
            assert_eq!(t.quorum, 2, "{name}");
        }
    }

    #[test]
    fn single_voter_decides_alone() {
        let t = tally(
            &[view("us", 0, Some((false, HOLD)))],
            &["us".to_string()],
            "eu",
            rules(),
        );
        assert_eq!(t.verdict, Verdict::Down);
    }

    #[test]
    fn txt_round_trips_and_junk_is_skipped() {
        let mut v = view("us", 5, Some((false, 1234)));
        v.regions.insert(
            "ap".into(),
            Observation {
                up: true,
                since_ms: 7,
            },
        );
        let mut values = v.to_txt();
        values.push("\"v=spf1 -all\"".into());
        values.push("\"meridian-v1 at=x region=us state=up since=1\"".into());
        values.push("\"meridian-v1 at=1 region=us state=sideways since=1\"".into());
        let set = RecordSet {
            name: "_meridian-health.api.example.com.".into(),
            record_type: "TXT".into(),
            set_identifier: "us".into(),
            weight: 0,
            ttl: Some(60),
            target: Target::Values(values),
            health_check_id: None,
        };
        assert_eq!(View::from_record(&set), Some(v));
        for s in &set_values(&set) {
            assert!(s.len() <= 255, "{s}");
        }
    }

    fn set_values(set: &RecordSet) -> Vec<String> {
        match &set.target {
            Target::Values(v) => v.clone(),
            Target::Alias { .. } => vec![],
        }
    }
}
