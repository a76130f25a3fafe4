//! `RedisBackplane`: the cluster backplane. Shared state lives in Redis hashes and sets changed
//! only by the atomic scripts in `scripts.rs`; traffic between nodes goes over per-channel
//! pub/sub topics that a node subscribes to only while it has local subscribers; node liveness
//! is a heartbeat sorted set, and a survivor reaps a dead node's contributions.
//!
//! **Invariant:** this is the only crate that knows Redis, and `keys.rs` the only file that
//! formats a key. Queries read shared state; nothing here ever asks other nodes.

mod keys;
mod listener;
mod liveness;
mod scripts;
#[cfg(feature = "test-support")]
pub mod test_support;
mod webhooks;
#[doc(hidden)]
pub mod wire;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use deadpool_redis::{Pool, Runtime};
use herald_core::backplane::{
    Backplane, BackplaneError, CachedEvent, ChannelCount, Control, Envelope, Inbound, Joined, Left,
    Member, Occupancy,
};
use herald_protocol::{ChannelKind, ChannelName, SocketId, UserId};
use tokio::sync::{mpsc, oneshot};

pub use keys::{Contribution, Keys};
use listener::ListenCmd;

/// How a node joins the cluster.
#[derive(Clone, Debug)]
pub struct RedisConfig {
    pub url: String,
    /// Key prefix, so several clusters can share one Redis.
    pub prefix: String,
    pub heartbeat: Duration,
    /// A node silent this long is dead and gets reaped.
    pub node_timeout: Duration,
    /// The configured app ids (their control topics are always subscribed; reaping walks them).
    pub apps: Vec<String>,
}

pub struct RedisBackplane {
    inner: Arc<Inner>,
}

struct Inner {
    keys: Keys,
    node: String,
    client: redis::Client,
    pool: Pool,
    apps: Vec<String>,
    config: RedisConfig,
    listen: mpsc::UnboundedSender<ListenCmd>,
    inbound: mpsc::Sender<Inbound>,
    pubsub_up: AtomicBool,
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
        let client = redis::Client::open(config.url.as_str()).map_err(err)?;
        let pool = deadpool_redis::Config::from_url(config.url.clone())
            .builder()
            .map_err(|e| BackplaneError(Box::new(Unavailable(e.to_string()))))?
            .max_size(16)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(Duration::from_secs(2)))
            .create_timeout(Some(Duration::from_secs(2)))
            .recycle_timeout(Some(Duration::from_secs(2)))
            .build()
            .map_err(|e| BackplaneError(Box::new(Unavailable(e.to_string()))))?;
        let (listen, listen_rx) = mpsc::unbounded_channel();
        let (inbound, inbound_rx) = mpsc::channel(4096);
        let node = format!("{:016x}", rand::random::<u64>());
        let inner = Arc::new(Inner {
            keys: Keys::new(&config.prefix),
            node,
            client,
            pool,
            apps: config.apps.clone(),
            config,
            listen,
            inbound,
            pubsub_up: AtomicBool::new(false),
            reconnects: AtomicU64::new(0),
            mirror: Mutex::new(Mirror::default()),
            gate: tokio::sync::RwLock::new(()),
        });
        tokio::spawn(listener::run(inner.clone(), listen_rx));
        tokio::spawn(liveness::run(inner.clone()));
        Ok((Arc::new(RedisBackplane { inner }), inbound_rx))
    }

    /// The cluster's webhook queue (a Redis stream with a consumer group), delivered by any node.
    pub fn webhook_queue(&self) -> Arc<dyn herald_core::WebhookQueue> {
        Arc::new(webhooks::RedisWebhookQueue {
            inner: self.inner.clone(),
            last_reclaim: std::sync::Mutex::new(None),
        })
    }

    /// This node's id in the cluster.
    pub fn node_id(&self) -> &str {
        &self.inner.node
    }
}

impl Inner {
    async fn conn(&self) -> Result<deadpool_redis::Connection, BackplaneError> {
        self.pool.get().await.map_err(err)
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
        let mut m = self.mirror.lock().unwrap_or_else(|e| e.into_inner());
        m.contributions
            .entry(app.to_owned())
            .or_default()
            .insert(c.encode(), member);
    }

    fn forget(&self, app: &str, c: &Contribution) {
        let mut m = self.mirror.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(set) = m.contributions.get_mut(app) {
            set.remove(&c.encode());
        }
    }

