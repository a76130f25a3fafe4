//! The backplane conformance checks of herald-core, run on `RedisBackplane` against a real
//! redis-server: every concern on one node, and the relay between two nodes of one cluster.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use herald_core::backplane::conformance::{self, Node};
use herald_core::backplane::{Backplane, Health};
use herald_core::{App, Apps, WebhookEndpoint, WebhookTarget};
use herald_protocol::webhook::WebhookKind;
use herald_redis::test_support::RedisServer;
use herald_redis::{RedisBackplane, RedisConfig};

static N: AtomicU32 = AtomicU32::new(0);

fn app_with_webhooks(id: &str) -> App {
    let mut app = App::new(id, &format!("key-{id}"), "secret");
    app.webhooks.push(WebhookEndpoint {
        target: WebhookTarget::Http("http://127.0.0.1:9/hooks".into()),
        event_types: WebhookKind::ALL.to_vec(),
        headers: Vec::new(),
        filter_prefix: None,
        filter_suffix: None,
    });
    app
}

fn config(url: &str, prefix: &str) -> RedisConfig {
    RedisConfig {
        url: url.to_owned(),
        tls: Default::default(),
        prefix: prefix.to_owned(),
        heartbeat: Duration::from_secs(1),
        node_timeout: Duration::from_secs(3),
        // Leaves schedule removals for these apps (they take every webhook), so joins cancel
        // them (checked).
        apps: Apps::new(["a", "b"].map(app_with_webhooks).into()).expect("apps"),
        debounce: Duration::from_secs(3),
    }
}

/// A node of the cluster named by `prefix`, ready (its pub/sub connection is up).
async fn node(url: &str, prefix: &str) -> Node {
    let (bp, inbound) = RedisBackplane::start(config(url, prefix)).expect("backplane");
    let backplane = Backplane::new(bp);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !backplane.health.is_ready() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "backplane not ready"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Node {
        backplane,
        inbound: Some(inbound),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_backplane_conforms() {
    let redis = RedisServer::start();
    let url = redis.url();
    conformance::run_all(|| {
        let url = url.clone();
        async move {
            // A fresh prefix per check: one Redis, isolated state.
            let prefix = format!("conf{}", N.fetch_add(1, Ordering::Relaxed));
            let (bp, inbound) = RedisBackplane::start(config(&url, &prefix)).expect("backplane");
            // The checks read shared state only; nothing needs what other nodes send.
            drop(inbound);
            Backplane::new(bp)
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_relay_reaches_the_other_node_in_order_and_never_the_sender() {
    let redis = RedisServer::start();
    let url = redis.url();
    let mut a = node(&url, "relay").await;
    let mut b = node(&url, "relay").await;
    conformance::relay::reaches_other_nodes_in_order_and_never_the_sender(&mut a, Some(&mut b))
        .await;
    conformance::load::reports_reach_the_other_nodes(&a.backplane, Some(&b.backplane)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_app_store_conforms_across_two_nodes() {
    let redis = RedisServer::start();
    let url = redis.url();
    let store = || async {
        let (bp, inbound) = RedisBackplane::start(config(&url, "store")).expect("backplane");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while !bp.is_ready() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "backplane not ready"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        (bp.app_store(), inbound)
    };
    // Two nodes of one cluster: what one writes, the other reads, and is told about.
    let (a, _a_inbound) = store().await;
    let (b, _b_inbound) = store().await;
    herald_core::store::conformance::writes_are_unique_checked_and_announced(&*a, &*b).await;
}
