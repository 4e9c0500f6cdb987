//! `meridian explain`: the routing decision for one described request, step by
//! step, computed by the same `facts::gather` and `decide` the proxy uses, over a
//! health view the operator states (every region healthy unless `--unhealthy`).

use std::fmt::Write;
use std::net::IpAddr;

use crate::core::config::Loaded;
use crate::core::health::{HealthRegistry, HealthView, RegionHealth};
use crate::core::routing::{self, EndpointStatus, OriginView, Trace, Walk};
use crate::core::snapshot::{RegionIdx, Snapshot};
use crate::request::facts::{self, RawRequest, WRITE_HEADER};

/// One request to explain, as given on the command line.
#[derive(Debug, Clone)]
pub struct Request {
    /// The TCP peer; with `X-Forwarded-For` in `headers` it is the proxy in front.
    pub client_ip: IpAddr,
    pub method: String,
    pub host: String,
    pub path: String,
    /// `(name, value)` pairs; names compared case-insensitively.
    pub headers: Vec<(String, String)>,
    /// `name=value` pairs, as one Cookie header would carry them.
    pub cookies: Vec<String>,
    pub unhealthy: Vec<String>,
    pub drained: Vec<String>,
    /// Regions to treat as at capacity (every origin at its limit).
    pub full: Vec<String>,
    /// Wall-clock time of the request, unix ms (shifts and token expiry depend on it).
    pub now_ms: u64,
}

/// Parses `Name: value`.
pub fn parse_header(s: &str) -> Result<(String, String), String> {
    let (k, v) = s
        .split_once(':')
        .ok_or_else(|| format!("expected `Name: value`, got `{s}`"))?;
    let k = k.trim();
    if k.is_empty() || !k.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(format!("bad header name in `{s}`"));
    }
    Ok((k.to_string(), v.trim().to_string()))
}

/// Builds the snapshot and explains `req`; errors name what is wrong.
pub fn explain(loaded: &Loaded, req: &Request) -> Result<String, String> {
    let snap = Snapshot::build(loaded, &HealthRegistry::default()).map_err(|errs| {
        errs.iter()
            .map(|e| e.to_string())
            .collect::<Vec<_>>()
            .join("\n")
    })?;
    let region = |name: &String| {
        snap.region_idx(name)
            .ok_or_else(|| format!("unknown region `{name}` (have {})", region_list(&snap)))
    };
    let mut health = HealthView::all_healthy(snap.regions.len());
    for (names, drained) in [(&req.unhealthy, false), (&req.drained, true)] {
        for name in names {
            let r = region(name)?;
            if drained {
                health.region_mut(r).drained = true;
            } else {
                health.region_mut(r).health = RegionHealth::Unhealthy;
            }
        }
    }
    let mut full = vec![false; snap.regions.len()];
    for name in &req.full {
        full[region(name)?] = true;
    }
    let stated = Stated {
        health: &health,
        full,
    };
    Ok(render(&snap, &stated, req))
}

/// The state the operator gave: each region's health, and which are full.
struct Stated<'a> {
    health: &'a HealthView,
    full: Vec<bool>,
}

/// Every origin of a region as one endpoint, eligible unless the region is
/// unhealthy, full when the operator said its region is.
impl OriginView for Stated<'_> {
    fn each_endpoint(
        &self,
        snap: &Snapshot,
        r: RegionIdx,
        f: &mut dyn FnMut(usize, usize, EndpointStatus),
    ) {
        let full = self.full[r];
        self.health.each_endpoint(snap, r, &mut |o, e, status| {
            f(o, e, EndpointStatus { full, ..status })
        });
    }
}

/// Where the first try goes when the stated regions are full: spillover, or
/// no room (the wait, then 503).
fn capacity_line(
    snap: &Snapshot,
    stated: &Stated,
    d: &routing::Decision,
    is_write: bool,
) -> String {
    let mut walk = Walk::new(!is_write);
    let first = walk.next(snap, stated, &d.order, 1, &mut rand::thread_rng());
    let full: Vec<RegionIdx> = (0..snap.regions.len())
        .filter(|r| stated.full[*r])
        .collect();
    let names = routing::region_names(snap, &full);
    let priority = format!("{:?}", snap.routes[d.route].priority).to_lowercase();
    let wait = snap.overload.queue_timeout
        * crate::core::capacity::queue_wait_factor(snap.routes[d.route].priority);
    match first {
        Some(to) if to.spilled_from.is_some() => format!(
            "capacity    {names} full: the first try goes to {} [spillover]",
            snap.regions[to.region].name
        ),
        Some(_) => format!("capacity    {names} full: not in the way of this request"),
        None if wait.is_zero() => format!(
            "capacity    {names} full and no other region {}: 503 overloaded at once ({priority} route)",
            if is_write { "for a write" } else { "allowed" }
        ),
        None => format!(
            "capacity    {names} full and no other region {}: waits up to {wait:?} for a place ({priority} route), then 503 overloaded",
            if is_write { "for a write" } else { "allowed" }
        ),
    }
}

