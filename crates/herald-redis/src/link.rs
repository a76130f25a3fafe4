//! Where this node's Redis is and how to reach it: one server (`redis://`, `rediss://`,
//! `unix://`) or the master of a Sentinel set (`redis+sentinel://`, `rediss+sentinel://`).
//! Every connection the node opens (the shared command connection, the pool for blocking reads,
//! the pub/sub connection) comes from here, with the URL's credentials and TLS trust.
//!
//! Behind Sentinel the master moves. `refresh` asks the sentinels again; when the master
//! changed it swaps in connections to the new one and bumps `generation`, which the pub/sub
//! listener watches to move its subscriptions. A refresh is asked for whenever something
//! suggests a move: a connection that cannot be had, a failed heartbeat (a demoted master
//! answers writes with `READONLY`), and the sentinels' own `+switch-master` announcement.

use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use base64::Engine;
use deadpool_redis::{Pool, Runtime};
use futures_util::StreamExt;
use herald_core::backplane::BackplaneError;
use redis::aio::MultiplexedConnection;
use redis::cluster::ClusterClientBuilder;
use redis::cluster_async::ClusterConnection;
use redis::sentinel::{SentinelClient, SentinelClientBuilder, SentinelServerType};
use redis::{
    AsyncConnectionConfig, Client, ClientTlsConfig, ConnectionAddr, ConnectionInfo,
    IntoConnectionInfo, TlsCertificates, TlsMode,
};
use tokio::sync::watch;

use crate::{COMMAND_TIMEOUT, Unavailable};

/// PEM material for TLS to Redis (`redis_tls_ca_file`, `redis_tls_cert_file`,
/// `redis_tls_key_file`). Trust is Mozilla's roots plus `ca`.
#[derive(Clone, Default)]
pub struct RedisTls {
    pub ca: Option<Vec<u8>>,
    pub cert: Option<Vec<u8>>,
    pub key: Option<Vec<u8>>,
}

impl std::fmt::Debug for RedisTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisTls")
            .field("ca", &self.ca.is_some())
            .field("cert", &self.cert.is_some())
            .field("key", &self.key.is_some())
            .finish()
    }
}

/// A `redis_url` taken apart.
enum Endpoint {
    Direct(ConnectionInfo),
    Sentinel(SentinelSpec),
    Cluster(ClusterSpec),
}

/// `redis+cluster://[user:password@]h1:p1,h2:p2[/]`: seed nodes of a Redis Cluster.
#[derive(Debug, PartialEq)]
struct ClusterSpec {
    tls: bool,
    nodes: Vec<(String, u16)>,
    username: Option<String>,
    password: Option<String>,
}

/// `redis+sentinel://[user:password@]h1:p1,h2:p2/MASTER[/DB][?sentinel_username=…&sentinel_password=…]`
#[derive(Debug, PartialEq)]
struct SentinelSpec {
    tls: bool,
    sentinels: Vec<(String, u16)>,
    master: String,
    db: i64,
    username: Option<String>,
    password: Option<String>,
    sentinel_username: Option<String>,
    sentinel_password: Option<String>,
}

/// Sentinel's port when a host names none.
const SENTINEL_PORT: u16 = 26379;

fn parse(url: &str) -> Result<Endpoint, String> {
    if let Some(tls) = ["redis+cluster://", "rediss+cluster://"]
        .iter()
        .position(|p| url.starts_with(p))
    {
        return parse_cluster(url, tls == 1).map(Endpoint::Cluster);
    }
    let tls = if url.starts_with("redis+sentinel://") {
        false
    } else if url.starts_with("rediss+sentinel://") {
        true
    } else if url.starts_with("redis://")
        || url.starts_with("rediss://")
        || url.starts_with("unix://")
    {
        if url.contains('#') {
            return Err("a #fragment (such as #insecure, which skips the certificate check) is not supported: give the CA in redis_tls_ca_file".to_owned());
        }
        let info = url
            .into_connection_info()
            .map_err(|e| format!("cannot parse it: {e}"))?;
        return Ok(Endpoint::Direct(info));
    } else {
        return Err(
            "expected redis://, rediss://, redis+sentinel://, rediss+sentinel://, redis+cluster:// or rediss+cluster://"
                .to_owned(),
        );
    };
    parse_sentinel(url, tls).map(Endpoint::Sentinel)
}

/// Whether `redis_url` has a form the node can use (what is wrong, if not).
pub fn check_url(url: &str) -> Result<(), String> {
    parse(url).map(|_| ())
}

