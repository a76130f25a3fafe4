//! Webhook decisions: which webhook each cluster-wide transition makes, and the debounce of
//! removals. The hub and sessions report transitions decided by the backplane (`Occupancy`,
//! `Joined`, `Left`); `Hooks` turns them into queued webhook events. `channel_vacated` and
//! `member_removed` wait out the debounce as `Check`s in the backplane's shared schedule, so
//! whichever node finds one due sends it, even if the node that scheduled it died; a re-join in
//! the window cancels both the removal and the re-add.

use std::sync::Arc;
use std::time::Duration;

use herald_protocol::webhook::{WebhookEvent, WebhookKind};
use herald_protocol::{ChannelName, UserId};

use crate::backplane::{Backplane, Check, Mark};
use crate::webhook::{WebhookQueue, now_ms};
use crate::{App, Apps};

/// The node's webhook decisions (one per node, shared by the hub and its sessions).
pub struct Hooks {
    apps: Apps,
    backplane: Backplane,
    queue: Arc<dyn WebhookQueue>,
    /// How long `channel_vacated` and `member_removed` wait for a re-join (Pusher: 3 s).
    debounce: Duration,
}

impl Hooks {
    pub fn new(
        apps: Apps,
        backplane: Backplane,
        queue: Arc<dyn WebhookQueue>,
        debounce: Duration,
    ) -> Hooks {
        Hooks {
            apps,
            backplane,
            queue,
            debounce,
        }
    }

    /// Whether the app takes webhooks of this kind, as the app is now: a session holds the app
    /// as it was when the connection opened, and changed webhooks apply at once.
    fn wants(&self, app: &App, kind: WebhookKind) -> bool {
        match self.apps.by_id(app.id.as_str()) {
            Some(current) => current.wants_webhook(kind),
            None => app.wants_webhook(kind),
        }
    }

    /// Where decided events wait for the dispatcher.
    pub fn queue(&self) -> &Arc<dyn WebhookQueue> {
        &self.queue
    }

    /// Queues a webhook event when an endpoint of the app takes its kind.
    /// `#server-to-user-` channels produce no webhooks.
    pub async fn event(&self, app: &App, event: WebhookEvent) {
        if herald_protocol::channel::is_server_to_user(event.channel())
            || !self.wants(app, event.kind())
        {
            return;
        }
        if let Err(e) = self.queue.push(&app.id, &event).await {
            tracing::error!(app = %app.id, kind = %event.kind(), error = %e, "webhook event lost: queue unavailable");
        }
    }

    /// The channel became occupied cluster-wide. A vacancy still waiting out its debounce is
    /// cancelled instead: to the app the channel never looked empty.
    pub async fn occupied(&self, app: &App, channel: &ChannelName, vacancy_cancelled: bool) {
        if vacancy_cancelled || !self.wants(app, WebhookKind::ChannelOccupied) {
            return;
        }
        self.event(
            app,
            WebhookEvent::ChannelOccupied {
                channel: channel.to_string(),
            },
        )
        .await;
    }

    /// When a leave that vacates a channel should have its `Check::Vacated` fall due, if the
    /// app takes `channel_vacated`: `Channels::unsubscribe` schedules it in the leave's own step.
    pub fn vacancy_check_at(&self, app: &App) -> Option<u64> {
        self.wants(app, WebhookKind::ChannelVacated)
            .then(|| self.debounce_due())
    }

    /// `vacancy_check_at` for `member_removed` (`Presence::leave`).
    pub fn removal_check_at(&self, app: &App) -> Option<u64> {
        self.wants(app, WebhookKind::MemberRemoved)
            .then(|| self.debounce_due())
    }

    /// A user joined a presence channel: `member_added`, unless the join cancelled the user's
    /// removal still waiting out its debounce (`removal_cancelled`, done by the backplane in
    /// the join's own step): then neither is sent.
    pub async fn member_added(
        &self,
        app: &App,
        channel: &ChannelName,
        user: &UserId,
        removal_cancelled: bool,
    ) {
        if removal_cancelled || !self.wants(app, WebhookKind::MemberAdded) {
            return;
        }
        let event = WebhookEvent::MemberAdded {
            channel: channel.to_string(),
            user_id: user.to_string(),
        };
        self.event(app, event).await;
    }

    /// `cache_miss`, at most once per channel per 10 s across the cluster.
    pub async fn cache_miss(&self, app: &App, channel: &ChannelName) {
        if !self.wants(app, WebhookKind::CacheMiss) {
            return;
        }
        let mark = Mark::CacheMiss(channel.clone());
        match self
            .backplane
            .schedule
            .mark(&app.id, &mark, Duration::from_secs(10))
            .await
        {
            Ok(true) => {
                self.event(
                    app,
                    WebhookEvent::CacheMiss {
                        channel: channel.to_string(),
                    },
                )
                .await
            }
            Ok(false) => {}
            Err(e) => {
                tracing::warn!(app = %app.id, error = %e, "cache_miss webhook not de-duplicated; dropped")
            }
        }
    }

    /// When a debounced check scheduled now falls due (ms since the epoch).
    fn debounce_due(&self) -> u64 {
        now_ms() + self.debounce.as_millis() as u64
    }

    /// Runs the debounced checks that fall due, for every app, until the process ends.
    pub fn spawn_debouncer(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let hooks = self.clone();
        let tick =
            (hooks.debounce / 4).clamp(Duration::from_millis(20), Duration::from_millis(250));
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(tick).await;
                for app in hooks.apps.iter().filter(|a| !a.webhooks.is_empty()) {
                    let schedule = &hooks.backplane.schedule;
                    let due = match schedule.take_due(&app.id, now_ms(), 256).await {
                        Ok(due) => due,
                        Err(e) => {
                            tracing::debug!(app = %app.id, error = %e, "debounced webhooks not read");
                            continue;
                        }
                    };
                    for check in due {
                        hooks.fire(&app, check).await;
                    }
                }
            }
        })
    }

    /// A debounce ran out without a re-join: send the removal if the cluster still agrees.
    async fn fire(&self, app: &App, check: Check) {
        match check {
            // Taken while still scheduled, so nobody had come back: a re-occupation cancels
            // the check in its own step (`Channels::subscribe`), and one after this point is a
            // new `channel_occupied` after this vacancy.
            Check::Vacated(channel) => {
                let event = WebhookEvent::ChannelVacated {
                    channel: channel.to_string(),
                };
                self.event(app, event).await;
            }
            // Taken while still scheduled, so the user had not come back: a re-join cancels
            // the check in its own step (`Presence::join`). A re-join after this point is a new
            // arrival with its own `member_added`, after this removal. (Reading the members here
            // instead raced with that re-join: both webhooks skipped the removal, and the user
            // was added twice.)
            Check::MemberRemoved(channel, user) => {
                let event = WebhookEvent::MemberRemoved {
                    channel: channel.to_string(),
                    user_id: user.to_string(),
                };
                self.event(app, event).await;
            }
        }
    }
}

#[cfg(test)]
mod tests;
