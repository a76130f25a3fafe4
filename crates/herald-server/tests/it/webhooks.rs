//! Webhooks: every kind, signed, batched, debounced, retried, dead-lettered (PROTOCOL.md §7).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::Notify;

use crate::support::*;

/// One webhook request as received.
#[derive(Clone, Debug)]
pub struct Received {
    pub content_type: String,
    pub key: String,
    pub signature: String,
    pub extra: Option<String>,
    pub body: String,
}

impl Received {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap()
    }

    pub fn events(&self) -> Vec<Value> {
        self.json()["events"].as_array().unwrap().clone()
    }
}

/// A real HTTP receiver on a free port that records requests and can fail the first N.
pub struct Receiver {
    pub url: String,
    got: Arc<Mutex<Vec<Received>>>,
    arrived: Arc<Notify>,
    failures_left: Arc<AtomicUsize>,
    pub attempts: Arc<AtomicUsize>,
    hangs_left: Arc<AtomicUsize>,
}

impl Receiver {
    pub async fn start(fail_first: usize) -> Receiver {
        Receiver::start_with(fail_first, 0).await
    }

    /// Fails the first `fail_first` requests with 500, then leaves the next `hang_first`
    /// unanswered for 5 s (past any sender timeout), then accepts.
    pub async fn start_with(fail_first: usize, hang_first: usize) -> Receiver {
        Receiver::start_inner(fail_first, hang_first, None).await
    }

    /// An HTTPS receiver for `localhost` with a fresh self-signed certificate; also returns the
    /// certificate's PEM (what `webhook_ca_file` must trust).
    pub async fn start_tls() -> (Receiver, String) {
        let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
        let key = tokio_rustls::rustls::pki_types::PrivateKeyDer::try_from(
            cert.signing_key.serialize_der(),
        )
        .unwrap();
        let config = tokio_rustls::rustls::ServerConfig::builder_with_provider(Arc::new(
            tokio_rustls::rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert.cert.der().clone()], key)
        .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        (
            Receiver::start_inner(0, 0, Some(acceptor)).await,
            cert.cert.pem(),
        )
    }