/// The parts of a multi-host URL: user, password, hosts, path, query.
struct MultiHost<'a> {
    username: Option<String>,
    password: Option<String>,
    hosts: Vec<(String, u16)>,
    path: &'a str,
    query: &'a str,
}

fn parse_multi_host(url: &str, default_port: u16) -> Result<MultiHost<'_>, String> {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let (head, query) = rest.split_once('?').unwrap_or((rest, ""));
    let (authority, path) = head.split_once('/').unwrap_or((head, ""));
    let (userinfo, hosts) = match authority.rsplit_once('@') {
        Some((u, h)) => (Some(u), h),
        None => (None, authority),
    };
    let (username, password) = match userinfo {
        None => (None, None),
        Some(u) => {
            let (user, pass) = u.split_once(':').map_or((u, None), |(a, b)| (a, Some(b)));
            (non_empty(decode(user)?), pass.map(decode).transpose()?)
        }
    };
    let mut parsed = Vec::new();
    for h in hosts.split(',').filter(|h| !h.is_empty()) {
        parsed.push(host_port(h, default_port)?);
    }
    Ok(MultiHost {
        username,
        password,
        hosts: parsed,
        path,
        query,
    })
}

fn parse_cluster(url: &str, tls: bool) -> Result<ClusterSpec, String> {
    let m = parse_multi_host(url, 6379)?;
    if m.hosts.is_empty() {
        return Err("names no node: expected HOST:PORT[,HOST:PORT…]".to_owned());
    }
    if !m.path.is_empty() {
        return Err("a Redis Cluster has only database 0: no path after the nodes".to_owned());
    }
    if !m.query.is_empty() {
        return Err("takes no parameters".to_owned());
    }
    Ok(ClusterSpec {
        tls,
        nodes: m.hosts,
        username: m.username,
        password: m.password,
    })
}

fn parse_sentinel(url: &str, tls: bool) -> Result<SentinelSpec, String> {
    let MultiHost {
        username,
        password,
        hosts: sentinels,
        path,
        query,
    } = parse_multi_host(url, SENTINEL_PORT)?;
    if sentinels.is_empty() {
        return Err(
            "names no sentinel: expected HOST:PORT[,HOST:PORT…] before the master name".to_owned(),
        );
    }
    let mut parts = path.split('/').filter(|p| !p.is_empty());
    let master = parts
        .next()
        .map(decode)
        .transpose()?
        .ok_or("names no master: expected …/MASTER_NAME[/DB] after the sentinels")?;
    let db = match parts.next() {
        None => 0,
        Some(d) => d
            .parse()
            .map_err(|_| format!("the database must be a number, got '{d}'"))?,
    };
    if parts.next().is_some() {
        return Err("too many path segments: expected …/MASTER_NAME[/DB]".to_owned());
    }
    let mut spec = SentinelSpec {
        tls,
        sentinels,
        master,
        db,
        username,
        password,
        sentinel_username: None,
        sentinel_password: None,
    };
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        match k {
            "sentinel_username" => spec.sentinel_username = non_empty(decode(v)?),
            "sentinel_password" => spec.sentinel_password = Some(decode(v)?),
            other => {
                return Err(format!(
                    "unknown parameter '{other}' (known: sentinel_username, sentinel_password)"
                ));
            }
        }
    }
    Ok(spec)
}

fn decode(s: &str) -> Result<String, String> {
    percent_encoding::percent_decode_str(s)
        .decode_utf8()
        .map(|c| c.into_owned())
        .map_err(|_| "a percent-encoded part is not UTF-8".to_owned())
}

fn non_empty(s: String) -> Option<String> {
    (!s.is_empty()).then_some(s)
}

/// `host`, `host:port`, `[v6]` or `[v6]:port`.
fn host_port(h: &str, default_port: u16) -> Result<(String, u16), String> {
    let bad = || format!("'{h}' is not HOST:PORT");
    let (host, port) = if let Some(v6) = h.strip_prefix('[') {
        let (host, after) = v6.split_once(']').ok_or_else(bad)?;
        (host, after.strip_prefix(':'))
    } else {
        match h.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (h, None),
        }
    };
    let port = match port {
        None => default_port,
        Some(p) => p.parse().map_err(|_| bad())?,
    };
    if host.is_empty() {
        return Err(bad());
    }
    Ok((host.to_owned(), port))
}

