//! The node's hub: which local connections are on which channel, which are signed in as which
//! user, who watches whom; fan-out of encoded frames; the bridge to the backplane.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use bytes::Bytes;
use herald_protocol::event::encode;
use herald_protocol::{ChannelName, ErrorCode, SocketId, UserId};
use tokio::sync::mpsc;

use crate::admission::Admission;
pub use crate::admission::Handshake;
use crate::backplane::{
    Backplane, BackplaneError, CachedEvent, Control, Envelope, Inbound, Left, now_us,
};
use crate::conn::{CloseReason, ConnHandle, Sent};
use crate::console::{Console, LogEntry};
use crate::hooks::Hooks;
use crate::smallmap::SmallMap;
use crate::subscription_count::SubscriptionCounts;
use crate::sync::{lock, read, write};
use crate::webhook::WebhookQueue;
use crate::{App, AppChanges, AppId, Apps};

/// Node-wide settings the hub and its sessions need.
#[derive(Clone, Debug)]
pub struct HubConfig {
    /// Sent in `connection_established`; the server pings after this much silence.
    pub activity_timeout: Duration,
    /// Time a client has to answer a ping before it is closed with 4201.
    pub pong_timeout: Duration,
    /// Frames a connection may have queued before it counts as a slow consumer (4100).
    pub outbox_capacity: usize,
    /// Refuse connections without `protocol` (4008) and with a malformed `version` (4006).
    pub strict_protocol: bool,
    /// Most connections this node holds (4100 beyond it).
    pub max_node_connections: Option<usize>,
    /// Also report subscription errors as `pusher:error` (hosted Pusher's duplicate reporting).
    pub p_compat_errors: bool,
    /// How long `channel_vacated` and `member_removed` webhooks wait for a re-join that cancels
    /// them (Pusher: 3 s).
    pub webhook_debounce: Duration,
    /// This node's name in the console (the backplane's node id on a cluster).
    pub node_id: String,
}

impl Default for HubConfig {
    fn default() -> Self {
        HubConfig {
            activity_timeout: Duration::from_secs(120),
            pong_timeout: Duration::from_secs(30),
            outbox_capacity: 1024,
            strict_protocol: false,
            max_node_connections: None,
            p_compat_errors: false,
            webhook_debounce: Duration::from_secs(3),
            node_id: format!("{:016x}", rand::random::<u64>()),
        }
    }
}

#[derive(Default)]
struct AppLocal {
    conns: RwLock<HashMap<SocketId, ConnHandle>>,
    channels: RwLock<HashMap<String, ChannelSubs>>,
    users: RwLock<HashMap<UserId, SmallMap<SocketId, ConnHandle>>>,
    watchers: RwLock<HashMap<UserId, SmallMap<SocketId, ConnHandle>>>,
}

/// This node's connections on one channel.
#[derive(Default)]
struct ChannelSubs {
    active: SmallMap<SocketId, Active>,
    /// Connections whose subscription is being set up: frames for the channel are held here
    /// until the subscriber has its `subscription_succeeded` (or presence list), then flushed
    /// in order. Nothing published after the backplane subscription is lost, and nothing
    /// arrives before the confirmation.
    pending: Mutex<HashMap<SocketId, Pending>>,
    /// Presence: the membership version of the latest frame delivered per user. Frames of two
    /// nodes can reach this node in another order than their transitions happened (a leave on
    /// one node, the same user's rejoin on another); a frame older than one already delivered
    /// for its user is stale and dropped, so every list here ends as the store says.
    latest: Mutex<HashMap<String, u64>>,
}

/// An emptied map gives its buckets back: a channel's pending map is used for a moment per
/// subscribe, and keeping its allocation would cost every idle subscription about 250 bytes.
fn release_if_empty<K, V>(map: &mut HashMap<K, V>) {
    if map.is_empty() && map.capacity() > 0 {
        *map = HashMap::new();
    }
}

struct Pending {
    conn: ConnHandle,
    frames: Vec<(Bytes, Option<u64>)>,
}

struct Active {
    conn: ConnHandle,
    /// The presence membership version the subscriber's member list reflects (0 elsewhere):
    /// membership frames of that version or older are not sent to it again.
    since: u64,
}

