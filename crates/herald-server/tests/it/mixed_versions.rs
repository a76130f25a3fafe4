//! A release and the one before it share a cluster: a node built from this tree and a node of
//! the previous release (the commit in `tests/PREVIOUS_RELEASE`, built by
//! `tests/previous-release.sh`) on one Redis, used both ways round.

use std::time::Duration;

use serde_json::{Value, json};

use crate::support::*;
use crate::webhooks::Receiver;

/// The previous release's binary: `$HERALD_PREVIOUS_BIN`, else where the build script puts it.
fn previous_release() -> std::path::PathBuf {
    if let Ok(path) = std::env::var("HERALD_PREVIOUS_BIN") {
        return path.into();
    }
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let commit = std::fs::read_to_string(root.join("tests/PREVIOUS_RELEASE")).unwrap();
    let path = root.join(format!("target/previous/herald-{}", commit.trim()));
    assert!(
        path.exists(),
        "the previous release's herald is missing at {}: build it with tests/previous-release.sh (tests/run.sh does)",
        path.display()
    );
    path
}

/// Settings both releases understand.
fn shared_toml(redis_url: &str, hook_url: &str) -> String {
    cluster_toml(
        redis_url,
        &format!(
            "webhook_batch_ms = 50\nwebhook_debounce_ms = 300\nwebhook_retry_first_ms = 100\n\
[[apps]]\nid = \"app-1\"\nkey = \"app-key\"\nsecret = \"app-secret\"\nclient_events = true\n\
[[apps.webhooks]]\nurl = \"{hook_url}\"\n"
        ),
    )
}

/// Each webhook event's label, sorted.
fn sorted(events: &[Value]) -> Vec<String> {
    let mut out: Vec<String> = events.iter().map(crate::webhooks::label).collect();
    out.sort();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_of_the_previous_release_shares_the_cluster_both_ways() {
    let previous = previous_release();
    let rx = Receiver::start(0).await;
    let redis = herald_redis::test_support::RedisServer::start();
    let toml = shared_toml(&redis.url(), &rx.url);
    let new = NodeProcess::start(&toml).await;
    let old = NodeProcess::start_binary(&previous, &toml).await;
    let usage = raw_http(new.admin, "GET", "/usage", "").await;
    assert_eq!(usage.body["cluster_version"], 1, "{}", usage.body);

    // Public channel: a publish through either node reaches subscribers on both.
    let mut a = Client::connect(&new.ws_url(KEY)).await;
    let mut b = Client::connect(&old.ws_url(KEY)).await;
    a.subscribe("news").await;
    b.subscribe("news").await;
    for (publisher, n) in [(&new, "1"), (&old, "2")] {
        assert_eq!(
            publisher.api().trigger(&["news"], "story", n).await.status,
            200
        );
        assert_eq!(a.expect("story").await["data"], n);
        assert_eq!(b.expect("story").await["data"], n);
    }

    // Presence: each sees the other arrive; both nodes' APIs list both.
    a.subscribe_signed("presence-room", Some(r#"{"user_id":"u1"}"#))
        .await;
    let joined = b
        .subscribe_signed("presence-room", Some(r#"{"user_id":"u2"}"#))
        .await;
    assert_eq!(Client::data(&joined)["presence"]["count"], 2);
    let added = a.expect("pusher_internal:member_added").await;
    assert_eq!(Client::data(&added)["user_id"], "u2");
    for node in [&new, &old] {
        let users = node.api().get("/channels/presence-room/users", &[]).await;
        assert_eq!(users.body, json!({"users": [{"id": "u1"}, {"id": "u2"}]}));
        let channels = node
            .api()
            .get("/channels", &[("info", "subscription_count")])
            .await;
        assert_eq!(
            channels.body["channels"]["presence-room"]["subscription_count"], 2,
            "{}",
            channels.body
        );
    }

    // Client events both ways, never echoed to the sender.
    a.subscribe_signed("private-chat", None).await;
    b.subscribe_signed("private-chat", None).await;
    a.send(json!({"event": "client-hi", "channel": "private-chat", "data": {"from": "new"}}))
        .await;
    assert_eq!(b.expect("client-hi").await["data"], json!({"from": "new"}));
    b.send(json!({"event": "client-hi", "channel": "private-chat", "data": {"from": "old"}}))
        .await;
    assert_eq!(a.expect("client-hi").await["data"], json!({"from": "old"}));

    // The old node's client leaves: the new node's member sees it once.
    b.close().await;
    let removed = a.expect("pusher_internal:member_removed").await;
    assert_eq!(Client::data(&removed)["user_id"], "u2");
    a.expect_nothing_queued().await;

    // Webhooks: each transition once, whichever node decided or delivered it.
    let want = [
        "channel_occupied:news",
        "channel_occupied:presence-room",
        "channel_occupied:private-chat",
        // One per client event: one sent through each node.
        "client_event:private-chat",
        "client_event:private-chat",
        "member_added:presence-room:u1",
        "member_added:presence-room:u2",
        "member_removed:presence-room:u2",
    ];
    rx.wait_events(want.len()).await;
    // Anything sent twice would arrive within the batch window and a retry.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let events = rx.events();
    assert_eq!(sorted(&events), want, "{events:?}");
}
