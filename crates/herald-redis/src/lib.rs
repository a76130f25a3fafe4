//! `RedisBackplane`: the cluster backplane. Shared state lives in Redis hashes and sets changed
//! only by the atomic scripts in `scripts.rs`; traffic between nodes goes over per-channel
//! pub/sub topics that a node subscribes to only while it has local subscribers; node liveness
//! is a heartbeat sorted set, and a survivor reaps a dead node's contributions.
//!
//! **Invariant:** this is the only crate that knows Redis, and `keys.rs` the only file that
//! formats a key. Queries read shared state; nothing here ever asks other nodes.

mod apps;
mod cache;
mod channels;
mod keys;
mod link;
mod listener;
mod liveness;
mod load;
mod presence;
mod quota;
mod relay;
mod schedule;
mod scripts;
#[cfg(feature = "test-support")]
pub mod test_support;
mod users;
mod webhooks;
#[doc(hidden)]
pub mod wire;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use herald_core::Apps;
use herald_core::backplane::{BackplaneError, Health, Inbound, Joined, Left, Member, Occupancy};
use herald_protocol::webhook::WebhookKind;
use herald_protocol::{ChannelName, SocketId, UserId};
use tokio::sync::{mpsc, oneshot};

pub use keys::{Contribution, Keys};
use link::Link;
pub use link::{ProbeError, RedisTls, check_url, probe};
use listener::ListenCmd;

/// How a node joins the cluster.
#[derive(Clone, Debug)]
pub struct RedisConfig {
    /// `redis://`, `rediss://`, `unix://`, `redis+sentinel://` or `rediss+sentinel://`.
    pub url: String,
    /// Trust and client certificate for the TLS forms.
    pub tls: RedisTls,
    /// Key prefix, so several clusters can share one Redis.
    pub prefix: String,
    pub heartbeat: Duration,
    /// A node silent this long is dead and gets reaped.
    pub node_timeout: Duration,
    /// The node's apps, live: their control topics are subscribed (an app added at runtime's
    /// at once), reaping walks them, and their webhooks say which debounced removal checks a
    /// leave schedules in its own step (`RemovalChecks`).
    pub apps: Apps,
    /// How long those checks wait for a re-join (`webhook_debounce_ms`).
    pub debounce: Duration,
}

/// Whether an app takes `channel_vacated` and `member_removed` webhooks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RemovalChecks {
    pub vacated: bool,
    pub member_removed: bool,
}

pub struct RedisBackplane {
    inner: Arc<Inner>,
}

struct Inner {
    keys: Keys,
    node: String,
    /// Where Redis is (behind Sentinel it moves); every connection comes from here.
    link: Arc<Link>,
    config: RedisConfig,
    listen: mpsc::UnboundedSender<ListenCmd>,
    inbound: mpsc::Sender<Inbound>,
    pubsub_up: AtomicBool,
    /// The lowest cluster format version a live node advertises (`wire::VERSION` alone).
    cluster_version: AtomicU32,
    /// The store's epoch as of this node's last heartbeat (`Keys::epoch`).
    epoch: Mutex<Option<String>>,
    /// How many times this node fenced itself; a decision taken before a fence is void after.
    fences: AtomicU64,
    /// Held while fencing or restoring: one settles at a time.
    settling: tokio::sync::Mutex<()>,
    /// Bumped when another node announced a change of the app store (and on every pub/sub
    /// reconnection: an announcement may have been missed).
    apps_announced: tokio::sync::watch::Sender<u64>,
    /// Pub/sub reconnections after the first connection (a metric).
    reconnects: AtomicU64,
    mirror: Mutex<Mirror>,
    /// Changes to this node's contributions hold it shared; re-asserting holds it exclusively,
    /// so the comparison of memory and Redis never sees a change half made.
    gate: tokio::sync::RwLock<()>,
}

/// What this node has told Redis, kept so it can be re-asserted after Redis lost it.
#[derive(Default)]
struct Mirror {
    /// app → encoded contribution → the presence member (for presence entries).
    contributions: HashMap<String, HashMap<String, Option<Member>>>,
    /// app → connections on this node.
    connections: HashMap<String, i64>,
}

/// How long a Redis command may go unanswered before it fails.
pub(crate) const COMMAND_TIMEOUT: Duration = Duration::from_secs(3);

