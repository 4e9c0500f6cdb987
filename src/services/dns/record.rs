//! Route 53 record sets as the reconciler sees them: a small value type both the
//! planner and the API client speak, so the planner never touches the SDK.

use std::collections::BTreeMap;

use crate::core::config::{Dns, DnsRecord};

/// What a record set answers with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// Plain values (A/AAAA addresses, a CNAME target, TXT strings), kept sorted.
    Values(Vec<String>),
    /// An alias to an AWS resource (an ALB), answered by Route 53 itself.
    Alias {
        dns_name: String,
        hosted_zone_id: String,
        evaluate_target_health: bool,
    },
}

/// One weighted record set (one set identifier under one name and type).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordSet {
    pub name: String,
    pub record_type: String,
    pub set_identifier: String,
    pub weight: u32,
    /// Absent for alias records (their TTL is the target's).
    pub ttl: Option<u32>,
    pub target: Target,
    pub health_check_id: Option<String>,
}

impl RecordSet {
    /// Two record sets would answer the same way: what an UPSERT would change.
    /// Names and DNS names compare without case and trailing dot.
    pub fn same_as(&self, other: &RecordSet) -> bool {
        let target_eq = match (&self.target, &other.target) {
            (Target::Values(a), Target::Values(b)) => sorted(a) == sorted(b),
            (
                Target::Alias {
                    dns_name: a,
                    hosted_zone_id: az,
                    evaluate_target_health: ae,
                },
                Target::Alias {
                    dns_name: b,
                    hosted_zone_id: bz,
                    evaluate_target_health: be,
                },
            ) => fqdn(a) == fqdn(b) && az == bz && ae == be,
            _ => false,
        };
        target_eq
            && fqdn(&self.name) == fqdn(&other.name)
            && self.record_type.eq_ignore_ascii_case(&other.record_type)
            && self.set_identifier == other.set_identifier
            && self.weight == other.weight
            && self.ttl == other.ttl
            && self.health_check_id == other.health_check_id
    }
}

fn sorted(v: &[String]) -> Vec<&String> {
    let mut v: Vec<&String> = v.iter().collect();
    v.sort();
    v
}

/// A DNS name in the form Route 53 returns: lower case, with the trailing dot.
pub fn fqdn(name: &str) -> String {
    let mut n = name.to_ascii_lowercase();
    if !n.ends_with('.') {
        n.push('.');
    }
    n
}

/// The name health views are published under: `_meridian-health.<record_name>`.
pub fn votes_name(record_name: &str) -> String {
    format!("_meridian-health.{}", fqdn(record_name))
}

/// One configured region record, as the planner needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordSpec {
    pub region: String,
    /// The record with its configured weight: what a healthy region publishes.
    pub record: RecordSet,
}

/// The configured region records of `dns`, in region order.
pub fn specs(dns: &Dns) -> Vec<RecordSpec> {
    let r53 = &dns.route53;
    r53.records
        .iter()
        .map(|(region, rec)| RecordSpec {
            region: region.clone(),
            record: configured(&r53.record_name, &r53.record_type, r53.ttl, rec),
        })
        .collect()
}

fn configured(name: &str, record_type: &str, ttl: u32, rec: &DnsRecord) -> RecordSet {
    let (ttl, target) = match &rec.alias {
        Some(a) => (
            None,
            Target::Alias {
                dns_name: fqdn(&a.dns_name),
                hosted_zone_id: a.hosted_zone_id.clone(),
                evaluate_target_health: a.evaluate_target_health,
            },
        ),
        None => (Some(ttl), Target::Values(rec.values.clone())),
    };
    RecordSet {
        name: fqdn(name),
        record_type: record_type.to_ascii_uppercase(),
        set_identifier: rec.set_identifier.clone(),
        weight: rec.weight,
        ttl,
        target,
        health_check_id: rec.health_check_id.clone(),
    }
}

/// Record sets keyed by set identifier (the unit Route 53 weights).
pub fn by_set_identifier(sets: &[RecordSet]) -> BTreeMap<&str, &RecordSet> {
    sets.iter()
        .map(|s| (s.set_identifier.as_str(), s))
        .collect()
}
