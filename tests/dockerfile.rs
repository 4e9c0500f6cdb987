//! No Docker engine runs here, so the Dockerfile is checked for what can be checked:
//! every path it copies exists, the binary it runs is the one Cargo builds, the
//! ports it exposes are the reference config's, and its health check names an
//! endpoint the admin listener serves (proved by asking a running gateway).

mod support;

use support::{repo, Gateway};

fn dockerfile() -> String {
    std::fs::read_to_string(repo("Dockerfile")).expect("Dockerfile")
}

fn instructions<'a>(text: &'a str, keyword: &str) -> Vec<&'a str> {
    text.lines()
        .filter_map(|l| l.trim().strip_prefix(keyword))
        .filter_map(|rest| rest.strip_prefix(' '))
        .map(str::trim)
        .collect()
}

#[test]
fn copied_paths_exist_in_the_build_context() {
    let text = dockerfile();
    let copies = instructions(&text, "COPY");
    assert!(!copies.is_empty());
    for copy in copies {
        if copy.starts_with("--from=") {
            continue;
        }
        let mut parts: Vec<&str> = copy.split_whitespace().collect();
        parts.pop(); // the destination
        for src in parts {
            assert!(
                repo(src).exists(),
                "Dockerfile copies `{src}`, which is not in the repository"
            );
        }
    }
}

#[test]
fn runs_the_binary_cargo_builds_with_the_reference_config() {
    let text = dockerfile();
    assert!(text.contains("--bin meridian"));
    assert!(text.contains(r#"ENTRYPOINT ["meridian"]"#));
    assert!(text.contains("target/release/meridian /usr/local/bin/meridian"));
    assert!(text.contains("COPY config/meridian.yaml /etc/meridian/meridian.yaml"));
    assert!(text.contains("ENV MERIDIAN_CONFIG=/etc/meridian/meridian.yaml"));
    assert!(
        instructions(&text, "USER") == ["meridian"],
        "must not run as root"
    );
    // The image's toolchain must be at least the crate's rust-version.
    let manifest = std::fs::read_to_string(repo("Cargo.toml")).unwrap();
    if let Some(line) = manifest.lines().find(|l| l.starts_with("rust-version")) {
        let want = line.split('"').nth(1).unwrap();
        assert!(
            text.contains(&format!("FROM rust:{}", want.trim_end_matches(".0")))
                || version_at_least(&text, want),
            "the build image must have Rust >= {want}"
        );
    }
}

fn version_at_least(text: &str, want: &str) -> bool {
    let image = text
        .lines()
        .find_map(|l| l.strip_prefix("FROM rust:"))
        .expect("a rust build stage");
    let parse = |v: &str| -> Vec<u32> {
        v.split(['-', ' '])
            .next()
            .unwrap()
            .split('.')
            .map(|p| p.parse().unwrap())
            .collect()
    };
    parse(image) >= parse(want)
}

#[test]
fn exposes_the_reference_configs_ports() {
    let text = dockerfile();
    let exposed: Vec<String> = instructions(&text, "EXPOSE")
        .iter()
        .flat_map(|l| l.split_whitespace().map(String::from))
        .collect();
    let reference = std::fs::read_to_string(repo("config/meridian.yaml")).unwrap();
    let config = meridian::core::config::yaml::values(&reference).unwrap();
    let port = |addr: &serde_json::Value| {
        addr.as_str()
            .unwrap()
            .rsplit(':')
            .next()
            .unwrap()
            .to_string()
    };
    let admin = port(&config["admin"]["address"]);
    assert!(exposed.contains(&admin), "admin port {admin} not exposed");
    for l in config["listeners"].as_array().unwrap() {
        let p = port(&l["address"]);
        assert!(exposed.contains(&p), "listener port {p} not exposed");
    }
}

#[tokio::test]
async fn health_check_names_a_served_endpoint() {
    let text = dockerfile();
    let check = instructions(&text, "HEALTHCHECK");
    assert_eq!(check.len(), 1);
    let path = check[0]
        .split_whitespace()
        .find_map(|w| w.strip_prefix("http://127.0.0.1:9901"))
        .expect("health check against the admin listener");
    let gw = Gateway::start(
        r#"
local_region: us-east-1
listeners: [ { address: "{{LISTEN}}" } ]
admin: { address: "{{ADMIN}}" }
regions:
  us-east-1: { origins: [ { address: "127.0.0.1:9" } ] }
"#,
    )
    .await;
    let status = reqwest::get(gw.admin_url(path)).await.unwrap().status();
    assert_eq!(status, 200, "{path} on the admin listener");
}
