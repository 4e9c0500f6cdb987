//! Journal entries for changes that have no single code path of their own: a
//! region's health roll-up (it follows from its origins), outlier ejections (made
//! on the request path, which must not take the journal's lock, and ended by
//! time alone) and shift progress (a function of the clock). The probe supervisor
//! calls [`Watch::tick`] every 250 ms; probes call [`region_health`] right after an
//! origin flips, so a region's change is journaled with the flip that caused it.

use std::collections::HashMap;
use std::sync::atomic::Ordering::Relaxed;

use crate::core::health::RegionHealth;
use crate::core::snapshot::{RegionIdx, Snapshot};
use crate::services::shared::Shared;
use crate::telemetry::events::Kind;

fn name(code: u8) -> &'static str {
    RegionHealth::from_code(code).map_or("unknown", RegionHealth::as_str)
}

/// Journals region `r`'s health roll-up if it differs from the last one journaled.
/// Silent until every origin of the region has had a probe result, and for a region
/// found healthy the first time (start-up is not news; a region down at start is).
/// `why` names what triggered the look (the origin that flipped).
pub fn region_health(shared: &Shared, snap: &Snapshot, r: RegionIdx, now: u64, why: Option<&str>) {
    let region = &snap.regions[r];
    if !region.origins.iter().all(|o| o.endpoints.probed()) {
        return;
    }
    let now_code = snap.health_view(now).region(r).health.code();
    // A swap, not a load and a store: the supervisor and a prober may look at once,
    // and only one of them may journal the change.
    let before = region.state.journaled_health.swap(now_code, Relaxed);
    if before == now_code || (before == 0 && now_code == 1) {
        return;
    }
    let eligible = region
        .origins
        .iter()
        .filter(|o| o.reading(now).eligible)
        .count();
    let mut cause = format!(
        "{eligible} of {} origins eligible (min_healthy_origins {})",
        region.origins.len(),
        snap.min_healthy_origins
    );
    if let Some(why) = why {
        cause.push_str("; ");
        cause.push_str(why);
    }
    shared.events.record(
        Kind::RegionHealth,
        region.name.as_str(),
        Some(name(before)),
        Some(name(now_code)),
        cause,
    );
}

/// What the supervisor saw at its last tick.
#[derive(Default)]
pub struct Watch {
    /// Endpoint key → ejected at the last tick.
    ejected: HashMap<String, bool>,
    /// Shift name → tenths of its ramp done at the last tick.
    shifts: HashMap<String, u32>,
}

impl Watch {
    /// Journals ejections that began or ended, region roll-ups that changed and
    /// shifts that moved another 10 % since the last tick.
    pub fn tick(&mut self, shared: &Shared, snap: &Snapshot, now: u64) {
        let od = &snap.outlier;
        for (r, region) in snap.regions.iter().enumerate() {
            for e in region
                .origins
                .iter()
                .flat_map(|o| o.endpoints.load().to_vec())
            {
                let h = &e.health;
                let ejected = !h.eligible_passive(now);
                let was = self.ejected.insert(e.key.clone(), ejected).unwrap_or(false);
                if ejected && !was {
                    let until = h.ejected_until_ms.load(Relaxed);
                    shared.events.record(
                        Kind::OriginEjection,
                        e.key.as_str(),
                        Some("in"),
                        Some("ejected"),
                        // Ejection happens only at the threshold (the live streak
                        // itself is reset by then), so the policy says how many.
                        format!(
                            "{} live failures in a row (outlier_detection.consecutive_failures); ejection #{}, {} ms left",
                            od.consecutive_failures,
                            h.times_ejected.load(Relaxed),
                            until.saturating_sub(now),
                        ),
                    );
                } else if was && !ejected {
                    // `outlier::lift` zeroes the deadline; an ejection that ran its
                    // course leaves it in the past.
                    let cause = if h.ejected_until_ms.load(Relaxed) == 0 {
                        "lifted: the probes see it healthy again"
                    } else {
                        "ejection time over"
                    };
                    shared.events.record(
                        Kind::OriginEjection,
                        e.key.as_str(),
                        Some("ejected"),
                        Some("in"),
                        cause,
                    );
                }
            }
            region_health(shared, snap, r, now, None);
        }
        self.ejected.retain(|k, _| {
            let origin = k.rsplit_once('@').map_or(k.as_str(), |(o, _)| o);
            snap.regions
                .iter()
                .flat_map(|r| &r.origins)
                .filter(|o| o.key == origin)
                .any(|o| o.endpoints.load().iter().any(|e| &e.key == k))
        });

        for s in &snap.shifts {
            if s.state.aborted.load(Relaxed) || s.fraction <= 0.0 {
                continue;
            }
            let tenths = ((s.fraction_at(now) / s.fraction) * 10.0 + 1e-9).floor() as u32;
            let tenths = tenths.min(10);
            let Some(before) = self.shifts.insert(s.name.clone(), tenths) else {
                // First sight (start-up or a new shift): where it stands is no change.
                continue;
            };
            if before == tenths {
                continue;
            }
            let (from, to) = (&snap.regions[s.from].name, &snap.regions[s.to].name);
            let moved = format!("{:.0}% of {from}'s traffic to {to}", s.fraction * 100.0);
            let cause = match (before, tenths) {
                (0, _) => format!("started: moving {moved} over {} s", s.ramp_ms / 1000),
                (_, 10) => format!("completed: {moved} moved"),
                _ => format!("ramping: {} % of {moved}", tenths * 10),
            };
            shared.events.record(
                Kind::Shift,
                s.name.as_str(),
                Some(&format!("{}%", before * 10)),
                Some(&format!("{}%", tenths * 10)),
                cause,
            );
        }
        self.shifts
            .retain(|k, _| snap.shifts.iter().any(|s| &s.name == k));
    }
}
