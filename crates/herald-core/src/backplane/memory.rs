//! The embedded backplane: one node, state in process memory, same semantics as Redis.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use herald_protocol::{ChannelKind, ChannelName, SocketId, UserId};
use tokio::time::Instant;

use super::*;
use crate::AppId;

/// All state behind one mutex: every operation is a few map updates, far shorter than the
/// await points around it, so a std `Mutex` (never held across `.await`) is the cheapest lock.
#[derive(Default)]
pub struct MemoryBackplane {
    apps: Mutex<HashMap<AppId, AppState>>,
}

#[derive(Default)]
struct AppState {
    channels: HashMap<String, u64>,
    presence: HashMap<String, Presence>,
    users: HashMap<UserId, HashSet<SocketId>>,
    cache: HashMap<String, (Bytes, String, Instant)>,
    connections: u64,
    /// This second's HTTP API requests (`api_requests_per_second`).
    api_rate: Option<crate::rate::RateWindow>,
    marks: HashMap<Mark, Instant>,
    scheduled: HashMap<Check, u64>,
}

#[derive(Default)]
struct Presence {
    sockets: HashMap<SocketId, UserId>,
    /// user → (connections in the channel, member as first joined). Sorted for stable lists.
    users: BTreeMap<UserId, (u64, Member)>,
    /// Bumped by every member added or removed.
    version: u64,
}

impl MemoryBackplane {
    pub fn new() -> MemoryBackplane {
        MemoryBackplane::default()
    }

    fn with<T>(&self, app: &AppId, f: impl FnOnce(&mut AppState) -> T) -> T {
        let mut apps = crate::sync::lock(&self.apps);
        match apps.get_mut(app) {
            Some(state) => f(state),
            None => f(apps.entry(app.clone()).or_default()),
        }
    }
}

impl AppState {
    fn unsubscribe(&mut self, channel: &ChannelName) -> Occupancy {
        match self.channels.get_mut(channel.as_str()) {
            Some(n) if *n > 1 => {
                *n -= 1;
                Occupancy {
                    count: *n,
                    transition: false,
                    vacancy_cancelled: false,
                }
            }
            Some(_) => {
                self.channels.remove(channel.as_str());
                Occupancy {
                    count: 0,
                    transition: true,
                    vacancy_cancelled: false,
                }
            }
            None => Occupancy {
                count: 0,
                transition: false,
                vacancy_cancelled: false,
            },
        }
    }

    fn presence_leave(&mut self, channel: &ChannelName, socket: &SocketId) -> Option<Left> {
        let p = self.presence.get_mut(channel.as_str())?;
        let user = p.sockets.remove(socket)?;
        let gone = match p.users.get_mut(&user) {
            Some(entry) if entry.0 > 1 => {
                entry.0 -= 1;
                false
            }
            _ => {
                p.users.remove(&user);
                true
            }
        };
        if gone {
            p.version += 1;
        }
        let version = p.version;
        if p.sockets.is_empty() {
            self.presence.remove(channel.as_str());
        }
        gone.then_some(Left { user, version })
    }
}

// One process: the leave and its schedule happen under one lock, atomically.

#[async_trait]
impl Relay for MemoryBackplane {
    async fn publish(&self, _: &AppId, _: &Envelope) -> Result<(), BackplaneError> {
        // There is no other node.
        Ok(())
    }

    async fn control(&self, _: &AppId, _: &Control) -> Result<(), BackplaneError> {
        Ok(())
    }
}

#[async_trait]
impl Channels for MemoryBackplane {
    async fn subscribe(
        &self,
        app: &AppId,
        channel: &ChannelName,
        _: &SocketId,
    ) -> Result<Occupancy, BackplaneError> {
        Ok(self.with(app, |s| {
            let n = s.channels.entry(channel.as_str().to_owned()).or_default();
            *n += 1;
            let (count, transition) = (*n, *n == 1);
            let vacancy_cancelled = transition
                && s.scheduled
                    .remove(&Check::Vacated(channel.clone()))
                    .is_some();
            Occupancy {
                count,
                transition,
                vacancy_cancelled,
            }
        }))
    }

