//! Client events: the six checks in order, relay, no echo, rate limit (PROTOCOL.md §4).

use serde_json::{Value, json};

use crate::support::*;

fn client_event(channel: &str, event: &str, data: Value) -> Value {
    json!({"event": event, "channel": channel, "data": data})
}

async fn error_message(c: &mut Client) -> (Value, String) {
    let v = c.expect("pusher:error").await;
    (
        v["data"]["code"].clone(),
        v["data"]["message"].as_str().unwrap().to_owned(),
    )
}

#[tokio::test]
async fn client_events_reach_other_subscribers_verbatim_and_never_the_sender() {
    let server = TestServer::start().await;
    let mut a = server.connect().await;
    let mut b = server.connect().await;
    a.subscribe_signed("private-chat", None).await;
    b.subscribe_signed("private-chat", None).await;
    a.send_text(r#"{"event":"client-typing","channel":"private-chat","data":{ "text" : "hi" }}"#)
        .await;
    assert_eq!(
        b.recv_text().await,
        r#"{"event":"client-typing","channel":"private-chat","data":{ "text" : "hi" }}"#
    );
    a.expect_nothing_queued().await;
}

#[tokio::test]
async fn presence_client_events_carry_the_sender_user_id() {
    let server = TestServer::start().await;
    let mut a = server.connect().await;
    let mut b = server.connect().await;
    a.subscribe_signed("presence-chat", Some(r#"{"user_id":"ann"}"#))
        .await;
    b.subscribe_signed("presence-chat", Some(r#"{"user_id":"bob"}"#))
        .await;
    a.expect("pusher_internal:member_added").await;
    a.send(client_event("presence-chat", "client-hi", json!({"x": 1})))
        .await;
    let v = b.recv().await;
    assert_eq!(
        v,
        json!({"event": "client-hi", "channel": "presence-chat", "data": {"x": 1}, "user_id": "ann"})
    );
}

#[tokio::test]
async fn each_check_refuses_in_order_without_closing() {
    let server = TestServer::start().await;
    let mut c = server.connect().await;
    c.subscribe_signed("private-a", None).await;
    c.subscribe("public-a").await;
    c.subscribe_signed("private-encrypted-a", None).await;
    // 2: name.
    c.send(client_event(
        "private-a",
        "client-".to_owned().repeat(30).as_str(),
        json!(1),
    ))
    .await;
    assert!(error_message(&mut c).await.1.contains("client-"));
    // 3: channel kind (public, encrypted, cache, invalid).
    for ch in ["public-a", "private-encrypted-a", "cache-x", "bad name"] {
        c.send(client_event(ch, "client-x", json!(1))).await;
        let (code, msg) = error_message(&mut c).await;
        assert_eq!(code, Value::Null);
        assert!(msg.contains("private and presence"), "{ch}: {msg}");
    }
    // 4: not subscribed.
    c.send(client_event("private-b", "client-x", json!(1)))
        .await;
    assert!(error_message(&mut c).await.1.contains("not subscribed"));
    // 5: size.
    c.send(client_event(
        "private-a",
        "client-x",
        json!("x".repeat(10 * 1024)),
    ))
    .await;
    assert!(error_message(&mut c).await.1.contains("bytes"));
    c.expect_nothing_queued().await;
}

#[tokio::test]
async fn disabled_client_events_get_pushers_message() {
    let server =
        TestServer::with_config("[[apps]]\nid=\"app-1\"\nkey=\"app-key\"\nsecret=\"app-secret\"")
            .await;
    let mut c = server.connect().await;
    c.subscribe_signed("private-a", None).await;
    c.send(client_event("private-a", "client-x", json!(1)))
        .await;
    let v = c.expect("pusher:error").await;
    assert_eq!(
        v["data"],
        json!({"code": null, "message": "To send client events, you must enable this feature in the Settings page of your dashboard."})
    );
    c.expect_nothing_queued().await;
}

#[tokio::test]
async fn over_ten_per_second_gets_4301_and_the_socket_stays_open() {
    let server = TestServer::start().await;
    let mut a = server.connect().await;
    let mut b = server.connect().await;
    a.subscribe_signed("private-rate", None).await;
    b.subscribe_signed("private-rate", None).await;
    for i in 0..12 {
        a.send(client_event("private-rate", "client-n", json!(i)))
            .await;
    }
    let v = a.expect("pusher:error").await;
    assert_eq!(
        v["data"],
        json!({"code": 4301, "message": "Client event rejected due to rate limit"})
    );
    a.expect("pusher:error").await;
    a.expect_nothing_queued().await;
    let mut got = Vec::new();
    for _ in 0..10 {
        got.push(b.expect("client-n").await["data"].clone());
    }
    assert_eq!(got, (0..10).map(|i| json!(i)).collect::<Vec<_>>());
    b.expect_nothing_queued().await;
}
