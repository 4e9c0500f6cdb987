//! The resolver service: keeps the endpoints of every origin given by name (an
//! ALB's DNS name) current. Each name is looked up (A and AAAA) when it is due:
//! at once when it first appears, then when its answer's TTL runs out, held
//! within `resolver.min_ttl`..`max_ttl`. A new answer is published into the
//! origin's endpoint set; a failed lookup keeps the last good addresses
//! (stale-if-error), is counted and retried soon. Nothing on the request path,
//! a reload or start-up waits for a lookup.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hickory_resolver::config::{LookupIpStrategy, NameServerConfig, ResolverConfig, ResolverOpts};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::TokioResolver;
use tokio::task::JoinSet;

use crate::core::health::endpoints::{LookupResult, Target};
use crate::core::snapshot::{ResolverSpec, Snapshot};
use crate::services::shared::Shared;
use crate::telemetry::events::Kind;
use crate::util::clock::now_ms;
use crate::util::lock::lock;
use crate::util::shutdown::ShutdownWatch;

/// How often the service looks for names that are due (new origins included).
const TICK: Duration = Duration::from_millis(200);
/// One lookup's deadline, retries of the name servers included.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(5);
/// After a failed lookup, the next one comes this soon (within min/max_ttl).
const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(2);

/// What one lookup found: addresses and how long they hold, or why none.
#[derive(Debug)]
enum Found {
    Addresses(Vec<SocketAddr>, Duration),
    Nothing(LookupResult, String),
}

/// Runs until `shutdown` flips.
pub async fn run(shared: Arc<Shared>, mut shutdown: ShutdownWatch) {
    let mut resolver: Option<(ResolverSpec, Result<TokioResolver, String>)> = None;
    let mut pending: HashSet<String> = HashSet::new();
    let mut lookups: JoinSet<(String, u16, Found)> = JoinSet::new();
    loop {
        let snap = shared.snapshot.load_full();
        // Made afresh when a reload changed its settings.
        let (spec, built) = match resolver.take() {
            Some(kept) if kept.0 == snap.resolver => resolver.insert(kept),
            _ => resolver.insert((snap.resolver.clone(), build(&snap.resolver))),
        };
        let now = now_ms();
        for origin in snap.regions.iter().flat_map(|r| &r.origins) {
            let Target::Name { host, port } = &origin.target else {
                continue;
            };
            if origin.endpoints.due_ms.load(Relaxed) > now || pending.contains(&origin.key) {
                continue;
            }
            pending.insert(origin.key.clone());
            let (key, host, port, spec) = (origin.key.clone(), host.clone(), *port, spec.clone());
            match built {
                Ok(r) => {
                    let r = r.clone();
                    lookups
                        .spawn(async move { (key, port, look_up(&r, &host, port, &spec).await) });
                }
                Err(e) => {
                    let why = format!("no resolver: {e}");
                    lookups.spawn(
                        async move { (key, port, Found::Nothing(LookupResult::Error, why)) },
                    );
                }
            }
        }
        drop(snap);
        tokio::select! {
            Some(done) = lookups.join_next() => {
                if let Ok((key, _port, found)) = done {
                    pending.remove(&key);
                    apply(&shared, &key, found);
                }
            }
            _ = tokio::time::sleep(TICK) => {}
            _ = shutdown.changed() => break,
        }
    }
    lookups.abort_all();
}

/// `meridian check`'s look at the origin names of `config` as they resolve now,
/// from where it runs: one warning per name that gives no address within
/// `within`. A warning, not an error: the gateway starts without the name and
/// serves from the other origins until it resolves.
pub async fn unresolved_names(
    loaded: &crate::core::config::Loaded,
    within: Duration,
) -> Vec<String> {
    let config = &loaded.config;
    let spec = ResolverSpec::compile(loaded);
    let resolver = match build(&spec) {
        Ok(r) => r,
        Err(e) => {
            return vec![format!(
                "resolver: cannot be set up here ({e}): origin names were not checked"
            )]
        }
    };
    let mut lookups = JoinSet::new();
    for (region, addrs) in config.regions.keys().zip(&loaded.resolved.origins) {
        for (i, a) in addrs.iter().enumerate() {
            let Target::Name { host, port } = Target::new(&a.host, a.port) else {
                continue;
            };
            let (r, spec, at) = (
                resolver.clone(),
                spec.clone(),
                format!("regions.{region}.origins[{i}].address"),
            );
            lookups.spawn(async move {
                match tokio::time::timeout(within, look_up(&r, &host, port, &spec)).await {
                    Ok(Found::Addresses(..)) => None,
                    Ok(Found::Nothing(result, why)) => Some(format!(
                        "{at}: `{host}` does not resolve here ({}: {why}); the gateway starts and treats this origin as unhealthy until it does",
                        result.as_str()
                    )),
                    Err(_) => Some(format!(
                        "{at}: `{host}` gave no answer within {within:?}; the gateway starts and treats this origin as unhealthy until it resolves"
                    )),
                }
            });
        }
    }
    let mut warnings: Vec<String> = lookups.join_all().await.into_iter().flatten().collect();
    warnings.sort();
    warnings
}

