//! The backplane: what nodes share. `MemoryBackplane` serves a single node; `RedisBackplane`
//! (crate `herald-redis`) serves a cluster. Both pass the same conformance checks.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use herald_protocol::{ChannelName, SocketId, UserId};

mod instrumented;
mod memory;
pub use instrumented::{BackplaneMetrics, Instrumented};
pub use memory::MemoryBackplane;

#[cfg(any(test, feature = "test-support"))]
pub mod conformance;

/// The backplane could not answer (Redis unreachable, script error). The hub turns it into a
/// `ServerError` subscription error or an HTTP 503.
#[derive(Debug, thiserror::Error)]
#[error("backplane unavailable: {0}")]
pub struct BackplaneError(#[source] pub Box<dyn std::error::Error + Send + Sync>);

/// A presence member: the user and the raw JSON text of its `user_info`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    pub user_id: UserId,
    pub user_info: Option<Arc<str>>,
}

/// The cluster-wide subscription count of a channel after a subscribe or unsubscribe.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Occupancy {
    pub count: u64,
    /// The count went 0 → 1 (subscribe) or 1 → 0 (unsubscribe): exactly once per cluster.
    pub transition: bool,
}

/// Result of a presence join.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Joined {
    /// Admitted. `new_user` is true when this is the user's first connection in the channel
    /// (send `member_added`); `members` is the member list including the joiner, as of
    /// membership `version`.
    Admitted {
        new_user: bool,
        members: Vec<Member>,
        version: u64,
    },
    /// The channel already holds the maximum number of distinct users.
    Full,
}

/// The last event published on a cache channel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CachedEvent {
    /// The frame exactly as delivered.
    pub frame: Bytes,
    /// The event's `data` string (for `GET /channels/{name}?info=cache`).
    pub data: String,
    /// Time left before the entry expires.
    pub ttl: Duration,
}

/// A channel in `GET /channels`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChannelCount {
    pub name: String,
    pub subscription_count: u64,
    /// Distinct users (presence channels only).
    pub user_count: Option<u64>,
}

/// A frame for the subscribers of one channel, on every node.
#[derive(Clone, Debug)]
pub struct Envelope {
    pub channel: ChannelName,
    pub frame: Bytes,
    /// This connection (on whichever node) does not receive it.
    pub except: Option<SocketId>,
    /// For presence membership frames: the membership version the change produced. A
    /// subscriber whose member list already reflects that version does not receive it.
    pub version: Option<u64>,
    /// When it was published (µs since the epoch, the publishing node's clock): the
    /// publish-to-delivery latency metric measures from here.
    pub published_us: u64,
}

impl Envelope {
    /// A frame for every subscriber of `channel` (but `except`), published now.
    pub fn new(channel: ChannelName, frame: Bytes, except: Option<SocketId>) -> Envelope {
        Envelope {
            channel,
            frame,
            except,
            version: None,
            published_us: now_us(),
        }
    }

    /// A presence membership frame producing membership `version`.
    pub fn membership(
        channel: ChannelName,
        frame: Bytes,
        except: Option<SocketId>,
        version: u64,
    ) -> Envelope {
        Envelope {
            version: Some(version),
            ..Envelope::new(channel, frame, except)
        }
    }
}

/// Microseconds since the Unix epoch (0 if the clock is before it).
pub fn now_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

/// A user's last connection left a presence channel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Left {
    pub user: UserId,
    /// The membership version after the removal.
    pub version: u64,
}

/// A cluster-wide command about one app.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Control {
    /// Close every connection signed in as this user (4009).
    TerminateUser(UserId),
    /// A user came online or went offline (watchlist events).
    Presence { user: UserId, online: bool },
    /// Someone watches the app in the debug console: log it for the next seconds.
    ConsoleWatch,
    /// One line of the app's console log (JSON).
    ConsoleLine(String),
    /// A node's connection count of the app, for the console's cluster view.
    ConsoleStats { node: String, connections: u64 },
}

/// What other nodes send to this one; handed to the hub once at start.
#[derive(Clone, Debug)]
pub enum Inbound {
    Envelope {
        app: String,
        envelope: Envelope,
    },
    Control {
        app: String,
        control: Control,
    },
    /// A dead node's contribution was undone by this node's reaper; the hub announces the
    /// resulting transition exactly as if the dead node's client had left.
    Reaped {
        app: String,
        event: Reaped,
    },
}

/// A transition produced by reaping a dead node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reaped {
    MemberRemoved { channel: ChannelName, left: Left },
    Vacated { channel: ChannelName },
    Unsubscribed { channel: ChannelName },
    Offline { user: UserId },
}

