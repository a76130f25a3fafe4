//! Apps at runtime: the admin API changes apps in the app store and every node follows within
//! a moment, with no restart: a new app works everywhere, a rotated secret keeps the old one
//! valid during its grace, a disabled app's connections close with 4003, a deleted one's with
//! 4001; file apps are read-only (409), bad records name their key (422), the token guards it
//! all (401/404).

use std::time::Duration;

use herald_protocol::signature::{auth_token, channel_auth_payload};
use herald_protocol::{ChannelName, Secret, SocketId};
use serde_json::{Value, json};

use crate::support::*;

/// One file app (`app-1`) and the runtime apps of a Redis store.
fn store_toml(store: &str) -> String {
    format!("app_store = \"{store}\"\nadmin_token = \"{ADMIN_TOKEN}\"\n{DEFAULT_TOML}")
}

/// An admin API request with the token and a JSON body.
async fn admin(node: &TestServer, method: &str, path: &str, body: Option<Value>) -> Reply {
    let auth = format!("Bearer {ADMIN_TOKEN}");
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    raw_http_with(node.admin, method, path, &[("Authorization", &auth)], &body).await
}

/// The HTTP API of a runtime app on `node`.
fn api_of(node: &TestServer, app: &Value, secret: &str) -> Api {
    Api {
        addr: node.addr,
        app_id: app["id"].as_str().unwrap().to_owned(),
        key: app["key"].as_str().unwrap().to_owned(),
        secret: secret.to_owned(),
    }
}

