//! Node liveness: the heartbeat, reaping dead nodes, re-asserting this node's state after Redis
//! lost it, and withdrawing it at shutdown. All undo work goes through the same idempotent
//! scripts as normal leaves, so each transition is announced exactly once.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use herald_core::backplane::{BackplaneError, Check, Inbound, Reaped};
use herald_protocol::{ChannelName, UserId};

use crate::{Contribution, Inner, err, scripts};

pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

pub async fn run(inner: Arc<Inner>) {
    let mut tick = tokio::time::interval(inner.config.heartbeat);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut first = true;
    // After this node could not reach Redis, it reaps nobody for a node timeout: when Redis
    // was away for everyone, every node's last beat looks old, and live peers need one beat to
    // show they are alive.
    let mut reap_from: Option<tokio::time::Instant> = None;
    loop {
        tick.tick().await;
        let may_reap = reap_from.is_none_or(|t| tokio::time::Instant::now() >= t);
        let fences = inner.fences.load(std::sync::atomic::Ordering::SeqCst);
        match beat_and_reap(&inner, may_reap).await {
            // A survivor reaped this node while it was paused or cut off (it marked it so), and
            // the cluster has announced its clients as gone.
            Ok(Beat::Reaped) => inner.clone().fence(fences).await,
            // Not in the node list although we beat before: the same, from a reaper of an
            // older release that leaves no mark (Redis kept its data: same epoch); or Redis
            // restarted empty (a new epoch), and nobody announced anything.
            Ok(Beat::Missing { same_epoch: true }) if !first => inner.clone().fence(fences).await,
            Ok(Beat::Missing { .. }) if !first => {
                tracing::warn!(
                    "Redis lost this node's state (it restarted empty); restoring it quietly"
                );
                inner.clone().restore(fences).await;
                inner.clone().recheck_later();
            }
            Ok(_) => first = false,
            Err(e) => {
                reap_from = Some(tokio::time::Instant::now() + inner.config.node_timeout);
                tracing::debug!(error = %e, "heartbeat failed");
                // Behind Sentinel: the master may have died or been demoted (READONLY).
                inner.link.suspect();
            }
        }
    }
}

/// What a heartbeat found.
enum Beat {
    Listed,
    /// This node was not in the node list; `same_epoch`: the store kept its data since the
    /// last beat.
    Missing {
        same_epoch: bool,
    },
    /// A survivor reaped this node (its mark is set); it was not listed again.
    Reaped,
}

/// Beats, then reaps whoever is dead.
async fn beat_and_reap(inner: &Inner, may_reap: bool) -> Result<Beat, BackplaneError> {
    let mut c = inner.conn().await?;
    let now = now_ms();
    let fresh = format!("{:016x}", rand::random::<u64>());
    let (status, epoch): (u8, String) = scripts::BEAT
        .key(inner.keys.nodes())
        .key(inner.keys.versions())
        .key(inner.keys.epoch())
        .key(inner.keys.reaped(&inner.node))
        .arg(now)
        .arg(&inner.node)
        .arg(crate::wire::VERSION)
        .arg(&fresh)
        .invoke_async(&mut c)
        .await
        .map_err(err)?;
    let same_epoch = {
        let mut seen = herald_core::sync::lock(&inner.epoch);
        let same = seen.as_deref() == Some(epoch.as_str());
        *seen = Some(epoch);
        same
    };
    let deadline = now.saturating_sub(inner.config.node_timeout.as_millis() as u64);
    let dead: Vec<String> = redis::cmd("ZRANGEBYSCORE")
        .arg(inner.keys.nodes())
        .arg("-inf")
        .arg(deadline)
        .query_async(&mut c)
        .await
        .map_err(err)?;
    for node in dead.into_iter().filter(|n| may_reap && *n != inner.node) {
        // One survivor reaps. The lock lasts a node timeout and the reaper extends it as it
        // goes: if the reaper dies too, another survivor resumes soon after.
        let won: Option<String> = redis::cmd("SET")
            .arg(inner.keys.reap_lock(&node))
            .arg(&inner.node)
            .arg("NX")
            .arg("PX")
            .arg(inner.reap_lock_ms())
            .query_async(&mut c)
            .await
            .map_err(err)?;
        if won.is_some() {
            // Marked first: a beat of the node that arrives from now on does not list it again.
            redis::cmd("SET")
                .arg(inner.keys.reaped(&node))
                .arg(&inner.node)
                .arg("PX")
                .arg(REAPED_MARK_MS)
                .query_async::<()>(&mut c)
                .await
                .map_err(err)?;
            let undone = reap(inner, &node).await?;
            redis::pipe()
                .cmd("ZREM")
                .arg(inner.keys.nodes())
                .arg(&node)
                .cmd("HDEL")
                .arg(inner.keys.versions())
                .arg(&node)
                .cmd("HDEL")
                .arg(inner.keys.load())
                .arg(&node)
                .query_async::<()>(&mut c)
                .await
                .map_err(err)?;
            tracing::warn!(dead_node = %node, contributions = undone, "reaped a dead node");
        }
    }
    negotiate(inner, &mut c, deadline).await?;
    Ok(match status {
        2 => Beat::Reaped,
        1 => Beat::Missing { same_epoch },
        _ => Beat::Listed,
    })
}