/// Mozilla's roots (as PEM, the form the redis crate takes) followed by the configured CA.
fn certificates(tls: &RedisTls) -> TlsCertificates {
    let engine = base64::engine::general_purpose::STANDARD;
    let mut roots = String::new();
    for cert in webpki_root_certs::TLS_SERVER_ROOT_CERTS {
        roots.push_str("-----BEGIN CERTIFICATE-----\n");
        let b64 = engine.encode(cert.as_ref());
        for line in b64.as_bytes().chunks(64) {
            roots.push_str(&String::from_utf8_lossy(line));
            roots.push('\n');
        }
        roots.push_str("-----END CERTIFICATE-----\n");
    }
    let mut root_cert = roots.into_bytes();
    if let Some(ca) = &tls.ca {
        root_cert.push(b'\n');
        root_cert.extend_from_slice(ca);
    }
    let client_tls = match (&tls.cert, &tls.key) {
        (Some(cert), Some(key)) => Some(ClientTlsConfig {
            client_cert: cert.clone(),
            client_key: key.clone(),
        }),
        _ => None,
    };
    TlsCertificates {
        client_tls,
        root_cert: Some(root_cert),
    }
}

/// The Redis the node talks to right now.
#[derive(Clone)]
pub(crate) struct Current {
    pub client: Client,
    /// Connections for blocking reads (XREADGROUP … BLOCK), which would hold up every command
    /// queued behind them on a shared connection.
    pub pool: Pool,
    /// The connection every other command shares.
    shared: Arc<Shared>,
    /// `host:port`, for logs.
    pub addr: String,
}

/// One multiplexed connection shared by every command (the redis crate pipelines what callers
/// send at once), as on a Redis Cluster. A pooled connection is checked each time it is handed
/// out (`UNWATCH` + `PING`, a round trip more per command); this one is opened on first use and
/// dropped when a command on it fails at the connection (an I/O error, a dropped connection,
/// no answer within `COMMAND_TIMEOUT`), so the next command opens a new one.
struct Shared {
    client: Client,
    config: AsyncConnectionConfig,
    /// The open connection and its number.
    open: std::sync::Mutex<Option<(u64, MultiplexedConnection)>>,
    /// Held while opening, so that many callers after a failure open one connection.
    opening: tokio::sync::Mutex<u64>,
    /// When opening last failed: until `REOPEN_AFTER` has passed, callers fail at once (an
    /// HTTP 503 now) instead of each waiting out the connection timeout again while Redis is
    /// cut off.
    failed_open: std::sync::Mutex<Option<std::time::Instant>>,
}

/// How long after a failed open the shared connection is not tried again.
const REOPEN_AFTER: Duration = Duration::from_millis(500);

impl Shared {
    fn open_now(&self) -> Option<(u64, MultiplexedConnection)> {
        herald_core::sync::lock(&self.open).clone()
    }

    async fn get(self: &Arc<Self>) -> redis::RedisResult<SharedConn> {
        let found = match self.open_now() {
            Some(found) => found,
            None => {
                self.check_recent_failure()?;
                let mut opened = self.opening.lock().await;
                match self.open_now() {
                    Some(found) => found,
                    None => {
                        self.check_recent_failure()?;
                        let conn = self
                            .client
                            .get_multiplexed_async_connection_with_config(&self.config)
                            .await
                            .inspect_err(|_| {
                                *herald_core::sync::lock(&self.failed_open) =
                                    Some(std::time::Instant::now());
                            })?;
                        *opened += 1;
                        *herald_core::sync::lock(&self.open) = Some((*opened, conn.clone()));
                        (*opened, conn)
                    }
                }
            }
        };
        Ok(SharedConn {
            number: found.0,
            conn: found.1,
            shared: self.clone(),
        })
    }

    fn check_recent_failure(&self) -> redis::RedisResult<()> {
        match *herald_core::sync::lock(&self.failed_open) {
            Some(at) if at.elapsed() < REOPEN_AFTER => {
                Err(redis::RedisError::from(std::io::Error::new(
                    std::io::ErrorKind::NotConnected,
                    "no connection to Redis (the last attempt just failed)",
                )))
            }
            _ => Ok(()),
        }
    }

    /// Connection `number` failed: the next command opens a new one (unless one already did).
    fn failed(&self, number: u64) {
        let mut open = herald_core::sync::lock(&self.open);
        if open.as_ref().is_some_and(|(n, _)| *n == number) {
            *open = None;
        }
    }
}

/// The shared connection as one caller holds it.
pub(crate) struct SharedConn {
    number: u64,
    conn: MultiplexedConnection,
    shared: Arc<Shared>,
}

