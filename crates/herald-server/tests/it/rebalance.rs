//! Rebalancing sheds nothing where it must not: a single node, a cluster within tolerance, a
//! node whose backplane is down. The same nodes do shed once the reason is gone (so each case
//! shows its reason was the one that held them back). The scale-out itself, with pusher-js
//! behind haproxy, is in the compatibility suite (tests/compat/faults).

use std::time::Duration;

use serde_json::Value;

use crate::support::*;

/// Rebalancing from 1 connection on, 5 per second.
const REBALANCE: &str = "rebalance_min_connections = 1\nrebalance_max_per_second = 5\n";

/// Connections older than the rebalancer's minimum age (10 s) are candidates: wait past it.
const PAST_MIN_AGE: Duration = Duration::from_secs(12);

async fn clients(node: &TestServer, n: usize) -> Vec<Client> {
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(node.connect().await);
    }
    out
}

async fn shed(node: &TestServer) -> f64 {
    node.metric("herald_rebalanced_connections_total")
        .await
        .expect("the rebalancing counter is exposed")
}

async fn rebalance_state(node: &TestServer) -> Value {
    admin_http(node.admin, "GET", "/admin/rebalance").await.body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_single_node_and_a_balanced_cluster_shed_nothing() {
    // Alone: nobody to hand clients to.
    let alone = TestServer::with_config(&format!(
        "admin_token = \"{ADMIN_TOKEN}\"\n{REBALANCE}{DEFAULT_TOML}"
    ))
    .await;
    let _on_alone = clients(&alone, 10).await;
    // Two nodes at 6 and 5: within the 20 % tolerance of the mean.
    let redis = herald_redis::test_support::RedisServer::start();
    let toml = cluster_toml(
        &redis.url(),
        &format!("admin_token = \"{ADMIN_TOKEN}\"\n{REBALANCE}{DEFAULT_TOML}"),
    );
    let a = TestServer::with_config(&toml).await;
    let b = TestServer::with_config(&toml).await;
    a.wait_ready(true).await;
    b.wait_ready(true).await;
    let _on_a = clients(&a, 6).await;
    // For a few ticks A sees 6 against 0, far out of tolerance, while its connections are too
    // young to move: that passing imbalance must not leave A shedding once B has its 5.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let _on_b = clients(&b, 5).await;
    tokio::time::sleep(PAST_MIN_AGE).await;
    assert_eq!(shed(&alone).await, 0.0);
    assert_eq!(shed(&a).await, 0.0);
    assert_eq!(shed(&b).await, 0.0);
    let state = rebalance_state(&a).await;
    assert_eq!(state["connections"], 6, "{state}");
    assert_eq!(state["cluster_mean"], 5.5, "{state}");
    assert_eq!(a.metric("herald_cluster_mean_connections").await, Some(5.5));
    assert!(
        alone
            .metric("herald_cluster_mean_connections")
            .await
            .is_some_and(|m| m == 10.0)
    );

    // A hand-off asked of a single node has nowhere to go either; on the cluster it moves.
    let r = raw_http_with(
        alone.admin,
        "POST",
        "/admin/rebalance",
        &[("Authorization", &format!("Bearer {ADMIN_TOKEN}"))],
        r#"{"percent": 50}"#,
    )
    .await;
    assert_eq!(r.status, 202, "{}", r.body);
    let r = raw_http_with(
        a.admin,
        "POST",
        "/admin/rebalance",
        &[("Authorization", &format!("Bearer {ADMIN_TOKEN}"))],
        r#"{"connections": 2}"#,
    )
    .await;
    assert_eq!(r.status, 202, "{}", r.body);
    poll_until(|| async { shed(&a).await == 2.0 }).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(shed(&alone).await, 0.0, "a single node hands off to nobody");
    assert_eq!(shed(&a).await, 2.0, "exactly the hand-off");
    assert_eq!(rebalance_state(&a).await["handoff_pending"], 0);
    let r = raw_http(a.admin, "POST", "/admin/rebalance", r#"{"percent": 50}"#).await;
    assert_eq!(r.status, 401, "a hand-off needs the admin token");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_cut_off_from_its_backplane_sheds_nothing_until_it_is_back() {
    let mut redis = herald_redis::test_support::RedisServer::start();
    let toml = cluster_toml(&redis.url(), &format!("{REBALANCE}{DEFAULT_TOML}"));
    let a = TestServer::with_config(&toml).await;
    let b = TestServer::with_config(&toml).await;
    a.wait_ready(true).await;
    b.wait_ready(true).await;
    let mut on_a = clients(&a, 20).await;
    // Redis goes away before the connections are old enough to move.
    tokio::time::sleep(Duration::from_secs(5)).await;
    redis.kill();
    tokio::time::sleep(PAST_MIN_AGE).await;
    assert_eq!(
        shed(&a).await,
        0.0,
        "nothing moves while the backplane is down"
    );
    for c in &mut on_a {
        c.expect_nothing_queued().await;
    }
    // Back: 20 against 0 is far out of tolerance, and the clients are old enough.
    redis.restart();
    a.wait_ready(true).await;
    b.wait_ready(true).await;
    poll_until(|| async { shed(&a).await >= 5.0 }).await;
    let mut closed = 0;
    for c in &mut on_a {
        if c.ended_within(Duration::from_millis(200)).await == Some(Ended::Closed(4200)) {
            closed += 1;
        }
    }
    assert!(
        closed >= 5,
        "A moves clients once Redis is back: {closed} closed with 4200"
    );
    assert!(shed(&a).await >= 5.0);
    assert_eq!(shed(&b).await, 0.0, "the emptier node never sheds");
}

async fn poll_until<F, Fut>(mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !f().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "condition not met within 20 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
