//! Handshake, liveness, malformed input (PROTOCOL.md §1).

use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

use crate::support::*;

#[tokio::test]
async fn connection_established_carries_socket_id_and_activity_timeout() {
    let server = TestServer::start().await;
    let mut c = Client::connect_raw(&server.ws_url(KEY)).await;
    let text = c.recv_text().await;
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["event"], "pusher:connection_established");
    let data: serde_json::Value = serde_json::from_str(v["data"].as_str().unwrap()).unwrap();
    assert!(herald_protocol::SocketId::parse(data["socket_id"].as_str().unwrap()).is_some());
    assert_eq!(data["activity_timeout"], 120);
}

async fn refused(server: &TestServer, url: &str) -> (serde_json::Value, Ended) {
    let mut c = Client::connect_raw(url).await;
    let first = c.recv().await;
    let _ = server;
    (first, c.ended().await)
}

#[tokio::test]
async fn unknown_app_key_gets_4001_as_first_message_then_close() {
    let server = TestServer::start().await;
    let (first, end) = refused(&server, &server.ws_url("nope")).await;
    assert_eq!(
        first,
        json!({"event": "pusher:error", "data": {"code": 4001, "message": "Application does not exist"}})
    );
    assert_eq!(end, Ended::Closed(4001));
    // The node keeps serving.
    server.connect().await;
}

#[tokio::test]
async fn disabled_app_gets_4003() {
    let server = TestServer::start().await;
    let (first, end) = refused(&server, &server.ws_url("off-key")).await;
    assert_eq!(first["data"]["code"], 4003);
    assert_eq!(end, Ended::Closed(4003));
}

#[tokio::test]
async fn unsupported_protocol_gets_4007_and_missing_protocol_is_accepted() {
    let server = TestServer::start().await;
    for p in ["3", "8", "x", ""] {
        let url = format!("ws://{}/app/{KEY}?protocol={p}", server.addr);
        let (first, end) = refused(&server, &url).await;
        assert_eq!(first["data"]["code"], 4007, "protocol={p}");
        assert_eq!(end, Ended::Closed(4007));
    }
    Client::connect(&format!("ws://{}/app/{KEY}", server.addr)).await;
    Client::connect(&format!("ws://{}/app/{KEY}?protocol=5", server.addr)).await;
}

#[tokio::test]
async fn strict_protocol_requires_protocol_and_version() {
    let server = TestServer::with_config(&format!("strict_protocol = true\n{DEFAULT_TOML}")).await;
    let (first, _) = refused(
        &server,
        &format!("ws://{}/app/{KEY}?version=8.4.0", server.addr),
    )
    .await;
    assert_eq!(first["data"]["code"], 4008);
    let (first, _) = refused(
        &server,
        &format!("ws://{}/app/{KEY}?protocol=7&version=%20", server.addr),
    )
    .await;
    assert_eq!(first["data"]["code"], 4006);
    Client::connect(&server.ws_url(KEY)).await;
}

#[tokio::test]
async fn unknown_paths_are_404_and_plain_get_on_app_path_is_426() {
    let server = TestServer::start().await;
    let r = raw_http(server.addr, "GET", "/nope", "").await;
    assert_eq!(r.status, 404);
    assert_eq!(r.body["code"], 404);
    let r = raw_http(server.addr, "GET", "/app/app-key", "").await;
    assert_eq!(r.status, 426);
    assert_eq!(r.content_type, "application/json");
}