impl SharedConn {
    /// Forgets the connection when `r` failed at the connection rather than in a command.
    fn check<T>(&self, r: redis::RedisResult<T>) -> redis::RedisResult<T> {
        if let Err(e) = &r
            && (e.is_io_error() || e.is_unrecoverable_error())
        {
            self.shared.failed(self.number);
        }
        r
    }
}

enum Source {
    Direct,
    Cluster(Box<ClusterSource>),
    Sentinel {
        client: Box<tokio::sync::Mutex<SentinelClient>>,
        master: String,
        /// When the sentinels were last asked.
        asked: tokio::sync::Mutex<Option<Instant>>,
    },
}

/// A Redis Cluster: one shared multiplexed connection for commands (it follows MOVED and ASK
/// and routes each command to its slot's master), another for blocking reads (a blocked
/// XREADGROUP would hold up every command queued behind it), each opened on first use.
struct ClusterSource {
    spec: ClusterSpec,
    tls: RedisTls,
    shared: tokio::sync::OnceCell<ClusterConnection>,
    blocking: tokio::sync::OnceCell<ClusterConnection>,
}

impl ClusterSource {
    fn builder(&self) -> ClusterClientBuilder {
        let scheme = if self.spec.tls { "rediss" } else { "redis" };
        let nodes: Vec<String> = self
            .spec
            .nodes
            .iter()
            .map(|(h, p)| {
                let h = if h.contains(':') {
                    format!("[{h}]")
                } else {
                    h.clone()
                };
                format!("{scheme}://{h}:{p}/")
            })
            .collect();
        let mut b = ClusterClientBuilder::new(nodes)
            .connection_timeout(Duration::from_secs(2))
            .response_timeout(COMMAND_TIMEOUT)
            .overall_response_timeout(Some(COMMAND_TIMEOUT))
            .retries(3);
        if let Some(u) = &self.spec.username {
            b = b.username(u);
        }
        if let Some(p) = &self.spec.password {
            b = b.password(p);
        }
        if self.spec.tls {
            b = b.tls(TlsMode::Secure).certs(certificates(&self.tls));
        }
        b
    }

    async fn connect(&self) -> redis::RedisResult<ClusterConnection> {
        self.builder().build()?.get_async_connection().await
    }
}

/// A connection for commands: the shared multiplexed one (one server, Sentinel's master), a
/// pooled one for blocking reads, or the cluster's shared connection.
pub(crate) enum Conn {
    Pooled(deadpool_redis::Connection),
    Shared(SharedConn),
    Cluster(ClusterConnection),
}

impl redis::aio::ConnectionLike for Conn {
    fn req_packed_command<'a>(
        &'a mut self,
        cmd: &'a redis::Cmd,
    ) -> redis::RedisFuture<'a, redis::Value> {
        match self {
            Conn::Pooled(c) => c.req_packed_command(cmd),
            Conn::Shared(c) => Box::pin(async move {
                let r = c.conn.req_packed_command(cmd).await;
                c.check(r)
            }),
            Conn::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a redis::Pipeline,
        offset: usize,
        count: usize,
    ) -> redis::RedisFuture<'a, Vec<redis::Value>> {
        match self {
            Conn::Pooled(c) => c.req_packed_commands(cmd, offset, count),
            Conn::Shared(c) => Box::pin(async move {
                let r = c.conn.req_packed_commands(cmd, offset, count).await;
                c.check(r)
            }),
            Conn::Cluster(c) => c.req_packed_commands(cmd, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Pooled(c) => c.get_db(),
            Conn::Shared(c) => c.conn.get_db(),
            Conn::Cluster(c) => c.get_db(),
        }
    }
}

pub(crate) struct Link {
    source: Source,
    connection: AsyncConnectionConfig,
    current: RwLock<Option<Current>>,
    /// Bumped each time the master moved (the first lookup counts as a move).
    generation: watch::Sender<u64>,
}

/// The sentinels are asked at most this often (many callers notice one failover at once).
const ASK_INTERVAL: Duration = Duration::from_millis(250);