/// How long a reaped node's mark lasts: far past any pause or partition a node comes back from.
const REAPED_MARK_MS: u64 = 3_600_000;

/// The cluster's format version: the lowest any live node advertises (a node of a release
/// before negotiation advertises nothing and speaks version 1). Logged when it changes.
async fn negotiate(
    inner: &Inner,
    c: &mut crate::link::Conn,
    deadline: u64,
) -> Result<(), BackplaneError> {
    let live: Vec<String> = redis::cmd("ZRANGEBYSCORE")
        .arg(inner.keys.nodes())
        .arg(format!("({deadline}"))
        .arg("+inf")
        .query_async(&mut *c)
        .await
        .map_err(err)?;
    let advertised: Vec<Option<u32>> = if live.is_empty() {
        Vec::new()
    } else {
        redis::cmd("HMGET")
            .arg(inner.keys.versions())
            .arg(&live)
            .query_async(&mut *c)
            .await
            .map_err(err)?
    };
    let version = cluster_version(&advertised);
    let before = inner
        .cluster_version
        .swap(version, std::sync::atomic::Ordering::Relaxed);
    if before != version {
        tracing::info!(
            cluster_version = version,
            this_node = crate::wire::VERSION,
            nodes = live.len(),
            "the cluster's format version changed"
        );
    }
    if version < crate::wire::OLDEST {
        tracing::error!(
            cluster_version = version,
            oldest_readable = crate::wire::OLDEST,
            "a live node speaks a cluster format this release cannot read; upgrade it first (one release at a time)"
        );
    }
    Ok(())
}

/// The lowest advertised version, counting a node that advertises none as version 1; this
/// node's own version when it is alone.
pub(crate) fn cluster_version(advertised: &[Option<u32>]) -> u32 {
    advertised
        .iter()
        .map(|v| v.unwrap_or(1))
        .min()
        .unwrap_or(crate::wire::VERSION)
        .min(crate::wire::VERSION)
}

/// Undoes everything `node` contributed, announcing each transition through this node's hub.
async fn reap(inner: &Inner, node: &str) -> Result<usize, BackplaneError> {
    let mut total = 0;
    for app in &inner.app_ids() {
        let mut c = inner.conn().await?;
        let entries: Vec<String> = redis::cmd("SMEMBERS")
            .arg(inner.keys.node(app, node))
            .query_async(&mut c)
            .await
            .map_err(err)?;
        let entries: Vec<Contribution> = entries
            .iter()
            .filter_map(|e| Contribution::decode(e))
            .collect();
        total += entries.len();
        undo(inner, app, node, entries).await?;
        inner
            .run_connections(app, node, &["del".to_owned()])
            .await?;
    }
    Ok(total)
}

/// Runs the leave scripts for `entries` as `node`, presence first so `member_removed` precedes
/// the vacancy, and hands the transitions to the hub.
async fn undo(
    inner: &Inner,
    app: &str,
    node: &str,
    mut entries: Vec<Contribution>,
) -> Result<(), BackplaneError> {
    entries.sort_by_key(|c| match c {
        Contribution::Presence { .. } => 0,
        Contribution::Subscription { .. } => 1,
        Contribution::Signin { .. } => 2,
    });
    // The removal webhooks' debounced checks are scheduled by the leave scripts themselves, as
    // on a live leave: a node that dies midway through this loop loses none of those already
    // replayed, and whoever resumes replays only what is left in the node's set.
    let checks = inner.checks(app);
    let due = now_ms() + inner.config.debounce.as_millis() as u64;
    for (done, entry) in entries.into_iter().enumerate() {
        if done % 64 == 63 {
            inner.extend_reap_lock(node).await;
        }
        let event = match &entry {
            Contribution::Presence { channel, socket } => {
                let prefix = ChannelName::parse(channel, usize::MAX)
                    .ok()
                    .filter(|_| checks.member_removed)
                    .map(|c| Check::member_removed_prefix(&c));
                let check = prefix.as_deref().map(|p| (p, due));
                let gone = inner.run_leave(app, node, channel, socket, check).await?;
                match (gone, ChannelName::parse(channel, usize::MAX)) {
                    (Some(left), Ok(channel)) => Some(Reaped::MemberRemoved { channel, left }),
                    _ => None,
                }
            }
            Contribution::Subscription { channel, socket } => {
                let key = ChannelName::parse(channel, usize::MAX)
                    .ok()
                    .filter(|_| checks.vacated)
                    .map(|c| Check::Vacated(c).key());
                let check = key.as_deref().map(|k| (k, due));
                let o = inner
                    .run_occupancy(&scripts::UNSUBSCRIBE, app, node, channel, socket, check)
                    .await?;
                ChannelName::parse(channel, usize::MAX).ok().map(|channel| {
                    if o.transition {
                        Reaped::Vacated { channel }
                    } else {
                        Reaped::Unsubscribed { channel }
                    }
                })
            }
            Contribution::Signin { user, socket } => {
                let offline = inner.run_signin(app, node, user, socket, false).await?;
                UserId::parse(user, usize::MAX)
                    .filter(|_| offline)
                    .map(|user| Reaped::Offline { user })
            }
        };
        if let Some(event) = event {
            let _ = inner
                .inbound
                .send(Inbound::Reaped {
                    app: herald_core::AppId::new(app),
                    event,
                })
                .await;
        }
    }
    Ok(())
}