impl Active {
    fn wants(&self, envelope: &Envelope) -> bool {
        envelope.version.is_none_or(|v| v > self.since)
    }
}

impl ChannelSubs {
    /// False for a membership frame older than the latest delivered for its user (recording
    /// it otherwise).
    fn in_order(&self, envelope: &Envelope) -> bool {
        let Some(version) = envelope.version else {
            return true;
        };
        let Some(user) = encode::membership_user(&envelope.frame) else {
            return true;
        };
        let mut latest = lock(&self.latest);
        match latest.get(&user) {
            Some(seen) if *seen >= version => false,
            _ => {
                latest.insert(user, version);
                true
            }
        }
    }
}

/// Numbers the hub reports; the server implements it with Prometheus (core knows no metrics
/// library).
pub trait HubMetrics: Send + Sync + 'static {
    /// One frame went to `recipients` local connections of `app`.
    fn delivered(&self, app: &AppId, recipients: usize, frame_bytes: usize);
    /// An event reached this node's subscribers `seconds` after it was published, on this
    /// node (`remote` false) or another.
    fn delivery_latency(&self, _remote: bool, _seconds: f64) {}
    /// A frame for `app` was dropped because a subscriber's outbox was full; `cut_off` when
    /// that closed the subscriber (4100).
    fn dropped(&self, _app: &AppId, _cut_off: bool) {}
}

struct Inner {
    metrics: std::sync::OnceLock<Arc<dyn HubMetrics>>,
    console: Arc<Console>,
    apps: Apps,
    backplane: Backplane,
    hooks: Arc<Hooks>,
    config: HubConfig,
    /// Per app: this node's connections, subscriptions, users and watchers. An entry is made
    /// for an app's first connection (apps come and go at runtime) and kept after the app is
    /// removed, so its closing connections still find it.
    local: RwLock<HashMap<AppId, Arc<AppLocal>>>,
    admission: Admission,
    counts: SubscriptionCounts,
}

/// Cheap to clone; one per node.
#[derive(Clone)]
pub struct Hub(Arc<Inner>);

/// `member_removed` for a user whose last connection left, tagged with its membership version.
pub(crate) fn member_removed(
    channel: ChannelName,
    left: &Left,
    except: Option<SocketId>,
) -> Envelope {
    let frame = Bytes::from(encode::member_removed(channel.as_str(), left.user.as_str()));
    Envelope::membership(channel, frame, except, left.version)
}

impl Hub {
    pub fn new(
        apps: Apps,
        backplane: Backplane,
        webhooks: Arc<dyn WebhookQueue>,
        config: HubConfig,
    ) -> Hub {
        let local = RwLock::new(
            apps.iter()
                .map(|a| (a.id.clone(), Arc::default()))
                .collect(),
        );
        let console = Arc::new(Console::new(&config.node_id));
        Hub(Arc::new(Inner {
            metrics: std::sync::OnceLock::new(),
            console,
            hooks: Arc::new(Hooks::new(
                apps.clone(),
                backplane.clone(),
                webhooks,
                config.webhook_debounce,
            )),
            admission: Admission::new(
                apps.clone(),
                config.strict_protocol,
                config.max_node_connections,
            ),
            counts: SubscriptionCounts::default(),
            apps,
            backplane,
            config,
            local,
        }))
    }

    /// Delivers what other nodes send until the backplane closes the channel.
    pub fn spawn_inbound(&self, mut rx: mpsc::Receiver<Inbound>) -> tokio::task::JoinHandle<()> {
        let hub = self.clone();
        tokio::spawn(async move {
            while let Some(msg) = rx.recv().await {
                match msg {
                    Inbound::Envelope { app, envelope } => hub.deliver_local(&app, &envelope, true),
                    Inbound::Control { app, control } => hub.apply_control(&app, &control),
                    Inbound::Reaped { app, event } => {
                        crate::reaped::announce(&hub, &app, event).await
                    }
                    Inbound::Fenced => hub.fence(),
                    Inbound::Resubscribed => hub.forget_membership_versions(),
                }
            }
        })
    }

    pub fn apps(&self) -> &Apps {
        &self.0.apps
    }

    pub fn config(&self) -> &HubConfig {
        &self.0.config
    }

    pub fn backplane(&self) -> &Backplane {
        &self.0.backplane
    }