fn region_list(snap: &Snapshot) -> String {
    let all: Vec<RegionIdx> = (0..snap.regions.len()).collect();
    routing::region_names(snap, &all)
}

fn header<'a>(req: &'a Request, name: &str) -> impl Iterator<Item = &'a str> + Clone {
    let name = name.to_string();
    req.headers
        .iter()
        .filter(move |(k, _)| k.eq_ignore_ascii_case(&name))
        .map(|(_, v)| v.as_str())
}

struct Steps(String);

impl Trace for Steps {
    fn step(&mut self, snap: &Snapshot, what: &str, regions: &[RegionIdx]) {
        let _ = writeln!(
            self.0,
            "  {what:<44} {}",
            if regions.is_empty() {
                "-".to_string()
            } else {
                routing::region_names(snap, regions)
            }
        );
    }
}

fn render(snap: &Snapshot, stated: &Stated, req: &Request) -> String {
    let health = stated.health;
    let cookie_line = req.cookies.join("; ");
    let mut cookies: Vec<&str> = header(req, "cookie").collect();
    if !cookie_line.is_empty() {
        cookies.push(&cookie_line);
    }
    let raw = RawRequest {
        peer: req.client_ip,
        xff: header(req, "x-forwarded-for"),
        cookies: &cookies,
        token_header: header(req, WRITE_HEADER).next(),
        method: &req.method,
        host: &req.host,
        path: &req.path,
        now_ms: req.now_ms,
    };
    let (facts, found) = facts::gather(snap, raw);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "request     {} {}{} from peer {}",
        req.method, req.host, req.path, req.client_ip
    );
    let _ = writeln!(
        out,
        "client      {}{}",
        found.client,
        if found.from_xff {
            " (from X-Forwarded-For: the peer is a trusted proxy)"
        } else {
            ""
        }
    );
    if found.xff_malformed > 0 {
        let _ = writeln!(
            out,
            "            {} malformed X-Forwarded-For entries skipped",
            found.xff_malformed
        );
    }
    let _ = writeln!(
        out,
        "geo         country {}, continent {}, location {} ({})",
        facts.country.as_ref().map_or("unknown", |c| c.as_str()),
        facts.continent.map_or("unknown", |c| c.as_str()),
        facts
            .location
            .map_or("unknown".into(), |(lat, lon)| format!("{lat:.2},{lon:.2}")),
        found
            .geo_result
            .map_or("no geoip database configured", |r| r.as_str()),
    );
    let route_idx = facts.route;
    let route = &snap.routes[route_idx];
    let _ = writeln!(
        out,
        "route       #{route_idx}: host {}, path prefix {}; steering {:?}{}{}{}",
        route.host.as_deref().unwrap_or("*"),
        route.path_prefix,
        route.steering,
        if route.writes_to_write_region {
            ", writes to the write region"
        } else {
            ""
        },
        if route.read_your_writes.is_some() {
            ", read-your-writes"
        } else {
            ""
        },
        if route.affinity {
            ", cookie affinity"
        } else {
            ""
        },
    );
    let _ = writeln!(
        out,
        "method      {} ({})",
        req.method,
        if facts.is_write { "a write" } else { "a read" }
    );
    if let Some(r) = facts.write_token {
        let _ = writeln!(out, "write token valid, for {}", snap.regions[r].name);
    } else if let Some(outcome) = found.token_outcome {
        let _ = writeln!(out, "write token ignored: {}", outcome.as_str());
    }
    if let Some(r) = facts.affinity {
        let _ = writeln!(out, "affinity    cookie for {}", snap.regions[r].name);
    } else if found.affinity_rejected {
        let _ = writeln!(out, "affinity    cookie ignored: does not verify");
    }
    let down: Vec<RegionIdx> = (0..snap.regions.len())
        .filter(|r| !health.region(*r).eligible())
        .collect();
    let _ = writeln!(
        out,
        "health      all regions healthy{}",
        if down.is_empty() {
            String::new()
        } else {
            format!(" except {}", routing::region_names(snap, &down))
        }
    );
    let mut steps = Steps(String::new());
    let mut rng = rand::thread_rng();
    let d = routing::decide_traced(snap, health, &facts, &mut rng, &mut steps);
    if let Some(g) = d.residency {
        let g = &snap.residency[g];
        let regions: Vec<RegionIdx> = g.regions.iter().collect();
        let _ = writeln!(
            out,
            "residency   group `{}`: only {} ({} when none is available)",
            g.name,
            routing::region_names(snap, &regions),
            if g.reject { "reject" } else { "allow outside" }
        );
    }
    out.push_str("steps\n");
    out.push_str(&steps.0);
    if d.rejected() {
        let _ = writeln!(
            out,
            "decision    503 no_healthy_region [{}]",
            d.reasons.label()
        );
    } else {
        let _ = writeln!(
            out,
            "decision    {} [{}] (reasons {}; try order {})",
            snap.regions[d.order[0]].name,
            d.reasons.label(),
            d.reasons,
            routing::region_names(snap, &d.order)
        );
        if stated.full.contains(&true) {
            let _ = writeln!(out, "{}", capacity_line(snap, stated, &d, facts.is_write));
        }
    }
    out
}