impl Link {
    pub fn new(url: &str, tls: &RedisTls) -> Result<Link, String> {
        // A command unanswered for COMMAND_TIMEOUT fails (an HTTP 503, a retried heartbeat)
        // instead of hanging a caller while Redis is cut off without a reset. It is far above
        // any script's run time and above the longest XREADGROUP block the dispatcher asks
        // for (half a second). The connection timeout and the pool's waits bound getting one.
        let connection = AsyncConnectionConfig::new()
            .set_response_timeout(Some(COMMAND_TIMEOUT))
            .set_connection_timeout(Some(Duration::from_secs(2)));
        let (source, current) = match parse(url)? {
            Endpoint::Direct(info) => {
                let client = match info.addr() {
                    ConnectionAddr::TcpTls { .. } => {
                        Client::build_with_tls(info, certificates(tls))
                    }
                    _ => Client::open(info),
                }
                .map_err(|e| e.to_string())?;
                let current = current_for(client, &connection).map_err(|e| e.to_string())?;
                (Source::Direct, Some(current))
            }
            Endpoint::Cluster(spec) => {
                let source = Source::Cluster(Box::new(ClusterSource {
                    spec,
                    tls: tls.clone(),
                    shared: tokio::sync::OnceCell::new(),
                    blocking: tokio::sync::OnceCell::new(),
                }));
                (source, None)
            }
            Endpoint::Sentinel(spec) => {
                let master = spec.master.clone();
                let client = sentinel_client(spec, tls).map_err(|e| e.to_string())?;
                let source = Source::Sentinel {
                    client: Box::new(tokio::sync::Mutex::new(client)),
                    master,
                    asked: tokio::sync::Mutex::new(None),
                };
                (source, None)
            }
        };
        Ok(Link {
            source,
            connection,
            current: RwLock::new(current),
            generation: watch::channel(0).0,
        })
    }

    pub fn is_sentinel(&self) -> bool {
        matches!(self.source, Source::Sentinel { .. })
    }

    /// A Redis Cluster: sharded pub/sub, commands routed by slot.
    pub fn is_cluster(&self) -> bool {
        matches!(self.source, Source::Cluster(_))
    }

    /// A connection for commands.
    pub async fn conn(self: &Arc<Self>) -> Result<Conn, BackplaneError> {
        if let Source::Cluster(c) = &self.source {
            let shared = c.shared.get_or_try_init(|| c.connect()).await;
            return shared.cloned().map(Conn::Cluster).map_err(crate::err);
        }
        let shared = self.current().await?.shared;
        shared.get().await.map(Conn::Shared).map_err(|e| {
            // Behind Sentinel, a connection that cannot be had may mean the master moved.
            self.suspect();
            crate::err(e)
        })
    }

    /// A connection for a blocking read (XREADGROUP … BLOCK): never a shared one.
    pub async fn blocking_conn(self: &Arc<Self>) -> Result<Conn, BackplaneError> {
        if let Source::Cluster(c) = &self.source {
            let own = c.blocking.get_or_try_init(|| c.connect()).await;
            return own.cloned().map(Conn::Cluster).map_err(crate::err);
        }
        let pool = self.pool().await?;
        pool.get().await.map(Conn::Pooled).map_err(|e| {
            self.suspect();
            crate::err(e)
        })
    }

    /// A new cluster connection speaking RESP3 whose pushes (sharded messages, disconnections)
    /// go to `push`: the listener's.
    pub async fn cluster_pubsub(
        &self,
        push: tokio::sync::mpsc::UnboundedSender<redis::PushInfo>,
    ) -> redis::RedisResult<ClusterConnection> {
        let Source::Cluster(c) = &self.source else {
            return Err(redis::RedisError::from(std::io::Error::other(
                "not a Redis Cluster",
            )));
        };
        c.builder()
            .use_protocol(redis::ProtocolVersion::RESP3)
            .push_sender(push)
            .build()?
            .get_async_connection()
            .await
    }

    /// The Redis to talk to; behind Sentinel, asks the sentinels first if none is known yet.
    /// (Not for a Redis Cluster: `conn` and `cluster_pubsub`.)
    pub async fn current(&self) -> Result<Current, BackplaneError> {
        if let Some(c) = herald_core::sync::read(&self.current).clone() {
            return Ok(c);
        }
        self.refresh().await;
        herald_core::sync::read(&self.current)
            .clone()
            .ok_or_else(|| {
                BackplaneError(Box::new(Unavailable(
                    "no Redis master known yet (the sentinels did not name one)".into(),
                )))
            })
    }

    pub async fn pool(&self) -> Result<Pool, BackplaneError> {
        Ok(self.current().await?.pool)
    }

    /// How often the node followed the master to another server (not counting the first
    /// lookup).
    pub fn moves(&self) -> u64 {
        let g = *self.generation.borrow();
        if self.is_sentinel() {
            g.saturating_sub(1)
        } else {
            0
        }
    }

