//! The backplane: what nodes share, split by concern into small traits — `Relay` (traffic
//! between nodes), `Channels` (subscription counts), `Presence`, `Users` (sign-in), `Cache`,
//! `Schedule` (debounced webhook checks and markers), `Quota` (cluster-wide counts), `Load`
//! (each node's connection count, for rebalancing) and `Health`.
//! A node holds one `Backplane`: the bundle of them. `MemoryBackplane` serves a single node;
//! `RedisBackplane` (crate `herald-redis`) serves a cluster. Each implements every concern, and
//! each concern has its conformance module, run against both.
//!
//! Every operation is timed through `Backplane::timed`: the traits are declared with the
//! `concern!` macro, which writes the timing wrapper of each method once, so no forwarding
//! method is written by hand.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use herald_protocol::{ChannelName, SocketId, UserId};

use crate::AppId;

/// Declares a backplane concern: the async trait (each method returning
/// `Result<_, BackplaneError>`) and its implementation for `Timed<dyn Trait>`, which reports each
/// call to `BackplaneMetrics` under the label after `=`. The labels are the metric's `op`
/// values, a contract with dashboards: never rename one.
macro_rules! concern {
    (
        $(#[$doc:meta])*
        pub trait $name:ident {
            $(
                $(#[$mdoc:meta])*
                fn $method:ident(&self $(, $arg:ident: $ty:ty)* $(,)?) -> $ret:ty = $op:literal;
            )*
        }
    ) => {
        $(#[$doc])*
        #[async_trait::async_trait]
        pub trait $name: Send + Sync + 'static {
            $(
                $(#[$mdoc])*
                async fn $method(&self $(, $arg: $ty)*) -> Result<$ret, $crate::backplane::BackplaneError>;
            )*
        }

        #[async_trait::async_trait]
        impl $name for $crate::backplane::timed::Timed<dyn $name> {
            $(
                async fn $method(&self $(, $arg: $ty)*) -> Result<$ret, $crate::backplane::BackplaneError> {
                    self.time($op, self.inner.$method($($arg),*)).await
                }
            )*
        }
    };
}

mod cache;
mod channels;
mod health;
mod load;
mod memory;
mod presence;
mod quota;
mod relay;
mod schedule;
mod timed;
mod users;

pub use cache::Cache;
pub use channels::Channels;
pub use health::Health;
pub use load::Load;
pub use memory::MemoryBackplane;
pub use presence::Presence;
pub use quota::Quota;
pub use relay::Relay;
pub use schedule::{Check, Mark, Schedule, parse_claimed};
pub use timed::BackplaneMetrics;
pub use users::Users;

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
    /// Subscribe only: the channel's `Check::Vacated` was still waiting out its debounce and
    /// this occupancy cancelled it in the same step (neither webhook goes out).
    pub vacancy_cancelled: bool,
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
        /// The user's `Check::MemberRemoved` was still waiting out its debounce and this join
        /// cancelled it in the same step: a re-join, so neither webhook goes out.
        removal_cancelled: bool,
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
        app: AppId,
        envelope: Envelope,
    },
    Control {
        app: AppId,
        control: Control,
    },
    /// A dead node's contribution was undone by this node's reaper; the hub announces the
    /// resulting transition exactly as if the dead node's client had left.
    Reaped {
        app: AppId,
        event: Reaped,
    },
    /// This node was taken for dead and reaped while it was alive (paused, or cut off from the
    /// shared store past the node timeout): the cluster already announced its members and
    /// users as gone, so its clients' views and everyone else's disagree. The hub closes every
    /// local connection with 4200; clients reconnect and rejoin through the normal path.
    Fenced,
    /// The node's subscription to the shared store was re-established after it was lost. The
    /// store may have restarted empty, and its membership versions with it: the hub forgets
    /// the versions it filtered presence frames by, so new ones are not taken for stale.
    Resubscribed,
}

/// A transition produced by reaping a dead node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reaped {
    MemberRemoved { channel: ChannelName, left: Left },
    Vacated { channel: ChannelName },
    Unsubscribed { channel: ChannelName },
    Offline { user: UserId },
}

/// Everything a node shares with the others, one handle per concern. Sessions and the hub use
/// the concern they need (`bp.presence.join(…)`); nothing reaches an implementation directly.
#[derive(Clone)]
pub struct Backplane {
    pub relay: Arc<dyn Relay>,
    pub channels: Arc<dyn Channels>,
    pub presence: Arc<dyn Presence>,
    pub users: Arc<dyn Users>,
    pub cache: Arc<dyn Cache>,
    pub schedule: Arc<dyn Schedule>,
    pub quota: Arc<dyn Quota>,
    pub load: Arc<dyn Load>,
    pub health: Arc<dyn Health>,
}

impl Backplane {
    /// One implementation serving every concern (both of ours do).
    pub fn new<T>(one: Arc<T>) -> Backplane
    where
        T: Relay + Channels + Presence + Users + Cache + Schedule + Quota + Load + Health,
    {
        Backplane {
            relay: one.clone(),
            channels: one.clone(),
            presence: one.clone(),
            users: one.clone(),
            cache: one.clone(),
            schedule: one.clone(),
            quota: one.clone(),
            load: one.clone(),
            health: one,
        }
    }

    /// The embedded backplane of a single node.
    pub fn memory() -> Backplane {
        Backplane::new(Arc::new(MemoryBackplane::new()))
    }

    /// The same backplane with every operation timed into `metrics` (on a cluster each
    /// operation is one Redis round trip, connection wait included).
    pub fn timed(self, metrics: Arc<dyn BackplaneMetrics>) -> Backplane {
        use timed::Timed;
        let m = &metrics;
        Backplane {
            relay: Timed::wrap(self.relay, m),
            channels: Timed::wrap(self.channels, m),
            presence: Timed::wrap(self.presence, m),
            users: Timed::wrap(self.users, m),
            cache: Timed::wrap(self.cache, m),
            schedule: Timed::wrap(self.schedule, m),
            quota: Timed::wrap(self.quota, m),
            load: Timed::wrap(self.load, m),
            health: self.health,
        }
    }
}
