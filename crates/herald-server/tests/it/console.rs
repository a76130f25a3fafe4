//! The debug console's API on the admin listener: credentials, the cluster-wide state, the live
//! log (Server-Sent Events) gathered from every node, and test events. The page itself is
//! driven in a real browser by tests/compat/console.

use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::*;

const TOKEN: &str = "console-token-for-tests";

fn basic(key: &str, secret: &str) -> String {
    use base64::Engine;
    let creds = base64::engine::general_purpose::STANDARD.encode(format!("{key}:{secret}"));
    format!("Basic {creds}")
}

fn bearer() -> String {
    format!("Bearer {TOKEN}")
}

async fn call(server: &TestServer, method: &str, path: &str, auth: &str, body: &str) -> Reply {
    let headers: Vec<(&str, &str)> = if auth.is_empty() {
        vec![]
    } else {
        vec![("Authorization", auth)]
    };
    raw_http_with(server.admin, method, path, &headers, body).await
}

/// An open SSE stream of the console log.
struct LogStream {
    socket: tokio::net::TcpStream,
    seen: String,
}

impl LogStream {
    async fn open(server: &TestServer, app: &str) -> LogStream {
        let mut socket = tokio::net::TcpStream::connect(server.admin).await.unwrap();
        let req = format!(
            "GET /console/api/apps/{app}/log HTTP/1.1\r\nHost: x\r\nAuthorization: {}\r\n\r\n",
            bearer()
        );
        socket.write_all(req.as_bytes()).await.unwrap();
        let mut s = LogStream {
            socket,
            seen: String::new(),
        };
        s.read_until(|seen| seen.contains(": connected")).await;
        assert!(s.seen.starts_with("HTTP/1.1 200"), "{}", s.seen);
        assert!(
            s.seen.contains("content-type: text/event-stream"),
            "{}",
            s.seen
        );
        s
    }

    async fn read_until(&mut self, done: impl Fn(&str) -> bool) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        let mut buf = [0u8; 8192];
        while !done(&self.seen) {
            let n = tokio::time::timeout_at(deadline, self.socket.read(&mut buf))
                .await
                .unwrap_or_else(|_| panic!("log line not seen within 10 s; got:\n{}", self.seen))
                .unwrap();
            assert!(n > 0, "the log stream ended: {}", self.seen);
            self.seen.push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    }

