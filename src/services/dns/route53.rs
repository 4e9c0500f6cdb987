//! The Route 53 API behind a small trait: the reconciler reads record sets under a
//! name, UPSERTs some, and may wait for a change to be INSYNC. `Aws` is the real
//! client (aws-sdk-route53, the default credential chain).

use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_route53::error::{DisplayErrorContext, ProvideErrorMetadata};
use aws_sdk_route53::types::{
    AliasTarget, Change, ChangeAction, ChangeBatch, ChangeStatus, ResourceRecord,
    ResourceRecordSet, RrType,
};

use super::record::{fqdn, RecordSet, Target};

/// A Route 53 failure by what the reconciler does about it; each carries the whole
/// error as one line for logs and `/admin/state` (it names the AWS error code).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    /// Over the account's API rate: back off longer (see `dns::backoff`).
    #[error("{0}")]
    Throttled(String),
    /// The credentials may not do this: retrying will not help until IAM changes.
    #[error("{0}")]
    Denied(String),
    /// The hosted zone (or change) does not exist: a config or account mistake.
    #[error("{0}")]
    NotFound(String),
    /// Anything else: network, timeouts, server errors, invalid input.
    #[error("{0}")]
    Other(String),
}

impl ApiError {
    /// Sorts an error by its AWS error code (`None` when the request got no answer).
    pub fn classify(code: Option<&str>, message: String) -> ApiError {
        match code {
            // Route 53's rate limit, and its limit of one change in flight per zone.
            Some("Throttling" | "ThrottlingException" | "PriorRequestNotComplete") => {
                ApiError::Throttled(message)
            }
            Some("AccessDenied" | "AccessDeniedException") => ApiError::Denied(message),
            Some("NoSuchHostedZone" | "NoSuchChange") => ApiError::NotFound(message),
            _ => ApiError::Other(message),
        }
    }

    /// The label for logs: throttled, denied, not_found or other.
    pub fn kind(&self) -> &'static str {
        match self {
            ApiError::Throttled(_) => "throttled",
            ApiError::Denied(_) => "denied",
            ApiError::NotFound(_) => "not_found",
            ApiError::Other(_) => "other",
        }
    }

    pub fn is_throttled(&self) -> bool {
        matches!(self, ApiError::Throttled(_))
    }
}

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

/// A failed call, sorted by the AWS error code the answer carried.
fn api_err(e: impl std::error::Error + ProvideErrorMetadata) -> ApiError {
    let code = e.code().map(str::to_string);
    ApiError::classify(code.as_deref(), DisplayErrorContext(e).to_string())
}

