//! Subscriptions of every channel kind (PROTOCOL.md §2, §3).

use serde_json::{Value, json};

use crate::support::*;

fn sub_error(v: &Value) -> Value {
    assert_eq!(v["event"], "pusher:subscription_error", "{v}");
    Client::data(v)
}

#[tokio::test]
async fn public_subscribe_and_receive_an_api_event_verbatim() {
    let server = TestServer::start().await;
    let mut c = server.connect().await;
    let ok = c.subscribe("news").await;
    assert_eq!(
        ok,
        json!({"event": "pusher_internal:subscription_succeeded", "channel": "news", "data": "{}"})
    );
    server
        .api()
        .trigger(&["news"], "update", r#"{"a":1}"#)
        .await;
    assert_eq!(
        c.recv_text().await,
        r#"{"event":"update","channel":"news","data":"{\"a\":1}"}"#
    );
}

#[tokio::test]
async fn unsubscribe_stops_delivery() {
    let server = TestServer::start().await;
    let mut c = server.connect().await;
    c.subscribe("news").await;
    c.subscribe("other").await;
    c.send(json!({"event": "pusher:unsubscribe", "data": {"channel": "news"}}))
        .await;
    c.send(json!({"event": "pusher:unsubscribe", "data": {"channel": "never-subscribed"}}))
        .await;
    c.expect_nothing_queued().await;
    server.api().trigger(&["news"], "a", "1").await;
    server.api().trigger(&["other"], "b", "2").await;
    assert_eq!(c.expect("b").await["channel"], "other");
}

#[tokio::test]
async fn private_channels_need_a_valid_signature() {
    let server = TestServer::start().await;
    let mut c = server.connect().await;
    for channel in [
        "private-chat",
        "private-cache-x",
        "private-encrypted-x",
        "private-encrypted-cache-x",
    ] {
        let e = sub_error(&c.subscribe(channel).await);
        assert_eq!(
            e,
            json!({"type": "AuthError", "error": "Invalid signature", "status": 401}),
            "{channel}"
        );
        let ok = c.subscribe_signed(channel, None).await;
        assert_eq!(
            ok["event"], "pusher_internal:subscription_succeeded",
            "{channel}"
        );
        if channel.contains("cache-") {
            c.expect("pusher:cache_miss").await;
        }
    }
}

#[tokio::test]
async fn auth_with_a_foreign_key_or_for_another_socket_is_refused() {
    let server = TestServer::start().await;
    let mut c = server.connect().await;
    let good = channel_auth(&c.socket_id, "private-x", None);
    let foreign = good.replacen(KEY, "other-key", 1);
    c.send(json!({"event": "pusher:subscribe", "data": {"channel": "private-x", "auth": foreign}}))
        .await;
    assert_eq!(sub_error(&c.recv().await)["type"], "AuthError");
    let other_socket = channel_auth("1.1", "private-x", None);
    c.send(json!({"event": "pusher:subscribe", "data": {"channel": "private-x", "auth": other_socket}})).await;
    assert_eq!(sub_error(&c.recv().await)["status"], 401);
    // The connection is still usable.
    assert_eq!(
        c.subscribe_signed("private-x", None).await["event"],
        "pusher_internal:subscription_succeeded"
    );
}

#[tokio::test]
async fn invalid_channel_names_are_refused_with_invalid_channel() {
    let server = TestServer::start().await;
    let mut c = server.connect().await;
    let long = "a".repeat(165);
    for name in ["bad name", "#foo", "a/b", long.as_str()] {
        let e = sub_error(&c.subscribe(name).await);
        assert_eq!(e["type"], "InvalidChannel", "{name}");
        assert_eq!(e["status"], 400);
    }
}

#[tokio::test]
async fn connection_channel_cap_is_enforced() {
    let server = TestServer::with_config("[[apps]]\nid=\"app-1\"\nkey=\"app-key\"\nsecret=\"app-secret\"\nmax_channels_per_connection = 100").await;
    let mut c = server.connect().await;
    for i in 0..100 {
        assert_eq!(
            c.subscribe(&format!("c{i}")).await["event"],
            "pusher_internal:subscription_succeeded"
        );
    }
    let e = sub_error(&c.subscribe("c100").await);
    assert_eq!(e["type"], "LimitReached");
    c.expect_nothing_queued().await;
}

const ANN: &str = r#"{"user_id":"ann","user_info":{"name":"Ann"}}"#;
const BOB: &str = r#"{"user_id":"bob","user_info":{"name":"Bob"}}"#;

#[tokio::test]
async fn presence_lists_members_and_announces_joins_and_leaves() {
    let server = TestServer::start().await;
    let mut a = server.connect().await;
    let ok = a.subscribe_signed("presence-room", Some(ANN)).await;
    assert_eq!(ok["event"], "pusher_internal:subscription_succeeded");
    assert_eq!(
        Client::data(&ok),
        json!({"presence": {"ids": ["ann"], "hash": {"ann": {"name": "Ann"}}, "count": 1}})
    );
    let mut b = server.connect().await;
    let ok = b.subscribe_signed("presence-room", Some(BOB)).await;
    assert_eq!(Client::data(&ok)["presence"]["count"], 2);
    assert_eq!(
        a.recv_text().await,
        r#"{"event":"pusher_internal:member_added","channel":"presence-room","data":"{\"user_id\":\"bob\",\"user_info\":{\"name\":\"Bob\"}}"}"#
    );
    b.expect_nothing_queued().await;
    b.close().await;
    assert_eq!(
        a.recv_text().await,
        r#"{"event":"pusher_internal:member_removed","channel":"presence-room","data":"{\"user_id\":\"bob\"}"}"#
    );
}

#[tokio::test]
async fn member_added_sent_once_when_user_opens_second_tab() {
    let server = TestServer::start().await;
    let mut watcher = server.connect().await;
    watcher.subscribe_signed("presence-room", Some(BOB)).await;
    let mut tab1 = server.connect().await;
    tab1.subscribe_signed("presence-room", Some(ANN)).await;
    assert_eq!(
        watcher.expect("pusher_internal:member_added").await["channel"],
        "presence-room"
    );
    let mut tab2 = server.connect().await;
    let ok = tab2.subscribe_signed("presence-room", Some(ANN)).await;
    assert_eq!(Client::data(&ok)["presence"]["count"], 2);
    watcher.expect_nothing_queued().await;
    tab1.close().await;
    // Still one tab open: no member_removed yet (the pong proves nothing was queued).
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
    while server.state.hub.app_connection_count("app-1") != 2 {
        assert!(tokio::time::Instant::now() < deadline);
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    watcher.expect_nothing_queued().await;
    tab2.close().await;
    let v = watcher.expect("pusher_internal:member_removed").await;
    assert_eq!(Client::data(&v), json!({"user_id": "ann"}));
}

#[tokio::test]
async fn numeric_user_ids_become_strings() {
    let server = TestServer::start().await;
    let mut c = server.connect().await;
    let ok = c
        .subscribe_signed("presence-n", Some(r#"{"user_id":10}"#))
        .await;
    assert_eq!(
        Client::data(&ok),
        json!({"presence": {"ids": ["10"], "hash": {"10": null}, "count": 1}})
    );
}

#[tokio::test]
async fn presence_refuses_bad_channel_data() {
    let server = TestServer::start().await;
    let mut c = server.connect().await;
    let long_id = format!(r#"{{"user_id":"{}"}}"#, "u".repeat(129));
    for cd in ["nope", "{}", r#"{"user_id":""}"#, long_id.as_str()] {
        let e = sub_error(&c.subscribe_signed("presence-x", Some(cd)).await);
        assert_eq!(
            (e["type"].as_str(), e["status"].as_i64()),
            (Some("InvalidChannelData"), Some(400)),
            "{cd}"
        );
    }
    let big = format!(
        r#"{{"user_id":"u","user_info":{{"bio":"{}"}}}}"#,
        "x".repeat(1100)
    );
    let e = sub_error(&c.subscribe_signed("presence-x", Some(&big)).await);
    assert_eq!(e["type"], "LimitReached");
    assert_eq!(e["status"], 4301);
    // No channel_data and not signed in.
    let e = sub_error(&c.subscribe_signed("presence-x", None).await);
    assert_eq!(e["type"], "AuthError");
    // A signature over other channel_data.
    let auth = channel_auth(&c.socket_id, "presence-x", Some(ANN));
    c.send(json!({"event": "pusher:subscribe", "data": {"channel": "presence-x", "auth": auth, "channel_data": BOB}})).await;
    assert_eq!(sub_error(&c.recv().await)["type"], "AuthError");
}

#[tokio::test]
async fn presence_member_limit_refuses_new_users_with_limit_reached() {
    let server = TestServer::with_config(
        "[[apps]]\nid=\"app-1\"\nkey=\"app-key\"\nsecret=\"app-secret\"\nmax_presence_members = 2",
    )
    .await;
    let mut clients = Vec::new();
    for u in ["u1", "u2"] {
        let mut c = server.connect().await;
        let ok = c
            .subscribe_signed("presence-full", Some(&format!(r#"{{"user_id":"{u}"}}"#)))
            .await;
        assert_eq!(ok["event"], "pusher_internal:subscription_succeeded");
        clients.push(c);
    }
    let mut third = server.connect().await;
    let e = sub_error(
        &third
            .subscribe_signed("presence-full", Some(r#"{"user_id":"u3"}"#))
            .await,
    );
    assert_eq!(e["type"], "LimitReached");
    assert_eq!(e["status"], 4100);
    // An existing user may still open another tab.
    let ok = third
        .subscribe_signed("presence-full", Some(r#"{"user_id":"u1"}"#))
        .await;
    assert_eq!(ok["event"], "pusher_internal:subscription_succeeded");
}

#[tokio::test]
async fn resubscribing_confirms_again_without_a_second_member_added() {
    let server = TestServer::start().await;
    let mut watcher = server.connect().await;
    watcher.subscribe_signed("presence-r", Some(BOB)).await;
    let mut c = server.connect().await;
    c.subscribe_signed("presence-r", Some(ANN)).await;
    watcher.expect("pusher_internal:member_added").await;
    let again = c.subscribe_signed("presence-r", Some(ANN)).await;
    assert_eq!(Client::data(&again)["presence"]["count"], 2);
    watcher.expect_nothing_queued().await;
    assert_eq!(
        c.subscribe("pub").await["event"],
        "pusher_internal:subscription_succeeded"
    );
    assert_eq!(
        c.subscribe("pub").await["event"],
        "pusher_internal:subscription_succeeded"
    );
}

#[tokio::test]
async fn cache_channel_sends_last_event_or_cache_miss() {
    let server = TestServer::start().await;
    let mut c = server.connect().await;
    c.subscribe("cache-btc").await;
    assert_eq!(
        c.recv_text().await,
        r#"{"event":"pusher:cache_miss","channel":"cache-btc"}"#
    );
    server.api().trigger(&["cache-btc"], "price", "1").await;
    server.api().trigger(&["cache-btc"], "price", "2").await;
    assert_eq!(c.expect("price").await["data"], "1");
    assert_eq!(c.expect("price").await["data"], "2");
    let mut late = server.connect().await;
    late.subscribe("cache-btc").await;
    assert_eq!(
        late.recv_text().await,
        r#"{"event":"price","channel":"cache-btc","data":"2"}"#
    );
    // Private cache channels too, after a valid signature.
    let mut p = server.connect().await;
    p.subscribe_signed("private-cache-x", None).await;
    assert_eq!(
        p.expect("pusher:cache_miss").await["channel"],
        "private-cache-x"
    );
}

#[tokio::test]
async fn server_to_user_channel_only_for_that_signed_in_user() {
    let server = TestServer::start().await;
    let mut c = server.connect().await;
    let e = sub_error(&c.subscribe("#server-to-user-42").await);
    assert_eq!(e["type"], "AuthError");
    c.signin(r#"{"id":"42"}"#).await;
    let e = sub_error(&c.subscribe("#server-to-user-43").await);
    assert_eq!(e["status"], 401);
    let ok = c.subscribe("#server-to-user-42").await;
    assert_eq!(
        ok,
        json!({"event": "pusher_internal:subscription_succeeded", "channel": "#server-to-user-42", "data": "{}"})
    );
}

#[tokio::test]
async fn subscription_count_events_reach_every_subscriber() {
    let server = TestServer::with_config(
        "[[apps]]\nid=\"app-1\"\nkey=\"app-key\"\nsecret=\"app-secret\"\nsubscription_count = true",
    )
    .await;
    let mut a = server.connect().await;
    a.subscribe("counted").await;
    let v = a.expect("pusher_internal:subscription_count").await;
    assert_eq!(v["data"], r#"{"subscription_count":1}"#);
    let mut b = server.connect().await;
    b.subscribe("counted").await;
    for c in [&mut a, &mut b] {
        let v = c.expect("pusher_internal:subscription_count").await;
        assert_eq!(Client::data(&v), json!({"subscription_count": 2}));
    }
    // Not on presence channels.
    let mut p = server.connect().await;
    p.subscribe_signed("presence-nocount", Some(ANN)).await;
    p.expect_nothing_queued().await;
}