#[tokio::test]
async fn ping_gets_pong() {
    let server = TestServer::start().await;
    let mut c = server.connect().await;
    c.send(json!({"event": "pusher:ping", "data": {}})).await;
    assert_eq!(c.recv_text().await, r#"{"event":"pusher:pong","data":{}}"#);
}

#[tokio::test]
async fn malformed_frames_get_an_error_and_the_connection_survives() {
    let server = TestServer::start().await;
    let mut c = server.connect().await;
    for bad in [
        "{",
        "not json",
        "[1,2]",
        r#"{"data":{}}"#,
        r#"{"event":"pusher:subscribe"}"#,
        r#"{"event":"pusher:subscribe","data":{"channel":5}}"#,
    ] {
        c.send_text(bad).await;
        let v = c.expect("pusher:error").await;
        assert_eq!(v["data"]["code"], serde_json::Value::Null, "{bad}");
        assert!(v["data"]["message"].as_str().unwrap().len() > 5);
    }
    c.send_message(Message::Binary(vec![1, 2, 3].into())).await;
    let v = c.expect("pusher:error").await;
    assert_eq!(v["data"]["code"], serde_json::Value::Null);
    // Unknown events are ignored.
    c.send(json!({"event": "whatever", "data": {}})).await;
    c.expect_nothing_queued().await;
    let sub = c.subscribe("still-works").await;
    assert_eq!(sub["event"], "pusher_internal:subscription_succeeded");
}

#[tokio::test]
async fn a_message_over_the_limit_closes_with_1009_and_others_are_unaffected() {
    let server = TestServer::start().await;
    let mut other = server.connect().await;
    other.subscribe("news").await;
    let mut c = server.connect().await;
    let huge = format!(
        r#"{{"event":"client-x","channel":"private-a","data":"{}"}}"#,
        "x".repeat(1024 * 1024)
    );
    c.send_text(&huge).await;
    assert_eq!(c.ended().await, Ended::Closed(1009));
    server.api().trigger(&["news"], "ev", "still here").await;
    let v = other.expect("ev").await;
    assert_eq!(v["data"], "still here");
}

#[tokio::test]
async fn silent_client_is_pinged_then_closed_with_4201() {
    let server = TestServer::with_config(&format!(
        "activity_timeout_secs = 1\npong_timeout_secs = 1\n{DEFAULT_TOML}"
    ))
    .await;
    let mut c = Client::connect_raw(&server.ws_url(KEY)).await;
    let est = c.expect("pusher:connection_established").await;
    assert_eq!(Client::data(&est)["activity_timeout"], 1);
    assert_eq!(c.recv_text().await, r#"{"event":"pusher:ping","data":{}}"#);
    let v = c.expect("pusher:error").await;
    assert_eq!(
        v["data"],
        json!({"code": 4201, "message": "Pong reply not received"})
    );
    assert_eq!(c.ended().await, Ended::Closed(4201));
}

#[tokio::test]
async fn answering_the_ping_keeps_the_connection() {
    let server = TestServer::with_config(&format!(
        "activity_timeout_secs = 1\npong_timeout_secs = 1\n{DEFAULT_TOML}"
    ))
    .await;
    let mut c = server.connect().await;
    for _ in 0..2 {
        c.expect("pusher:ping").await;
        c.send(json!({"event": "pusher:pong", "data": {}})).await;
    }
    c.expect_nothing_queued().await;
}

#[tokio::test]
async fn node_connection_cap_refuses_with_4100() {
    let server = TestServer::with_config(&format!("max_connections = 1\n{DEFAULT_TOML}")).await;
    let _first = server.connect().await;
    let (v, end) = refused(&server, &server.ws_url(KEY)).await;
    assert_eq!(v["data"]["code"], 4100);
    assert_eq!(end, Ended::Closed(4100));
}

#[tokio::test]
async fn app_connection_quota_refuses_with_4004() {
    let server = TestServer::with_config(
        "[[apps]]\nid = \"q\"\nkey = \"q-key\"\nsecret = \"s\"\nmax_connections = 1",
    )
    .await;
    let first = Client::connect(&server.ws_url("q-key")).await;
    let (v, end) = refused(&server, &server.ws_url("q-key")).await;
    assert_eq!(v["data"]["code"], 4004);
    assert_eq!(end, Ended::Closed(4004));
    first.close().await;
    // The slot is released when the first connection goes.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let mut c = Client::connect_raw(&server.ws_url("q-key")).await;
        if c.recv().await["event"] == "pusher:connection_established" {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "quota slot never released"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn shutdown_closes_connections_with_4200() {
    let server = TestServer::start().await;
    let mut c = server.connect().await;
    let stop = tokio::spawn(server.shutdown());
    let v = c.expect("pusher:error").await;
    assert_eq!(v["data"]["code"], 4200);
    assert_eq!(c.ended().await, Ended::Closed(4200));
    stop.await.unwrap();
}

#[tokio::test]
async fn admin_listener_serves_health_ready_metrics() {
    let server = TestServer::start().await;
    let _c = server.connect().await;
    assert_eq!(
        raw_http(server.admin, "GET", "/health", "").await.status,
        200
    );
    assert_eq!(
        raw_http(server.admin, "GET", "/ready", "").await.status,
        200
    );
    let text = server.metrics().await;
    assert!(
        text.contains("herald_connections{app=\"app-1\"} 1"),
        "{text}"
    );
    assert!(text.contains("herald_node_connections 1"), "{text}");
    assert!(text.contains("herald_backplane_ready 1"), "{text}");
}

#[tokio::test]
async fn metrics_count_closes_by_code_and_channels() {
    let server = TestServer::with_config(&format!("max_connections = 1\n{DEFAULT_TOML}")).await;
    let mut c = server.connect().await;
    c.subscribe("one").await;
    let (_, end) = refused(&server, &server.ws_url(KEY)).await;
    assert_eq!(end, Ended::Closed(4100));
    let text = server.metrics().await;
    assert!(text.contains("herald_channels{app=\"app-1\"} 1"), "{text}");
    assert!(
        text.contains("herald_connections_refused_total{code=\"4100\"} 1"),
        "{text}"
    );
    c.close().await;
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let text = server.metrics().await;
        if text.contains("herald_connections_closed_total{app=\"app-1\",code=\"client\"} 1") {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{text}");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn metrics_count_fan_out_per_recipient() {
    let server = TestServer::start().await;
    let mut a = server.connect().await;
    let mut b = server.connect().await;
    a.subscribe("fan").await;
    b.subscribe("fan").await;
    server.api().trigger(&["fan"], "ev", "12345").await;
    let frame = a.recv_text().await;
    b.expect("ev").await;
    let text = server.metrics().await;
    assert!(
        text.contains("herald_messages_sent_total{app=\"app-1\"} 2"),
        "{text}"
    );
    let bytes = format!(
        "herald_sent_bytes_total{{app=\"app-1\"}} {}",
        2 * frame.len()
    );
    assert!(text.contains(&bytes), "{bytes} in {text}");
    // One publish, handed to this node's subscribers once; the relay timed as an operation.
    let delivered = r#"herald_publish_delivery_seconds_count{origin="local"}"#;
    assert_eq!(server.metric(delivered).await, Some(1.0));
    let op = r#"herald_backplane_operation_seconds_count{op="publish"}"#;
    assert_eq!(server.metric(op).await, Some(1.0));
    let errors = r#"herald_backplane_errors_total{op="publish"}"#;
    assert_eq!(server.metric(errors).await, None);
}