    /// Watches master moves (the listener resubscribes on the new master).
    pub fn generation(&self) -> watch::Receiver<u64> {
        self.generation.subscribe()
    }

    /// Something suggests the master moved: ask the sentinels, in the background. Nothing to
    /// do for a single server.
    pub fn suspect(self: &Arc<Self>) {
        if self.is_sentinel() {
            let link = self.clone();
            tokio::spawn(async move { link.refresh().await });
        }
    }

    /// Asks the sentinels for the master and moves there if it changed. Returns the error of
    /// the lookup, if it failed.
    pub async fn refresh(&self) -> Option<redis::RedisError> {
        let Source::Sentinel {
            client,
            master,
            asked,
        } = &self.source
        else {
            return None;
        };
        let mut asked = asked.lock().await;
        let known = herald_core::sync::read(&self.current).is_some();
        if known && asked.is_some_and(|t| t.elapsed() < ASK_INTERVAL) {
            return None;
        }
        *asked = Some(Instant::now());
        let found = {
            let mut sentinels = client.lock().await;
            tokio::time::timeout(COMMAND_TIMEOUT, sentinels.async_get_client()).await
        };
        let found = match found {
            Ok(Ok(client)) => client,
            Ok(Err(e)) => {
                tracing::warn!(master = %master, error = %e, "the sentinels named no usable Redis master");
                return Some(e);
            }
            Err(_) => {
                tracing::warn!(master = %master, "the sentinels did not answer in time");
                return Some(redis::RedisError::from(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "the sentinels did not answer in time",
                )));
            }
        };
        let addr = found.get_connection_info().addr().to_string();
        let moved = herald_core::sync::read(&self.current)
            .as_ref()
            .is_none_or(|c| c.addr != addr);
        if moved {
            match current_for(found, &self.connection) {
                Ok(current) => {
                    let first = !known;
                    *herald_core::sync::write(&self.current) = Some(current);
                    self.generation.send_modify(|g| *g += 1);
                    if first {
                        tracing::info!(master = %master, addr = %addr, "Sentinel names the Redis master");
                    } else {
                        tracing::warn!(master = %master, addr = %addr, "the Redis master moved; following it");
                    }
                }
                Err(e) => return Some(e),
            }
        }
        None
    }

    /// Whether a sentinel accepts a connection (with the sentinels' credentials and TLS).
    async fn sentinels_answer(&self) -> bool {
        let Source::Sentinel { client, .. } = &self.source else {
            return false;
        };
        let mut sentinels = client.lock().await;
        matches!(
            tokio::time::timeout(COMMAND_TIMEOUT, sentinels.async_get_sentinel_client()).await,
            Ok(Ok(_))
        )
    }

    /// Listens to the sentinels' `+switch-master` announcements and follows a move at once,
    /// without waiting for a failed command. Runs for the life of the node.
    pub async fn watch_switches(self: Arc<Self>) {
        let Source::Sentinel { client, master, .. } = &self.source else {
            return;
        };
        let mut backoff = Duration::from_millis(500);
        loop {
            let sentinel = {
                let mut sentinels = client.lock().await;
                tokio::time::timeout(COMMAND_TIMEOUT, sentinels.async_get_sentinel_client()).await
            };
            if let Ok(Ok(sentinel)) = sentinel
                && let Ok(Ok(mut pubsub)) =
                    tokio::time::timeout(COMMAND_TIMEOUT, sentinel.get_async_pubsub()).await
                && let Ok(Ok(())) =
                    tokio::time::timeout(COMMAND_TIMEOUT, pubsub.subscribe("+switch-master")).await
            {
                backoff = Duration::from_millis(500);
                let mut messages = pubsub.on_message();
                while let Some(msg) = messages.next().await {
                    // "<master name> <old ip> <old port> <new ip> <new port>"
                    let payload: String = msg.get_payload().unwrap_or_default();
                    if payload.split(' ').next() == Some(master.as_str()) {
                        tracing::info!(master = %master, "the sentinels announced a new master");
                        self.refresh().await;
                    }
                }
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(5));
        }
    }
}

