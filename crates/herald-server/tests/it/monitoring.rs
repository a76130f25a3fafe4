//! The dashboard and the alerting rules in deploy/monitoring use only metrics a live node
//! exposes: a node on Redis is driven through what makes each series appear (connections, a
//! refusal, publishes, the HTTP API, webhooks to a dead endpoint, Redis going away), then every
//! `herald_…` name in those files must be a metric family of its /metrics.

use std::collections::BTreeSet;
use std::time::Duration;

use crate::support::*;

/// The metric names an expression text uses (histogram suffixes folded into their family).
fn names_in(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = text;
    while let Some(i) = rest.find("herald_") {
        let tail = &rest[i..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        let name = &tail[..end];
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| name.strip_suffix(s))
            .unwrap_or(name);
        out.insert(family.to_owned());
        rest = &tail[end..];
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_and_alerts_use_only_metrics_a_live_node_exposes() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/monitoring");
    let mut used = BTreeSet::new();
    for file in ["grafana-dashboard.json", "alerts.yaml"] {
        let text = std::fs::read_to_string(dir.join(file)).expect("deploy/monitoring file");
        used.extend(names_in(&text));
    }
    assert!(used.len() >= 25, "{used:?}");

    let mut redis = herald_redis::test_support::RedisServer::start();
    // Webhooks to a closed port: failed, retried, dead-lettered within a second.
    let toml = cluster_toml(
        &redis.url(),
        &format!(
            "max_connections = 100\nwebhook_batch_ms = 50\nwebhook_retry_first_ms = 100\nwebhook_retry_budget_secs = 1\n{DEFAULT_TOML}\n\
[[apps.webhooks]]\nurl = \"http://127.0.0.1:9/hook\"\nevent_types = [\"channel_occupied\"]\n"
        ),
    );
    let node = TestServer::with_config(&toml).await;
    node.wait_ready(true).await;
    let mut c = node.connect().await;
    c.subscribe("news").await;
    assert_eq!(node.api().trigger(&["news"], "e", "1").await.status, 200);
    c.expect("e").await;
    let mut refused = Client::connect_raw(&node.ws_url("no-such-key")).await;
    assert_eq!(refused.ended().await, Ended::Closed(4001));
    c.close().await;
    // The webhook gives up (dead letter), then Redis goes away: a publish fails on it.
    tokio::time::sleep(Duration::from_secs(3)).await;
    redis.kill();
    node.wait_ready(false).await;
    assert_eq!(node.api().trigger(&["news"], "e", "2").await.status, 503);

    let text = node.metrics().await;
    let exposed: BTreeSet<String> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split(' ').next())
        .map(str::to_owned)
        .collect();
    let missing: Vec<&String> = used.iter().filter(|n| !exposed.contains(*n)).collect();
    assert!(
        missing.is_empty(),
        "deploy/monitoring uses metrics the node does not expose: {missing:?}\nexposed: {exposed:?}"
    );
    assert!(text.contains("herald_ready 0"), "not ready without Redis");
    assert!(text.contains("herald_node_max_connections 100"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_descriptions_are_served_on_the_admin_listener() {
    let node = TestServer::start().await;
    for (doc, path) in [
        ("http-api.json", "/apps/{app_id}/events"),
        ("admin-api.json", "/admin/apps/{id}/rotate-secret"),
    ] {
        let r = raw_http(node.admin, "GET", &format!("/openapi/{doc}"), "").await;
        assert_eq!(r.status, 200, "{doc}");
        assert_eq!(r.content_type, "application/json");
        assert_eq!(r.body["openapi"], "3.0.3", "{doc}");
        assert!(
            r.body["paths"].get(path).is_some(),
            "{doc} describes {path}"
        );
    }
    let r = raw_http(node.admin, "POST", "/openapi/http-api.json", "").await;
    assert_eq!(r.status, 405);
}
