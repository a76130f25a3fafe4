//! The webhook queue on a Redis stream: the shared checks, and takeover of entries a dead
//! node had taken.

use std::time::Duration;

use herald_protocol::webhook::WebhookEvent;
use herald_redis::test_support::RedisServer;
use herald_redis::{RedisBackplane, RedisConfig};

fn config(url: &str, prefix: &str) -> RedisConfig {
    RedisConfig {
        url: url.to_owned(),
        tls: Default::default(),
        prefix: prefix.to_owned(),
        heartbeat: Duration::from_millis(200),
        node_timeout: Duration::from_secs(1),
        apps: herald_core::Apps::new(vec![herald_core::App::new("app-1", "key-1", "secret")])
            .expect("apps"),
        debounce: Duration::from_secs(3),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_webhook_queue_conforms() {
    let redis = RedisServer::start();
    let (bp, _inbound) = RedisBackplane::start(config(&redis.url(), "wq")).unwrap();
    let queue = bp.webhook_queue();
    herald_core::webhook::conformance::run_all(&*queue).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entries_a_dead_consumer_took_are_delivered_by_a_live_node() {
    let redis = RedisServer::start();
    let (bp, _inbound) = RedisBackplane::start(config(&redis.url(), "wd")).unwrap();
    let queue = bp.webhook_queue();
    let event = WebhookEvent::ChannelOccupied {
        channel: "orphan".into(),
    };
    queue
        .push(&herald_core::AppId::new("app-1"), &event)
        .await
        .unwrap();
    // Make sure the group exists, then let a consumer that is no live node take the entry.
    assert!(
        queue
            .take(10, Duration::from_millis(50))
            .await
            .unwrap()
            .len()
            <= 1
    );
    queue
        .push(
            &herald_core::AppId::new("app-1"),
            &WebhookEvent::ChannelOccupied {
                channel: "orphan2".into(),
            },
        )
        .await
        .unwrap();
    let client = redis::Client::open(redis.url()).unwrap();
    let mut c = client.get_multiplexed_async_connection().await.unwrap();
    let taken: redis::Value = redis::cmd("XREADGROUP")
        .arg("GROUP")
        .arg("dispatchers")
        .arg("ghost-node")
        .arg("COUNT")
        .arg(10)
        .arg("STREAMS")
        .arg("wd:webhooks")
        .arg(">")
        .query_async(&mut c)
        .await
        .unwrap();
    assert_ne!(taken, redis::Value::Nil, "the ghost took the entry");
    // The live node claims it from the ghost (not in the node list) and hands it out.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let got = queue.take(10, Duration::from_millis(100)).await.unwrap();
        if let Some(e) = got.iter().find(|e| e.event.channel() == "orphan2") {
            queue.ack(std::slice::from_ref(&e.id)).await.unwrap();
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the orphaned entry was never reclaimed"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_whose_entries_were_taken_over_holds_them_no_more() {
    let redis = RedisServer::start();
    let (bp, _inbound) = RedisBackplane::start(config(&redis.url(), "wt")).unwrap();
    let queue = bp.webhook_queue();
    let app = herald_core::AppId::new("app-1");
    let _ = queue.take(10, Duration::from_millis(50)).await.unwrap(); // creates the group
    let event = WebhookEvent::ChannelOccupied {
        channel: "paused".into(),
    };
    queue.push(&app, &event).await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let taken = loop {
        if let Some(e) = queue
            .take(10, Duration::from_millis(100))
            .await
            .unwrap()
            .into_iter()
            .next()
        {
            break e;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the entry never came"
        );
    };
    let ids = vec![taken.id.clone(), "0-1".to_owned()];
    let held = queue.still_held(&ids).await.unwrap();
    assert_eq!(held, ids[..1], "held: what it took, not what it never had");
    // Another node takes it over, as a survivor does from a node that looked dead.
    let client = redis::Client::open(redis.url()).unwrap();
    let mut c = client.get_multiplexed_async_connection().await.unwrap();
    let _: redis::Value = redis::cmd("XCLAIM")
        .arg("wt:webhooks")
        .arg("dispatchers")
        .arg("survivor-node")
        .arg(0)
        .arg(&taken.id)
        .query_async(&mut c)
        .await
        .unwrap();
    assert!(
        queue.still_held(&ids).await.unwrap().is_empty(),
        "what a survivor took over is not sent from here too"
    );
}
