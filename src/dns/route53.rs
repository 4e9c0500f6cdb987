//! The Route 53 API behind a small trait: the reconciler reads record sets under a
//! name, UPSERTs some, and may wait for a change to be INSYNC. `Aws` is the real
//! client (aws-sdk-route53, the default credential chain).

use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_route53::error::DisplayErrorContext;
use aws_sdk_route53::types::{
    AliasTarget, Change, ChangeAction, ChangeBatch, ChangeStatus, ResourceRecord,
    ResourceRecordSet, RrType,
};

use super::record::{fqdn, RecordSet, Target};

/// A Route 53 failure, as one line for logs and `/admin/state`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ApiError(pub String);

#[async_trait]
pub trait Route53Api: Send + Sync {
    /// Every record set named exactly `name` (any type) in the zone.
    async fn list(&self, zone: &str, name: &str) -> Result<Vec<RecordSet>, ApiError>;
    /// Sends one ChangeBatch of UPSERTs; returns the change id.
    async fn upsert(
        &self,
        zone: &str,
        sets: &[RecordSet],
        comment: &str,
    ) -> Result<String, ApiError>;
    /// True once the change has propagated to every Route 53 server.
    async fn in_sync(&self, change_id: &str) -> Result<bool, ApiError>;
}

/// At most this many pages per name: a zone has a handful of sets per name, and a
/// pager that trusts the server's cursor forever can spin (moto never ends one).
const MAX_PAGES: usize = 10;

/// The real Route 53.
pub struct Aws {
    client: aws_sdk_route53::Client,
}

impl Aws {
    /// A client from the default credential chain; `endpoint_url` points it at a
    /// local Route 53 (moto_server) in tests. Route 53 is global: us-east-1 signs.
    /// The SDK does not retry: the reconciler's loop owns backoff, so one failed
    /// sync is one count and the next try waits its doubled interval.
    pub async fn new(endpoint_url: Option<&str>, timeout: Duration) -> Aws {
        let timeouts = aws_config::timeout::TimeoutConfig::builder()
            .connect_timeout(Duration::from_secs(3).min(timeout))
            .operation_timeout(timeout)
            .build();
        let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new("us-east-1"))
            .timeout_config(timeouts)
            .retry_config(aws_config::retry::RetryConfig::disabled());
        if let Some(url) = endpoint_url {
            loader = loader.endpoint_url(url);
        }
        let conf = loader.load().await;
        Aws {
            client: aws_sdk_route53::Client::new(&conf),
        }
    }
}

/// Wraps a client built elsewhere (tests bring static credentials this way).
impl From<aws_sdk_route53::Client> for Aws {
    fn from(client: aws_sdk_route53::Client) -> Aws {
        Aws { client }
    }
}

fn err(e: impl std::error::Error) -> ApiError {
    ApiError(DisplayErrorContext(e).to_string())
}

#[async_trait]
impl Route53Api for Aws {
    async fn list(&self, zone: &str, name: &str) -> Result<Vec<RecordSet>, ApiError> {
        let want = fqdn(name);
        let mut out = Vec::new();
        let mut start = (want.clone(), None::<RrType>, None::<String>);
        for _ in 0..MAX_PAGES {
            let page = self
                .client
                .list_resource_record_sets()
                .hosted_zone_id(zone)
                .start_record_name(&start.0)
                .set_start_record_type(start.1.clone())
                .set_start_record_identifier(start.2.clone())
                .send()
                .await
                .map_err(err)?;
            let mut past = false;
            for s in page.resource_record_sets() {
                if fqdn(&unescape(s.name())) != want {
                    past = true;
                    break;
                }
                out.push(from_sdk(s));
            }
            match (past, page.is_truncated(), page.next_record_name()) {
                (false, true, Some(next)) if fqdn(next) == want => {
                    start = (
                        next.to_string(),
                        page.next_record_type().cloned(),
                        page.next_record_identifier().map(str::to_string),
                    );
                }
                _ => break,
            }
        }
        Ok(out)
    }

    async fn upsert(
        &self,
        zone: &str,
        sets: &[RecordSet],
        comment: &str,
    ) -> Result<String, ApiError> {
        let mut batch = ChangeBatch::builder().comment(comment);
        for s in sets {
            let change = Change::builder()
                .action(ChangeAction::Upsert)
                .resource_record_set(to_sdk(s)?)
                .build()
                .map_err(err)?;
            batch = batch.changes(change);
        }
        let out = self
            .client
            .change_resource_record_sets()
            .hosted_zone_id(zone)
            .change_batch(batch.build().map_err(err)?)
            .send()
            .await
            .map_err(err)?;
        Ok(out
            .change_info()
            .map(|c| c.id().to_string())
            .unwrap_or_default())
    }

    async fn in_sync(&self, change_id: &str) -> Result<bool, ApiError> {
        let out = self
            .client
            .get_change()
            .id(change_id)
            .send()
            .await
            .map_err(err)?;
        Ok(out
            .change_info()
            .is_some_and(|c| *c.status() == ChangeStatus::Insync))
    }
}

/// Route 53 returns some characters of names octal-escaped (`\052` for `*`).
fn unescape(name: &str) -> String {
    let b = name.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 3 < b.len() && b[i + 1..i + 4].iter().all(u8::is_ascii_digit) {
            let code = (b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0');
            out.push(code);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn from_sdk(s: &ResourceRecordSet) -> RecordSet {
    let target = match s.alias_target() {
        Some(a) => Target::Alias {
            dns_name: fqdn(a.dns_name()),
            hosted_zone_id: a.hosted_zone_id().to_string(),
            evaluate_target_health: a.evaluate_target_health(),
        },
        None => Target::Values(
            s.resource_records()
                .iter()
                .map(|r| r.value().to_string())
                .collect(),
        ),
    };
    RecordSet {
        name: fqdn(&unescape(s.name())),
        record_type: s.r#type().as_str().to_string(),
        set_identifier: s.set_identifier().unwrap_or_default().to_string(),
        weight: s.weight().map_or(0, |w| w.clamp(0, 255) as u32),
        ttl: s.ttl().map(|t| t.clamp(0, i64::from(u32::MAX)) as u32),
        target,
        health_check_id: s.health_check_id().map(str::to_string),
    }
}

fn to_sdk(s: &RecordSet) -> Result<ResourceRecordSet, ApiError> {
    let mut b = ResourceRecordSet::builder()
        .name(&s.name)
        .r#type(RrType::from(s.record_type.as_str()))
        .set_identifier(&s.set_identifier)
        .weight(i64::from(s.weight))
        .set_ttl(s.ttl.map(i64::from))
        .set_health_check_id(s.health_check_id.clone());
    match &s.target {
        Target::Values(values) => {
            for v in values {
                b = b.resource_records(ResourceRecord::builder().value(v).build().map_err(err)?);
            }
        }
        Target::Alias {
            dns_name,
            hosted_zone_id,
            evaluate_target_health,
        } => {
            b = b.alias_target(
                AliasTarget::builder()
                    .dns_name(dns_name)
                    .hosted_zone_id(hosted_zone_id)
                    .evaluate_target_health(*evaluate_target_health)
                    .build()
                    .map_err(err)?,
            );
        }
    }
    b.build().map_err(err)
}

#[cfg(test)]
mod tests {
    #[test]
    fn names_are_unescaped() {
        assert_eq!(super::unescape(r"\052.example.com."), "*.example.com.");
        assert_eq!(super::unescape(r"api.example.com."), "api.example.com.");
        assert_eq!(super::unescape(r"odd\05"), r"odd\05");
    }
}