    /// Takes in whatever arrives within 100 ms.
    async fn poll(&mut self) {
        let mut buf = [0u8; 8192];
        while let Ok(Ok(n)) =
            tokio::time::timeout(Duration::from_millis(100), self.socket.read(&mut buf)).await
        {
            if n == 0 {
                break;
            }
            self.seen.push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    }

    /// Waits for a `log` event whose JSON matches every field of `want`; returns it.
    async fn expect(&mut self, want: Value) -> Value {
        let matches = |line: &str| -> Option<Value> {
            let v: Value = serde_json::from_str(line.strip_prefix("data: ")?).ok()?;
            want.as_object()?
                .iter()
                .all(|(k, w)| &v[k] == w)
                .then_some(v)
        };
        self.read_until(|seen| seen.lines().any(|l| matches(l).is_some()))
            .await;
        self.seen.lines().find_map(matches).unwrap()
    }
}

#[tokio::test]
async fn credentials_unlock_one_app_or_all_and_nothing_else() {
    let server =
        TestServer::with_config(&format!("console_token = \"{TOKEN}\"\n{DEFAULT_TOML}")).await;
    let page = call(&server, "GET", "/console", "", "").await;
    assert_eq!(page.status, 200);
    assert!(
        page.content_type.starts_with("text/html"),
        "{}",
        page.content_type
    );
    for auth in [
        String::new(),
        "Bearer wrong-token-of-length".to_owned(),
        basic(KEY, "wrong"),
        basic("nobody", SECRET),
        "Basic !!!".to_owned(),
    ] {
        let r = call(&server, "GET", "/console/api/apps", &auth, "").await;
        assert_eq!(r.status, 401, "{auth}");
        assert!(r.body["error"].is_string());
    }
    let all = call(&server, "GET", "/console/api/apps", &bearer(), "").await;
    assert_eq!(all.status, 200);
    let ids: Vec<&str> = all.body["apps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 2, "{ids:?}");
    let one = call(&server, "GET", "/console/api/apps", &basic(KEY, SECRET), "").await;
    assert_eq!(
        one.body,
        json!({"apps": [{"id": "app-1", "key": "app-key", "name": "app-1"}]})
    );
    // An app's credentials do not open another app.
    let other = call(
        &server,
        "GET",
        "/console/api/apps/app-off/state",
        &basic(KEY, SECRET),
        "",
    )
    .await;
    assert_eq!(other.status, 404);
    // A disabled app's test event is refused as the HTTP API refuses it.
    let r = call(
        &server,
        "POST",
        "/console/api/apps/app-off/trigger",
        &bearer(),
        r#"{"channel":"c","event":"e","data":"{}"}"#,
    )
    .await;
    assert_eq!(
        (r.status, r.body["error"].as_str()),
        (403, Some("Application disabled"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_log_shows_connections_subscribes_publishes_and_client_events() {
    let server =
        TestServer::with_config(&format!("console_token = \"{TOKEN}\"\n{DEFAULT_TOML}")).await;
    let mut log = LogStream::open(&server, "app-1").await;
    let mut c = server.connect().await;
    let sid = c.socket_id.clone();
    log.expect(json!({"type": "connection_opened", "socket_id": sid}))
        .await;
    c.subscribe_signed("private-room", None).await;
    log.expect(json!({"type": "subscribed", "channel": "private-room"}))
        .await;
    server
        .api()
        .trigger(&["private-room"], "greet", "hello")
        .await;
    let v = log
        .expect(json!({"type": "api_event", "channel": "private-room", "event": "greet"}))
        .await;
    assert_eq!(v["data"], "hello");
    assert_eq!(v["node"], server.state.hub.node_id());
    c.send(json!({"event": "client-typing", "channel": "private-room", "data": {"x": 1}}))
        .await;
    log.expect(json!({"type": "client_event", "event": "client-typing", "data": "{\"x\":1}"}))
        .await;
    c.close().await;
    log.expect(json!({"type": "connection_closed", "socket_id": sid, "code": null}))
        .await;

    // A test event from the console reaches subscribers.
    let mut d = server.connect().await;
    d.subscribe("news").await;
    let body = json!({"channel": "news", "event": "from-console", "data": "{\"a\":1}"}).to_string();
    let r = call(
        &server,
        "POST",
        "/console/api/apps/app-1/trigger",
        &bearer(),
        &body,
    )
    .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(d.expect("from-console").await["data"], "{\"a\":1}");
    let bad = json!({"channel": "no spaces", "event": "e", "data": "x"}).to_string();
    let r = call(
        &server,
        "POST",
        "/console/api/apps/app-1/trigger",
        &bearer(),
        &bad,
    )
    .await;
    assert_eq!(r.status, 400, "{:?}", r.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn any_node_shows_the_whole_clusters_state_and_log() {
    let apps = format!("console_token = \"{TOKEN}\"\n{DEFAULT_TOML}");
    let cluster = TestCluster::with_apps(2, &apps).await;
    let (viewer, other) = (&cluster.nodes[0], &cluster.nodes[1]);
    let mut log = LogStream::open(viewer, "app-1").await;
    // The other node hears of the viewer within a heartbeat, then logs its own events.
    let other_id = other.state.hub.node_id().to_owned();
    let mut c = other.connect().await;
    let mut members = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let mut m = other.connect().await;
        m.subscribe_signed(
            "presence-lobby",
            Some(&format!(r#"{{"user_id":"u{}"}}"#, members.len())),
        )
        .await;
        members.push(m);
        if log.seen.contains(&other_id) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no line from the other node"
        );
        log.poll().await;
    }
    c.subscribe("news").await;
    log.expect(json!({"type": "subscribed", "channel": "news", "node": other_id}))
        .await;
    // The state counts both nodes' connections once their reports arrive.
    let want = members.len() as u64 + 1;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let s = call(
            viewer,
            "GET",
            "/console/api/apps/app-1/state",
            &bearer(),
            "",
        )
        .await;
        assert_eq!(s.status, 200);
        let lobby = s.body["channels"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == "presence-lobby")
            .cloned();
        if s.body["nodes"] == 2 && s.body["connections"] == want {
            let lobby = lobby.expect("presence-lobby listed");
            assert_eq!(lobby["user_count"], members.len());
            assert_eq!(lobby["members"].as_array().unwrap().len(), members.len());
            assert_eq!(s.body["node_connections"], 0);
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{}", s.body);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