/// What a node that was away from Redis must do.
enum Verdict {
    /// Survivors reaped it: forget, and send the clients to rejoin.
    Fence,
    /// Nobody did: put back whatever Redis lost.
    Restore,
}

impl Inner {
    /// After the pub/sub connection came back: fence if survivors reaped this node meanwhile,
    /// otherwise put back whatever Redis lost; and look again a node timeout later, for writes
    /// sent before a partition that reach Redis only after it healed. The heartbeat takes the
    /// same decision when it finds itself reaped or missing; whichever comes first fences, and
    /// the other's decision is void after it.
    pub(crate) async fn recover(self: Arc<Self>) {
        self.clone().settle().await;
        self.recheck_later();
    }

    fn recheck_later(self: Arc<Self>) {
        tokio::spawn(async move {
            tokio::time::sleep(self.config.node_timeout).await;
            self.settle().await;
        });
    }

    async fn settle(self: Arc<Self>) {
        let fences = self.fences.load(std::sync::atomic::Ordering::SeqCst);
        match self.verdict().await {
            Ok(Verdict::Fence) => self.fence(fences).await,
            Ok(Verdict::Restore) => self.restore(fences).await,
            Err(e) => tracing::warn!(error = %e, "checking this node's state failed"),
        }
    }

    /// Reaped: marked so by a survivor, or (reaped by an older release, which leaves no mark)
    /// missing from the node list while the store kept its data since this node's last beat.
    async fn verdict(&self) -> Result<Verdict, BackplaneError> {
        let seen = herald_core::sync::lock(&self.epoch).clone();
        let mut c = self.conn().await?;
        let (score, epoch, marked): (Option<f64>, Option<String>, bool) = redis::pipe()
            .cmd("ZSCORE")
            .arg(self.keys.nodes())
            .arg(&self.node)
            .cmd("GET")
            .arg(self.keys.epoch())
            .cmd("EXISTS")
            .arg(self.keys.reaped(&self.node))
            .query_async(&mut c)
            .await
            .map_err(err)?;
        let reaped = marked || (score.is_none() && epoch.is_some() && epoch == seen);
        Ok(if reaped {
            Verdict::Fence
        } else {
            Verdict::Restore
        })
    }

    /// Fenced, unless it already fenced since `fences` was read: what this node remembered
    /// contributing was undone by a survivor (and announced), so it is forgotten, and anything
    /// of it still in the store (a write sent before the partition and delivered after the
    /// reap) is undone and announced too. The connections stay counted until they close, so
    /// their closes count down from the truth. Then the node lists itself again, clearing its
    /// reaped mark, and the hub closes its connections (4200): their clients rejoin through
    /// the normal join path.
    pub(crate) async fn fence(self: Arc<Self>, fences: u64) {
        let _one = self.settling.lock().await;
        if self
            .fences
            .compare_exchange(
                fences,
                fences + 1,
                std::sync::atomic::Ordering::SeqCst,
                std::sync::atomic::Ordering::SeqCst,
            )
            .is_err()
        {
            return;
        }
        herald_core::sync::lock(&self.mirror).contributions.clear();
        if let Err(e) = self.try_reassert().await {
            tracing::warn!(error = %e, "undoing this node's leftovers after fencing failed; the next check retries");
        }
        if let Ok(mut c) = self.conn().await {
            let _: Result<(), _> = redis::pipe()
                .atomic()
                .cmd("DEL")
                .arg(self.keys.reaped(&self.node))
                .cmd("ZADD")
                .arg(self.keys.nodes())
                .arg("GT")
                .arg(now_ms())
                .arg(&self.node)
                .query_async(&mut c)
                .await;
        }
        let _ = self.inbound.send(Inbound::Fenced).await;
        drop(_one);
        self.recheck_later();
    }