    /// Handshake admission and the node's connection slots.
    pub fn admission(&self) -> &Admission {
        &self.0.admission
    }

    /// Connections open on this node.
    pub fn connection_count(&self) -> usize {
        self.0.admission.count()
    }

    /// Connections of one app on this node.
    pub fn app_connection_count(&self, app: &str) -> usize {
        self.local(app).map_or(0, |l| read(&l.conns).len())
    }

    /// Channels with local subscribers, per configured app.
    pub fn app_channel_count(&self, app: &str) -> usize {
        self.local(app).map_or(0, |l| read(&l.channels).len())
    }

    fn local<Q>(&self, app: &Q) -> Option<Arc<AppLocal>>
    where
        AppId: std::borrow::Borrow<Q>,
        Q: std::hash::Hash + Eq + ?Sized,
    {
        read(&self.0.local).get(app).cloned()
    }

    /// The app's local state, made at its first connection on this node.
    fn local_or_insert(&self, app: &AppId) -> Arc<AppLocal> {
        if let Some(l) = self.local(app) {
            return l;
        }
        write(&self.0.local).entry(app.clone()).or_default().clone()
    }

    /// Applies a change of the apps: a removed app's connections are closed with 4001 (the
    /// app no longer exists), a disabled one's with 4003; admission already refuses both.
    /// Everything else (limits, webhooks, secrets) applies to new work by itself.
    pub fn apply_app_changes(&self, changes: &AppChanges) {
        let disabled = changes
            .changed
            .iter()
            .filter(|(before, after)| before.enabled && !after.enabled)
            .map(|(_, after)| (after, ErrorCode::AppDisabled, "App disabled"));
        let removed = changes
            .removed
            .iter()
            .map(|app| (app, ErrorCode::AppNotFound, "App deleted"));
        for (app, code, message) in disabled.chain(removed) {
            let conns: Vec<ConnHandle> = self
                .local(&app.id)
                .map(|l| read(&l.conns).values().cloned().collect())
                .unwrap_or_default();
            if !conns.is_empty() {
                tracing::info!(app = %app.id, connections = conns.len(), code = code.code(), "{message}: closing its connections");
            }
            for conn in conns {
                conn.close(CloseReason::from_error(code, message));
            }
        }
    }

    /// Registers an opened connection; its slot was reserved and is released on close.
    pub(crate) fn connection_opened(&self, app: &AppId, conn: &ConnHandle) {
        let l = self.local_or_insert(app);
        write(&l.conns).insert(conn.socket_id().clone(), conn.clone());
        // Admitted just before the app was removed or disabled, and registered just after
        // `apply_app_changes` looked: closed here instead.
        match self.0.apps.by_id(app.as_str()) {
            None => conn.close(CloseReason::from_error(
                ErrorCode::AppNotFound,
                "App deleted",
            )),
            Some(a) if !a.enabled => conn.close(CloseReason::from_error(
                ErrorCode::AppDisabled,
                "App disabled",
            )),
            Some(_) => true,
        };
    }

    pub(crate) fn connection_closed(&self, app: &AppId, socket: &SocketId) {
        if let Some(l) = self.local(app)
            && write(&l.conns).remove(socket).is_some()
        {
            self.0.admission.release();
        }
    }

    /// Registers a subscription being set up: frames for the channel are held for it.
    pub(crate) fn add_pending(&self, app: &AppId, channel: &ChannelName, conn: &ConnHandle) {
        if let Some(l) = self.local(app) {
            let mut channels = write(&l.channels);
            let subs = channels.entry(channel.as_str().to_owned()).or_default();
            lock(&subs.pending).insert(
                conn.socket_id().clone(),
                Pending {
                    conn: conn.clone(),
                    frames: Vec::new(),
                },
            );
        }
    }