/// Connects with `key`, retrying while the node does not know the app yet (it learns of it
/// through Redis); fails after 5 s.
async fn connect_when_known(node: &TestServer, key: &str) -> Client {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let mut c = Client::connect_raw(&node.ws_url(key)).await;
        let first = c.recv().await;
        if first["event"] == "pusher:connection_established" {
            let data: Value = serde_json::from_str(first["data"].as_str().unwrap()).unwrap();
            c.socket_id = data["socket_id"].as_str().unwrap().to_owned();
            return c;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "app {key} never known on this node: {first}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// How a connection attempt with `key` is refused, once the node has the change (within 5 s).
async fn refused_with(node: &TestServer, key: &str, code: u16) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let mut c = Client::connect_raw(&node.ws_url(key)).await;
        let first = c.recv().await;
        if first["event"] == "pusher:error" && Client::data(&first)["code"] == code {
            assert_eq!(c.ended().await, Ended::Closed(code));
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "connections with {key} never refused with {code}: {first}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn private_auth(key: &str, secret: &str, socket_id: &str, channel: &str) -> String {
    let sid = SocketId::parse(socket_id).unwrap();
    let ch = ChannelName::parse(channel, 200).unwrap();
    auth_token(
        key,
        &Secret::new(secret),
        &channel_auth_payload(&sid, &ch, None),
    )
}

async fn subscribe_private(c: &mut Client, key: &str, secret: &str, channel: &str) -> Value {
    let auth = private_auth(key, secret, &c.socket_id, channel);
    c.send(json!({"event": "pusher:subscribe", "data": {"channel": channel, "auth": auth}}))
        .await;
    // Events of the channels it is already on may come first.
    loop {
        let ev = c.recv().await;
        if ev["channel"] == channel {
            return ev;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_redis_store_changes_apps_on_every_node_without_a_restart() {
    let redis = herald_redis::test_support::RedisServer::start();
    let toml = cluster_toml(&redis.url(), &store_toml("redis"));
    let a = TestServer::with_config(&toml).await;
    let b = TestServer::with_config(&toml).await;
    a.wait_ready(true).await;
    b.wait_ready(true).await;

    // The token guards it.
    let open = raw_http_with(a.admin, "GET", "/admin/apps", &[], "").await;
    assert_eq!(open.status, 401, "{}", open.body);
    let wrong = raw_http_with(
        a.admin,
        "GET",
        "/admin/apps",
        &[("Authorization", "Bearer nope")],
        "",
    )
    .await;
    assert_eq!(wrong.status, 401);

    // Created on one node, it works on the other; key and secret made up, the secret shown once.
    let created = admin(
        &a,
        "POST",
        "/admin/apps",
        Some(json!({"id": "rt-1", "client_events": true})),
    )
    .await;
    assert_eq!(created.status, 201, "{}", created.body);
    let app = created.body.clone();
    let secret = app["secret"]
        .as_str()
        .expect("the secret, on creation")
        .to_owned();
    let key = app["key"].as_str().unwrap().to_owned();
    assert_eq!(app["source"], "store");
    assert_eq!(app["client_events"], true);
    let mut on_b = connect_when_known(&b, &key).await;
    let mut on_a = connect_when_known(&a, &key).await;
    assert_eq!(
        Client::data(&on_b.subscribe("news").await)["channel"].as_str(),
        None
    );
    on_a.subscribe("news").await;
    let published = api_of(&b, &app, &secret)
        .trigger(&["news"], "hello", "1")
        .await;
    assert_eq!(published.status, 200, "{}", published.body);
    for c in [&mut on_a, &mut on_b] {
        let ev = c.expect("hello").await;
        assert_eq!(ev["data"], "1");
    }
    // Reads never show a secret.
    for node in [&a, &b] {
        let one = admin(node, "GET", "/admin/apps/rt-1", None).await;
        assert_eq!(one.status, 200);
        assert!(one.body.get("secret").is_none(), "{}", one.body);
        assert!(!one.body.to_string().contains(&secret));
        let all = admin(node, "GET", "/admin/apps", None).await;
        let ids: Vec<&str> = all.body["apps"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["id"].as_str().unwrap())
            .collect();
        assert_eq!(ids, ["app-1", "app-off", "rt-1"]);
        assert!(!all.body.to_string().contains(&secret));
    }

    // Rotation: both secrets sign during the grace.
    let rotated = admin(&b, "POST", "/admin/apps/rt-1/rotate-secret", None).await;
    assert_eq!(rotated.status, 200, "{}", rotated.body);
    let new_secret = rotated.body["secret"].as_str().unwrap().to_owned();
    assert_ne!(new_secret, secret);
    for node in [&a, &b] {
        for s in [&secret, &new_secret] {
            let r = api_of(node, &app, s)
                .trigger(&["news"], "rolled", "2")
                .await;
            assert_eq!(
                r.status,
                200,
                "signed with {} secret: {}",
                if *s == secret { "the old" } else { "the new" },
                r.body
            );
        }
        let wrong = api_of(node, &app, "not-a-secret")
            .trigger(&["news"], "x", "3")
            .await;
        assert_eq!(wrong.status, 401);
    }
    // Channel authentication too, on a connection opened before the rotation.
    for (i, s) in [&secret, &new_secret].into_iter().enumerate() {
        let ev = subscribe_private(&mut on_a, &key, s, &format!("private-{i}")).await;
        assert_eq!(
            ev["event"], "pusher_internal:subscription_succeeded",
            "{ev}"
        );
    }
    let ev = subscribe_private(&mut on_a, &key, "not-a-secret", "private-x").await;
    assert_eq!(ev["event"], "pusher:subscription_error", "{ev}");

    // File apps are read-only here.
    for (method, path, body) in [
        (
            "PATCH",
            "/admin/apps/app-1",
            Some(json!({"enabled": false})),
        ),
        ("DELETE", "/admin/apps/app-1", None),
        ("POST", "/admin/apps/app-1/rotate-secret", None),
        ("POST", "/admin/apps", Some(json!({"id": "app-1"}))),
    ] {
        let r = admin(&a, method, path, body).await;
        assert_eq!(r.status, 409, "{method} {path}: {}", r.body);
    }
    // A key taken by a file app, or by another stored app.
    let r = admin(
        &a,
        "POST",
        "/admin/apps",
        Some(json!({"id": "rt-9", "key": KEY})),
    )
    .await;
    assert_eq!(r.status, 409, "{}", r.body);
    let r = admin(
        &a,
        "POST",
        "/admin/apps",
        Some(json!({"id": "rt-9", "key": key})),
    )
    .await;
    assert_eq!(r.status, 409, "{}", r.body);

    // Bad records name their key; nothing changes.
    for (patch, bad) in [
        (json!({"max_connections": 0}), "max_connections"),
        (json!({"colour": "red"}), "colour"),
        (json!({"colour": null}), "colour"),
        (json!({"enabled": "yes"}), "enabled"),
        (json!({"secret": "mine"}), "secret"),
        (json!({"webhooks": [{"url": "ftp://x"}]}), "webhooks[0].url"),
    ] {
        let r = admin(&a, "PATCH", "/admin/apps/rt-1", Some(patch.clone())).await;
        assert_eq!(r.status, 422, "{patch}: {}", r.body);
        assert_eq!(r.body["key"], bad, "{patch}: {}", r.body);
    }
    // A null asks for the default, but only of a key that exists (schemathesis sent `"": null`).
    let r = admin(
        &a,
        "POST",
        "/admin/apps",
        Some(json!({"id": "rt-8", "colour": null})),
    )
    .await;
    assert_eq!(r.status, 422, "{}", r.body);
    assert_eq!(r.body["key"], "colour", "{}", r.body);
    let r = admin(&a, "GET", "/admin/apps/rt-1", None).await;
    assert_eq!(r.body["client_events"], true);

    // Disabled: open connections on both nodes close with 4003, new ones are refused with 4003.
    let r = admin(
        &a,
        "PATCH",
        "/admin/apps/rt-1",
        Some(json!({"enabled": false})),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["enabled"], false);
    assert_eq!(on_a.ended().await, Ended::Closed(4003));
    assert_eq!(on_b.ended().await, Ended::Closed(4003));
    refused_with(&a, &key, 4003).await;
    refused_with(&b, &key, 4003).await;
    let r = api_of(&a, &app, &new_secret)
        .trigger(&["news"], "x", "4")
        .await;
    assert_eq!(r.status, 403, "{}", r.body);

    // Enabled again, then deleted: closed and refused with 4001.
    let r = admin(
        &b,
        "PATCH",
        "/admin/apps/rt-1",
        Some(json!({"enabled": true})),
    )
    .await;
    assert_eq!(r.status, 200);
    let mut on_a = connect_when_known(&a, &key).await;
    let mut on_b = connect_when_known(&b, &key).await;
    on_a.subscribe("news").await;
    on_b.subscribe("news").await;
    let r = admin(&b, "DELETE", "/admin/apps/rt-1", None).await;
    assert_eq!(r.status, 204);
    assert_eq!(on_a.ended().await, Ended::Closed(4001));
    assert_eq!(on_b.ended().await, Ended::Closed(4001));
    refused_with(&a, &key, 4001).await;
    refused_with(&b, &key, 4001).await;
    assert_eq!(admin(&a, "GET", "/admin/apps/rt-1", None).await.status, 404);
    assert_eq!(
        admin(&a, "DELETE", "/admin/apps/rt-1", None).await.status,
        404
    );
    let r = api_of(&a, &app, &new_secret)
        .trigger(&["news"], "x", "5")
        .await;
    assert_eq!(r.status, 404, "{}", r.body);

    // Stored apps survive a restart of every node.
    let kept = admin(&a, "POST", "/admin/apps", Some(json!({"id": "rt-2"}))).await;
    assert_eq!(kept.status, 201);
    let kept_key = kept.body["key"].as_str().unwrap().to_owned();
    a.shutdown().await;
    b.shutdown().await;
    let a = TestServer::with_config(&toml).await;
    let b = TestServer::with_config(&toml).await;
    a.wait_ready(true).await;
    b.wait_ready(true).await;
    for node in [&a, &b] {
        let c = connect_when_known(node, &kept_key).await;
        c.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_api_needs_its_token_and_a_store() {
    // No token: the admin API is off.
    let off = TestServer::start().await;
    let r = admin(&off, "GET", "/admin/apps", None).await;
    assert_eq!(r.status, 404, "{}", r.body);

    // A token, apps from the file only: listed, not changed.
    let file =
        TestServer::with_config(&format!("admin_token = \"{ADMIN_TOKEN}\"\n{DEFAULT_TOML}")).await;
    let r = admin(&file, "GET", "/admin/apps", None).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["apps"][0]["source"], "file");
    let r = admin(&file, "POST", "/admin/apps", Some(json!({"id": "x"}))).await;
    assert_eq!(r.status, 409, "{}", r.body);
    assert!(
        r.body["error"].as_str().unwrap().contains("app_store"),
        "{}",
        r.body
    );

    // The memory store on one node: created, served, gone at once when deleted.
    let mem = TestServer::with_config(&store_toml("memory")).await;
    let created = admin(
        &mem,
        "POST",
        "/admin/apps",
        Some(json!({"id": "m-1", "key": "m-key", "secret": "m-secret"})),
    )
    .await;
    assert_eq!(created.status, 201, "{}", created.body);
    assert_eq!(created.body["secret"], "m-secret");
    let mut c = connect_when_known(&mem, "m-key").await;
    assert_eq!(mem.metric("herald_apps{source=\"store\"}").await, Some(1.0));
    assert_eq!(
        mem.metric("herald_connections{app=\"m-1\"}").await,
        Some(1.0)
    );
    let r = admin(&mem, "POST", "/admin/apps", Some(json!({"id": "m-1"}))).await;
    assert_eq!(r.status, 409, "the id is taken: {}", r.body);
    // A change without a JSON body type is refused (no browser sends one cross-site).
    let auth = format!("Bearer {ADMIN_TOKEN}");
    let r = raw_http_with(
        mem.admin,
        "PATCH",
        "/admin/apps/m-1",
        &[("Authorization", &auth), ("Content-Type", "text/plain")],
        "{}",
    )
    .await;
    assert_eq!(r.status, 415);
    assert_eq!(
        admin(&mem, "DELETE", "/admin/apps/m-1", None).await.status,
        204
    );
    assert_eq!(c.ended().await, Ended::Closed(4001));
    // A deleted app leaves the dashboards: no stale per-app gauge.
    assert_eq!(mem.metric("herald_apps{source=\"store\"}").await, Some(0.0));
    assert_eq!(mem.metric("herald_connections{app=\"m-1\"}").await, None);
}

/// `herald apps …` against a node: exit status, stdout and stderr.
async fn cli(node: &TestServer, token: &str, args: &[&str]) -> (bool, String, String) {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_herald"))
        .arg("apps")
        .args(args)
        .arg("--admin-url")
        .arg(format!("http://{}", node.admin))
        .env("HERALD_ADMIN_TOKEN", token)
        .kill_on_drop(true)
        .output()
        .await
        .expect("run herald apps");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_apps_cli_drives_the_admin_api() {
    let node = TestServer::with_config(&store_toml("memory")).await;
    let (ok, out, err) = cli(
        &node,
        ADMIN_TOKEN,
        &[
            "create",
            "--id",
            "cli-1",
            "--set",
            "client_events=true",
            "--set",
            "max_connections=50",
        ],
    )
    .await;
    assert!(ok, "{err}");
    let created: Value = serde_json::from_str(&out).expect("the app as JSON");
    assert_eq!(created["id"], "cli-1");
    assert_eq!(created["client_events"], true);
    assert_eq!(created["max_connections"], 50);
    let secret = created["secret"].as_str().unwrap().to_owned();
    let key = created["key"].as_str().unwrap().to_owned();
    connect_when_known(&node, &key).await.close().await;

    let (ok, out, _) = cli(&node, ADMIN_TOKEN, &["list"]).await;
    assert!(ok);
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].starts_with("ID"), "{out}");
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("cli-1") && l.contains(&key) && l.ends_with("store")),
        "{out}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("app-1") && l.ends_with("file")),
        "{out}"
    );
    assert!(!out.contains(&secret));

    let (ok, out, _) = cli(&node, ADMIN_TOKEN, &["rotate-secret", "cli-1"]).await;
    assert!(ok);
    let rotated: Value = serde_json::from_str(&out).unwrap();
    assert_ne!(rotated["secret"].as_str().unwrap(), secret);

    let (ok, out, _) = cli(
        &node,
        ADMIN_TOKEN,
        &["update", "cli-1", "--set", "enabled=false"],
    )
    .await;
    assert!(ok);
    assert_eq!(
        serde_json::from_str::<Value>(&out).unwrap()["enabled"],
        false
    );
    refused_with(&node, &key, 4003).await;

    // Refusals: the API's status and message, exit status 1.
    let (ok, _, err) = cli(
        &node,
        ADMIN_TOKEN,
        &["update", "cli-1", "--set", "max_connections=0"],
    )
    .await;
    assert!(!ok);
    assert!(
        err.contains("422") && err.contains("max_connections"),
        "{err}"
    );
    let (ok, _, err) = cli(&node, "wrong-token", &["list"]).await;
    assert!(!ok);
    assert!(err.contains("401"), "{err}");
    assert!(!err.contains("wrong-token"));
    let (ok, _, err) = cli(&node, ADMIN_TOKEN, &["delete", "app-1"]).await;
    assert!(!ok);
    assert!(err.contains("409"), "{err}");

    let (ok, out, _) = cli(&node, ADMIN_TOKEN, &["delete", "cli-1"]).await;
    assert!(ok, "{out}");
    refused_with(&node, &key, 4001).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changed_webhooks_apply_at_once_and_are_signed_with_the_new_secret() {
    let hooks = crate::webhooks::Receiver::start(0).await;
    let node =
        TestServer::with_config(&format!("webhook_batch_ms = 50\n{}", store_toml("memory"))).await;
    let created = admin(&node, "POST", "/admin/apps", Some(json!({"id": "wh-1"}))).await;
    assert_eq!(created.status, 201);
    let key = created.body["key"].as_str().unwrap().to_owned();
    let secret = created.body["secret"].as_str().unwrap().to_owned();
    // A connection opened before the app had webhooks.
    let mut c = connect_when_known(&node, &key).await;
    let r = admin(
        &node,
        "PATCH",
        "/admin/apps/wh-1",
        Some(json!({"webhooks": [{"url": hooks.url, "event_types": ["channel_occupied"]}]})),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    c.subscribe("first").await;
    let events = hooks.wait_events(1).await;
    assert_eq!(events[0]["channel"], "first");
    let signed = |req: &crate::webhooks::Received, s: &str| {
        req.signature == herald_protocol::signature::sign(&Secret::new(s), req.body.as_bytes())
    };
    let first = hooks.requests()[0].clone();
    assert_eq!(first.key, key);
    assert!(signed(&first, &secret), "signed with the app's secret");

    let rotated = admin(&node, "POST", "/admin/apps/wh-1/rotate-secret", None).await;
    let new_secret = rotated.body["secret"].as_str().unwrap().to_owned();
    c.subscribe("second").await;
    hooks.wait_events(2).await;
    let second = hooks.requests().last().unwrap().clone();
    assert!(second.body.contains("second"));
    assert!(
        signed(&second, &new_secret) && !signed(&second, &secret),
        "after a rotation webhooks are signed with the new secret only"
    );
}
