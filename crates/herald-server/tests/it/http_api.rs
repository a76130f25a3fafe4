//! The HTTP API: authentication, triggers, queries, statuses (PROTOCOL.md §6).

use serde_json::{Value, json};

use crate::support::*;

#[tokio::test]
async fn trigger_returns_empty_object_and_json_content_type() {
    let server = TestServer::start().await;
    let r = server.api().trigger(&["a", "b"], "ev", "x").await;
    assert_eq!((r.status, r.body), (200, json!({})));
    assert_eq!(r.content_type, "application/json");
}

#[tokio::test]
async fn socket_id_is_excluded() {
    let server = TestServer::start().await;
    let mut a = server.connect().await;
    let mut b = server.connect().await;
    a.subscribe("room").await;
    b.subscribe("room").await;
    let body = json!({"name": "ev", "channels": ["room"], "data": "1", "socket_id": a.socket_id});
    assert_eq!(server.api().post("/events", body).await.status, 200);
    assert_eq!(b.expect("ev").await["data"], "1");
    a.expect_nothing_queued().await;
}

#[tokio::test]
async fn a_channel_named_many_times_in_one_trigger_delivers_once() {
    let server = TestServer::start().await;
    let mut a = server.connect().await;
    a.subscribe("c").await;
    let body = json!({"name": "ev", "channels": vec!["c"; 100], "data": "1", "info": "subscription_count"});
    let r = server.api().post("/events", body).await;
    assert_eq!(
        (r.status, r.body),
        (200, json!({"channels": {"c": {"subscription_count": 1}}}))
    );
    assert_eq!(a.expect("ev").await["data"], "1");
    a.expect_nothing_queued().await;
}

