//! Failures: a node killed with SIGKILL, and Redis going away and coming back empty.

use serde_json::json;

use crate::cluster::poll_until;
use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_node_is_reaped_and_its_members_removed_once() {
    let cluster = TestCluster::start(2).await;
    let mut victim_node =
        NodeProcess::start(&cluster_toml(&cluster.redis.url(), DEFAULT_TOML)).await;
    let mut watcher = cluster.nodes[0].connect().await;
    watcher
        .subscribe_signed("presence-room", Some(r#"{"user_id":"w"}"#))
        .await;
    let mut victim = Client::connect(&victim_node.ws_url(KEY)).await;
    victim
        .subscribe_signed("presence-room", Some(r#"{"user_id":"v"}"#))
        .await;
    victim.subscribe("only-on-victim").await;
    victim.signin(r#"{"id":"v"}"#).await;
    assert_eq!(
        Client::data(&watcher.expect("pusher_internal:member_added").await),
        json!({"user_id": "v"})
    );
    let api = cluster.nodes[1].api();
    assert_eq!(
        api.get("/channels/only-on-victim", &[]).await.body,
        json!({"occupied": true})
    );

    victim_node.kill9();
    // Dead after node_timeout (3 s) plus up to one heartbeat (1 s); allow 5 s more.
    let removed = watcher
        .expect_within("pusher_internal:member_removed", 9)
        .await;
    assert_eq!(Client::data(&removed), json!({"user_id": "v"}));
    watcher.expect_nothing_queued().await;
    assert_eq!(
        api.get("/channels/only-on-victim", &[]).await.body,
        json!({"occupied": false})
    );
    assert_eq!(
        api.get("/channels/presence-room/users", &[]).await.body,
        json!({"users": [{"id": "w"}]})
    );
    let users = api
        .get(
            "/channels/presence-room",
            &[("info", "user_count,subscription_count")],
        )
        .await
        .body;
    assert_eq!(
        users,
        json!({"occupied": true, "user_count": 1, "subscription_count": 1})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_survive_a_redis_outage_and_restore_state_into_an_empty_redis() {
    let mut cluster = TestCluster::start(2).await;
    let mut a = cluster.nodes[0].connect().await;
    let mut b = cluster.nodes[1].connect().await;
    a.subscribe_signed("presence-room", Some(r#"{"user_id":"ann"}"#))
        .await;
    b.subscribe_signed("presence-room", Some(r#"{"user_id":"bob"}"#))
        .await;
    a.expect("pusher_internal:member_added").await;

    // Traffic keeps flowing through the outage: every answer is 200 or a JSON 503.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let traffic = {
        let (api, stop) = (cluster.nodes[0].api(), stop.clone());
        tokio::spawn(async move {
            let mut statuses = std::collections::BTreeSet::new();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let r = api.trigger(&["busy"], "tick", "1").await;
                if r.status == 503 {
                    assert_eq!(r.body["code"], 503, "{}", r.body);
                }
                statuses.insert(r.status);
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
            statuses
        })
    };
    cluster.redis.kill();
    for node in &cluster.nodes {
        node.wait_ready(false).await;
    }
    let r = cluster.nodes[0]
        .api()
        .trigger(&["presence-room"], "ev", "x")
        .await;
    assert_eq!(r.status, 503);
    assert_eq!(r.body["code"], 503);
    assert_eq!(
        cluster.nodes[0].api().get("/channels", &[]).await.status,
        503
    );
    // Local connections stay open and served.
    a.expect_nothing_queued().await;
    b.expect_nothing_queued().await;

    cluster.redis.restart();
    for node in &cluster.nodes {
        node.wait_ready(true).await;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let statuses = traffic.await.unwrap();
    assert!(statuses.is_subset(&[200, 503].into()), "{statuses:?}");
    assert!(statuses.contains(&503), "the outage was never reported");
    let api = cluster.nodes[1].api();
    poll_until(|| async {
        api.get("/channels/presence-room/users", &[]).await.body
            == json!({"users": [{"id": "ann"}, {"id": "bob"}]})
    })
    .await;
    let counts = api
        .get(
            "/channels/presence-room",
            &[("info", "user_count,subscription_count")],
        )
        .await
        .body;
    assert_eq!(
        counts,
        json!({"occupied": true, "user_count": 2, "subscription_count": 2})
    );
    assert_eq!(
        cluster.nodes[1]
            .api()
            .trigger(&["presence-room"], "ev", "back")
            .await
            .status,
        200
    );
    assert_eq!(a.expect("ev").await["data"], "back");
    for node in &cluster.nodes {
        let reconnects = node.metric("herald_backplane_reconnects_total").await;
        assert!(reconnects >= Some(1.0), "{reconnects:?}");
    }
    // The triggers answered 503 during the outage were failed publishes.
    let failed = r#"herald_backplane_errors_total{op="publish"}"#;
    assert!(cluster.nodes[0].metric(failed).await >= Some(1.0));
    assert_eq!(b.expect("ev").await["data"], "back");
}