    /// Runs `SUBSCRIBE` or `UNSUBSCRIBE` (same keys, same reply) as `node`; `check` (key, due)
    /// is scheduled by `UNSUBSCRIBE` when it vacates the channel.
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
        let (count, transition): (u64, u8) = invocation.invoke_async(&mut *c).await.map_err(err)?;
        Ok(Occupancy {
            count,
            transition: transition == 1,
        })
    }

    async fn run_join(
        &self,
        app: &str,
        node: &str,
        channel: &str,
        socket: &str,
        member: &Member,
        max: usize,
    ) -> Result<Joined, BackplaneError> {
        let mut c = self.conn().await?;
        let reply: Vec<redis::Value> = scripts::PRESENCE_JOIN
            .key(self.keys.presence(app, channel))
            .key(self.keys.presence_users(app, channel))
            .key(self.keys.presence_info(app, channel))
            .key(self.keys.node(app, node))
            .key(self.keys.presence_version(app, channel))
            .arg(socket)
            .arg(member.user_id.as_str())
            .arg(member.user_info.as_deref().unwrap_or("null"))
            .arg(max)
            .arg(channel)
            .invoke_async(&mut *c)
            .await
            .map_err(err)?;
        let int = |v: Option<&redis::Value>| match v {
            Some(redis::Value::Int(n)) => *n,
            _ => 0,
        };
        if int(reply.first()) == 0 {
            return Ok(Joined::Full);
        }
        let new_user = int(reply.get(1)) == 1;
        let version = int(reply.get(2)).max(0) as u64;
        let members = members_from(&reply[3.min(reply.len())..]);
        Ok(Joined::Admitted {
            new_user,
            members,
            version,
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
        let gone: Option<(String, u64)> = script.invoke_async(&mut *c).await.map_err(err)?;
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
            .invoke_async(&mut *c)
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
        let total: i64 = inv.invoke_async(&mut *c).await.map_err(err)?;
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
impl Backplane for RedisBackplane {
    async fn publish(&self, app: &str, envelope: &Envelope) -> Result<(), BackplaneError> {
        let i = &self.inner;
        let mut c = i.conn().await?;
        let topic = i.keys.channel_topic(app, envelope.channel.as_str());
        redis::cmd("PUBLISH")
            .arg(topic)
            .arg(wire::encode_envelope(&i.node, envelope))
            .query_async::<()>(&mut *c)
            .await
            .map_err(err)
    }

    async fn control(&self, app: &str, control: &Control) -> Result<(), BackplaneError> {
        let i = &self.inner;
        let mut c = i.conn().await?;
        redis::cmd("PUBLISH")
            .arg(i.keys.control_topic(app))
            .arg(wire::encode_control(&i.node, control))
            .query_async::<()>(&mut *c)
            .await
            .map_err(err)
    }

    async fn subscribe(
        &self,
        app: &str,
        channel: &ChannelName,
        socket: &SocketId,
    ) -> Result<Occupancy, BackplaneError> {
        let i = &self.inner;
        let topic = i.keys.channel_topic(app, channel.as_str());
        // Listen first, so nothing published after the subscription counts is missed.
        i.listen(topic.clone()).await?;
        let _gate = i.gate.read().await;
        match i
            .run_occupancy(
                &scripts::SUBSCRIBE,
                app,
                &i.node,
                channel.as_str(),
                socket.as_str(),
                None,
            )
            .await
        {
            Ok(o) => {
                i.remember(
                    app,
                    &Contribution::Subscription {
                        channel: channel.to_string(),
                        socket: socket.to_string(),
                    },
                    None,
                );
                Ok(o)
            }
            Err(e) => {
                i.unlisten(topic);
                Err(e)
            }
        }
    }

    async fn unsubscribe(
        &self,
        app: &str,
        channel: &ChannelName,
        socket: &SocketId,
    ) -> Result<Occupancy, BackplaneError> {
        self.inner.unsubscribe(app, channel, socket, None).await
    }

    async fn unsubscribe_scheduling(
        &self,
        app: &str,
        channel: &ChannelName,
        socket: &SocketId,
        key: &str,
        due_ms: u64,
    ) -> Result<Occupancy, BackplaneError> {
        let check = Some((key, due_ms));
        self.inner.unsubscribe(app, channel, socket, check).await
    }

    async fn presence_join(
        &self,
        app: &str,
        channel: &ChannelName,
        socket: &SocketId,
        member: &Member,
        max_members: usize,
    ) -> Result<Joined, BackplaneError> {
        let i = &self.inner;
        let _gate = i.gate.read().await;
        let joined = i
            .run_join(
                app,
                &i.node,
                channel.as_str(),
                socket.as_str(),
                member,
                max_members,
            )
            .await?;
        if matches!(joined, Joined::Admitted { .. }) {
            let c = Contribution::Presence {
                channel: channel.to_string(),
                socket: socket.to_string(),
            };
            i.remember(app, &c, Some(member.clone()));
        }
        Ok(joined)
    }

    async fn presence_leave(
        &self,
        app: &str,
        channel: &ChannelName,
        socket: &SocketId,
    ) -> Result<Option<Left>, BackplaneError> {
        self.inner.presence_leave(app, channel, socket, None).await
    }

    async fn presence_leave_scheduling(
        &self,
        app: &str,
        channel: &ChannelName,
        socket: &SocketId,
        key_prefix: &str,
        due_ms: u64,
    ) -> Result<Option<Left>, BackplaneError> {
        let check = Some((key_prefix, due_ms));
        self.inner.presence_leave(app, channel, socket, check).await
    }

    async fn members(
        &self,
        app: &str,
        channel: &ChannelName,
    ) -> Result<Vec<Member>, BackplaneError> {
        let i = &self.inner;
        let mut c = i.conn().await?;
        let flat: Vec<redis::Value> = redis::cmd("HGETALL")
            .arg(i.keys.presence_info(app, channel.as_str()))
            .query_async(&mut *c)
            .await
            .map_err(err)?;
        Ok(members_from(&flat))
    }

    async fn channels(&self, app: &str, prefix: &str) -> Result<Vec<ChannelCount>, BackplaneError> {
        let i = &self.inner;
        let mut c = i.conn().await?;
        let key = i.keys.channels(app);
        let mut found: Vec<(String, u64)> = Vec::new();
        let mut cursor: u64 = 0;
        loop {
            let (next, page): (u64, Vec<(String, u64)>) = redis::cmd("HSCAN")
                .arg(&key)
                .arg(cursor)
                .arg("COUNT")
                .arg(1000)
                .query_async(&mut *c)
                .await
                .map_err(err)?;
            found.extend(
                page.into_iter()
                    .filter(|(name, n)| name.starts_with(prefix) && *n > 0),
            );
            if next == 0 {
                break;
            }
            cursor = next;
        }
        found.sort();
        found.dedup_by(|a, b| a.0 == b.0);
        let presence: Vec<&String> = found
            .iter()
            .map(|(n, _)| n)
            .filter(|n| {
                ChannelName::parse(n, usize::MAX).is_ok_and(|c| c.kind() == ChannelKind::Presence)
            })
            .collect();
        let mut pipe = redis::pipe();
        for name in &presence {
            pipe.cmd("HLEN").arg(i.keys.presence_users(app, name));
        }
        let user_counts: Vec<u64> = if presence.is_empty() {
            Vec::new()
        } else {
            pipe.query_async(&mut *c).await.map_err(err)?
        };
        let users: HashMap<&String, u64> = presence.into_iter().zip(user_counts).collect();
        Ok(found
            .iter()
            .map(|(name, n)| ChannelCount {
                name: name.clone(),
                subscription_count: *n,
                user_count: users.get(name).copied(),
            })
            .collect())
    }

    async fn channel(
        &self,
        app: &str,
        channel: &ChannelName,
    ) -> Result<ChannelCount, BackplaneError> {
        let i = &self.inner;
        let mut c = i.conn().await?;
        let (count, users): (Option<u64>, u64) = redis::pipe()
            .cmd("HGET")
            .arg(i.keys.channels(app))
            .arg(channel.as_str())
            .cmd("HLEN")
            .arg(i.keys.presence_users(app, channel.as_str()))
            .query_async(&mut *c)
            .await
            .map_err(err)?;
        Ok(ChannelCount {
            name: channel.to_string(),
            subscription_count: count.unwrap_or(0),
            user_count: (channel.kind() == ChannelKind::Presence).then_some(users),
        })
    }

    async fn user_signin(
        &self,
        app: &str,
        user: &UserId,
        socket: &SocketId,
    ) -> Result<bool, BackplaneError> {
        let i = &self.inner;
        let topic = i
            .keys
            .channel_topic(app, ChannelName::for_user(user).as_str());
        i.listen(topic.clone()).await?;
        let _gate = i.gate.read().await;
        match i
            .run_signin(app, &i.node, user.as_str(), socket.as_str(), true)
            .await
        {
            Ok(online) => {
                i.remember(
                    app,
                    &Contribution::Signin {
                        user: user.to_string(),
                        socket: socket.to_string(),
                    },
                    None,
                );
                Ok(online)
            }
            Err(e) => {
                i.unlisten(topic);
                Err(e)
            }
        }
    }

    async fn user_signout(
        &self,
        app: &str,
        user: &UserId,
        socket: &SocketId,
    ) -> Result<bool, BackplaneError> {
        let i = &self.inner;
        i.unlisten(
            i.keys
                .channel_topic(app, ChannelName::for_user(user).as_str()),
        );
        let _gate = i.gate.read().await;
        i.forget(
            app,
            &Contribution::Signin {
                user: user.to_string(),
                socket: socket.to_string(),
            },
        );
        i.run_signin(app, &i.node, user.as_str(), socket.as_str(), false)
            .await
    }

    async fn users_online(&self, app: &str, users: &[UserId]) -> Result<Vec<bool>, BackplaneError> {
        if users.is_empty() {
            return Ok(Vec::new());
        }
        let i = &self.inner;
        let mut c = i.conn().await?;
        let mut pipe = redis::pipe();
        for u in users {
            pipe.cmd("SCARD").arg(i.keys.user(app, u.as_str()));
        }
        let counts: Vec<u64> = pipe.query_async(&mut *c).await.map_err(err)?;
        Ok(counts.into_iter().map(|n| n > 0).collect())
    }

    async fn cache_set(
        &self,
        app: &str,
        channel: &ChannelName,
        event: CachedEvent,
    ) -> Result<(), BackplaneError> {
        let i = &self.inner;
        let mut c = i.conn().await?;
        // `{data length}\n{data}{frame}`: both strings back without any JSON work.
        let mut value = format!("{}\n{}", event.data.len(), event.data).into_bytes();
        value.extend_from_slice(&event.frame);
        redis::cmd("SET")
            .arg(i.keys.cache(app, channel.as_str()))
            .arg(value)
            .arg("PX")
            .arg(event.ttl.as_millis().max(1) as u64)
            .query_async::<()>(&mut *c)
            .await
            .map_err(err)
    }

    async fn cache_get(
        &self,
        app: &str,
        channel: &ChannelName,
    ) -> Result<Option<CachedEvent>, BackplaneError> {
        let i = &self.inner;
        let mut c = i.conn().await?;
        let key = i.keys.cache(app, channel.as_str());
        let (value, ttl_ms): (Option<Vec<u8>>, i64) = redis::pipe()
            .cmd("GET")
            .arg(&key)
            .cmd("PTTL")
            .arg(&key)
            .query_async(&mut *c)
            .await
            .map_err(err)?;
        let Some(value) = value else { return Ok(None) };
        let parsed = (|| {
            let nl = value.iter().position(|b| *b == b'\n')?;
            let len: usize = std::str::from_utf8(&value[..nl]).ok()?.parse().ok()?;
            let data = std::str::from_utf8(value.get(nl + 1..nl + 1 + len)?)
                .ok()?
                .to_owned();
            let frame = Bytes::copy_from_slice(value.get(nl + 1 + len..)?);
            Some((data, frame))
        })();
        Ok(parsed.map(|(data, frame)| CachedEvent {
            frame,
            data,
            ttl: Duration::from_millis(ttl_ms.max(1000) as u64),
        }))
    }

    async fn connections(&self, app: &str, delta: i64) -> Result<u64, BackplaneError> {
        let i = &self.inner;
        let _gate = i.gate.read().await;
        {
            let mut m = i.mirror.lock().unwrap_or_else(|e| e.into_inner());
            *m.connections.entry(app.to_owned()).or_default() += delta;
        }
        i.run_connections(app, &i.node, &[delta.to_string()]).await
    }

    async fn mark(&self, app: &str, key: &str, ttl: Duration) -> Result<bool, BackplaneError> {
        let i = &self.inner;
        let mut c = i.conn().await?;
        let set: Option<String> = redis::cmd("SET")
            .arg(i.keys.mark(app, key))
            .arg(1)
            .arg("NX")
            .arg("PX")
            .arg(ttl.as_millis().max(1) as u64)
            .query_async(&mut *c)
            .await
            .map_err(err)?;
        Ok(set.is_some())
    }

    async fn schedule(&self, app: &str, key: &str, due_ms: u64) -> Result<(), BackplaneError> {
        let i = &self.inner;
        let mut c = i.conn().await?;
        redis::cmd("ZADD")
            .arg(i.keys.scheduled(app))
            .arg(due_ms)
            .arg(key)
            .query_async::<()>(&mut *c)
            .await
            .map_err(err)
    }

    async fn cancel(&self, app: &str, key: &str) -> Result<bool, BackplaneError> {
        let i = &self.inner;
        let mut c = i.conn().await?;
        let removed: u32 = redis::cmd("ZREM")
            .arg(i.keys.scheduled(app))
            .arg(key)
            .query_async(&mut *c)
            .await
            .map_err(err)?;
        Ok(removed == 1)
    }

    async fn take_due(
        &self,
        app: &str,
        now_ms: u64,
        max: usize,
    ) -> Result<Vec<String>, BackplaneError> {
        let i = &self.inner;
        let mut c = i.conn().await?;
        scripts::TAKE_DUE
            .key(i.keys.scheduled(app))
            .arg(now_ms)
            .arg(max)
            .invoke_async(&mut *c)
            .await
            .map_err(err)
    }

    fn is_ready(&self) -> bool {
        self.inner.pubsub_up.load(Ordering::SeqCst)
    }

    fn reconnects(&self) -> u64 {
        self.inner.reconnects.load(Ordering::Relaxed)
    }

    async fn shutdown(&self) {
        self.inner.withdraw().await;
    }
}
