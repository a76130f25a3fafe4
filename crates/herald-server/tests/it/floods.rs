//! Hostile or broken clients: each test floods the node in a bounded way and asserts that the
//! offender gets the documented answer while everybody else is served.

use crate::support::*;

/// A subscriber that stops reading fills its socket buffers, then its bounded outbox: it is
/// cut off with 4100. A reading subscriber on the same channel gets every event, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_that_stops_reading_is_cut_off_and_the_others_get_every_event() {
    let server = TestServer::with_config(&format!("outbox_capacity = 16\n{DEFAULT_TOML}")).await;
    let mut slow = server.connect().await;
    slow.subscribe("firehose").await;
    let mut fast = server.connect().await;
    fast.subscribe("firehose").await;
    let reader = tokio::spawn(async move {
        let mut seen = 0usize;
        loop {
            let v = fast.expect("ev").await;
            let data = Client::data(&v);
            let data = data.as_str().unwrap_or_default().to_owned();
            if data == "done" {
                return (fast, seen);
            }
            let seq: usize = data.split(':').next().unwrap().parse().unwrap();
            assert_eq!(seq, seen, "events out of order or lost");
            seen += 1;
        }
    });

    // 8 KB events until the node reports the cut-off; bounded at 80 MB in all.
    let api = server.api();
    let payload = "x".repeat(8000);
    let cut_off = r#"herald_slow_consumer_disconnects_total{app="app-1"}"#;
    let mut sent = 0;
    while server.metric(cut_off).await.is_none() {
        assert!(sent < 10_000, "the silent subscriber was never cut off");
        for _ in 0..50 {
            let r = api
                .trigger(&["firehose"], "ev", &format!("{sent}:{payload}"))
                .await;
            assert_eq!(r.status, 200, "{:?}", r.body);
            sent += 1;
        }
    }
    assert_eq!(api.trigger(&["firehose"], "ev", "done").await.status, 200);
    let (mut fast, seen) = reader.await.unwrap();
    assert_eq!(seen, sent);
    fast.expect_nothing_queued().await;

    assert_eq!(server.metric(cut_off).await, Some(1.0));
    let dropped = r#"herald_outbound_dropped_total{app="app-1"}"#;
    assert!(server.metric(dropped).await >= Some(1.0));
    // Whatever the kernel still held arrives, then the 4100 close.
    assert_eq!(slow.ended().await, Ended::Closed(4100));
}