    async fn unsubscribe(
        &self,
        app: &AppId,
        channel: &ChannelName,
        _: &SocketId,
        check_at: Option<u64>,
    ) -> Result<Occupancy, BackplaneError> {
        Ok(self.with(app, |s| {
            let occupancy = s.unsubscribe(channel);
            if let (true, Some(due)) = (occupancy.transition, check_at) {
                s.scheduled.insert(Check::Vacated(channel.clone()), due);
            }
            occupancy
        }))
    }

    async fn channels(
        &self,
        app: &AppId,
        prefix: &str,
    ) -> Result<Vec<ChannelCount>, BackplaneError> {
        Ok(self.with(app, |s| {
            let mut out: Vec<ChannelCount> = s
                .channels
                .iter()
                .filter(|(name, _)| name.starts_with(prefix))
                .map(|(name, &n)| ChannelCount {
                    name: name.clone(),
                    subscription_count: n,
                    user_count: s.presence.get(name).map(|p| p.users.len() as u64),
                })
                .collect();
            out.sort_by(|a, b| a.name.cmp(&b.name));
            out
        }))
    }

    async fn channel(
        &self,
        app: &AppId,
        channel: &ChannelName,
    ) -> Result<ChannelCount, BackplaneError> {
        Ok(self.with(app, |s| ChannelCount {
            name: channel.as_str().to_owned(),
            subscription_count: s.channels.get(channel.as_str()).copied().unwrap_or(0),
            user_count: (channel.kind() == ChannelKind::Presence).then(|| {
                s.presence
                    .get(channel.as_str())
                    .map_or(0, |p| p.users.len() as u64)
            }),
        }))
    }
}

#[async_trait]
impl super::Presence for MemoryBackplane {
    async fn join(
        &self,
        app: &AppId,
        channel: &ChannelName,
        socket: &SocketId,
        member: &Member,
        max_members: usize,
    ) -> Result<Joined, BackplaneError> {
        Ok(self.with(app, |s| {
            let p = s.presence.entry(channel.as_str().to_owned()).or_default();
            if p.sockets.contains_key(socket) {
                return Joined::Admitted {
                    new_user: false,
                    members: list(p),
                    version: p.version,
                    removal_cancelled: false,
                };
            }
            let new_user = !p.users.contains_key(&member.user_id);
            if new_user && p.users.len() >= max_members {
                return Joined::Full;
            }
            p.sockets.insert(socket.clone(), member.user_id.clone());
            p.users
                .entry(member.user_id.clone())
                .or_insert_with(|| (0, member.clone()))
                .0 += 1;
            if new_user {
                p.version += 1;
            }
            let (members, version) = (list(p), p.version);
            let removal_cancelled = new_user
                && s.scheduled
                    .remove(&Check::MemberRemoved(
                        channel.clone(),
                        member.user_id.clone(),
                    ))
                    .is_some();
            Joined::Admitted {
                new_user,
                members,
                version,
                removal_cancelled,
            }
        }))
    }

    async fn leave(
        &self,
        app: &AppId,
        channel: &ChannelName,
        socket: &SocketId,
        check_at: Option<u64>,
    ) -> Result<Option<Left>, BackplaneError> {
        Ok(self.with(app, |s| {
            let left = s.presence_leave(channel, socket);
            if let (Some(l), Some(due)) = (&left, check_at) {
                let check = Check::MemberRemoved(channel.clone(), l.user.clone());
                s.scheduled.insert(check, due);
            }
            left
        }))
    }

    async fn members(
        &self,
        app: &AppId,
        channel: &ChannelName,
    ) -> Result<Vec<Member>, BackplaneError> {
        Ok(self.with(app, |s| {
            s.presence
                .get(channel.as_str())
                .map(list)
                .unwrap_or_default()
        }))
    }
}

#[async_trait]
impl Users for MemoryBackplane {
    async fn signin(
        &self,
        app: &AppId,
        user: &UserId,
        socket: &SocketId,
    ) -> Result<bool, BackplaneError> {
        Ok(self.with(app, |s| {
            let set = s.users.entry(user.clone()).or_default();
            set.insert(socket.clone()) && set.len() == 1
        }))
    }

    async fn signout(
        &self,
        app: &AppId,
        user: &UserId,
        socket: &SocketId,
    ) -> Result<bool, BackplaneError> {
        Ok(self.with(app, |s| {
            let Some(set) = s.users.get_mut(user) else {
                return false;
            };
            if !set.remove(socket) {
                return false;
            }
            let offline = set.is_empty();
            if offline {
                s.users.remove(user);
            }
            offline
        }))
    }