    /// Makes a pending subscription active: `cached` (a cache channel's last event) and the
    /// held frames go out first, in order, then new
    /// frames flow directly; membership frames the subscriber's list already reflects (version
    /// `since` or older) are dropped. Done under the channel map's write lock so no frame can
    /// overtake the held ones.
    pub(crate) fn activate(
        &self,
        app: &AppId,
        channel: &ChannelName,
        conn: &ConnHandle,
        since: u64,
        cached: Option<Bytes>,
    ) {
        let Some(l) = self.local(app) else { return };
        let mut channels = write(&l.channels);
        let subs = channels.entry(channel.as_str().to_owned()).or_default();
        if subs.active.is_empty() {
            // The store's counter is now `since`: with nobody active here, anything recorded
            // above it may be from before the channel emptied (the counter starts again) and
            // would hold back new frames. With a subscriber active here the channel never
            // emptied (its member leaves the store only after leaving `active`), so a higher
            // version is a transition after this snapshot, and forgetting it would let an older
            // frame still on its way through (a leave overtaken by the same user's rejoin).
            let mut latest = lock(&subs.latest);
            if latest.values().any(|v| *v > since) {
                latest.clear();
            }
        }
        let held = {
            let mut pending = lock(&subs.pending);
            let held = pending.remove(conn.socket_id());
            release_if_empty(&mut pending);
            held.map(|h| h.frames).unwrap_or_default()
        };
        // A cache channel's last event goes first, unless it is one of the held frames: then
        // it was published after this subscription began and arrives once, in its place.
        if let Some(cached) = cached
            && !held.iter().any(|(frame, _)| *frame == cached)
        {
            conn.send(cached);
        }
        for (frame, _) in held
            .into_iter()
            .filter(|(_, v)| v.is_none_or(|v| v > since))
        {
            conn.send(frame);
        }
        let active = Active {
            conn: conn.clone(),
            since,
        };
        subs.active.insert(conn.socket_id().clone(), active);
    }

    /// Removes an active or pending subscription.
    pub(crate) fn remove_subscriber(&self, app: &AppId, channel: &ChannelName, socket: &SocketId) {
        if let Some(l) = self.local(app) {
            let mut channels = write(&l.channels);
            if let Some(subs) = channels.get_mut(channel.as_str()) {
                subs.active.remove(socket);
                let empty = {
                    let mut pending = lock(&subs.pending);
                    pending.remove(socket);
                    release_if_empty(&mut pending);
                    pending.is_empty()
                };
                if subs.active.is_empty() {
                    // Nobody here needs the order any more, and the counter may start again.
                    lock(&subs.latest).clear();
                }
                if subs.active.is_empty() && empty {
                    channels.remove(channel.as_str());
                }
            }
        }
    }

    pub(crate) fn add_user(&self, app: &AppId, user: &UserId, conn: &ConnHandle) {
        if let Some(l) = self.local(app) {
            write(&l.users)
                .entry(user.clone())
                .or_default()
                .insert(conn.socket_id().clone(), conn.clone());
        }
    }

    pub(crate) fn remove_user(&self, app: &AppId, user: &UserId, socket: &SocketId) {
        if let Some(l) = self.local(app) {
            remove_from(&l.users, user, socket);
        }
    }

    pub(crate) fn add_watcher(&self, app: &AppId, watched: &UserId, conn: &ConnHandle) {
        if let Some(l) = self.local(app) {
            write(&l.watchers)
                .entry(watched.clone())
                .or_default()
                .insert(conn.socket_id().clone(), conn.clone());
        }
    }

    pub(crate) fn remove_watcher(&self, app: &AppId, watched: &UserId, socket: &SocketId) {
        if let Some(l) = self.local(app) {
            remove_from(&l.watchers, watched, socket);
        }
    }

    /// Sends an envelope to its channel's subscribers here and on every other node. The relay
    /// goes first: when it fails nobody receives the event, so the caller's error (HTTP 503)
    /// is true and a retry does not duplicate it here. Local delivery does not wait for the
    /// node's own echo, which the backplane drops.
    pub async fn publish(&self, app: &AppId, envelope: Envelope) -> Result<(), BackplaneError> {
        self.0.backplane.relay.publish(app, &envelope).await?;
        self.deliver_local(app, &envelope, false);
        Ok(())
    }

    /// Where delivery counts go (set once at start-up).
    pub fn set_metrics(&self, metrics: Arc<dyn HubMetrics>) {
        let _ = self.0.metrics.set(metrics);
    }

    /// The node's webhook decisions.
    pub fn hooks(&self) -> &Arc<Hooks> {
        &self.0.hooks
    }

    /// The node's debug-console tap.
    pub fn console(&self) -> &Console {
        &self.0.console
    }

    pub fn node_id(&self) -> &str {
        &self.0.config.node_id
    }