    async fn start_inner(
        fail_first: usize,
        hang_first: usize,
        tls: Option<tokio_rustls::TlsAcceptor>,
    ) -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let url = match tls {
            Some(_) => format!("https://localhost:{port}/webhook"),
            None => format!("http://127.0.0.1:{port}/webhook"),
        };
        let got: Arc<Mutex<Vec<Received>>> = Arc::default();
        let arrived = Arc::new(Notify::new());
        let failures_left = Arc::new(AtomicUsize::new(fail_first));
        let attempts = Arc::new(AtomicUsize::new(0));
        let hangs_left = Arc::new(AtomicUsize::new(hang_first));
        let (g, a, f, n, hl) = (
            got.clone(),
            arrived.clone(),
            failures_left.clone(),
            attempts.clone(),
            hangs_left.clone(),
        );
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let (g, a, f, n, hl) = (g.clone(), a.clone(), f.clone(), n.clone(), hl.clone());
                let tls = tls.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |req: Request<hyper::body::Incoming>| {
                        let (g, a, f, n, hl) =
                            (g.clone(), a.clone(), f.clone(), n.clone(), hl.clone());
                        async move {
                            n.fetch_add(1, Ordering::SeqCst);
                            let h = |name: &str| {
                                req.headers()
                                    .get(name)
                                    .map(|v| v.to_str().unwrap().to_owned())
                            };
                            let (content_type, key, signature, extra) = (
                                h("content-type").unwrap_or_default(),
                                h("x-pusher-key").unwrap_or_default(),
                                h("x-pusher-signature").unwrap_or_default(),
                                h("x-extra"),
                            );
                            let body = String::from_utf8(
                                req.into_body().collect().await.unwrap().to_bytes().to_vec(),
                            )
                            .unwrap();
                            if f.load(Ordering::SeqCst) > 0 {
                                f.fetch_sub(1, Ordering::SeqCst);
                                let mut res =
                                    Response::new(Full::new(Bytes::from_static(b"try later")));
                                *res.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
                                return Ok::<_, std::convert::Infallible>(res);
                            }
                            if hl.load(Ordering::SeqCst) > 0 {
                                hl.fetch_sub(1, Ordering::SeqCst);
                                tokio::time::sleep(Duration::from_secs(5)).await;
                                return Ok(Response::new(Full::new(Bytes::new())));
                            }
                            g.lock().unwrap().push(Received {
                                content_type,
                                key,
                                signature,
                                extra,
                                body,
                            });
                            a.notify_waiters();
                            Ok(Response::new(Full::new(Bytes::new())))
                        }
                    });
                    let http = hyper::server::conn::http1::Builder::new();
                    match tls {
                        Some(acceptor) => {
                            if let Ok(stream) = acceptor.accept(stream).await {
                                let _ = http.serve_connection(TokioIo::new(stream), service).await;
                            }
                        }
                        None => {
                            let _ = http.serve_connection(TokioIo::new(stream), service).await;
                        }
                    }
                });
            }
        });
        Receiver {
            url,
            got,
            arrived,
            failures_left,
            attempts,
            hangs_left,
        }
    }

    /// Every event received so far, in order.
    pub fn events(&self) -> Vec<Value> {
        self.got
            .lock()
            .unwrap()
            .iter()
            .flat_map(Received::events)
            .collect()
    }

    pub fn requests(&self) -> Vec<Received> {
        self.got.lock().unwrap().clone()
    }

    /// Waits (up to 10 s) until at least `n` events arrived; returns them all.
    pub async fn wait_events(&self, n: usize) -> Vec<Value> {
        self.wait_events_within(n, 10).await
    }

    /// `wait_events` with its own deadline, for work that takes longer (reaping, takeover).
    pub async fn wait_events_within(&self, n: usize, secs: u64) -> Vec<Value> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
        loop {
            let notified = self.arrived.notified();
            let events = self.events();
            if events.len() >= n {
                return events;
            }
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            assert!(
                !left.is_zero(),
                "only {} of {n} webhook events arrived: {events:?}",
                events.len()
            );
            let _ = tokio::time::timeout(left.min(Duration::from_millis(100)), notified).await;
        }
    }

    /// Stops failing: every later request succeeds.
    pub fn heal(&self) {
        self.failures_left.store(0, Ordering::SeqCst);
    }

    pub fn failures_left(&self) -> usize {
        self.failures_left.load(Ordering::SeqCst)
    }
}

/// Node settings for webhook tests: short batches and debounce, fast retries.
pub fn webhook_toml(url: &str, extra_app: &str) -> String {
    format!(
        "admin_token = \"{ADMIN_TOKEN}\"\nwebhook_batch_ms = 50\nwebhook_debounce_ms = 300\nwebhook_retry_first_ms = 100\nwebhook_retry_budget_secs = 1\n\
[[apps]]\nid = \"app-1\"\nkey = \"app-key\"\nsecret = \"app-secret\"\nclient_events = true\n{extra_app}\n\
[[apps.webhooks]]\nurl = \"{url}\"\nheaders = {{ \"X-Extra\" = \"yes\" }}\n"
    )
}

/// `name:channel`, and `:user` for membership events: what a test compares.
pub fn label(e: &Value) -> String {
    let mut s = format!(
        "{}:{}",
        e["name"].as_str().unwrap(),
        e["channel"].as_str().unwrap()
    );
    if let Some(user) = e["user_id"].as_str() {
        s = format!("{s}:{user}");
    }
    s
}

fn names(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .map(|e| {
            format!(
                "{}:{}",
                e["name"].as_str().unwrap(),
                e["channel"].as_str().unwrap()
            )
        })
        .collect()
}

#[tokio::test]
async fn requests_are_signed_with_exact_headers_and_body() {
    let rx = Receiver::start(0).await;
    let server = TestServer::with_config(&webhook_toml(&rx.url, "")).await;
    let mut c = server.connect().await;
    c.subscribe("news").await;
    rx.wait_events(1).await;
    let r = &rx.requests()[0];
    assert_eq!(r.content_type, "application/json");
    assert_eq!(r.key, KEY);
    assert_eq!(r.extra.as_deref(), Some("yes"));
    let secret = herald_protocol::Secret::new(SECRET);
    assert!(
        herald_protocol::signature::verify(&secret, r.body.as_bytes(), &r.signature),
        "signature of {}",
        r.body
    );
    let body = r.json();
    assert!(body["time_ms"].as_u64().unwrap() > 1_600_000_000_000);
    assert_eq!(
        body["events"],
        json!([{"name": "channel_occupied", "channel": "news"}])
    );
}

