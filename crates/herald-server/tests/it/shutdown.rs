//! Graceful shutdown: paced drain with 4200, readiness, second signal, high-water readiness.

use crate::support::*;

#[tokio::test]
async fn drain_closes_every_connection_with_4200_in_paced_batches() {
    let server = TestServer::with_config(&format!("drain_secs = 1\n{DEFAULT_TOML}")).await;
    let mut clients = Vec::new();
    for _ in 0..30 {
        let mut c = server.connect().await;
        c.subscribe("news").await;
        clients.push(c);
    }
    let admin = server.admin;
    let stop = tokio::spawn(server.shutdown());
    for c in clients.iter_mut() {
        assert_eq!(c.expect("pusher:error").await["data"]["code"], 4200);
        assert_eq!(c.ended().await, Ended::Closed(4200));
    }
    stop.await.unwrap();
    assert!(
        tokio::net::TcpStream::connect(admin).await.is_err(),
        "admin listener closed"
    );
}

#[tokio::test]
async fn sigterm_drains_and_exits_zero_and_a_second_signal_exits_at_once() {
    let mut node = NodeProcess::start(&format!("drain_secs = 1\n{DEFAULT_TOML}")).await;
    let mut c = Client::connect(&node.ws_url(KEY)).await;
    node.signal("TERM");
    assert_eq!(c.expect("pusher:error").await["data"]["code"], 4200);
    assert_eq!(node.wait_exit(10).await, Some(0));

    // 40 connections over 10 s: the drain would take seconds; the second signal cuts it short.
    let mut node = NodeProcess::start(&format!("drain_secs = 10\n{DEFAULT_TOML}")).await;
    let mut clients = Vec::new();
    for _ in 0..40 {
        clients.push(Client::connect(&node.ws_url(KEY)).await);
    }
    node.signal("TERM");
    assert_eq!(
        clients[0].expect("pusher:error").await["data"]["code"],
        4200
    );
    node.signal("INT");
    assert_eq!(node.wait_exit(10).await, Some(1));
    let mut told = 0;
    for c in clients.iter_mut() {
        if let Some(v) = c.next_event().await {
            assert_eq!(v["data"]["code"], 4200);
            told += 1;
        }
    }
    assert!(
        told < 40,
        "the drain was cut short, yet all {told} clients were told"
    );
}

#[tokio::test]
async fn readiness_turns_off_above_the_high_water_mark() {
    let server = TestServer::with_config(&format!(
        "max_connections = 10\nready_high_water_percent = 50\n{DEFAULT_TOML}"
    ))
    .await;
    let mut clients = Vec::new();
    for _ in 0..4 {
        clients.push(server.connect().await);
    }
    server.wait_ready(true).await;
    clients.push(server.connect().await);
    server.wait_ready(false).await;
    // Still accepting up to the hard cap.
    clients.push(server.connect().await);
    clients.pop().unwrap().close().await;
    clients.pop().unwrap().close().await;
    server.wait_ready(true).await;
}