fn current_for(
    client: Client,
    connection: &AsyncConnectionConfig,
) -> Result<Current, redis::RedisError> {
    let info = client.get_connection_info().clone();
    let addr = info.addr().to_string();
    let shared = Arc::new(Shared {
        client: client.clone(),
        config: connection.clone(),
        open: std::sync::Mutex::new(None),
        opening: tokio::sync::Mutex::new(0),
        failed_open: std::sync::Mutex::new(None),
    });
    let manager = deadpool_redis::Manager::new_with_config(info, connection.clone())?;
    let pool = Pool::builder(manager)
        .max_size(16)
        .runtime(Runtime::Tokio1)
        .wait_timeout(Some(Duration::from_secs(2)))
        .create_timeout(Some(Duration::from_secs(2)))
        .recycle_timeout(Some(Duration::from_secs(2)))
        .build()
        .map_err(|e| redis::RedisError::from(std::io::Error::other(e.to_string())))?;
    Ok(Current {
        client,
        pool,
        shared,
        addr,
    })
}

fn sentinel_client(spec: SentinelSpec, tls: &RedisTls) -> redis::RedisResult<SentinelClient> {
    let addrs = spec.sentinels.iter().map(|(host, port)| {
        if spec.tls {
            ConnectionAddr::TcpTls {
                host: host.clone(),
                port: *port,
                insecure: false,
                tls_params: None,
            }
        } else {
            ConnectionAddr::Tcp(host.clone(), *port)
        }
    });
    let mut b = SentinelClientBuilder::new(addrs, &spec.master, SentinelServerType::Master)?
        .set_client_to_redis_db(spec.db);
    if let Some(u) = &spec.username {
        b = b.set_client_to_redis_username(u);
    }
    if let Some(p) = &spec.password {
        b = b.set_client_to_redis_password(p);
    }
    if let Some(u) = &spec.sentinel_username {
        b = b.set_client_to_sentinel_username(u);
    }
    if let Some(p) = &spec.sentinel_password {
        b = b.set_client_to_sentinel_password(p);
    }
    if spec.tls {
        b = b
            .set_client_to_redis_tls_mode(TlsMode::Secure)
            .set_client_to_redis_certificates(certificates(tls))
            .set_client_to_sentinel_tls_mode(TlsMode::Secure)
            .set_client_to_sentinel_certificates(certificates(tls));
    }
    b.build()
}

/// Why a first connection failed, for start-up: a configuration that can never work stops
/// the node; a Redis that is not up yet does not (the node waits for it, not ready).
#[derive(Debug)]
pub enum ProbeError {
    /// Names the key to fix.
    Fatal(String),
    Unreachable(String),
}

/// Connects once (asking the sentinels first, behind Sentinel) and PINGs.
pub async fn probe(url: &str, tls: &RedisTls) -> Result<(), ProbeError> {
    let link = Link::new(url, tls).map_err(ProbeError::Fatal)?;
    if let Source::Cluster(c) = &link.source {
        let attempt = async {
            let mut conn = c.connect().await?;
            redis::cmd("PING").query_async::<()>(&mut conn).await
        };
        return match tokio::time::timeout(Duration::from_secs(5), attempt).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(classify(&e, false)),
            Err(_) => Err(ProbeError::Unreachable(
                "the cluster's nodes did not answer within 5 s".into(),
            )),
        };
    }
    if let Some(e) = link.refresh().await {
        // The lookup also checks the master it found: whose refusal was it?
        let sentinels_fine = link.sentinels_answer().await;
        return Err(classify(&e, !sentinels_fine));
    }
    let current = link
        .current()
        .await
        .map_err(|e| ProbeError::Unreachable(e.to_string()))?;
    let attempt = async {
        let mut c = current
            .client
            .get_multiplexed_async_connection_with_config(&link.connection)
            .await?;
        redis::cmd("PING").query_async::<()>(&mut c).await
    };
    match tokio::time::timeout(Duration::from_secs(5), attempt).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(classify(&e, false)),
        Err(_) => Err(ProbeError::Unreachable(format!(
            "{} did not answer within 5 s",
            current.addr
        ))),
    }
}

fn classify(e: &redis::RedisError, sentinel: bool) -> ProbeError {
    let who = if sentinel { "a sentinel" } else { "Redis" };
    if let Some(tls) = rustls_error(e) {
        return ProbeError::Fatal(match tls {
            rustls::Error::InvalidCertificate(why) => format!(
                "redis_tls_ca_file: the certificate {who} presented does not verify ({why:?}); set redis_tls_ca_file to the PEM of the CA that signed it"
            ),
            rustls::Error::AlertReceived(alert) => format!(
                "redis_tls_cert_file: {who} ended the TLS handshake ({alert:?}); it may require a client certificate (redis_tls_cert_file and redis_tls_key_file)"
            ),
            other => format!("redis_url: TLS to {who} failed: {other}"),
        });
    }
    let code = e.code().unwrap_or_default();
    if e.kind() == redis::ErrorKind::AuthenticationFailed
        || matches!(code, "WRONGPASS" | "NOAUTH" | "NOPERM")
        || e.to_string().contains("without any password configured")
    {
        let fix = if sentinel {
            "the sentinels' own credentials are ?sentinel_username=…&sentinel_password=… in redis_url"
        } else {
            "check the user name and password in redis_url"
        };
        return ProbeError::Fatal(format!(
            "redis_url: {who} refused the credentials ({e}); {fix}"
        ));
    }
    if e.kind() == redis::ErrorKind::MasterNameNotFoundBySentinel {
        return ProbeError::Fatal(format!(
            "redis_url: the sentinels know no master of that name: {e}"
        ));
    }
    ProbeError::Unreachable(e.to_string())
}

