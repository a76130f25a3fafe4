//! `TestServer` (a node on port 0, stopped on drop), `Client` (a raw WebSocket client) and
//! `Api` (a signed HTTP API client).

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::{SinkExt, StreamExt};
use herald_protocol::signature::{
    api_request_payload, auth_token, body_md5, channel_auth_payload, sign, signin_payload,
};
use herald_protocol::{ChannelName, Secret, SocketId};
use herald_server::config::{Config, Sources};
use herald_server::{Listeners, State, build_state, run};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub const KEY: &str = "app-key";
pub const SECRET: &str = "app-secret";
pub const APP_ID: &str = "app-1";

/// The app most tests use: every feature on.
pub const DEFAULT_TOML: &str = r#"
[[apps]]
id = "app-1"
key = "app-key"
secret = "app-secret"
client_events = true

[[apps]]
id = "app-off"
key = "off-key"
secret = "off-secret"
enabled = false
"#;

/// How long any expected frame may take before the test fails.
const WAIT: Duration = Duration::from_secs(5);

pub struct TestServer {
    pub addr: std::net::SocketAddr,
    /// The separate HTTP API listener, when there is one.
    pub api_addr: Option<std::net::SocketAddr>,
    pub admin: std::net::SocketAddr,
    pub state: Arc<State>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl TestServer {
    pub async fn start() -> TestServer {
        TestServer::with_config(DEFAULT_TOML).await
    }

    pub async fn with_config(toml: &str) -> TestServer {
        TestServer::start_with(toml, false).await
    }

    /// A node whose HTTP API has its own listener (`api_bind`).
    pub async fn with_api_listener(toml: &str) -> TestServer {
        TestServer::start_with(toml, true).await
    }

    async fn start_with(toml: &str, separate_api: bool) -> TestServer {
        let config = Config::load(Sources {
            toml: Some(toml),
            ..Sources::default()
        })
        .expect("test config");
        let public = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let admin = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = public.local_addr().unwrap();
        let admin_addr = admin.local_addr().unwrap();
        let api = if separate_api {
            Some(TcpListener::bind("127.0.0.1:0").await.unwrap())
        } else {
            None
        };
        let api_addr = api.as_ref().map(|l| l.local_addr().unwrap());
        let state = build_state(config).expect("state");
        let (tx, rx) = oneshot::channel();
        let task = tokio::spawn(run(
            state.clone(),
            Listeners { public, api, admin },
            async {
                let _ = rx.await;
            },
        ));
        let task = tokio::spawn(async move {
            let _ = task.await;
        });
        TestServer {
            api_addr,
            addr,
            admin: admin_addr,
            state,
            stop: Some(tx),
            task: Some(task),
        }
    }

    pub fn ws_url(&self, key: &str) -> String {
        format!(
            "ws://{}/app/{key}?protocol=7&client=js&version=8.4.0&flash=false",
            self.addr
        )
    }

    pub async fn connect(&self) -> Client {
        Client::connect(&self.ws_url(KEY)).await
    }

    pub fn api(&self) -> Api {
        Api {
            addr: self.api_addr.unwrap_or(self.addr),
            app_id: APP_ID.into(),
            key: KEY.into(),
            secret: SECRET.into(),
        }
    }

    /// Stops the server and waits until it has closed every connection.
    pub async fn shutdown(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }
}

/// `n` nodes on one fresh `redis-server`.
pub struct TestCluster {
    pub nodes: Vec<TestServer>,
    pub redis: herald_redis::test_support::RedisServer,
}

impl TestCluster {
    pub async fn start(n: usize) -> TestCluster {
        TestCluster::with_apps(n, DEFAULT_TOML).await
    }