/// A request this side could not even build (a missing required field).
fn build_err(e: impl std::error::Error) -> ApiError {
    ApiError::Other(DisplayErrorContext(e).to_string())
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
                .map_err(api_err)?;
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
                .map_err(build_err)?;
            batch = batch.changes(change);
        }
        let out = self
            .client
            .change_resource_record_sets()
            .hosted_zone_id(zone)
            .change_batch(batch.build().map_err(build_err)?)
            .send()
            .await
            .map_err(api_err)?;
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
            .map_err(api_err)?;
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
                b = b.resource_records(
                    ResourceRecord::builder()
                        .value(v)
                        .build()
                        .map_err(build_err)?,
                );
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
                    .map_err(build_err)?,
            );
        }
    }
    b.build().map_err(build_err)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A local "Route 53" that answers every request with `status` and `body`.
    async fn answering(status: &'static str, body: &'static str) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move {
            while let Ok((mut conn, _)) = listener.accept().await {
                let mut buf = vec![0; 64 * 1024];
                let mut got = 0;
                // The whole request: its head, then Content-Length bytes of body.
                loop {
                    let n = conn.read(&mut buf[got..]).await.unwrap_or(0);
                    got += n;
                    let text = String::from_utf8_lossy(&buf[..got]).to_ascii_lowercase();
                    let Some(head) = text.find("\r\n\r\n") else {
                        if n == 0 {
                            break;
                        }
                        continue;
                    };
                    let len = text
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length:"))
                        .map_or(0, |v| v.trim().parse().unwrap_or(0));
                    if n == 0 || got >= head + 4 + len {
                        break;
                    }
                }
                let answer = format!(
                    "HTTP/1.1 {status}\r\ncontent-type: text/xml\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = conn.write_all(answer.as_bytes()).await;
            }
        });
        url
    }

    fn client(url: &str) -> Aws {
        use aws_sdk_route53::config::{BehaviorVersion, Credentials, Region};
        let conf = aws_sdk_route53::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .endpoint_url(url)
            .credentials_provider(Credentials::new("testing", "testing", None, None, "test"))
            .retry_config(aws_config::retry::RetryConfig::disabled())
            .build();
        Aws::from(aws_sdk_route53::Client::from_conf(conf))
    }

    /// Route 53's error document (REST-XML), as the real service sends it.
    macro_rules! route53_error {
        ($code:literal, $message:literal) => {
            concat!(
                r#"<?xml version="1.0"?><ErrorResponse xmlns="https://route53.amazonaws.com/doc/2013-04-01/">"#,
                "<Error><Type>Sender</Type><Code>",
                $code,
                "</Code><Message>",
                $message,
                "</Message></Error><RequestId>6f0c2d7e-5a3b-4c1d-9e8f-0a1b2c3d4e5f</RequestId></ErrorResponse>"
            )
        };
    }

    #[tokio::test]
    async fn errors_are_sorted_by_their_aws_code() {
        let cases = [
            ("400 Bad Request", route53_error!("Throttling", "Rate exceeded"), "throttled"),
            ("400 Bad Request", route53_error!("ThrottlingException", "Rate exceeded"), "throttled"),
            ("403 Forbidden", route53_error!("AccessDenied", "User: arn:aws:iam::123456789012:user/x is not authorized to perform: route53:ListResourceRecordSets"), "denied"),
            ("404 Not Found", route53_error!("NoSuchHostedZone", "No hosted zone found with ID: Z1"), "not_found"),
            ("500 Internal Server Error", route53_error!("InternalFailure", "oops"), "other"),
        ];
        for (status, body, want) in cases {
            let api = client(&answering(status, body).await);
            let e = api.list("Z1", "api.example.com").await.unwrap_err();
            assert_eq!(e.kind(), want, "{status} {body}: {e:?}");
        }
        // PriorRequestNotComplete answers a ChangeResourceRecordSets.
        let body = route53_error!(
            "PriorRequestNotComplete",
            "The request was rejected because Route 53 was still processing a prior request."
        );
        let api = client(&answering("400 Bad Request", body).await);
        let set = RecordSet {
            name: "api.example.com.".into(),
            record_type: "A".into(),
            set_identifier: "use1".into(),
            weight: 10,
            ttl: Some(60),
            target: Target::Values(vec!["192.0.2.1".into()]),
            health_check_id: None,
        };
        let e = api.upsert("Z1", &[set], "t").await.unwrap_err();
        assert!(e.is_throttled(), "{e:?}");
        assert!(e.to_string().contains("PriorRequestNotComplete"), "{e}");
    }

    #[tokio::test]
    async fn no_answer_is_other() {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let e = client(&format!("http://127.0.0.1:{port}"))
            .list("Z1", "api.example.com")
            .await
            .unwrap_err();
        assert_eq!(e.kind(), "other", "{e:?}");
    }

    #[test]
    fn classify_by_code() {
        let c = |code| ApiError::classify(code, "m".into());
        assert_eq!(c(Some("Throttling")), ApiError::Throttled("m".into()));
        assert_eq!(c(Some("PriorRequestNotComplete")).kind(), "throttled");
        assert_eq!(c(Some("AccessDenied")).kind(), "denied");
        assert_eq!(c(Some("NoSuchHostedZone")).kind(), "not_found");
        assert_eq!(c(Some("InvalidChangeBatch")).kind(), "other");
        assert_eq!(c(None).kind(), "other");
    }

    #[test]
    fn names_are_unescaped() {
        assert_eq!(super::unescape(r"\052.example.com."), "*.example.com.");
        assert_eq!(super::unescape(r"api.example.com."), "api.example.com.");
        assert_eq!(super::unescape(r"odd\05"), r"odd\05");
    }
}
