//! Why a request went where it went: a small set of reasons, kept as bits.

use std::fmt;

/// One reason a decision gives (`X-Meridian-Decision`, `meridian explain`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Reason {
    Write,
    ReadYourWrites,
    Affinity,
    Geo,
    Latency,
    Proximity,
    Weighted,
    Shift,
    Failover,
    /// The first choice had no room: passed on to the next region with some.
    Spillover,
    Panic,
    ResidencyReject,
}

const ALL: [Reason; 12] = [
    Reason::Write,
    Reason::ReadYourWrites,
    Reason::Affinity,
    Reason::Geo,
    Reason::Latency,
    Reason::Proximity,
    Reason::Weighted,
    Reason::Shift,
    Reason::Failover,
    Reason::Spillover,
    Reason::Panic,
    Reason::ResidencyReject,
];

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Write => "write",
            Reason::ReadYourWrites => "read_your_writes",
            Reason::Affinity => "affinity",
            Reason::Geo => "geo",
            Reason::Latency => "latency",
            Reason::Proximity => "proximity",
            Reason::Weighted => "weighted",
            Reason::Shift => "shift",
            Reason::Failover => "failover",
            Reason::Spillover => "spillover",
            Reason::Panic => "panic",
            Reason::ResidencyReject => "residency_reject",
        }
    }
}

/// A set of reasons; iterates (and prints) in the fixed order above, so the
/// primary reason comes first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Reasons(u16);

impl Reasons {
    pub fn only(r: Reason) -> Reasons {
        Reasons(1 << r as u8)
    }
    pub fn add(&mut self, r: Reason) {
        self.0 |= 1 << r as u8;
    }
    pub fn contains(self, r: Reason) -> bool {
        self.0 & (1 << r as u8) != 0
    }
    pub fn iter(self) -> impl Iterator<Item = Reason> {
        ALL.into_iter().filter(move |r| self.contains(*r))
    }
    /// How many values `label` has: one per reason, and `none`.
    pub const LABEL_COUNT: usize = LABEL_PRIORITY.len() + 1;

    /// `label`'s value as a number below `LABEL_COUNT` (the data path keeps one
    /// metric series per value).
    pub fn label_index(self) -> usize {
        LABEL_PRIORITY
            .iter()
            .position(|r| self.contains(*r))
            .unwrap_or(LABEL_PRIORITY.len())
    }

    /// The one reason that says most about the outcome: the `decision` metric label.
    /// Exceptional outcomes (reject, panic, failover, shift) win over the steering that
    /// would have applied.
    pub fn label(self) -> &'static str {
        Self::label_of(self.label_index())
    }

    /// The `label` whose `label_index` is `index`.
    pub fn label_of(index: usize) -> &'static str {
        LABEL_PRIORITY.get(index).map_or("none", |r| r.as_str())
    }
}

/// Which reason names a decision that has several, weightiest first.
const LABEL_PRIORITY: [Reason; 12] = [
    Reason::ResidencyReject,
    Reason::Panic,
    Reason::Write,
    Reason::ReadYourWrites,
    Reason::Affinity,
    Reason::Failover,
    Reason::Spillover,
    Reason::Shift,
    Reason::Geo,
    Reason::Latency,
    Reason::Proximity,
    Reason::Weighted,
];

impl fmt::Display for Reasons {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, r) in self.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            f.write_str(r.as_str())?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_decision_label_has_its_own_index_below_the_count() {
        let mut seen = std::collections::HashSet::new();
        for i in 0..Reasons::LABEL_COUNT {
            assert!(
                seen.insert(Reasons::label_of(i)),
                "index {i} repeats a label"
            );
        }
        assert_eq!(Reasons::default().label(), "none");
        for r in ALL {
            let mut rs = Reasons::only(r);
            assert_eq!(rs.label(), r.as_str());
            assert_eq!(Reasons::label_of(rs.label_index()), rs.label());
            // Residency reject outranks everything.
            rs.add(Reason::ResidencyReject);
            assert_eq!(rs.label(), "residency_reject");
        }
    }
}
