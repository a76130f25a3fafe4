//! Sign-in, server-to-user, watchlist, termination, authorized connections (PROTOCOL.md §5).

use serde_json::json;

use crate::support::*;

#[tokio::test]
async fn signin_success_echoes_user_data_verbatim() {
    let server = TestServer::start().await;
    let mut c = server.connect().await;
    let user_data = r#"{"id":"12345","user_info":{"name":"John Smith"}}"#;
    let v = c.signin(user_data).await;
    assert_eq!(
        v,
        json!({"event": "pusher:signin_success", "data": json!({"user_data": user_data}).to_string()})
    );
    // Signing in again as the same user is fine; as another user is not.
    assert_eq!(c.signin(user_data).await["event"], "pusher:signin_success");
    let v = c.signin(r#"{"id":"other"}"#).await;
    assert_eq!(v["event"], "pusher:error");
    assert_eq!(v["data"]["code"], serde_json::Value::Null);
}

#[tokio::test]
async fn bad_signin_gets_an_error_and_the_connection_stays() {
    let server = TestServer::start().await;
    let mut c = server.connect().await;
    c.send(json!({"event": "pusher:signin", "data": {"auth": "app-key:00", "user_data": "{\"id\":\"1\"}"}})).await;
    let v = c.expect("pusher:error").await;
    assert_eq!(v["data"]["code"], serde_json::Value::Null);
    for bad in [r#"{"id":1}"#, r#"{"name":"x"}"#, "nope", r#"{"id":""}"#] {
        let v = c.signin(bad).await;
        assert_eq!(v["event"], "pusher:error", "{bad}");
    }
    c.expect_nothing_queued().await;
}

#[tokio::test]
async fn send_to_user_reaches_every_signed_in_connection_only() {
    let server = TestServer::start().await;
    let mut tab1 = server.connect().await;
    let mut tab2 = server.connect().await;
    let mut stranger = server.connect().await;
    tab1.signin(r#"{"id":"u1"}"#).await;
    tab2.signin(r#"{"id":"u1"}"#).await;
    stranger.signin(r#"{"id":"u2"}"#).await;
    // tab2 subscribes to its channel as pusher-js does; tab1 does not and still gets it.
    tab2.subscribe("#server-to-user-u1").await;
    let r = server
        .api()
        .trigger(&["#server-to-user-u1"], "note", "hello")
        .await;
    assert_eq!(r.status, 200);
    for c in [&mut tab1, &mut tab2] {
        assert_eq!(
            c.recv_text().await,
            r##"{"event":"note","channel":"#server-to-user-u1","data":"hello"}"##
        );
    }
    stranger.expect_nothing_queued().await;
}

#[tokio::test]
async fn watchlist_reports_status_then_transitions() {
    let server = TestServer::start().await;
    let mut friend = server.connect().await;
    friend.signin(r#"{"id":"f1"}"#).await;
    let mut me = server.connect().await;
    me.signin(r#"{"id":"me","watchlist":["f1","f2"]}"#).await;
    let v = me.expect("pusher_internal:watchlist_events").await;
    assert_eq!(
        Client::data(&v),
        json!({"events": [{"name": "online", "user_ids": ["f1"]}, {"name": "offline", "user_ids": ["f2"]}]})
    );
    assert!(v.get("channel").is_none());
    let mut f2 = server.connect().await;
    f2.signin(r#"{"id":"f2"}"#).await;
    let v = me.expect("pusher_internal:watchlist_events").await;
    assert_eq!(
        Client::data(&v),
        json!({"events": [{"name": "online", "user_ids": ["f2"]}]})
    );
    // A second tab of f2 is not a transition.
    let mut f2b = server.connect().await;
    f2b.signin(r#"{"id":"f2"}"#).await;
    me.expect_nothing_queued().await;
    friend.close().await;
    let v = me.expect("pusher_internal:watchlist_events").await;
    assert_eq!(
        Client::data(&v),
        json!({"events": [{"name": "offline", "user_ids": ["f1"]}]})
    );
}

#[tokio::test]
async fn watchlist_over_100_keeps_the_first_100_and_warns_with_4302() {
    let server = TestServer::start().await;
    let mut me = server.connect().await;
    let ids: Vec<String> = (0..101).map(|i| format!("w{i}")).collect();
    let user_data = json!({"id": "me", "watchlist": ids}).to_string();
    assert_eq!(
        me.signin(&user_data).await["event"],
        "pusher:signin_success"
    );
    let v = me.expect("pusher:error").await;
    assert_eq!(v["data"]["code"], 4302);
    let v = me.expect("pusher_internal:watchlist_events").await;
    assert_eq!(
        Client::data(&v)["events"][0]["user_ids"]
            .as_array()
            .unwrap()
            .len(),
        100
    );
    me.expect_nothing_queued().await;
}

#[tokio::test]
async fn watchlists_count_each_user_once_and_take_numeric_ids() {
    let server = TestServer::start().await;
    let mut seven = server.connect().await;
    seven.signin(r#"{"id":"7"}"#).await;
    let mut me = server.connect().await;
    let ids: Vec<serde_json::Value> = std::iter::repeat_n(json!("w"), 5000)
        .chain([json!(7), json!(7.0), json!("7")])
        .collect();
    let user_data = json!({"id": "me", "watchlist": ids}).to_string();
    assert_eq!(
        me.signin(&user_data).await["event"],
        "pusher:signin_success"
    );
    // Two distinct users: no 4302, and each listed once.
    let v = me.expect("pusher_internal:watchlist_events").await;
    assert_eq!(
        Client::data(&v),
        json!({"events": [{"name": "online", "user_ids": ["7"]}, {"name": "offline", "user_ids": ["w"]}]})
    );
    me.expect_nothing_queued().await;
    // An entry that could never sign in is an error, not a silent drop.
    let mut other = server.connect().await;
    let v = other
        .signin(r#"{"id":"o","watchlist":["has space"]}"#)
        .await;
    assert_eq!(v["event"], "pusher:error");
    assert!(
        v["data"]["message"].as_str().unwrap().contains("watchlist"),
        "{v}"
    );
}

#[tokio::test]
async fn terminate_connections_closes_the_users_connections_with_4009() {
    let server = TestServer::start().await;
    let mut u1a = server.connect().await;
    let mut u1b = server.connect().await;
    let mut other = server.connect().await;
    u1a.signin(r#"{"id":"u1"}"#).await;
    u1b.signin(r#"{"id":"u1"}"#).await;
    // A presence member that never signed in as u1 is not touched.
    other
        .subscribe_signed("presence-x", Some(r#"{"user_id":"u1"}"#))
        .await;
    let r = server
        .api()
        .post("/users/u1/terminate_connections", json!({}))
        .await;
    assert_eq!((r.status, r.body.clone()), (200, json!({})));
    for c in [&mut u1a, &mut u1b] {
        let v = c.expect("pusher:error").await;
        assert_eq!(
            v["data"],
            json!({"code": 4009, "message": "You got disconnected by the app."})
        );
        assert_eq!(c.ended().await, Ended::Closed(4009));
    }
    other.expect_nothing_queued().await;
}

#[tokio::test]
async fn presence_subscribe_without_channel_data_uses_the_signed_in_user() {
    let server = TestServer::start().await;
    let mut c = server.connect().await;
    c.signin(r#"{"id":"u7","user_info":{"n":7}}"#).await;
    let ok = c.subscribe_signed("presence-s", None).await;
    assert_eq!(
        Client::data(&ok),
        json!({"presence": {"ids": ["u7"], "hash": {"u7": {"n": 7}}, "count": 1}})
    );
}

#[tokio::test]
async fn unauthorized_connection_is_closed_with_4009_after_the_timeout() {
    let toml = "[[apps]]\nid=\"app-1\"\nkey=\"app-key\"\nsecret=\"app-secret\"\nrequire_authorized_connection = true\nauthorized_connection_timeout_secs = 1";
    let server = TestServer::with_config(toml).await;
    let mut idle = server.connect().await;
    idle.subscribe("public-only").await;
    let mut signed = server.connect().await;
    signed.signin(r#"{"id":"u"}"#).await;
    let mut private = server.connect().await;
    private.subscribe_signed("private-ok", None).await;
    let v = idle.expect("pusher:error").await;
    assert_eq!(
        v["data"],
        json!({"code": 4009, "message": "Connection not authorized within timeout"})
    );
    assert_eq!(idle.ended().await, Ended::Closed(4009));
    signed.expect_nothing_queued().await;
    private.expect_nothing_queued().await;
}

#[tokio::test]
async fn user_authentication_can_be_switched_off() {
    let server = TestServer::with_config("[[apps]]\nid=\"app-1\"\nkey=\"app-key\"\nsecret=\"app-secret\"\nuser_authentication = false").await;
    let mut c = server.connect().await;
    let v = c.signin(r#"{"id":"u"}"#).await;
    assert_eq!(v["event"], "pusher:error");
}

#[tokio::test]
async fn terminate_connections_also_answers_the_python_sdks_unprefixed_path() {
    let server = TestServer::start().await;
    let mut u = server.connect().await;
    u.signin(r#"{"id":"py"}"#).await;
    let path = "/users/py/terminate_connections";
    let body = "{}";
    let ts = now().to_string();
    let md5 = herald_protocol::signature::body_md5(body.as_bytes());
    let params = [
        ("auth_key", KEY),
        ("auth_timestamp", ts.as_str()),
        ("auth_version", "1.0"),
        ("body_md5", md5.as_str()),
    ];
    let sign = |secret: &str| {
        let payload = herald_protocol::signature::api_request_payload("POST", path, &params);
        herald_protocol::signature::sign(&herald_protocol::Secret::new(secret), payload.as_bytes())
    };
    let query: Vec<String> = params.iter().map(|(k, v)| format!("{k}={v}")).collect();
    // A wrong signature is refused like anywhere else.
    let bad = format!("{path}?{}&auth_signature={}", query.join("&"), sign("nope"));
    assert_eq!(raw_http(server.addr, "POST", &bad, body).await.status, 401);
    let good = format!("{path}?{}&auth_signature={}", query.join("&"), sign(SECRET));
    let r = raw_http(server.addr, "POST", &good, body).await;
    assert_eq!((r.status, r.body), (200, json!({})));
    assert_eq!(u.expect("pusher:error").await["data"]["code"], 4009);
    assert_eq!(
        raw_http(server.addr, "POST", "/users/py/terminate_connections", body)
            .await
            .status,
        401
    );
    assert_eq!(
        raw_http(server.addr, "POST", "/users/py/other", body)
            .await
            .status,
        404
    );
}