/// A resolver for `spec`: its name servers, or the system's.
fn build(spec: &ResolverSpec) -> Result<TokioResolver, String> {
    let provider = TokioRuntimeProvider::default();
    let mut builder = if spec.nameservers.is_empty() {
        TokioResolver::builder(provider).map_err(|e| e.to_string())?
    } else {
        let servers = spec
            .nameservers
            .iter()
            .map(|addr| {
                let mut ns = NameServerConfig::udp_and_tcp(addr.ip());
                for c in &mut ns.connections {
                    c.port = addr.port();
                }
                ns
            })
            .collect();
        TokioResolver::builder_with_config(ResolverConfig::from_name_servers(servers), provider)
    };
    let opts: &mut ResolverOpts = builder.options_mut();
    opts.ip_strategy = LookupIpStrategy::Ipv4AndIpv6;
    // Its cache may not hold an answer past our own bounds.
    opts.positive_min_ttl = Some(spec.min_ttl);
    opts.positive_max_ttl = Some(spec.max_ttl);
    opts.negative_max_ttl = Some(spec.min_ttl);
    builder.build().map_err(|e| e.to_string())
}

/// One lookup of `host`: every A and AAAA record, with `port`.
async fn look_up(r: &TokioResolver, host: &str, port: u16, spec: &ResolverSpec) -> Found {
    let asked = Instant::now();
    match tokio::time::timeout(LOOKUP_TIMEOUT, r.lookup_ip(host)).await {
        Err(_) => Found::Nothing(LookupResult::Error, "no answer in time".into()),
        Ok(Err(e)) if e.is_no_records_found() || e.is_nx_domain() => {
            Found::Nothing(LookupResult::Empty, e.to_string())
        }
        Ok(Err(e)) => Found::Nothing(LookupResult::Error, e.to_string()),
        Ok(Ok(answer)) => {
            let addrs: Vec<SocketAddr> =
                answer.iter().map(|ip| SocketAddr::new(ip, port)).collect();
            if addrs.is_empty() {
                return Found::Nothing(LookupResult::Empty, "no A or AAAA records".into());
            }
            let ttl = answer.valid_until().saturating_duration_since(asked);
            Found::Addresses(addrs, ttl.clamp(spec.min_ttl, spec.max_ttl))
        }
    }
}

/// Publishes what a lookup of origin `key` found, counts it, journals a change.
fn apply(shared: &Shared, key: &str, found: Found) {
    let snap = shared.snapshot.load();
    let Some((region, origin)) = find(&snap, key) else {
        return; // a reload removed the origin meanwhile
    };
    let entry = &origin.endpoints;
    let result = match &found {
        Found::Addresses(..) => LookupResult::Ok,
        Found::Nothing(r, _) => *r,
    };
    let labels = [region, origin.address.as_str()];
    shared
        .metrics
        .dns_lookups
        .with_label_values(&[labels[0], labels[1], result.as_str()])
        .inc();
    let now = now_ms();
    let previous = lock(&entry.resolution).last_result;
    let (next, error) = match found {
        Found::Addresses(addrs, ttl) => {
            let before = entry.addrs();
            let changed = entry.publish(&addrs, &shared.health);
            if changed {
                let after = entry.addrs();
                tracing::info!(origin = %origin.key, from = %joined(&before), to = %joined(&after), "origin addresses changed");
                shared.events.record(
                    Kind::OriginAddresses,
                    origin.key.as_str(),
                    Some(&joined(&before)),
                    Some(&joined(&after)),
                    format!("{} resolved to {} address(es)", origin.address, after.len()),
                );
            }
            if !changed && matches!(previous, Some(LookupResult::Empty | LookupResult::Error)) {
                let now_set = joined(&entry.addrs());
                shared.events.record(
                    Kind::OriginAddresses,
                    origin.key.as_str(),
                    Some(&now_set),
                    Some(&now_set),
                    format!("lookups of {} answer again", origin.address),
                );
            }
            entry.ever_resolved.store(true, Relaxed);
            (ttl, None)
        }
        Found::Nothing(result, why) => {
            tracing::warn!(origin = %origin.key, result = result.as_str(), error = %why, "origin name lookup failed; keeping its last addresses");
            // Journalled when lookups start failing (or fail differently), not
            // at every retry.
            if previous != Some(result) {
                let kept = joined(&entry.addrs());
                shared.events.record(
                    Kind::OriginAddresses,
                    origin.key.as_str(),
                    Some(&kept),
                    Some(&kept),
                    format!(
                        "lookup of {} failed ({}: {why}); keeping the last addresses",
                        origin.address,
                        result.as_str()
                    ),
                );
            }
            let retry = RETRY_AFTER_FAILURE.clamp(snap.resolver.min_ttl, snap.resolver.max_ttl);
            (retry, Some(why))
        }
    };
    shared
        .metrics
        .origin_endpoints
        .with_label_values(&labels)
        .set(entry.load().len() as i64);
    {
        let mut r = lock(&entry.resolution);
        r.last_result = Some(result);
        r.last_error = error;
        r.last_at_unix_ms = now;
        r.lookups += 1;
    }
    entry.due_ms.store(now + next.as_millis() as u64, Relaxed);
    entry.settled.store(true, Relaxed);
}

/// The region name and origin entry of origin `key` in `snap`.
fn find<'a>(
    snap: &'a Snapshot,
    key: &str,
) -> Option<(&'a str, &'a crate::core::snapshot::OriginEntry)> {
    snap.regions.iter().find_map(|r| {
        r.origins
            .iter()
            .find(|o| o.key == key)
            .map(|o| (r.name.as_str(), o))
    })
}

/// Addresses as the journal shows them: sorted, comma-separated ("" for none).
fn joined(addrs: &[SocketAddr]) -> String {
    addrs
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(",")
}
