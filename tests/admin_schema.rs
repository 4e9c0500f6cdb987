//! `/admin/state` has one schema, `meridian::services::api`: what a running
//! gateway serves reads back into it whole (every struct refuses fields it does
//! not know and needs the ones it names), and every field the status page's
//! script reads is a field of it. `meridian status` reads the same types (its unit
//! tests render a document given in the schema's field names), so renaming a field
//! breaks a test in each of the three readers.

mod support;

use std::collections::BTreeSet;

use meridian::services::api::{RateLimitDoc, RecordDoc, State, ViewDoc, VoteDoc};
use serde_json::Value;
use support::*;

/// Every object key anywhere in `v`.
fn keys(v: &Value, out: &mut BTreeSet<String>) {
    match v {
        Value::Object(m) => {
            for (k, v) in m {
                out.insert(k.clone());
                keys(v, out);
            }
        }
        Value::Array(a) => a.iter().for_each(|v| keys(v, out)),
        _ => {}
    }
}

/// `(variable, field)` for every `name.field` the page's script reads from the
/// documents it fetched (the variables it binds them to), not from its own objects.
fn fields_the_page_reads(page: &str) -> BTreeSet<(String, String)> {
    // The page's names for parts of the state document.
    const DOCS: [&str; 12] = [
        "state", "c", "r", "o", "a", "s", "lm", "lp", "d", "v", "dns", "ov",
    ];
    // Methods and properties of JavaScript's own objects (arrays, strings,
    // numbers, a fetch Response, elements) that those names also carry.
    const JS: [&str; 13] = [
        "length", "map", "push", "join", "status", "ok", "json", "style", "trim", "toFixed",
        "toString", "replace", "slice",
    ];
    let bytes = page.as_bytes();
    let ident = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
    let mut found = BTreeSet::new();
    for (dot, _) in page.match_indices('.') {
        let start = (0..dot).rev().take_while(|&i| ident(bytes[i])).last();
        let Some(start) = start else { continue };
        if start > 0 && (bytes[start - 1] == b'.' || ident(bytes[start - 1])) {
            continue;
        }
        let name = &page[start..dot];
        let field: String = page[dot + 1..]
            .bytes()
            .take_while(|&c| ident(c))
            .map(char::from)
            .collect();
        if DOCS.contains(&name) && !field.is_empty() && !JS.contains(&field.as_str()) {
            found.insert((name.to_string(), field));
        }
    }
    found
}

#[tokio::test]
async fn a_served_state_reads_into_the_schema_and_the_page_reads_only_its_fields() {
    let (us, eu) = (origin("us-east-1").await, origin("eu-west-1").await);
    let gw = Gateway::start(&format!(
        r#"
local_region: us-east-1
listeners: [ {{ address: "{{{{LISTEN}}}}" }} ]
admin: {{ address: "{{{{ADMIN}}}}" }}
regions:
  us-east-1: {{ origins: [ {{ address: "{}" }} ] }}
  eu-west-1: {{ origins: [ {{ address: "{}" }} ] }}
health: {{ path: /health, interval: 500ms, timeout: 400ms }}
shifts:
  - {{ name: move, from: us-east-1, to: eu-west-1, percent: 10, start: 2020-01-01T00:00:00Z }}
routes:
  - {{ match: {{ path_prefix: /api }}, rate_limit: {{ key: "header:X-Api-Key", rate: 600/m }} }}
"#,
        us.addr, eu.addr
    ))
    .await;
    let served = gw.state().await;
    let mut state: State = serde_json::from_value(served.clone())
        .unwrap_or_else(|e| panic!("/admin/state does not read into the schema: {e}\n{served:#}"));
    assert_eq!(
        state.rate_limits,
        [RateLimitDoc {
            route: 0,
            key: "header:x-api-key".into(),
            rate: "600/m".into(),
            burst: 10,
            policy: "\"route-0\";q=600;w=60;meridian-burst=10".into(),
            rate_limited: 0,
        }]
    );
    assert_eq!(
        serde_json::to_value(&state).unwrap(),
        served,
        "the schema writes back exactly what was served"
    );

    // Parts a gateway without Route 53 leaves empty, given one entry each so their
    // fields count (built from the types: a renamed field does not compile).
    state.dns.records.push(RecordDoc {
        region: "us-east-1".into(),
        set_identifier: "us-east-1".into(),
        configured_weight: 100,
        current_weight: Some(100),
        desired_weight: 100,
        why: "healthy".into(),
    });
    state.dns.votes.insert(
        "us-east-1".into(),
        VoteDoc {
            verdict: "up".into(),
            down_held: 0,
            up_held: 1,
            fresh_views: 1,
            quorum: 1,
        },
    );
    state.dns.views.push(ViewDoc {
        publisher: "us-east-1".into(),
        at_unix_ms: 1,
        fresh: true,
        regions: Default::default(),
    });
    let mut schema = BTreeSet::new();
    keys(&serde_json::to_value(&state).unwrap(), &mut schema);

    let page = std::fs::read_to_string(repo("src/services/admin/status_page.html")).unwrap();
    let read = fields_the_page_reads(&page);
    assert!(
        read.len() > 30,
        "read too few fields from the page: {read:?}"
    );
    let unknown: Vec<_> = read.iter().filter(|(_, f)| !schema.contains(f)).collect();
    assert!(
        unknown.is_empty(),
        "the status page reads fields /admin/state does not have: {unknown:?}"
    );
}

#[test]
fn the_page_scanner_sees_document_fields_only() {
    let read = fields_the_page_reads(
        "const x = o.address + lm.p99_ms; rows.push(1); r.json(); a.b.c; xo.nope",
    );
    let want: BTreeSet<(String, String)> = [("o", "address"), ("lm", "p99_ms"), ("a", "b")]
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
    assert_eq!(read, want);
}