fn err(e: impl std::error::Error + Send + Sync + 'static) -> BackplaneError {
    BackplaneError(Box::new(e))
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Unavailable(String);

impl RedisBackplane {
    /// Starts the node's pub/sub listener and liveness tasks and returns at once: the backplane
    /// is not ready until Redis answers, and keeps retrying (it never falls back to memory).
    pub fn start(
        config: RedisConfig,
    ) -> Result<(Arc<RedisBackplane>, mpsc::Receiver<Inbound>), BackplaneError> {
        let link = Arc::new(
            Link::new(&config.url, &config.tls)
                .map_err(|e| BackplaneError(Box::new(Unavailable(e))))?,
        );
        let (listen, listen_rx) = mpsc::unbounded_channel();
        let (inbound, inbound_rx) = mpsc::channel(4096);
        let node = format!("{:016x}", rand::random::<u64>());
        let inner = Arc::new(Inner {
            keys: if link.is_cluster() {
                Keys::clustered(&config.prefix)
            } else {
                Keys::new(&config.prefix)
            },
            node,
            link: link.clone(),
            config,
            listen,
            inbound,
            pubsub_up: AtomicBool::new(false),
            cluster_version: AtomicU32::new(wire::VERSION),
            epoch: Mutex::new(None),
            fences: AtomicU64::new(0),
            settling: tokio::sync::Mutex::new(()),
            apps_announced: tokio::sync::watch::Sender::new(0),
            reconnects: AtomicU64::new(0),
            mirror: Mutex::new(Mirror::default()),
            gate: tokio::sync::RwLock::new(()),
        });
        tokio::spawn(listener::run(inner.clone(), listen_rx));
        tokio::spawn(liveness::run(inner.clone()));
        tokio::spawn(link.watch_switches());
        Ok((Arc::new(RedisBackplane { inner }), inbound_rx))
    }

    /// The cluster's webhook queue (a Redis stream with a consumer group), delivered by any node.
    pub fn webhook_queue(&self) -> Arc<dyn herald_core::WebhookQueue> {
        Arc::new(webhooks::RedisWebhookQueue {
            inner: self.inner.clone(),
            last_reclaim: std::sync::Mutex::new(None),
        })
    }

    /// The apps kept in this cluster's Redis (`app_store = "redis"`).
    pub fn app_store(&self) -> Arc<dyn herald_core::store::AppStore> {
        Arc::new(apps::RedisAppStore {
            inner: self.inner.clone(),
        })
    }

    /// This node's id in the cluster.
    pub fn node_id(&self) -> &str {
        &self.inner.node
    }
}

impl Inner {
    /// Topics subscribed for as long as the node runs: the apps topic and every app's control
    /// topic.
    fn fixed_topics(&self) -> HashSet<String> {
        let mut topics: HashSet<String> = self
            .app_ids()
            .iter()
            .map(|a| self.keys.control_topic(a))
            .collect();
        topics.insert(self.keys.apps_topic());
        topics
    }

    /// The control topics of apps added since `fixed` was made (recorded in it).
    fn new_fixed_topics(&self, fixed: &mut HashSet<String>) -> Vec<String> {
        self.fixed_topics()
            .into_iter()
            .filter(|t| fixed.insert(t.clone()))
            .collect()
    }

    /// The ids of the node's apps as of now.
    fn app_ids(&self) -> Vec<String> {
        self.config.apps.iter().map(|a| a.id.to_string()).collect()
    }

    /// Which debounced removal checks a leave of `app` schedules in its own step: those of the
    /// webhooks the app takes (none for an app this node does not know).
    fn checks(&self, app: &str) -> RemovalChecks {
        self.config
            .apps
            .by_id(app)
            .map(|a| RemovalChecks {
                vacated: a.wants_webhook(WebhookKind::ChannelVacated),
                member_removed: a.wants_webhook(WebhookKind::MemberRemoved),
            })
            .unwrap_or_default()
    }

    async fn conn(&self) -> Result<link::Conn, BackplaneError> {
        self.link.conn().await
    }

    /// For XREADGROUP … BLOCK (its own connection on a Redis Cluster).
    async fn blocking_conn(&self) -> Result<link::Conn, BackplaneError> {
        self.link.blocking_conn().await
    }

    /// PUBLISH, or SPUBLISH on a Redis Cluster (sharded pub/sub: the message stays on the
    /// shard that owns the topic's slot).
    fn publish_cmd(&self) -> &'static str {
        if self.link.is_cluster() {
            "SPUBLISH"
        } else {
            "PUBLISH"
        }
    }

    async fn listen(&self, topic: String) -> Result<(), BackplaneError> {
        let (tx, rx) = oneshot::channel();
        self.listen
            .send(ListenCmd::Listen(topic, tx))
            .map_err(|_| BackplaneError(Box::new(Unavailable("listener stopped".into()))))?;
        match rx.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(why)) => Err(BackplaneError(Box::new(Unavailable(why)))),
            Err(_) => Err(BackplaneError(Box::new(Unavailable(
                "listener stopped".into(),
            )))),
        }
    }

    fn unlisten(&self, topic: String) {
        let _ = self.listen.send(ListenCmd::Unlisten(topic));
    }

    fn remember(&self, app: &str, c: &Contribution, member: Option<Member>) {
        let mut m = herald_core::sync::lock(&self.mirror);
        m.contributions
            .entry(app.to_owned())
            .or_default()
            .insert(c.encode(), member);
    }

    fn forget(&self, app: &str, c: &Contribution) {
        let mut m = herald_core::sync::lock(&self.mirror);
        if let Some(set) = m.contributions.get_mut(app) {
            set.remove(&c.encode());
        }
    }

    /// Runs `SUBSCRIBE` or `UNSUBSCRIBE` (same keys, same reply) as `node`; `check` (key, due)
    /// is scheduled by `UNSUBSCRIBE` when it vacates the channel, and cancelled by `SUBSCRIBE`
    /// when it occupies it (the due time unused).
    async fn run_occupancy(
        &self,
        script: &redis::Script,
        app: &str,
        node: &str,
        channel: &str,
        socket: &str,
        check: Option<(&str, u64)>,
    ) -> Result<Occupancy, BackplaneError> {
        let mut c = self.conn().await?;
        let mut invocation = script.key(self.keys.channels(app));
        invocation
            .key(self.keys.node(app, node))
            .arg(channel)
            .arg(socket);
        if let Some((key, due_ms)) = check {
            invocation
                .key(self.keys.scheduled(app))
                .arg(key)
                .arg(due_ms);
        }
        let (count, transition): (u64, u8) = invocation.invoke_async(&mut c).await.map_err(err)?;
        Ok(Occupancy {
            count,
            transition: transition >= 1,
            vacancy_cancelled: transition == 2,
        })
    }

    /// `removal_check`: the user's `member_removed` check key, cancelled in the same step when
    /// the user arrives (a client's join; never a replay of this node's own state).
    #[allow(clippy::too_many_arguments)]
    async fn run_join(
        &self,
        app: &str,
        node: &str,
        channel: &str,
        socket: &str,
        member: &Member,
        max: usize,
        removal_check: Option<String>,
    ) -> Result<Joined, BackplaneError> {
        let mut c = self.conn().await?;
        let mut script = scripts::PRESENCE_JOIN.prepare_invoke();
        script
            .key(self.keys.presence(app, channel))
            .key(self.keys.presence_users(app, channel))
            .key(self.keys.presence_info(app, channel))
            .key(self.keys.node(app, node))
            .key(self.keys.presence_version(app, channel))
            .arg(socket)
            .arg(member.user_id.as_str())
            .arg(member.user_info.as_deref().unwrap_or("null"))
            .arg(max)
            .arg(channel);
        if let Some(check) = removal_check {
            script.key(self.keys.scheduled(app)).arg(check);
        }
        let reply: Vec<redis::Value> = script.invoke_async(&mut c).await.map_err(err)?;
        let int = |v: Option<&redis::Value>| match v {
            Some(redis::Value::Int(n)) => *n,
            _ => 0,
        };
        if int(reply.first()) == 0 {
            return Ok(Joined::Full);
        }
        let arrival = int(reply.get(1));
        let version = int(reply.get(2)).max(0) as u64;
        let members = members_from(&reply[3.min(reply.len())..]);
        Ok(Joined::Admitted {
            new_user: arrival >= 1,
            members,
            version,
            removal_cancelled: arrival == 2,
        })
    }

    /// This node's leave of `channel` (see `run_occupancy` for `check`).
    async fn unsubscribe(
        &self,
        app: &str,
        channel: &ChannelName,
        socket: &SocketId,
        check: Option<(&str, u64)>,
    ) -> Result<Occupancy, BackplaneError> {
        self.unlisten(self.keys.channel_topic(app, channel.as_str()));
        let _gate = self.gate.read().await;
        self.forget(
            app,
            &Contribution::Subscription {
                channel: channel.to_string(),
                socket: socket.to_string(),
            },
        );
        let (channel, socket) = (channel.as_str(), socket.as_str());
        self.run_occupancy(
            &scripts::UNSUBSCRIBE,
            app,
            &self.node,
            channel,
            socket,
            check,
        )
        .await
    }

    /// This node's presence leave (see `run_leave` for `check`).
    async fn presence_leave(
        &self,
        app: &str,
        channel: &ChannelName,
        socket: &SocketId,
        check: Option<(&str, u64)>,
    ) -> Result<Option<Left>, BackplaneError> {
        let _gate = self.gate.read().await;
        self.forget(
            app,
            &Contribution::Presence {
                channel: channel.to_string(),
                socket: socket.to_string(),
            },
        );
        self.run_leave(app, &self.node, channel.as_str(), socket.as_str(), check)
            .await
    }

    async fn run_leave(
        &self,
        app: &str,
        node: &str,
        channel: &str,
        socket: &str,
        check: Option<(&str, u64)>,
    ) -> Result<Option<Left>, BackplaneError> {
        let mut c = self.conn().await?;
        let mut script = scripts::PRESENCE_LEAVE.key(self.keys.presence(app, channel));
        script
            .key(self.keys.presence_users(app, channel))
            .key(self.keys.presence_info(app, channel))
            .key(self.keys.node(app, node))
            .key(self.keys.presence_version(app, channel))
            .arg(socket)
            .arg(channel);
        if let Some((prefix, due_ms)) = check {
            script.key(self.keys.scheduled(app)).arg(prefix).arg(due_ms);
        }
        let gone: Option<(String, u64)> = script.invoke_async(&mut c).await.map_err(err)?;
        Ok(gone.and_then(|(u, version)| {
            Some(Left {
                user: UserId::parse(&u, usize::MAX)?,
                version,
            })
        }))
    }

    async fn run_signin(
        &self,
        app: &str,
        node: &str,
        user: &str,
        socket: &str,
        signin: bool,
    ) -> Result<bool, BackplaneError> {
        let mut c = self.conn().await?;
        let script = if signin {
            &*scripts::SIGNIN
        } else {
            &*scripts::SIGNOUT
        };
        let changed: u8 = script
            .key(self.keys.user(app, user))
            .key(self.keys.node(app, node))
            .arg(socket)
            .arg(user)
            .invoke_async(&mut c)
            .await
            .map_err(err)?;
        Ok(changed == 1)
    }

    async fn run_connections(
        &self,
        app: &str,
        node: &str,
        op: &[String],
    ) -> Result<u64, BackplaneError> {
        let mut c = self.conn().await?;
        let mut inv = scripts::CONNECTIONS.key(self.keys.connections(app));
        inv.arg(node);
        for a in op {
            inv.arg(a);
        }
        let total: i64 = inv.invoke_async(&mut c).await.map_err(err)?;
        Ok(total.max(0) as u64)
    }
}