    /// Runs the console's cluster traffic (see `Console::spawn`).
    pub fn spawn_console(&self) -> tokio::task::JoinHandle<()> {
        let hub = self.clone();
        let relay = self.0.backplane.relay.clone();
        self.0.console.spawn(relay, move |app| {
            hub.app_connection_count(app.as_str()) as u64
        })
    }

    /// `publish` for frames nobody waits on: a backplane failure is logged, not returned.
    pub(crate) async fn relay(&self, app: &AppId, envelope: Envelope, what: &'static str) {
        let channel = envelope.channel.clone();
        if let Err(e) = self.publish(app, envelope).await {
            tracing::warn!(app = %app, channel = %channel, error = %e, "{what} not relayed to other nodes");
        }
    }

    /// Delivers an envelope to this node's connections: channel subscribers, or for
    /// `#server-to-user-{id}` every connection signed in as that user, subscribed or not.
    /// `remote`: it came from another node.
    pub fn deliver_local(&self, app: &AppId, envelope: &Envelope, remote: bool) {
        let Some(l) = self.local(app) else { return };
        let mut recipients = 0;
        let mut dropped = Vec::new();
        let mut send = |conn: &ConnHandle| {
            recipients += 1;
            if let Sent::Dropped { cut_off } = conn.send(envelope.frame.clone()) {
                dropped.push(cut_off);
            }
        };
        if let Some(user) = envelope.channel.server_to_user_id() {
            let users = read(&l.users);
            if let Some(conns) = UserId::parse(user, usize::MAX).and_then(|u| users.get(&u)) {
                for (sid, conn) in conns {
                    if envelope.except.as_ref() != Some(sid) {
                        send(conn);
                    }
                }
            }
        } else if let Some(subs) = read(&l.channels).get(envelope.channel.as_str()) {
            if !subs.in_order(envelope) {
                return;
            }
            for (sid, sub) in &subs.active {
                if envelope.except.as_ref() != Some(sid) && sub.wants(envelope) {
                    send(&sub.conn);
                }
            }
            let mut pending = lock(&subs.pending);
            for (sid, held) in pending.iter_mut() {
                if envelope.except.as_ref() == Some(sid) {
                    continue;
                }
                if held.frames.len() >= self.0.config.outbox_capacity {
                    let cut_off = held.conn.close(CloseReason::from_error(
                        ErrorCode::OverCapacity,
                        "Over capacity: too many messages while subscribing",
                    ));
                    dropped.push(cut_off);
                } else {
                    held.frames.push((envelope.frame.clone(), envelope.version));
                }
            }
        }
        let Some(m) = self.0.metrics.get() else {
            return;
        };
        if recipients > 0 {
            m.delivered(app, recipients, envelope.frame.len());
            let age_us = now_us().saturating_sub(envelope.published_us);
            m.delivery_latency(remote, age_us as f64 / 1e6);
        }
        for cut_off in dropped {
            m.dropped(app, cut_off);
        }
    }

    /// Applies a cluster-wide command to this node's connections.
    pub fn apply_control(&self, app: &AppId, control: &Control) {
        let Some(l) = self.local(app) else { return };
        match control {
            Control::TerminateUser(user) => {
                let conns: Vec<ConnHandle> = read(&l.users)
                    .get(user)
                    .map(|m| m.values().cloned().collect())
                    .unwrap_or_default();
                for conn in conns {
                    conn.close(CloseReason::from_error(
                        ErrorCode::Unauthorized,
                        "You got disconnected by the app.",
                    ));
                }
            }
            Control::Presence { user, online } => {
                let (on, off): (&[&str], &[&str]) = if *online {
                    (&[user.as_str()], &[])
                } else {
                    (&[], &[user.as_str()])
                };
                let frame = Bytes::from(encode::watchlist_events(on, off));
                if let Some(conns) = read(&l.watchers).get(user) {
                    for conn in conns.values() {
                        conn.send(frame.clone());
                    }
                }
            }
            Control::ConsoleWatch | Control::ConsoleLine(_) | Control::ConsoleStats { .. } => {
                self.0.console.apply(app, control);
            }
        }
    }