    fn reap_lock_ms(&self) -> u64 {
        (self.config.node_timeout.as_millis() as u64).max(2000)
    }

    /// Keeps the reap lock of `node` while this node works through a long reap.
    async fn extend_reap_lock(&self, node: &str) {
        if let Ok(mut c) = self.conn().await {
            let _: Result<(), _> = redis::cmd("PEXPIRE")
                .arg(self.keys.reap_lock(node))
                .arg(self.reap_lock_ms())
                .query_async(&mut c)
                .await;
        }
    }

    /// After Redis lost this node's state, unless the node fenced since `fences` was read:
    /// make Redis hold exactly what this node's memory says it holds. Entries Redis has but
    /// memory does not are undone (and announced); entries memory has but Redis lost (it
    /// restarted empty) are replayed silently: clients already know about them.
    pub(crate) async fn restore(self: Arc<Self>, fences: u64) {
        let _one = self.settling.lock().await;
        if self.fences.load(std::sync::atomic::Ordering::SeqCst) != fences {
            return;
        }
        if let Err(e) = self.try_reassert().await {
            tracing::warn!(error = %e, "re-asserting state failed; the next check retries");
        }
    }

    async fn try_reassert(&self) -> Result<(), BackplaneError> {
        let _exclusive = self.gate.write().await;
        for app in &self.app_ids() {
            let (local, connections) = {
                let m = herald_core::sync::lock(&self.mirror);
                (
                    m.contributions.get(app).cloned().unwrap_or_default(),
                    m.connections.get(app).copied().unwrap_or(0),
                )
            };
            let mut c = self.conn().await?;
            let remote: HashSet<String> = redis::cmd("SMEMBERS")
                .arg(self.keys.node(app, &self.node))
                .query_async(&mut c)
                .await
                .map_err(err)?;
            let stale: Vec<Contribution> = remote
                .iter()
                .filter(|e| !local.contains_key(*e))
                .filter_map(|e| Contribution::decode(e))
                .collect();
            let node = self.node.clone();
            undo(self, app, &node, stale).await?;
            for (encoded, member) in local.iter().filter(|(e, _)| !remote.contains(*e)) {
                match (Contribution::decode(encoded), member) {
                    (Some(Contribution::Subscription { channel, socket }), _) => {
                        self.run_occupancy(
                            &scripts::SUBSCRIBE,
                            app,
                            &node,
                            &channel,
                            &socket,
                            None,
                        )
                        .await?;
                    }
                    (Some(Contribution::Presence { channel, socket }), Some(member)) => {
                        self.run_join(app, &node, &channel, &socket, member, usize::MAX, None)
                            .await?;
                    }
                    (Some(Contribution::Signin { user, socket }), _) => {
                        self.run_signin(app, &node, &user, &socket, true).await?;
                    }
                    _ => {}
                }
            }
            self.run_connections(app, &node, &["set".to_owned(), connections.to_string()])
                .await?;
        }
        Ok(())
    }

    /// Graceful shutdown: remove what is left of this node's state and leave the node list.
    pub(crate) async fn withdraw(&self) {
        let result = async {
            for app in &self.app_ids() {
                let mut c = self.conn().await?;
                let entries: Vec<String> = redis::cmd("SMEMBERS")
                    .arg(self.keys.node(app, &self.node))
                    .query_async(&mut c)
                    .await
                    .map_err(err)?;
                let entries = entries
                    .iter()
                    .filter_map(|e| Contribution::decode(e))
                    .collect();
                let node = self.node.clone();
                undo(self, app, &node, entries).await?;
                self.run_connections(app, &node, &["del".to_owned()])
                    .await?;
            }
            let mut c = self.conn().await?;
            redis::pipe()
                .cmd("ZREM")
                .arg(self.keys.nodes())
                .arg(&self.node)
                .cmd("HDEL")
                .arg(self.keys.versions())
                .arg(&self.node)
                .cmd("HDEL")
                .arg(self.keys.load())
                .arg(&self.node)
                .query_async::<()>(&mut c)
                .await
                .map_err(err)
        }
        .await;
        if let Err(e) = result {
            tracing::warn!(error = %e, "could not withdraw this node's state from Redis; survivors will reap it");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::cluster_version;
    use crate::wire::VERSION;

    #[test]
    fn the_cluster_speaks_the_lowest_version_of_its_live_nodes() {
        assert_eq!(cluster_version(&[]), VERSION, "alone");
        assert_eq!(cluster_version(&[Some(VERSION)]), VERSION);
        assert_eq!(
            cluster_version(&[Some(VERSION), None]),
            1,
            "a release before negotiation"
        );
        assert_eq!(
            cluster_version(&[Some(VERSION + 1)]),
            VERSION,
            "never above this node's"
        );
    }
}