/// The rustls error inside a connection error, if TLS is what failed. The redis crate keeps
/// the I/O error behind an `Arc<dyn Error>`, and tokio-rustls the rustls error inside the
/// I/O error, where `source()` does not reach: each wrapper is opened by hand.
fn rustls_error(e: &redis::RedisError) -> Option<&rustls::Error> {
    type Shared = Arc<dyn std::error::Error + Send + Sync>;
    let mut pending: Vec<&(dyn std::error::Error + 'static)> = Vec::new();
    pending.extend(std::error::Error::source(e));
    while let Some(c) = pending.pop() {
        if let Some(r) = c.downcast_ref::<rustls::Error>() {
            return Some(r);
        }
        if let Some(shared) = c.downcast_ref::<Shared>() {
            pending.push(&**shared);
        }
        if let Some(inner) = c
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            pending.push(inner);
        }
        pending.extend(c.source());
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sentinel_urls_parse() {
        let s = parse_sentinel(
            "rediss+sentinel://app:p%40ss@10.0.0.1:26379,[::1]:26380,sent-3/main/2?sentinel_username=s&sentinel_password=sp",
            true,
        )
        .unwrap();
        assert_eq!(
            s,
            SentinelSpec {
                tls: true,
                sentinels: vec![
                    ("10.0.0.1".into(), 26379),
                    ("::1".into(), 26380),
                    ("sent-3".into(), SENTINEL_PORT)
                ],
                master: "main".into(),
                db: 2,
                username: Some("app".into()),
                password: Some("p@ss".into()),
                sentinel_username: Some("s".into()),
                sentinel_password: Some("sp".into()),
            }
        );
        let s = parse_sentinel("redis+sentinel://:pw@h:1/m", false).unwrap();
        assert_eq!((s.username, s.password, s.db), (None, Some("pw".into()), 0));
    }

    #[test]
    fn bad_sentinel_urls_say_what_is_wrong() {
        for (url, says) in [
            ("redis+sentinel:///main", "names no sentinel"),
            ("redis+sentinel://h:1", "names no master"),
            ("redis+sentinel://h:1/m/x", "must be a number"),
            ("redis+sentinel://h:x/m", "is not HOST:PORT"),
            (
                "redis+sentinel://h:1/m?password=x",
                "unknown parameter 'password'",
            ),
        ] {
            let e = parse_sentinel(url, false).unwrap_err();
            assert!(e.contains(says), "{url}: {e}");
            assert!(!e.contains("x@"), "{e}");
        }
        assert!(parse("http://h").is_err());
        let c = parse_cluster("rediss+cluster://u:p@a:7000,b", true).unwrap();
        assert_eq!(
            c,
            ClusterSpec {
                tls: true,
                nodes: vec![("a".into(), 7000), ("b".into(), 6379)],
                username: Some("u".into()),
                password: Some("p".into()),
            }
        );
        assert!(parse_cluster("redis+cluster://a:1/2", false).is_err());
        assert!(parse("rediss://h:6380/#insecure").is_err());
    }

    #[test]
    fn the_web_roots_and_a_ca_make_one_bundle() {
        let c = certificates(&RedisTls::default());
        let pem = c.root_cert.unwrap();
        let n = String::from_utf8(pem)
            .unwrap()
            .matches("BEGIN CERTIFICATE")
            .count();
        assert_eq!(n, webpki_root_certs::TLS_SERVER_ROOT_CERTS.len());
        assert!(n > 100);
        // The crate parses the bundle into a trust store (a bad PEM fails here, not later).
        let info = "rediss://127.0.0.1:1/".into_connection_info().unwrap();
        Client::build_with_tls(info, certificates(&RedisTls::default())).unwrap();
    }
}