    pub async fn with_apps(n: usize, apps: &str) -> TestCluster {
        let redis = herald_redis::test_support::RedisServer::start();
        let mut nodes = Vec::new();
        for _ in 0..n {
            nodes.push(TestServer::with_config(&cluster_toml(&redis.url(), apps)).await);
        }
        for node in &nodes {
            node.wait_ready(true).await;
        }
        TestCluster { nodes, redis }
    }
}

/// A Redis the cluster scenarios run on. Several scenarios share one (each `Nodes::start`
/// takes a fresh key prefix), so a TLS server or a Sentinel set is started once.
pub struct Topology {
    pub name: &'static str,
    pub url: String,
    /// Extra top-level keys (the TLS files).
    pub toml: String,
}

static PREFIXES: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

impl Topology {
    pub fn plain(redis: &herald_redis::test_support::RedisServer) -> Topology {
        Topology {
            name: "a plain redis-server",
            url: redis.url(),
            toml: String::new(),
        }
    }

    /// A TLS `RedisServer` whose certificate `ca` signed.
    pub fn tls(
        redis: &herald_redis::test_support::RedisServer,
        ca: &herald_redis::test_support::TestCa,
    ) -> Topology {
        Topology {
            name: "a TLS redis-server with a password",
            url: redis.url(),
            toml: format!(
                "redis_tls_ca_file = {}\n",
                herald_redis::test_support::toml_path(&ca.ca)
            ),
        }
    }

    pub fn sentinel(set: &herald_redis::test_support::SentinelSet) -> Topology {
        match &set.options.tls {
            None => Topology {
                name: "a Sentinel set",
                url: set.url(),
                toml: String::new(),
            },
            Some(t) => Topology {
                name: "a TLS Sentinel set",
                url: set.url(),
                toml: format!(
                    "redis_tls_ca_file = {}\n",
                    herald_redis::test_support::toml_path(&t.ca)
                ),
            },
        }
    }

    pub fn redis_cluster(c: &herald_redis::test_support::RedisCluster) -> Topology {
        match &c.tls {
            None => Topology {
                name: "a Redis Cluster (3 masters, 3 replicas)",
                url: c.url(),
                toml: String::new(),
            },
            Some(t) => Topology {
                name: "a TLS Redis Cluster",
                url: c.url(),
                toml: format!(
                    "redis_tls_ca_file = {}\n",
                    herald_redis::test_support::toml_path(&t.ca)
                ),
            },
        }
    }

    /// Node settings on this topology under a key prefix of their own.
    pub fn node_toml(&self, prefix: &str, apps: &str) -> String {
        format!(
            "redis_url = \"{}\"\nredis_prefix = \"{prefix}\"\nheartbeat_interval_secs = 1\nnode_timeout_secs = 3\n{}{apps}",
            self.url, self.toml
        )
    }

    pub fn fresh_prefix(&self) -> String {
        format!(
            "s{}",
            PREFIXES.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        )
    }
}

/// `n` in-process nodes on a `Topology`, ready.
pub struct Nodes {
    pub nodes: Vec<TestServer>,
    /// Their configuration, for another node (a `NodeProcess`) in the same cluster.
    pub toml: String,
}

impl Nodes {
    pub async fn start(t: &Topology, n: usize, apps: &str) -> Nodes {
        let toml = t.node_toml(&t.fresh_prefix(), apps);
        let mut nodes = Vec::new();
        for _ in 0..n {
            nodes.push(TestServer::with_config(&toml).await);
        }
        for node in &nodes {
            node.wait_ready(true).await;
        }
        Nodes { nodes, toml }
    }
}

/// Node settings for tests: short heartbeats so dead nodes are found within seconds.
pub fn cluster_toml(redis_url: &str, apps: &str) -> String {
    format!(
        "redis_url = \"{redis_url}\"\nredis_prefix = \"t\"\nheartbeat_interval_secs = 1\nnode_timeout_secs = 3\n{apps}"
    )
}

impl TestServer {
    /// The Prometheus text of the admin listener.
    pub async fn metrics(&self) -> String {
        raw_http(self.admin, "GET", "/metrics", "")
            .await
            .body
            .as_str()
            .expect("metrics are text")
            .to_owned()
    }

    /// One sample of the Prometheus text, by its name with labels exactly as exposed
    /// (`herald_x{app="a"}`); None when absent.
    pub async fn metric(&self, series: &str) -> Option<f64> {
        let text = self.metrics().await;
        text.lines()
            .filter(|l| !l.starts_with('#'))
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
    }