/// `user, info, user, info…` from HGETALL of presence-info, sorted by user id.
fn members_from(flat: &[redis::Value]) -> Vec<Member> {
    let text = |v: &redis::Value| match v {
        redis::Value::BulkString(b) => String::from_utf8(b.clone()).ok(),
        redis::Value::SimpleString(s) => Some(s.clone()),
        _ => None,
    };
    let mut out: Vec<Member> = flat
        .chunks(2)
        .filter_map(|pair| {
            let user = UserId::parse(&text(pair.first()?)?, usize::MAX)?;
            let info = text(pair.get(1)?)?;
            let user_info = (info != "null").then(|| Arc::<str>::from(info));
            Some(Member {
                user_id: user,
                user_info,
            })
        })
        .collect();
    out.sort_by(|a, b| a.user_id.cmp(&b.user_id));
    out
}

#[async_trait]
impl Health for RedisBackplane {
    fn is_ready(&self) -> bool {
        self.inner.pubsub_up.load(Ordering::SeqCst)
    }

    fn reconnects(&self) -> u64 {
        self.inner.reconnects.load(Ordering::Relaxed)
    }

    fn primary_changes(&self) -> u64 {
        self.inner.link.moves()
    }

    fn cluster_version(&self) -> Option<u32> {
        Some(self.inner.cluster_version.load(Ordering::Relaxed))
    }

    async fn shutdown(&self) {
        self.inner.withdraw().await;
    }
}