#[tokio::test]
async fn numeric_presence_user_ids_are_one_member_keyed_as_javascript_does() {
    let server = TestServer::start().await;
    let mut a = server.connect().await;
    let mut b = server.connect().await;
    let mut c = server.connect().await;
    // PHP's json_encode writes 10.0; JavaScript's String() of either is "10".
    let v = a
        .subscribe_signed("presence-n", Some(r#"{"user_id":10}"#))
        .await;
    assert_eq!(Client::data(&v)["presence"]["ids"], json!(["10"]));
    let v = b
        .subscribe_signed("presence-n", Some(r#"{"user_id":10.0}"#))
        .await;
    assert_eq!(
        Client::data(&v)["presence"],
        json!({"ids": ["10"], "hash": {"10": null}, "count": 1})
    );
    let v = c
        .subscribe_signed("presence-n", Some(r#"{"user_id":1e3}"#))
        .await;
    assert_eq!(Client::data(&v)["presence"]["count"], 2);
    let added = a.expect("pusher_internal:member_added").await;
    assert_eq!(Client::data(&added)["user_id"], "1000");
    let r = server.api().get("/channels/presence-n/users", &[]).await;
    assert_eq!(r.body, json!({"users": [{"id": "10"}, {"id": "1000"}]}));
}

#[tokio::test]
async fn an_announced_body_over_the_limit_is_refused_at_once() {
    let server =
        TestServer::with_config(&format!("max_request_body_kb = 16\n{}", DEFAULT_TOML)).await;
    // Only the head is sent: the answer must not wait for a body that never comes.
    let mut s = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let head = format!(
        "POST /apps/{APP_ID}/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 99999999999\r\n\r\n"
    );
    tokio::io::AsyncWriteExt::write_all(&mut s, head.as_bytes())
        .await
        .unwrap();
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(
        std::time::Duration::from_secs(2),
        tokio::io::AsyncReadExt::read(&mut s, &mut buf),
    )
    .await
    .expect("413 before the body timeout (10 s)")
    .unwrap();
    let text = String::from_utf8_lossy(&buf[..n]);
    assert!(text.starts_with("HTTP/1.1 413"), "{text}");
    assert_eq!(server.api().trigger(&["a"], "e", "x").await.status, 200);
}

#[tokio::test]
async fn trigger_info_reports_counts_where_they_apply() {
    let server = TestServer::start().await;
    let mut a = server.connect().await;
    a.subscribe("room").await;
    a.subscribe_signed("presence-p", Some(r#"{"user_id":"u1"}"#))
        .await;
    let body = json!({"name": "ev", "channels": ["room", "presence-p"], "data": "1", "info": "user_count,subscription_count"});
    let r = server.api().post("/events", body).await;
    assert_eq!(
        r.body,
        json!({"channels": {"room": {"subscription_count": 1}, "presence-p": {"user_count": 1, "subscription_count": 1}}})
    );
}

#[tokio::test]
async fn batch_events_publish_all_or_nothing() {
    let server = TestServer::start().await;
    let mut a = server.connect().await;
    a.subscribe("b1").await;
    let ok = json!({"batch": [
        {"name": "e1", "channel": "b1", "data": "1"},
        {"name": "e2", "channel": "b1", "data": "2", "info": "subscription_count"}
    ]});
    let r = server.api().post("/batch_events", ok).await;
    assert_eq!(
        (r.status, r.body),
        (200, json!({"batch": [{}, {"subscription_count": 1}]}))
    );
    assert_eq!(a.expect("e1").await["data"], "1");
    assert_eq!(a.expect("e2").await["data"], "2");
    let bad = json!({"batch": [{"name": "e3", "channel": "b1", "data": "3"}, {"name": "e4", "channel": "b1"}]});
    assert_eq!(server.api().post("/batch_events", bad).await.status, 400);
    let eleven: Vec<Value> = (0..11)
        .map(|i| json!({"name": "e", "channel": "b1", "data": i.to_string()}))
        .collect();
    assert_eq!(
        server
            .api()
            .post("/batch_events", json!({"batch": eleven}))
            .await
            .status,
        400
    );
    a.expect_nothing_queued().await;
}

#[tokio::test]
async fn channels_lists_occupied_channels_with_filters() {
    let server = TestServer::start().await;
    let mut a = server.connect().await;
    a.subscribe("news").await;
    a.subscribe_signed("presence-1", Some(r#"{"user_id":"u1"}"#))
        .await;
    let mut b = server.connect().await;
    b.subscribe_signed("presence-1", Some(r#"{"user_id":"u1"}"#))
        .await;
    b.signin(r#"{"id":"u1"}"#).await;
    b.subscribe("#server-to-user-u1").await;
    let r = server.api().get("/channels", &[]).await;
    assert_eq!(r.body, json!({"channels": {"news": {}, "presence-1": {}}}));
    let r = server
        .api()
        .get(
            "/channels",
            &[("filter_by_prefix", "presence-"), ("info", "user_count")],
        )
        .await;
    assert_eq!(
        r.body,
        json!({"channels": {"presence-1": {"user_count": 1}}})
    );
    let r = server
        .api()
        .get("/channels", &[("info", "user_count")])
        .await;
    assert_eq!(r.status, 400);
    assert_eq!(r.body["code"], 400);
}

#[tokio::test]
async fn channel_info_answers_occupied_counts_and_cache() {
    let server = TestServer::start().await;
    let api = server.api();
    let r = api
        .get("/channels/empty", &[("info", "subscription_count")])
        .await;
    assert_eq!(r.body, json!({"occupied": false, "subscription_count": 0}));
    let mut a = server.connect().await;
    a.subscribe_signed("presence-x", Some(r#"{"user_id":"u1"}"#))
        .await;
    let r = api
        .get(
            "/channels/presence-x",
            &[("info", "user_count,subscription_count")],
        )
        .await;
    assert_eq!(
        r.body,
        json!({"occupied": true, "user_count": 1, "subscription_count": 1})
    );
    assert_eq!(
        api.get("/channels/public", &[("info", "user_count")])
            .await
            .status,
        400
    );
    assert_eq!(
        api.get("/channels/public", &[("info", "cache")])
            .await
            .status,
        400
    );
    assert_eq!(
        api.get("/channels/cache-c", &[("info", "cache")])
            .await
            .body,
        json!({"occupied": false, "cache": null})
    );
    api.trigger(&["cache-c"], "ev", "v1").await;
    let r = api.get("/channels/cache-c", &[("info", "cache")]).await;
    assert_eq!(r.body["cache"]["data"], "v1");
    assert!(r.body["cache"]["ttl"].as_u64().unwrap() > 1700);
}

#[tokio::test]
async fn channel_names_may_arrive_percent_encoded() {
    let server = TestServer::start().await;
    let mut a = server.connect().await;
    a.subscribe("a@b;c").await;
    // Signed over the plain name, sent escaped (as some SDKs do).
    let api = server.api();
    let ts = now().to_string();
    let params = [
        ("auth_key", KEY),
        ("auth_timestamp", ts.as_str()),
        ("auth_version", "1.0"),
    ];
    let payload = herald_protocol::signature::api_request_payload(
        "GET",
        "/apps/app-1/channels/a@b;c",
        &params,
    );
    let sig =
        herald_protocol::signature::sign(&herald_protocol::Secret::new(SECRET), payload.as_bytes());
    let target = format!(
        "/apps/app-1/channels/a%40b%3Bc?auth_key={KEY}&auth_timestamp={ts}&auth_version=1.0&auth_signature={sig}"
    );
    let r = raw_http(api.addr, "GET", &target, "").await;
    assert_eq!((r.status, r.body), (200, json!({"occupied": true})));
}

#[tokio::test]
async fn users_lists_presence_members() {
    let server = TestServer::start().await;
    let mut a = server.connect().await;
    let mut b = server.connect().await;
    a.subscribe_signed("presence-u", Some(r#"{"user_id":"u1"}"#))
        .await;
    b.subscribe_signed("presence-u", Some(r#"{"user_id":"u2"}"#))
        .await;
    let mut c = server.connect().await;
    c.subscribe_signed("presence-u", Some(r#"{"user_id":"u2"}"#))
        .await;
    let r = server.api().get("/channels/presence-u/users", &[]).await;
    assert_eq!(r.body, json!({"users": [{"id": "u1"}, {"id": "u2"}]}));
    assert_eq!(
        server.api().get("/channels/public/users", &[]).await.status,
        400
    );
}

#[tokio::test]
async fn authentication_failures_are_401_and_unknown_apps_404() {
    let server = TestServer::start().await;
    let api = server.api();
    let wrong = Api {
        secret: "nope".into(),
        ..server.api()
    };
    let r = wrong.trigger(&["a"], "e", "x").await;
    assert_eq!(r.status, 401);
    assert_eq!(r.body["code"], 401);
    assert!(r.body["error"].as_str().unwrap().contains("signature"));
    assert!(!r.body.to_string().contains(SECRET));
    let stale = api
        .request_at("GET", "/channels", &[], "", now() - 601)
        .await;
    assert_eq!(stale.status, 401);
    assert!(stale.body["error"].as_str().unwrap().contains("Timestamp"));
    assert_eq!(
        api.request_at("GET", "/channels", &[], "", now() - 590)
            .await
            .status,
        200
    );
    let unknown = Api {
        app_id: "nope".into(),
        ..server.api()
    };
    assert_eq!(unknown.get("/channels", &[]).await.status, 404);
    let r = raw_http(server.addr, "GET", "/apps/app-1/channels", "").await;
    assert_eq!(r.status, 401);
    assert_eq!(api.get("/nope", &[]).await.status, 404);
    assert_eq!(api.request("GET", "/events", &[], "").await.status, 405);
}

#[tokio::test]
async fn disabled_app_is_403() {
    let server = TestServer::start().await;
    let api = Api {
        app_id: "app-off".into(),
        key: "off-key".into(),
        secret: "off-secret".into(),
        addr: server.addr,
    };
    assert_eq!(api.get("/channels", &[]).await.status, 403);
}

#[tokio::test]
async fn invalid_triggers_get_400_and_oversized_data_413() {
    let server = TestServer::start().await;
    let api = server.api();
    assert_eq!(
        api.request("POST", "/events", &[], "{not json")
            .await
            .status,
        400
    );
    assert_eq!(
        api.post(
            "/events",
            json!({"name": "e", "channels": ["a"], "data": {"obj": 1}})
        )
        .await
        .status,
        400
    );
    let channels: Vec<String> = (0..101).map(|i| format!("c{i}")).collect();
    assert_eq!(
        api.post(
            "/events",
            json!({"name": "e", "channels": channels, "data": "x"})
        )
        .await
        .status,
        400
    );
    assert_eq!(
        api.post(
            "/events",
            json!({"name": "e", "channels": ["bad name"], "data": "x"})
        )
        .await
        .status,
        400
    );
    assert_eq!(
        api.post(
            "/events",
            json!({"name": "e", "channels": ["a"], "data": "x", "socket_id": "1.1:x"})
        )
        .await
        .status,
        400
    );
    assert_eq!(
        api.post(
            "/events",
            json!({"name": "e", "channels": ["private-encrypted-a", "b"], "data": "x"})
        )
        .await
        .status,
        400
    );
    let r = api
        .post(
            "/events",
            json!({"name": "e", "channels": ["a"], "data": "x".repeat(10 * 1024 + 1)}),
        )
        .await;
    assert_eq!(r.status, 413);
    assert_eq!(r.body["code"], 413);
    assert_eq!(
        api.post(
            "/events",
            json!({"name": "e", "channels": ["private-encrypted-a"], "data": "x"})
        )
        .await
        .status,
        200
    );
}

#[tokio::test]
async fn body_over_the_server_limit_is_413() {
    let server =
        TestServer::with_config(&format!("max_request_body_kb = 16\n{}", DEFAULT_TOML)).await;
    let big = json!({"name": "e", "channels": ["a"], "data": "x".repeat(20 * 1024)}).to_string();
    let r = server.api().request("POST", "/events", &[], &big).await;
    assert_eq!(r.status, 413);
    // The node keeps serving.
    assert_eq!(server.api().trigger(&["a"], "e", "x").await.status, 200);
}

#[tokio::test]
async fn a_separate_api_listener_serves_the_api_and_the_public_port_does_not() {
    let server = TestServer::with_api_listener(DEFAULT_TOML).await;
    let mut c = server.connect().await;
    c.subscribe("news").await;
    assert_eq!(server.api().trigger(&["news"], "ev", "1").await.status, 200);
    assert_eq!(c.expect("ev").await["data"], "1");
    let on_public = Api {
        addr: server.addr,
        ..server.api()
    };
    assert_eq!(on_public.get("/channels", &[]).await.status, 404);
    // WebSocket upgrades are not served on the API listener.
    let r = raw_http(server.api_addr.unwrap(), "GET", "/app/app-key", "").await;
    assert_eq!(r.status, 404);
}

#[tokio::test]
async fn the_per_app_rate_limit_answers_429_and_other_apps_are_unaffected() {
    let toml = "[[apps]]\nid=\"app-1\"\nkey=\"app-key\"\nsecret=\"app-secret\"\napi_requests_per_second = 3\n[[apps]]\nid=\"app-2\"\nkey=\"k2\"\nsecret=\"s2\"";
    let server = TestServer::with_config(toml).await;
    let api = server.api();
    let mut statuses = Vec::new();
    for _ in 0..5 {
        statuses.push(api.trigger(&["a"], "e", "x").await.status);
    }
    assert_eq!(&statuses[..3], [200, 200, 200]);
    assert!(statuses[3..].contains(&429), "{statuses:?}");
    let other = Api {
        app_id: "app-2".into(),
        key: "k2".into(),
        secret: "s2".into(),
        addr: server.addr,
    };
    assert_eq!(other.trigger(&["a"], "e", "x").await.status, 200);
}

#[tokio::test]
async fn every_api_answer_carries_a_request_id() {
    let server = TestServer::start().await;
    let mut s = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    s.write_all(b"GET /apps/app-1/channels HTTP/1.1\r\nHost: x\r\nX-Request-Id: trace-42\r\nConnection: close\r\n\r\n").await.unwrap();
    let mut buf = String::new();
    s.read_to_string(&mut buf).await.unwrap();
    assert!(buf.starts_with("HTTP/1.1 401"), "{buf}");
    assert!(
        buf.to_ascii_lowercase().contains("x-request-id: trace-42"),
        "{buf}"
    );
    let mut s = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    s.write_all(b"GET /apps/app-1/channels HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut buf = String::new();
    s.read_to_string(&mut buf).await.unwrap();
    assert!(buf.to_ascii_lowercase().contains("x-request-id: "), "{buf}");
}