    /// Polls `/ready` until it answers as wanted (fails after 15 s).
    pub async fn wait_ready(&self, ready: bool) {
        wait_ready_at(self.admin, ready).await;
    }
}

/// Polls the admin listener's `/ready` until it answers 200 (`ready`) or 503 (fails after 15 s).
pub async fn wait_ready_at(admin: std::net::SocketAddr, ready: bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let status = raw_http(admin, "GET", "/ready", "").await.status;
        if (status == 200) == ready {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "/ready never became {ready}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A real `herald` process (for crash tests: it can be killed with SIGKILL).
pub struct NodeProcess {
    child: std::process::Child,
    pub addr: std::net::SocketAddr,
    pub admin: std::net::SocketAddr,
    config_path: std::path::PathBuf,
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl NodeProcess {
    pub async fn start(toml: &str) -> NodeProcess {
        NodeProcess::spawn(toml, None).await
    }

    /// A node of another herald build (the previous release, for mixed-version clusters).
    pub async fn start_binary(binary: &std::path::Path, toml: &str) -> NodeProcess {
        NodeProcess::spawn_binary(binary, toml, None, true).await
    }

    /// Starts with `HERALD_LOG=debug`, stdout and stderr appended to `log`.
    pub async fn start_logging(toml: &str, log: &std::path::Path) -> NodeProcess {
        NodeProcess::spawn(toml, Some(log)).await
    }

    /// `start_logging` for a node that cannot become ready (its store is unreachable): waits
    /// only for its admin listener.
    pub async fn start_logging_unready(toml: &str, log: &std::path::Path) -> NodeProcess {
        let binary = std::path::Path::new(env!("CARGO_BIN_EXE_herald"));
        NodeProcess::spawn_binary(binary, toml, Some(log), false).await
    }

    async fn spawn(toml: &str, log: Option<&std::path::Path>) -> NodeProcess {
        let binary = std::path::Path::new(env!("CARGO_BIN_EXE_herald"));
        NodeProcess::spawn_binary(binary, toml, log, true).await
    }

    async fn spawn_binary(
        binary: &std::path::Path,
        toml: &str,
        log: Option<&std::path::Path>,
        ready: bool,
    ) -> NodeProcess {
        let config_path = std::env::temp_dir().join(format!(
            "herald-node-{}-{}.toml",
            std::process::id(),
            free_port()
        ));
        std::fs::write(&config_path, toml).unwrap();
        let (port, admin_port) = (free_port(), free_port());
        let mut cmd = std::process::Command::new(binary);
        cmd.arg("--config").arg(&config_path).args([
            "--bind",
            &format!("127.0.0.1:{port}"),
            "--metrics-bind",
            &format!("127.0.0.1:{admin_port}"),
        ]);
        match log {
            None => {
                cmd.env("HERALD_LOG", "warn")
                    .stdout(std::process::Stdio::null());
            }
            Some(path) => {
                let file = std::fs::File::options()
                    .create(true)
                    .append(true)
                    .open(path)
                    .unwrap();
                cmd.env("HERALD_LOG", "debug")
                    .stdout(file.try_clone().unwrap())
                    .stderr(file);
            }
        }
        let child = cmd.spawn().expect("start the herald binary");
        let node = NodeProcess {
            child,
            addr: format!("127.0.0.1:{port}").parse().unwrap(),
            admin: format!("127.0.0.1:{admin_port}").parse().unwrap(),
            config_path,
        };
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        loop {
            if TcpStream::connect(node.admin).await.is_ok()
                && (!ready || raw_http(node.admin, "GET", "/ready", "").await.status == 200)
            {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "herald process never became ready"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        node
    }

    pub fn ws_url(&self, key: &str) -> String {
        format!(
            "ws://{}/app/{key}?protocol=7&client=js&version=8.4.0",
            self.addr
        )
    }

    /// One sample of the node's Prometheus text (see `TestServer::metric`).
    pub async fn metric(&self, series: &str) -> Option<f64> {
        let reply = raw_http(self.admin, "GET", "/metrics", "").await;
        let text = reply.body.as_str().expect("metrics are text").to_owned();
        text.lines()
            .filter(|l| !l.starts_with('#'))
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
    }

    /// The process's resident memory, from /proc (this node's alone, unlike an in-process
    /// server sharing the test process with every other test).
    pub fn rss_bytes(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .expect("the node's /proc status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map_or(0, |kb| kb * 1024)
    }

    /// Polls `/ready` until it answers as wanted (fails after 15 s).
    pub async fn wait_ready(&self, ready: bool) {
        wait_ready_at(self.admin, ready).await;
    }

    /// A signed HTTP API client of the test app on this node.
    pub fn api(&self) -> Api {
        Api {
            addr: self.addr,
            app_id: APP_ID.into(),
            key: KEY.into(),
            secret: SECRET.into(),
        }
    }

    /// Sends a signal by name (`TERM`, `INT`) with the system's `kill`.
    pub fn signal(&self, name: &str) {
        let status = std::process::Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{name} failed");
    }

    /// Waits up to `secs` for the process to exit; its exit code.
    pub async fn wait_exit(&mut self, secs: u64) -> Option<i32> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code();
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "herald did not exit within {secs} s"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// SIGKILL: no cleanup, as in a crash.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        self.kill9();
        let _ = std::fs::remove_file(&self.config_path);
    }
}

/// Runs the `herald` binary on `toml` until it exits by itself (start-up failures); its exit
/// code and stderr. Fails if it is still running after 20 s.
pub async fn run_to_exit(toml: &str) -> (Option<i32>, String) {
    let config_path = std::env::temp_dir().join(format!(
        "herald-exit-{}-{}.toml",
        std::process::id(),
        free_port()
    ));
    std::fs::write(&config_path, toml).unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_herald"))
        .arg("--config")
        .arg(&config_path)
        .args(["--bind", "127.0.0.1:0", "--metrics-bind", "127.0.0.1:0"])
        .env("HERALD_LOG", "info")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start the herald binary");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if tokio::time::Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            let _ = std::fs::remove_file(&config_path);
            let mut stderr = String::new();
            let _ = std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr);
            panic!("herald kept running; expected it to stop at start-up. stderr:\n{stderr}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    let _ = std::fs::remove_file(&config_path);
    (status.code(), stderr)
}

/// A raw WebSocket client that checks frames exactly.
pub struct Client {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    pub socket_id: String,
}

/// How a connection ended.
#[derive(Debug, PartialEq)]
pub enum Ended {
    Closed(u16),
    Dropped,
}

impl Client {
    /// Connects and reads `connection_established`.
    pub async fn connect(url: &str) -> Client {
        let (ws, _) = tokio_tungstenite::connect_async(url)
            .await
            .expect("connect");
        let mut c = Client {
            ws,
            socket_id: String::new(),
        };
        let ev = c.recv().await;
        assert_eq!(ev["event"], "pusher:connection_established", "{ev}");
        let data: Value =
            serde_json::from_str(ev["data"].as_str().expect("data is a string")).unwrap();
        c.socket_id = data["socket_id"].as_str().unwrap().to_owned();
        assert!(
            SocketId::parse(&c.socket_id).is_some(),
            "socket_id {}",
            c.socket_id
        );
        c
    }

    /// Connects without reading anything.
    pub async fn connect_raw(url: &str) -> Client {
        let (ws, _) = tokio_tungstenite::connect_async(url)
            .await
            .expect("connect");
        Client {
            ws,
            socket_id: String::new(),
        }
    }

    pub async fn send(&mut self, v: Value) {
        self.send_text(&v.to_string()).await;
    }

    pub async fn send_text(&mut self, text: &str) {
        self.ws
            .send(Message::Text(text.into()))
            .await
            .expect("send");
    }

    pub async fn send_message(&mut self, m: Message) {
        self.ws.send(m).await.expect("send");
    }

    /// The next text frame, as JSON (fails on close or timeout).
    pub async fn recv(&mut self) -> Value {
        loop {
            let msg = tokio::time::timeout(WAIT, self.ws.next())
                .await
                .expect("no frame within 5 s");
            match msg {
                Some(Ok(Message::Text(t))) => {
                    return serde_json::from_str(t.as_str()).expect("frame is JSON");
                }
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                other => panic!("expected a text frame, got {other:?}"),
            }
        }
    }

    /// The next text frame, or None once the connection has ended (close, reset or EOF).
    pub async fn next_event(&mut self) -> Option<Value> {
        loop {
            match tokio::time::timeout(WAIT, self.ws.next())
                .await
                .expect("no frame within 5 s")
            {
                Some(Ok(Message::Text(t))) => {
                    return Some(serde_json::from_str(t.as_str()).expect("frame is JSON"));
                }
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => return None,
                Some(Ok(_)) => continue,
            }
        }
    }

    /// The next frame's raw text.
    pub async fn recv_text(&mut self) -> String {
        match tokio::time::timeout(WAIT, self.ws.next())
            .await
            .expect("no frame within 5 s")
        {
            Some(Ok(Message::Text(t))) => t.as_str().to_owned(),
            other => panic!("expected a text frame, got {other:?}"),
        }
    }

    /// The next text frame within `secs`, as JSON (fails on close or timeout).
    pub async fn recv_within(&mut self, secs: u64) -> Value {
        loop {
            let msg = tokio::time::timeout(Duration::from_secs(secs), self.ws.next())
                .await
                .unwrap_or_else(|_| panic!("no frame within {secs} s"));
            match msg {
                Some(Ok(Message::Text(t))) => return serde_json::from_str(t.as_str()).unwrap(),
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                other => panic!("expected a text frame, got {other:?}"),
            }
        }
    }

    /// Waits up to `secs` for the next frame, which must be `event`.
    pub async fn expect_within(&mut self, event: &str, secs: u64) -> Value {
        loop {
            let msg = tokio::time::timeout(Duration::from_secs(secs), self.ws.next())
                .await
                .unwrap_or_else(|_| panic!("no {event} within {secs} s"));
            match msg {
                Some(Ok(Message::Text(t))) => {
                    let v: Value = serde_json::from_str(t.as_str()).unwrap();
                    assert_eq!(v["event"], event, "unexpected frame {v}");
                    return v;
                }
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                other => panic!("expected {event}, got {other:?}"),
            }
        }
    }

    /// Reads frames until one has this event name; fails if another arrives first.
    pub async fn expect(&mut self, event: &str) -> Value {
        let v = self.recv().await;
        assert_eq!(v["event"], event, "unexpected frame {v}");
        v
    }

    /// `data` of a frame, decoded when it is a JSON string.
    pub fn data(v: &Value) -> Value {
        match &v["data"] {
            Value::String(s) => serde_json::from_str(s).unwrap_or(Value::String(s.clone())),
            other => other.clone(),
        }
    }

    /// Proves nothing else is queued: a ping's pong must be the very next frame.
    pub async fn expect_nothing_queued(&mut self) {
        self.send(serde_json::json!({"event": "pusher:ping", "data": {}}))
            .await;
        let v = self.recv().await;
        assert_eq!(
            v["event"], "pusher:pong",
            "a frame was queued before the pong: {v}"
        );
    }

    /// Waits for the connection to end and returns how.
    pub async fn ended(&mut self) -> Ended {
        loop {
            match tokio::time::timeout(WAIT, self.ws.next())
                .await
                .expect("connection did not end within 5 s")
            {
                Some(Ok(Message::Close(Some(f)))) => return Ended::Closed(u16::from(f.code)),
                Some(Ok(Message::Close(None))) | None | Some(Err(_)) => return Ended::Dropped,
                Some(Ok(_)) => continue,
            }
        }
    }

    /// How the connection ended, if it does within `wait` (frames before the close are skipped).
    pub async fn ended_within(&mut self, wait: Duration) -> Option<Ended> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match tokio::time::timeout(left, self.ws.next()).await {
                Err(_) => return None,
                Ok(Some(Ok(Message::Close(Some(f))))) => {
                    return Some(Ended::Closed(u16::from(f.code)));
                }
                Ok(Some(Ok(Message::Close(None))) | None | Some(Err(_))) => {
                    return Some(Ended::Dropped);
                }
                Ok(Some(Ok(_))) => continue,
            }
        }
    }

    pub async fn subscribe(&mut self, channel: &str) -> Value {
        self.send(serde_json::json!({"event": "pusher:subscribe", "data": {"channel": channel, "auth": ""}})).await;
        self.recv().await
    }

    /// Subscribes with a valid signature (and `channel_data` for presence).
    pub async fn subscribe_signed(&mut self, channel: &str, channel_data: Option<&str>) -> Value {
        let auth = channel_auth(&self.socket_id, channel, channel_data);
        let mut data = serde_json::json!({"channel": channel, "auth": auth});
        if let Some(cd) = channel_data {
            data["channel_data"] = Value::String(cd.to_owned());
        }
        self.send(serde_json::json!({"event": "pusher:subscribe", "data": data}))
            .await;
        self.recv().await
    }

    pub async fn signin(&mut self, user_data: &str) -> Value {
        let auth = auth_token(
            KEY,
            &Secret::new(SECRET),
            &signin_payload(&SocketId::parse(&self.socket_id).unwrap(), user_data),
        );
        self.send(serde_json::json!({"event": "pusher:signin", "data": {"auth": auth, "user_data": user_data}})).await;
        self.recv().await
    }

    pub async fn close(mut self) {
        let _ = self.ws.close(None).await;
    }
}

pub fn channel_auth(socket_id: &str, channel: &str, channel_data: Option<&str>) -> String {
    let sid = SocketId::parse(socket_id).unwrap();
    let ch = ChannelName::parse(channel, 200).unwrap();
    auth_token(
        KEY,
        &Secret::new(SECRET),
        &channel_auth_payload(&sid, &ch, channel_data),
    )
}

/// A signed HTTP API client speaking plain HTTP/1.1.
#[derive(Clone)]
pub struct Api {
    pub addr: std::net::SocketAddr,
    pub app_id: String,
    pub key: String,
    pub secret: String,
}

pub struct Reply {
    pub status: u16,
    pub body: Value,
    pub content_type: String,
}

pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

impl Api {
    /// `path` is relative to `/apps/{id}`; `params` are extra query parameters (unescaped).
    pub async fn request(
        &self,
        method: &str,
        path: &str,
        params: &[(&str, &str)],
        body: &str,
    ) -> Reply {
        self.request_at(method, path, params, body, now()).await
    }

    pub async fn request_at(
        &self,
        method: &str,
        path: &str,
        params: &[(&str, &str)],
        body: &str,
        ts: u64,
    ) -> Reply {
        let target = self.signed_target(method, path, params, body, ts);
        raw_http(self.addr, method, &target, body).await
    }

    /// The request target (path and signed query) of a request made at `ts`.
    pub fn signed_target(
        &self,
        method: &str,
        path: &str,
        params: &[(&str, &str)],
        body: &str,
        ts: u64,
    ) -> String {
        let full_path = format!("/apps/{}{}", self.app_id, path);
        let ts = ts.to_string();
        let md5 = body_md5(body.as_bytes());
        let mut all: Vec<(&str, &str)> = vec![
            ("auth_key", &self.key),
            ("auth_timestamp", &ts),
            ("auth_version", "1.0"),
        ];
        if !body.is_empty() {
            all.push(("body_md5", &md5));
        }
        all.extend_from_slice(params);
        let sig = sign(
            &Secret::new(self.secret.clone()),
            api_request_payload(method, &full_path, &all).as_bytes(),
        );
        let query: Vec<String> = all.iter().map(|(k, v)| format!("{k}={v}")).collect();
        format!("{full_path}?{}&auth_signature={sig}", query.join("&"))
    }

    pub async fn post(&self, path: &str, body: Value) -> Reply {
        self.request("POST", path, &[], &body.to_string()).await
    }

    pub async fn get(&self, path: &str, params: &[(&str, &str)]) -> Reply {
        self.request("GET", path, params, "").await
    }

    pub async fn trigger(&self, channels: &[&str], name: &str, data: &str) -> Reply {
        self.post(
            "/events",
            serde_json::json!({"name": name, "channels": channels, "data": data}),
        )
        .await
    }
}

/// The `admin_token` of tests that use the admin surfaces.
pub const ADMIN_TOKEN: &str = "test-admin-token-5c1e";

/// A request to an admin surface with the admin token (a JSON request, as tools send).
pub async fn admin_http(addr: std::net::SocketAddr, method: &str, target: &str) -> Reply {
    let auth = format!("Bearer {ADMIN_TOKEN}");
    raw_http_with(addr, method, target, &[("Authorization", &auth)], "").await
}

/// One HTTP/1.1 request with `Connection: close`.
pub async fn raw_http(addr: std::net::SocketAddr, method: &str, target: &str, body: &str) -> Reply {
    raw_http_with(addr, method, target, &[], body).await
}

/// `raw_http` with extra request headers.
pub async fn raw_http_with(
    addr: std::net::SocketAddr,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Reply {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let mut extra: String = headers
        .iter()
        .map(|(k, v)| format!("{k}: {v}\r\n"))
        .collect();
    if !headers
        .iter()
        .any(|(k, _)| k.eq_ignore_ascii_case("content-type"))
    {
        extra.push_str("Content-Type: application/json\r\n");
    }
    let req = format!(
        "{method} {target} HTTP/1.1\r\nHost: {addr}\r\n{extra}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    tokio::time::timeout(WAIT, s.read_to_end(&mut buf))
        .await
        .expect("HTTP reply within 5 s")
        .unwrap();
    let text = String::from_utf8_lossy(&buf);
    let (head, body) = text.split_once("\r\n\r\n").expect("HTTP response");
    let status: u16 = head.split(' ').nth(1).unwrap().parse().unwrap();
    let content_type = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-type: ")
                .map(str::to_owned)
        })
        .unwrap_or_default();
    let body = serde_json::from_str(body).unwrap_or(Value::String(body.to_owned()));
    Reply {
        status,
        body,
        content_type,
    }
}

/// A TCP proxy the test controls, between a node and Redis: `cut` closes every connection
/// through it and refuses new ones (the node's clients stay connected to the node); `stall`
/// keeps every connection open but moves no byte (a silent partition: what was sent arrives
/// after `heal`, as TCP retransmits it); `heal` lets everything through again. A partition
/// without root or network namespaces.
pub struct TcpProxy {
    pub port: u16,
    open: Arc<std::sync::atomic::AtomicBool>,
    stalled: Arc<std::sync::atomic::AtomicBool>,
    links: Arc<std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>>,
    accept: tokio::task::JoinHandle<()>,
}

/// Copies `from` to `to` until either end closes, holding every chunk while `stalled` is set.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    stalled: Arc<std::sync::atomic::AtomicBool>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        while stalled.load(std::sync::atomic::Ordering::SeqCst) {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

impl TcpProxy {
    pub async fn start(target: std::net::SocketAddr) -> TcpProxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let open = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let stalled = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let links: Arc<std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>> = Arc::default();
        let accept = {
            let (open, stalled, links) = (open.clone(), stalled.clone(), links.clone());
            tokio::spawn(async move {
                while let Ok((down, _)) = listener.accept().await {
                    if !open.load(std::sync::atomic::Ordering::SeqCst) {
                        continue; // dropped: the node sees its connection refused at once
                    }
                    let stalled = stalled.clone();
                    let link = tokio::spawn(async move {
                        if let Ok(up) = TcpStream::connect(target).await {
                            let (down_r, down_w) = down.into_split();
                            let (up_r, up_w) = up.into_split();
                            tokio::select! {
                                _ = pump(down_r, up_w, stalled.clone()) => {}
                                _ = pump(up_r, down_w, stalled) => {}
                            }
                        }
                    });
                    links.lock().unwrap().push(link);
                }
            })
        };
        TcpProxy {
            port,
            open,
            stalled,
            links,
            accept,
        }
    }

    /// `redis://` through the proxy.
    pub fn redis_url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    pub fn cut(&self) {
        self.open.store(false, std::sync::atomic::Ordering::SeqCst);
        for link in self.links.lock().unwrap().drain(..) {
            link.abort();
        }
    }

    pub fn stall(&self) {
        self.stalled
            .store(true, std::sync::atomic::Ordering::SeqCst);
    }

    pub fn heal(&self) {
        self.stalled
            .store(false, std::sync::atomic::Ordering::SeqCst);
        self.open.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.cut();
        self.accept.abort();
    }
}
