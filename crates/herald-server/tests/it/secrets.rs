//! App secrets never leave the node: not in a log line (at debug level, with verbose frame
//! logging), not in a metric, not in an error body — whatever a client or caller gets wrong.

use serde_json::json;

use crate::support::*;

const OTHER_SECRET: &str = "zq-secret-4f1b9c";
const HOOK_PASSWORD: &str = "hook-pw-83c1d0";
const HOOK_TOKEN: &str = "hook-token-a91e77";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_appears_in_logs_metrics_or_error_bodies() {
    let log = std::env::temp_dir().join(format!("herald-secrets-{}.log", std::process::id()));
    let _ = std::fs::remove_file(&log);
    // The endpoint refuses connections; its URL carries a password and a token.
    let toml = format!(
        "verbose = true\nwebhook_retry_budget_secs = 1\nwebhook_retry_first_ms = 100\nadmin_token = \"{ADMIN_TOKEN}\"\n{DEFAULT_TOML}\n[[apps]]\nid = \"app-2\"\nkey = \"key-2\"\nsecret = \"{OTHER_SECRET}\"\n[[apps.webhooks]]\nurl = \"http://hookuser:{HOOK_PASSWORD}@127.0.0.1:9/hook?token={HOOK_TOKEN}\"\n"
    );
    let mut node = NodeProcess::start_logging(&toml, &log).await;
    let mut bodies = Vec::new();

    // Sockets: good and bad private subscribes, a bad sign-in, client events.
    let mut c = Client::connect(&node.ws_url(KEY)).await;
    c.subscribe_signed("private-a", None).await;
    c.send(json!({"event": "pusher:subscribe", "data": {"channel": "private-b", "auth": "app-key:0000"}}))
        .await;
    bodies.push(c.recv().await.to_string());
    c.send(json!({"event": "pusher:signin", "data": {"auth": "app-key:bad", "user_data": "{\"id\":\"u\"}"}}))
        .await;
    bodies.push(c.recv().await.to_string());
    c.signin(r#"{"id":"u1"}"#).await;
    c.send(json!({"event": "client-x", "channel": "private-a", "data": {}}))
        .await;
    let mut other_app = Client::connect(&node.ws_url("key-2")).await;
    other_app
        .send(json!({"event": "pusher:subscribe", "data": {"channel": "presence-x", "auth": "key-2:00", "channel_data": "{\"user_id\":\"1\"}"}}))
        .await;
    bodies.push(other_app.recv().await.to_string());
    // Occupies a channel of app-2, whose webhook endpoint refuses connections.
    other_app.subscribe("pub").await;

    // HTTP API: good, forged, wrong key, stale, unknown app; both apps.
    let api = Api {
        addr: node.addr,
        app_id: APP_ID.into(),
        key: KEY.into(),
        secret: SECRET.into(),
    };
    let app2 = Api {
        app_id: "app-2".into(),
        key: "key-2".into(),
        secret: OTHER_SECRET.into(),
        ..api.clone()
    };
    assert_eq!(api.trigger(&["private-a"], "e", "1").await.status, 200);
    assert_eq!(app2.trigger(&["a"], "e", "1").await.status, 200);
    for forged in [
        Api {
            secret: "wrong".into(),
            ..api.clone()
        },
        Api {
            secret: "wrong".into(),
            ..app2.clone()
        },
        Api {
            key: "key-2".into(),
            ..api.clone()
        },
    ] {
        let r = forged.trigger(&["a"], "e", "1").await;
        assert_eq!(r.status, 401);
        bodies.push(r.body.to_string());
    }
    let stale = api
        .request_at("GET", "/channels", &[], "", now() - 3600)
        .await;
    assert_eq!(stale.status, 401);
    bodies.push(stale.body.to_string());
    bodies.push(
        raw_http(node.addr, "GET", "/apps/nope/channels", "")
            .await
            .body
            .to_string(),
    );
    // Let the webhook to the closed port fail, retry and be dead-lettered.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let r = admin_http(node.admin, "GET", "/webhooks/dead-letters").await;
        let listed = r.body["dead_letters"]
            .as_array()
            .is_some_and(|l| !l.is_empty());
        bodies.push(r.body.to_string());
        if listed {
            assert!(r.body.to_string().contains("hookuser:***@"), "{}", r.body);
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "nothing was dead-lettered"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    for path in ["/metrics", "/usage", "/webhooks/dead-letters"] {
        let r = raw_http(node.admin, "GET", path, "").await;
        assert!(
            !r.body.to_string().contains("channel_occupied"),
            "{path} without a token: {}",
            r.body
        );
        bodies.push(r.body.to_string());
    }

    node.signal("TERM");
    assert_eq!(node.wait_exit(15).await, Some(0));
    let logged = std::fs::read_to_string(&log).unwrap();
    let _ = std::fs::remove_file(&log);
    // The log really is verbose: it holds the refusals and the frames.
    assert!(logged.contains("HTTP API request refused"), "{logged}");
    assert!(
        logged.contains("client-x"),
        "verbose frames missing: {logged}"
    );
    assert!(
        logged.contains("webhook"),
        "webhook failures missing: {logged}"
    );
    for secret in [SECRET, OTHER_SECRET, HOOK_PASSWORD, HOOK_TOKEN, ADMIN_TOKEN] {
        for (i, line) in logged.lines().enumerate() {
            assert!(
                !line.contains(secret),
                "log line {i} holds a secret: {line}"
            );
        }
        for body in &bodies {
            assert!(!body.contains(secret), "an answer holds a secret: {body}");
        }
    }
}

const STORE_SECRET: &str = "store-secret-7d2e41";
const DB_PASSWORD: &str = "db-pw-5b09c3";

/// Apps at runtime: the audit log names changes, never a secret; reads never show one; a SQL
/// store's URL password stays out of the log even when the database cannot be reached.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runtime_apps_and_app_store_urls_keep_their_secrets() {
    let log = std::env::temp_dir().join(format!("herald-secrets-store-{}.log", std::process::id()));
    let _ = std::fs::remove_file(&log);
    let toml = format!(
        "verbose = true\napp_store = \"memory\"\nadmin_token = \"{ADMIN_TOKEN}\"\n{DEFAULT_TOML}"
    );
    let mut node = NodeProcess::start_logging(&toml, &log).await;
    let auth = format!("Bearer {ADMIN_TOKEN}");
    let call = |method: &'static str, path: &'static str, body: String| {
        let auth = auth.clone();
        let admin = node.admin;
        async move { raw_http_with(admin, method, path, &[("Authorization", &auth)], &body).await }
    };
    let created = call(
        "POST",
        "/admin/apps",
        json!({"id": "rt", "key": "rt-key", "secret": STORE_SECRET}).to_string(),
    )
    .await;
    assert_eq!(created.status, 201);
    let rotated = call("POST", "/admin/apps/rt/rotate-secret", String::new()).await;
    let new_secret = rotated.body["secret"].as_str().unwrap().to_owned();
    let mut bodies = Vec::new();
    for (method, path, body) in [
        ("GET", "/admin/apps", String::new()),
        ("GET", "/admin/apps/rt", String::new()),
        (
            "PATCH",
            "/admin/apps/rt",
            json!({"enabled": false}).to_string(),
        ),
        (
            "PATCH",
            "/admin/apps/rt",
            json!({"secret": "x"}).to_string(),
        ),
        (
            "POST",
            "/admin/apps",
            json!({"id": "rt", "key": "k2"}).to_string(),
        ),
    ] {
        bodies.push(call(method, path, body).await.body.to_string());
    }
    node.signal("TERM");
    assert_eq!(node.wait_exit(15).await, Some(0));

    // A SQL store whose database is down, at debug level.
    let db_toml = format!(
        "app_store = \"postgres\"\napp_store_url = \"postgres://herald:{DB_PASSWORD}@127.0.0.1:9/apps\"\napp_cache_secs = 1\n{DEFAULT_TOML}"
    );
    let db_log = std::env::temp_dir().join(format!("herald-secrets-db-{}.log", std::process::id()));
    let mut db_node = NodeProcess::start_logging_unready(&db_toml, &db_log).await;
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    db_node.signal("TERM");
    assert_eq!(db_node.wait_exit(15).await, Some(0));

    let logged =
        std::fs::read_to_string(&log).unwrap() + &std::fs::read_to_string(&db_log).unwrap();
    let _ = std::fs::remove_file(&log);
    let _ = std::fs::remove_file(&db_log);
    assert!(
        logged.contains("app created through the admin API"),
        "{logged}"
    );
    assert!(logged.contains("rotate-secret"), "{logged}");
    for secret in [STORE_SECRET, new_secret.as_str(), ADMIN_TOKEN, DB_PASSWORD] {
        for (i, line) in logged.lines().enumerate() {
            assert!(
                !line.contains(secret),
                "log line {i} holds a secret: {line}"
            );
        }
        for body in &bodies {
            assert!(!body.contains(secret), "an answer holds a secret: {body}");
        }
    }
}

/// `herald check-config`: the effective settings with every secret masked; a bad key named.
#[test]
fn check_config_prints_the_effective_settings_without_secrets() {
    let dir = std::env::temp_dir().join(format!("herald-check-config-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let good = dir.join("good.toml");
    std::fs::write(
        &good,
        format!(
            "redis_url = \"redis://:{DB_PASSWORD}@127.0.0.1:6379/0\"\nadmin_token = \"{ADMIN_TOKEN}\"\n\
[[apps]]\nid = \"a\"\nkey = \"k\"\nsecret = \"{OTHER_SECRET}\"\n\
[[apps.webhooks]]\nurl = \"http://u:{HOOK_PASSWORD}@127.0.0.1:9/h?token={HOOK_TOKEN}\"\nheaders = {{ Authorization = \"{STORE_SECRET}\" }}\n"
        ),
    )
    .unwrap();
    let run = |file: &std::path::Path, env: &[(&str, &str)]| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_herald"));
        cmd.arg("check-config").arg(file);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let out = cmd.output().unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (ok, out, err) = run(&good, &[("HERALD_MAX_CONNECTIONS", "777")]);
    assert!(ok, "{err}");
    assert!(err.contains("configuration OK"), "{err}");
    // Layered: the file, the environment, the defaults.
    assert!(out.contains("max_connections = 777"), "{out}");
    assert!(out.contains("id = \"a\""), "{out}");
    assert!(out.contains("drain_secs = 10"), "{out}");
    for secret in [
        DB_PASSWORD,
        ADMIN_TOKEN,
        OTHER_SECRET,
        HOOK_PASSWORD,
        HOOK_TOKEN,
        STORE_SECRET,
    ] {
        assert!(
            !out.contains(secret) && !err.contains(secret),
            "{secret} shown:\n{out}"
        );
    }
    let bad = dir.join("bad.toml");
    std::fs::write(&bad, "drain_secs = 5\nmax_connections = 0\n").unwrap();
    let (ok, out, err) = run(&bad, &[]);
    assert!(!ok && out.is_empty());
    assert!(
        err.contains("max_connections: must be greater than 0"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