/// Shared state and relay between nodes.
///
/// Guarantees every implementation gives (checked by `conformance`):
/// - `publish` and `control` reach every *other* node's hub through its `Inbound` receiver, in
///   publish order per channel; the calling node delivers locally itself and never receives its
///   own messages back.
/// - `subscribe`/`unsubscribe`, `presence_join`/`presence_leave` and `user_signin`/`user_signout`
///   are atomic: each transition (occupied, vacated, new member, member gone, online, offline)
///   is reported to exactly one caller in the cluster.
/// - Queries (`channels`, `channel`, `members`, `users_online`, `cache_get`) read shared state,
///   never ask other nodes.
#[async_trait]
pub trait Backplane: Send + Sync + 'static {
    async fn publish(&self, app: &str, envelope: &Envelope) -> Result<(), BackplaneError>;
    async fn control(&self, app: &str, control: &Control) -> Result<(), BackplaneError>;

    /// One more subscription (a connection) on `channel`.
    async fn subscribe(
        &self,
        app: &str,
        channel: &ChannelName,
        socket: &SocketId,
    ) -> Result<Occupancy, BackplaneError>;
    async fn unsubscribe(
        &self,
        app: &str,
        channel: &ChannelName,
        socket: &SocketId,
    ) -> Result<Occupancy, BackplaneError>;
    /// `unsubscribe`, and when that vacates the channel, `schedule(app, key, due_ms)` in the
    /// same step: a node killed between the two would lose the vacancy's debounced webhook
    /// (webhooks are at-least-once). A cluster backplane does both atomically; this default,
    /// fine for a single process, runs them one after the other and only logs a failed
    /// schedule (the unsubscribe happened).
    async fn unsubscribe_scheduling(
        &self,
        app: &str,
        channel: &ChannelName,
        socket: &SocketId,
        key: &str,
        due_ms: u64,
    ) -> Result<Occupancy, BackplaneError> {
        let occupancy = self.unsubscribe(app, channel, socket).await?;
        if occupancy.transition
            && let Err(e) = self.schedule(app, key, due_ms).await
        {
            tracing::warn!(app, error = %e, "debounced webhook not scheduled; dropped");
        }
        Ok(occupancy)
    }

    /// Adds `socket` as `member` of a presence channel; refuses a new user beyond `max_members`.
    async fn presence_join(
        &self,
        app: &str,
        channel: &ChannelName,
        socket: &SocketId,
        member: &Member,
        max_members: usize,
    ) -> Result<Joined, BackplaneError>;
    /// Removes `socket`; returns the user (and the new membership version) when it was the
    /// user's last connection in the channel.
    async fn presence_leave(
        &self,
        app: &str,
        channel: &ChannelName,
        socket: &SocketId,
    ) -> Result<Option<Left>, BackplaneError>;
    /// `presence_leave`, and when that was the user's last connection, `schedule(app,
    /// key_prefix + user, due_ms)` in the same step (see `unsubscribe_scheduling`).
    async fn presence_leave_scheduling(
        &self,
        app: &str,
        channel: &ChannelName,
        socket: &SocketId,
        key_prefix: &str,
        due_ms: u64,
    ) -> Result<Option<Left>, BackplaneError> {
        let left = self.presence_leave(app, channel, socket).await?;
        if let Some(l) = &left {
            let key = format!("{key_prefix}{}", l.user);
            if let Err(e) = self.schedule(app, &key, due_ms).await {
                tracing::warn!(app, error = %e, "debounced webhook not scheduled; dropped");
            }
        }
        Ok(left)
    }
    async fn members(
        &self,
        app: &str,
        channel: &ChannelName,
    ) -> Result<Vec<Member>, BackplaneError>;

    /// Occupied channels whose name starts with `prefix`.
    async fn channels(&self, app: &str, prefix: &str) -> Result<Vec<ChannelCount>, BackplaneError>;
    /// Counts of one channel (zero when unoccupied).
    async fn channel(
        &self,
        app: &str,
        channel: &ChannelName,
    ) -> Result<ChannelCount, BackplaneError>;

    /// A connection signed in as `user`; true when the user just came online.
    async fn user_signin(
        &self,
        app: &str,
        user: &UserId,
        socket: &SocketId,
    ) -> Result<bool, BackplaneError>;
    /// A signed-in connection closed; true when the user just went offline.
    async fn user_signout(
        &self,
        app: &str,
        user: &UserId,
        socket: &SocketId,
    ) -> Result<bool, BackplaneError>;
    async fn users_online(&self, app: &str, users: &[UserId]) -> Result<Vec<bool>, BackplaneError>;

    async fn cache_set(
        &self,
        app: &str,
        channel: &ChannelName,
        event: CachedEvent,
    ) -> Result<(), BackplaneError>;
    async fn cache_get(
        &self,
        app: &str,
        channel: &ChannelName,
    ) -> Result<Option<CachedEvent>, BackplaneError>;

    /// Counts a connection of the app in (`+1`) or out (`-1`); returns the cluster-wide total.
    async fn connections(&self, app: &str, delta: i64) -> Result<u64, BackplaneError>;

    /// Sets a cluster-wide marker that expires after `ttl`; true if it was not set already.
    /// Webhook de-duplication uses it (`SET NX PX`).
    async fn mark(&self, app: &str, key: &str, ttl: Duration) -> Result<bool, BackplaneError>;

    /// Schedules `key` to fall due at `due_ms` (ms since the epoch), replacing an earlier
    /// schedule. Webhook debounce lives here, not in a node's timers, so it survives the node.
    async fn schedule(&self, app: &str, key: &str, due_ms: u64) -> Result<(), BackplaneError>;
    /// Cancels a scheduled key; true if it was still scheduled.
    async fn cancel(&self, app: &str, key: &str) -> Result<bool, BackplaneError>;
    /// Claims up to `max` keys due at `now_ms`, earliest first; each key goes to exactly one
    /// caller in the cluster.
    async fn take_due(
        &self,
        app: &str,
        now_ms: u64,
        max: usize,
    ) -> Result<Vec<String>, BackplaneError>;

    /// Whether the backplane can serve right now (readiness). The memory backplane always can.
    fn is_ready(&self) -> bool {
        true
    }

    /// How often the connection to the shared store was re-established (a counter; the memory
    /// backplane never reconnects).
    fn reconnects(&self) -> u64 {
        0
    }

    /// Called once at shutdown: withdraw this node's contributions so counts and members fall
    /// at once instead of after the dead-node timeout.
    async fn shutdown(&self) {}
}