#[tokio::test]
async fn occupied_then_vacated_after_the_debounce() {
    let rx = Receiver::start(0).await;
    let server = TestServer::with_config(&webhook_toml(&rx.url, "")).await;
    let mut a = server.connect().await;
    let mut b = server.connect().await;
    a.subscribe("room").await;
    b.subscribe("room").await;
    a.close().await;
    b.close().await;
    let events = rx.wait_events(2).await;
    assert_eq!(
        names(&events),
        ["channel_occupied:room", "channel_vacated:room"]
    );
}

#[tokio::test]
async fn a_rejoin_within_the_debounce_suppresses_both_webhooks() {
    let rx = Receiver::start(0).await;
    let server = TestServer::with_config(&webhook_toml(&rx.url, "")).await;
    let mut a = server.connect().await;
    a.subscribe_signed("presence-r", Some(r#"{"user_id":"u1"}"#))
        .await;
    rx.wait_events(2).await;
    a.close().await;
    let mut again = server.connect().await;
    again
        .subscribe_signed("presence-r", Some(r#"{"user_id":"u1"}"#))
        .await;
    // Past the debounce: a marker event proves the queue moved on without the removal.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let mut marker = server.connect().await;
    marker.subscribe("marker").await;
    let events = rx.wait_events(3).await;
    assert_eq!(
        names(&events),
        [
            "channel_occupied:presence-r",
            "member_added:presence-r",
            "channel_occupied:marker"
        ]
    );
}

#[tokio::test]
async fn member_and_client_events_carry_their_fields() {
    let rx = Receiver::start(0).await;
    let server = TestServer::with_config(&webhook_toml(&rx.url, "")).await;
    let mut a = server.connect().await;
    let mut b = server.connect().await;
    a.subscribe_signed("presence-p", Some(r#"{"user_id":"ann"}"#))
        .await;
    b.subscribe_signed("presence-p", Some(r#"{"user_id":"bob"}"#))
        .await;
    a.send(json!({"event": "client-x", "channel": "presence-p", "data": {"k": 1}}))
        .await;
    b.close().await;
    let events = rx.wait_events(5).await;
    assert_eq!(
        events[1],
        json!({"name": "member_added", "channel": "presence-p", "user_id": "ann"})
    );
    assert_eq!(
        events[2],
        json!({"name": "member_added", "channel": "presence-p", "user_id": "bob"})
    );
    assert_eq!(
        events[3],
        json!({"name": "client_event", "channel": "presence-p", "event": "client-x", "data": "{\"k\":1}", "socket_id": a.socket_id, "user_id": "ann"})
    );
    assert_eq!(
        events[4],
        json!({"name": "member_removed", "channel": "presence-p", "user_id": "bob"})
    );
}

#[tokio::test]
async fn cache_miss_is_sent_once_per_window_and_server_to_user_never() {
    let rx = Receiver::start(0).await;
    let server = TestServer::with_config(&webhook_toml(&rx.url, "")).await;
    let mut a = server.connect().await;
    let mut b = server.connect().await;
    a.subscribe("cache-x").await;
    b.subscribe("cache-x").await;
    b.signin(r#"{"id":"u"}"#).await;
    b.subscribe("#server-to-user-u").await;
    let mut marker = server.connect().await;
    marker.subscribe("marker").await;
    let events = rx.wait_events(3).await;
    assert_eq!(
        names(&events),
        [
            "channel_occupied:cache-x",
            "cache_miss:cache-x",
            "channel_occupied:marker"
        ]
    );
}

#[tokio::test]
async fn events_are_batched_and_filtered_per_endpoint() {
    let all = Receiver::start(0).await;
    let presence_only = Receiver::start(0).await;
    let extra = format!(
        "\n[[apps.webhooks]]\nurl = \"{}\"\nevent_types = [\"member_added\"]\nfilter = {{ prefix = \"presence-\" }}\n",
        presence_only.url
    );
    let toml = webhook_toml(&all.url, "")
        .replace("webhook_batch_ms = 50", "webhook_batch_ms = 300")
        + &extra;
    let server = TestServer::with_config(&toml).await;
    let mut c = server.connect().await;
    for ch in ["a", "b", "c"] {
        c.subscribe(ch).await;
    }
    c.subscribe_signed("presence-z", Some(r#"{"user_id":"z"}"#))
        .await;
    let events = all.wait_events(5).await;
    assert_eq!(events.len(), 5);
    assert_eq!(all.requests().len(), 1, "one batch within the window");
    let filtered = presence_only.wait_events(1).await;
    assert_eq!(
        filtered,
        vec![json!({"name": "member_added", "channel": "presence-z", "user_id": "z"})]
    );
    let secret = herald_protocol::Secret::new(SECRET);
    for r in all.requests().iter().chain(presence_only.requests().iter()) {
        assert!(herald_protocol::signature::verify(
            &secret,
            r.body.as_bytes(),
            &r.signature
        ));
    }
}

#[tokio::test]
async fn failed_deliveries_are_retried_then_dead_lettered() {
    let flaky = Receiver::start(2).await;
    let server = TestServer::with_config(&webhook_toml(&flaky.url, "")).await;
    let mut c = server.connect().await;
    c.subscribe("retry-me").await;
    assert_eq!(flaky.wait_events(1).await.len(), 1);
    assert_eq!(flaky.failures_left(), 0);
    assert_eq!(flaky.attempts.load(Ordering::SeqCst), 3);

    let down = Receiver::start(usize::MAX).await;
    // An endpoint URL with credentials: listings show it masked.
    let with_credentials =
        down.url.replace("http://", "http://ops:hook-password@") + "?token=hook-token";
    let server = TestServer::with_config(&webhook_toml(&with_credentials, "")).await;
    let mut c = server.connect().await;
    c.subscribe("lost").await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let r = admin_http(server.admin, "GET", "/webhooks/dead-letters").await;
        let letters = r.body["dead_letters"].as_array().unwrap().clone();
        if !letters.is_empty() {
            assert_eq!(
                letters[0]["event"],
                json!({"name": "channel_occupied", "channel": "lost"})
            );
            let masked = down.url.replace("http://", "http://ops:***@") + "?token=***";
            assert_eq!(letters[0]["url"], masked.as_str());
            assert!(letters[0]["reason"].as_str().unwrap().contains("500"));
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "nothing was dead-lettered"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(down.attempts.load(Ordering::SeqCst) >= 3);
    // The endpoint is fixed: the operator replays the dead letters.
    down.heal();
    let r = admin_http(server.admin, "POST", "/webhooks/dead-letters/replay").await;
    assert_eq!((r.status, r.body["replayed"].as_u64()), (200, Some(1)));
    assert_eq!(
        down.wait_events(1).await[0],
        json!({"name": "channel_occupied", "channel": "lost"})
    );
    let r = admin_http(server.admin, "GET", "/webhooks/dead-letters").await;
    assert_eq!(r.body, json!({"dead_letters": []}));
}

#[tokio::test]
async fn dead_letters_need_the_admin_token() {
    let rx = Receiver::start(0).await;
    // No admin_token: the surfaces are off, and say how to turn them on.
    let toml = webhook_toml(&rx.url, "").replace(&format!("admin_token = \"{ADMIN_TOKEN}\"\n"), "");
    let server = TestServer::with_config(&toml).await;
    for (method, path) in [
        ("GET", "/webhooks/dead-letters"),
        ("POST", "/webhooks/dead-letters/replay"),
    ] {
        let r = admin_http(server.admin, method, path).await;
        assert_eq!(r.status, 404, "{method} {path}");
        assert!(
            r.body["error"].as_str().unwrap().contains("admin_token"),
            "{}",
            r.body
        );
    }

    let server = TestServer::with_config(&webhook_toml(&rx.url, "")).await;
    let bearer = format!("Bearer {ADMIN_TOKEN}");
    let basic = format!("Basic {ADMIN_TOKEN}");
    for headers in [
        vec![],
        vec![("Authorization", "Bearer wrong-token-0000")],
        vec![("Authorization", basic.as_str())],
        vec![("Authorization", "Bearer")],
    ] {
        for (method, path) in [
            ("GET", "/webhooks/dead-letters"),
            ("POST", "/webhooks/dead-letters/replay"),
        ] {
            let r = raw_http_with(server.admin, method, path, &headers, "").await;
            assert_eq!(r.status, 401, "{method} {path} {headers:?}");
            assert!(!r.body.to_string().contains("dead_letters"));
        }
    }
    // What a cross-site form or fetch without a preflight can send: refused.
    let r = raw_http_with(
        server.admin,
        "POST",
        "/webhooks/dead-letters/replay",
        &[
            ("Authorization", bearer.as_str()),
            ("Content-Type", "text/plain"),
        ],
        "",
    )
    .await;
    assert_eq!(r.status, 415, "{}", r.body);
    let r = admin_http(server.admin, "POST", "/webhooks/dead-letters/replay").await;
    assert_eq!((r.status, &r.body), (200, &json!({"replayed": 0})));
    // Probes stay open.
    for path in ["/metrics", "/health", "/ready", "/usage"] {
        assert_eq!(
            raw_http(server.admin, "GET", path, "").await.status,
            200,
            "{path}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_decides_each_transition_once() {
    let rx = Receiver::start(0).await;
    let redis = herald_redis::test_support::RedisServer::start();
    let toml = cluster_toml(&redis.url(), &webhook_toml(&rx.url, ""));
    let mut nodes = Vec::new();
    for _ in 0..3 {
        nodes.push(TestServer::with_config(&toml).await);
    }
    for n in &nodes {
        n.wait_ready(true).await;
    }
    let mut clients = Vec::new();
    for n in &nodes {
        clients.push(n.connect().await);
    }
    let joins = clients
        .iter_mut()
        .map(|c| c.subscribe_signed("presence-once", Some(r#"{"user_id":"same"}"#)));
    futures_util::future::join_all(joins).await;
    for c in clients.drain(..) {
        c.close().await;
    }
    let mut marker = nodes[0].connect().await;
    tokio::time::sleep(Duration::from_millis(700)).await;
    marker.subscribe("marker").await;
    let events = rx.wait_events(5).await;
    // Each node queues what it decided, so across nodes only the set is fixed, not the order.
    let mut got = names(&events);
    got.sort();
    assert_eq!(
        got,
        [
            "channel_occupied:marker",
            "channel_occupied:presence-once",
            "channel_vacated:presence-once",
            "member_added:presence-once",
            "member_removed:presence-once"
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entries_held_by_a_killed_node_are_delivered_by_a_survivor() {
    let rx = Receiver::start(usize::MAX).await;
    let redis = herald_redis::test_support::RedisServer::start();
    // A long retry budget: the victim must still hold the entry when it dies.
    let toml = cluster_toml(&redis.url(), &webhook_toml(&rx.url, "")).replace(
        "webhook_retry_budget_secs = 1",
        "webhook_retry_budget_secs = 120",
    );
    let mut victim = NodeProcess::start(&toml).await;
    let mut c = Client::connect(&victim.ws_url(KEY)).await;
    c.subscribe("held").await;
    // Wait until a dispatcher took the entry and failed at least twice.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while rx.attempts.load(Ordering::SeqCst) < 2 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the entry was never attempted"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Only now does a second node exist: the entry is the victim's alone.
    let survivor = TestServer::with_config(&toml).await;
    survivor.wait_ready(true).await;
    victim.kill9();
    rx.heal();
    let events = rx.wait_events(1).await;
    assert_eq!(
        events[0],
        json!({"name": "channel_occupied", "channel": "held"})
    );
    // The survivor, not the dead victim, delivered it (its counter moves once the POST returns).
    let delivered = "herald_webhook_events_total{app=\"app-1\",outcome=\"delivered\"}";
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !survivor
        .state
        .metrics
        .render(&survivor.state.hub)
        .contains(delivered)
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the survivor never counted a delivery"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_targets_receive_signed_batches_in_redis() {
    let redis = herald_redis::test_support::RedisServer::start();
    let apps = "webhook_batch_ms = 50\n[[apps]]\nid = \"app-1\"\nkey = \"app-key\"\nsecret = \"app-secret\"\n[[apps.webhooks]]\nstream = \"my-hooks\"\nevent_types = [\"channel_occupied\"]\n";
    let node = TestServer::with_config(&cluster_toml(&redis.url(), apps)).await;
    node.wait_ready(true).await;
    let mut c = node.connect().await;
    c.subscribe("streamed").await;
    let client = redis::Client::open(redis.url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let entry = loop {
        let reply: redis::streams::StreamRangeReply = redis::cmd("XRANGE")
            .arg("my-hooks")
            .arg("-")
            .arg("+")
            .query_async(&mut conn)
            .await
            .unwrap();
        if let Some(e) = reply.ids.into_iter().next() {
            break e;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "nothing appended to the stream"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let body: String = entry.get("body").unwrap();
    let signature: String = entry.get("signature").unwrap();
    let key: String = entry.get("key").unwrap();
    assert_eq!(key, KEY);
    assert!(herald_protocol::signature::verify(
        &herald_protocol::Secret::new(SECRET),
        body.as_bytes(),
        &signature
    ));
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        body["events"],
        json!([{"name": "channel_occupied", "channel": "streamed"}])
    );
}

#[tokio::test]
async fn a_receiver_that_hangs_past_the_timeout_gets_a_retry() {
    let slow = Receiver::start_with(0, 1).await;
    let toml = format!("webhook_timeout_secs = 1\n{}", webhook_toml(&slow.url, "")).replace(
        "webhook_retry_budget_secs = 1",
        "webhook_retry_budget_secs = 30",
    );
    let server = TestServer::with_config(&toml).await;
    let mut c = server.connect().await;
    c.subscribe("patience").await;
    let events = slow.wait_events(1).await;
    assert_eq!(
        events,
        vec![json!({"name": "channel_occupied", "channel": "patience"})]
    );
    assert_eq!(
        slow.attempts.load(Ordering::SeqCst),
        2,
        "one timed-out attempt, one delivery"
    );
    assert_eq!(slow.hangs_left.load(Ordering::SeqCst), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_debounced_removal_survives_the_node_that_scheduled_it() {
    let rx = Receiver::start(0).await;
    let redis = herald_redis::test_support::RedisServer::start();
    let toml = cluster_toml(&redis.url(), &webhook_toml(&rx.url, ""))
        .replace("webhook_debounce_ms = 300", "webhook_debounce_ms = 1500");
    let survivor = TestServer::with_config(&toml).await;
    survivor.wait_ready(true).await;
    let mut victim = NodeProcess::start(&toml).await;
    let mut c = Client::connect(&victim.ws_url(KEY)).await;
    c.subscribe("short-lived").await;
    assert_eq!(
        names(&rx.wait_events(1).await),
        ["channel_occupied:short-lived"]
    );
    c.close().await;
    // The victim scheduled channel_vacated 1.5 s out; it dies before that.
    let api = survivor.api();
    crate::cluster::poll_until(|| async {
        api.get("/channels/short-lived", &[]).await.body == json!({"occupied": false})
    })
    .await;
    victim.kill9();
    let events = rx.wait_events(2).await;
    assert_eq!(
        names(&events),
        [
            "channel_occupied:short-lived",
            "channel_vacated:short-lived"
        ]
    );
}

#[tokio::test]
async fn https_endpoints_are_verified_against_the_configured_ca() {
    let (rx, cert_pem) = Receiver::start_tls().await;
    let ca = std::env::temp_dir().join(format!(
        "herald-webhook-ca-{}-{}.pem",
        std::process::id(),
        rx.url.len()
    ));
    std::fs::write(&ca, &cert_pem).unwrap();
    let toml = format!(
        "webhook_ca_file = {:?}\n{}",
        ca.display().to_string(),
        webhook_toml(&rx.url, "")
    );
    let server = TestServer::with_config(&toml).await;
    let mut c = server.connect().await;
    c.subscribe("secure").await;
    assert_eq!(
        rx.wait_events(1).await,
        vec![json!({"name": "channel_occupied", "channel": "secure"})]
    );
    std::fs::remove_file(&ca).unwrap();

    // Without the CA the certificate is refused, retried and finally dead-lettered.
    let (untrusted, _) = Receiver::start_tls().await;
    let server = TestServer::with_config(&webhook_toml(&untrusted.url, "")).await;
    let mut c = server.connect().await;
    c.subscribe("refused").await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let r = admin_http(server.admin, "GET", "/webhooks/dead-letters").await;
        if let Some(letter) = r.body["dead_letters"].as_array().unwrap().first() {
            assert!(
                letter["reason"]
                    .as_str()
                    .unwrap()
                    .contains("request failed"),
                "{letter}"
            );
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the untrusted endpoint was not dead-lettered"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(untrusted.events().is_empty());
}