    async fn online(&self, app: &AppId, users: &[UserId]) -> Result<Vec<bool>, BackplaneError> {
        Ok(self.with(app, |s| {
            users.iter().map(|u| s.users.contains_key(u)).collect()
        }))
    }
}

#[async_trait]
impl Cache for MemoryBackplane {
    async fn set(
        &self,
        app: &AppId,
        channel: &ChannelName,
        event: CachedEvent,
    ) -> Result<(), BackplaneError> {
        let expires = Instant::now() + event.ttl;
        self.with(app, |s| {
            // Drop expired entries now and then so abandoned cache channels do not pile up.
            if s.cache.len() > 1024 {
                let now = Instant::now();
                s.cache.retain(|_, (_, _, at)| *at > now);
            }
            s.cache.insert(
                channel.as_str().to_owned(),
                (event.frame, event.data, expires),
            );
        });
        Ok(())
    }

    async fn get(
        &self,
        app: &AppId,
        channel: &ChannelName,
    ) -> Result<Option<CachedEvent>, BackplaneError> {
        let now = Instant::now();
        Ok(self.with(app, |s| match s.cache.get(channel.as_str()) {
            Some((frame, data, at)) if *at > now => Some(CachedEvent {
                frame: frame.clone(),
                data: data.clone(),
                ttl: at
                    .saturating_duration_since(now)
                    .max(Duration::from_secs(1)),
            }),
            Some(_) => {
                s.cache.remove(channel.as_str());
                None
            }
            None => None,
        }))
    }
}

#[async_trait]
impl Quota for MemoryBackplane {
    async fn connections(&self, app: &AppId, delta: i64) -> Result<u64, BackplaneError> {
        Ok(self.with(app, |s| {
            s.connections = s.connections.saturating_add_signed(delta);
            s.connections
        }))
    }

    async fn api_request(&self, app: &AppId, per_second: u32) -> Result<bool, BackplaneError> {
        let now = tokio::time::Instant::now();
        Ok(self.with(app, |s| {
            s.api_rate
                .get_or_insert_with(|| crate::rate::RateWindow::new(per_second))
                .allow_at_most(per_second, now)
        }))
    }
}

#[async_trait]
impl Schedule for MemoryBackplane {
    async fn schedule(
        &self,
        app: &AppId,
        check: &Check,
        due_ms: u64,
    ) -> Result<(), BackplaneError> {
        self.with(app, |s| s.scheduled.insert(check.clone(), due_ms));
        Ok(())
    }

    async fn cancel(&self, app: &AppId, check: &Check) -> Result<bool, BackplaneError> {
        Ok(self.with(app, |s| s.scheduled.remove(check).is_some()))
    }

    async fn take_due(
        &self,
        app: &AppId,
        now_ms: u64,
        max: usize,
    ) -> Result<Vec<Check>, BackplaneError> {
        Ok(self.with(app, |s| {
            let mut due: Vec<(u64, String, Check)> = s
                .scheduled
                .iter()
                .filter(|(_, at)| **at <= now_ms)
                .map(|(c, at)| (*at, c.key(), c.clone()))
                .collect();
            // Earliest first; equal times in key order, as Redis's sorted set returns them.
            due.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
            due.truncate(max);
            for (_, _, c) in &due {
                s.scheduled.remove(c);
            }
            due.into_iter().map(|(_, _, c)| c).collect()
        }))
    }

    async fn mark(&self, app: &AppId, mark: &Mark, ttl: Duration) -> Result<bool, BackplaneError> {
        let now = Instant::now();
        Ok(self.with(app, |s| {
            s.marks.retain(|_, until| *until > now);
            match s.marks.get(mark) {
                Some(_) => false,
                None => {
                    s.marks.insert(mark.clone(), now + ttl);
                    true
                }
            }
        }))
    }
}

/// A single node has nobody to compare itself with.
#[async_trait]
impl Load for MemoryBackplane {
    async fn report(
        &self,
        _connections: u64,
        _accepting: bool,
    ) -> Result<Vec<crate::rebalance::NodeLoad>, BackplaneError> {
        Ok(Vec::new())
    }
}

impl Health for MemoryBackplane {}
fn list(p: &Presence) -> Vec<Member> {
    p.users.values().map(|(_, m)| m.clone()).collect()
}