    /// Records that a connection signed in as `user` (`signed_in`) or has gone, and tells the
    /// watchers cluster-wide when that makes the user come online or go offline.
    pub(crate) async fn user_signed(
        &self,
        app: &App,
        user: &UserId,
        socket: &SocketId,
        signed_in: bool,
    ) {
        let users = &self.0.backplane.users;
        let changed = if signed_in {
            users.signin(&app.id, user, socket).await
        } else {
            users.signout(&app.id, user, socket).await
        };
        match changed {
            Ok(true) => self.announce_online(app, user.clone(), signed_in).await,
            Ok(false) => {}
            Err(e) => {
                tracing::warn!(app = %app.id, error = %e, "sign-in state not recorded on the backplane")
            }
        }
    }

    /// Tells every watcher in the cluster that `user` came online or went offline.
    pub(crate) async fn announce_online(&self, app: &App, user: UserId, online: bool) {
        if !app.features.watchlist_events {
            return;
        }
        if let Err(e) = self
            .control(&app.id, Control::Presence { user, online })
            .await
        {
            tracing::warn!(app = %app.id, error = %e, "watchlist event not relayed");
        }
    }

    /// Sends a command to every other node, then applies it here (relay first, as `publish`).
    pub async fn control(&self, app: &AppId, control: Control) -> Result<(), BackplaneError> {
        self.0.backplane.relay.control(app, &control).await?;
        self.apply_control(app, &control);
        Ok(())
    }

    /// Publishes an HTTP API event on one channel: encoded once, remembered on cache channels.
    pub async fn trigger(
        &self,
        app: &App,
        channel: &ChannelName,
        name: &str,
        data: &str,
        except: Option<SocketId>,
    ) -> Result<(), BackplaneError> {
        let frame = Bytes::from(encode::channel_event(name, channel.as_str(), data));
        if channel.is_cache() {
            let cached = CachedEvent {
                frame: frame.clone(),
                data: data.to_owned(),
                ttl: app.cache_ttl,
            };
            self.0.backplane.cache.set(&app.id, channel, cached).await?;
        }
        self.publish(&app.id, Envelope::new(channel.clone(), frame, except))
            .await?;
        let entry = LogEntry::ApiEvent {
            channel: channel.as_str(),
            event: name,
            data,
        };
        self.0.console.log(&app.id, entry);
        Ok(())
    }

    /// The channel's subscription count changed (see `subscription_count.rs`).
    pub(crate) fn count_changed(&self, app: &Arc<App>, channel: &ChannelName) {
        self.0.counts.changed(self, app, channel);
    }

    pub(crate) fn subscription_counts(&self) -> &SubscriptionCounts {
        &self.0.counts
    }

    /// The cluster reaped this node while it was alive: every local connection is closed with
    /// 4200, so its client reconnects (pusher-js does at once) and rejoins, and the cluster
    /// announces it again through the normal join path (`member_added`, online, occupied).
    pub fn fence(&self) {
        let conns = self.connections();
        tracing::warn!(
            connections = conns.len(),
            "this node was reaped while alive (paused or cut off past the node timeout); closing its connections with 4200 so clients rejoin"
        );
        for conn in conns {
            conn.close(CloseReason::from_error(
                ErrorCode::ReconnectNow,
                "This node lost its place in the cluster; reconnect",
            ));
        }
    }

    /// After the backplane's subscription was re-established: its membership counters may have
    /// started again (the store restarted empty), so nothing is filtered by older versions.
    pub fn forget_membership_versions(&self) {
        for l in read(&self.0.local).values() {
            for subs in write(&l.channels).values_mut() {
                lock(&subs.latest).clear();
                for sub in subs.active.values_mut() {
                    sub.since = 0;
                }
            }
        }
    }

    /// Every local connection, for a graceful drain.
    pub fn connections(&self) -> Vec<ConnHandle> {
        read(&self.0.local)
            .values()
            .flat_map(|l| read(&l.conns).values().cloned().collect::<Vec<_>>())
            .collect()
    }
}

fn remove_from(
    map: &RwLock<HashMap<UserId, SmallMap<SocketId, ConnHandle>>>,
    key: &UserId,
    socket: &SocketId,
) {
    let mut m = write(map);
    if let Some(conns) = m.get_mut(key) {
        conns.remove(socket);
        if conns.is_empty() {
            m.remove(key);
        }
    }
}

#[cfg(test)]
mod tests;
