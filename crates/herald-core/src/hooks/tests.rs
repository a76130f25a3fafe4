//! Webhook decisions on the in-memory backplane and queue: what each transition queues, and
//! how the debounce cancels a removal followed by a re-join.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use herald_protocol::webhook::{WebhookEvent, WebhookKind};
use herald_protocol::{ChannelName, SocketId, UserId};

use super::Hooks;
use crate::backplane::{Backplane, Joined, Member};
use crate::webhook::{MemoryWebhookQueue, WebhookQueue};
use crate::{App, Apps, WebhookEndpoint, WebhookTarget};

struct Fixture {
    hooks: Hooks,
    app: Arc<App>,
    backplane: Backplane,
    queue: Arc<MemoryWebhookQueue>,
}

/// One app with one endpoint taking `kinds` (none: an app without webhooks).
fn fixture(kinds: &[WebhookKind]) -> Fixture {
    let mut app = App::new("app-1", "key", "secret");
    if !kinds.is_empty() {
        app.webhooks.push(WebhookEndpoint {
            target: WebhookTarget::Http("http://127.0.0.1:9/hook".into()),
            event_types: kinds.to_vec(),
            headers: Vec::new(),
            filter_prefix: None,
            filter_suffix: None,
        });
    }
    let apps = Apps::new(vec![app]).unwrap();
    let app = apps.by_id("app-1").unwrap().clone();
    let backplane = Backplane::memory();
    let queue = Arc::new(MemoryWebhookQueue::default());
    let hooks = Hooks::new(
        apps,
        backplane.clone(),
        queue.clone(),
        Duration::from_millis(50),
    );
    Fixture {
        hooks,
        app,
        backplane,
        queue,
    }
}

impl Fixture {
    /// Everything queued so far.
    async fn queued(&self) -> Vec<WebhookEvent> {
        let taken = self
            .queue
            .take(100, Duration::from_millis(10))
            .await
            .unwrap();
        taken.into_iter().map(|e| e.event).collect()
    }

    /// Claims and runs every check due `after_ms` from now, as the debouncer does.
    async fn run_due(&self, after_ms: u64) {
        let now = crate::webhook::now_ms() + after_ms;
        let due = self
            .backplane
            .schedule
            .take_due(&self.app.id, now, 100)
            .await
            .unwrap();
        for check in due {
            self.hooks.fire(&self.app, check).await;
        }
    }
}

fn ch(name: &str) -> ChannelName {
    ChannelName::parse(name, 200).unwrap()
}

fn user(id: &str) -> UserId {
    UserId::parse(id, 128).unwrap()
}

fn occupied(name: &str) -> WebhookEvent {
    WebhookEvent::ChannelOccupied {
        channel: name.into(),
    }
}

#[tokio::test]
async fn occupancy_is_queued_only_for_apps_that_take_it() {
    let f = fixture(&[WebhookKind::ChannelOccupied]);
    f.hooks.occupied(&f.app, &ch("room"), false).await;
    assert_eq!(f.queued().await, [occupied("room")]);
    let none = fixture(&[]);
    none.hooks.occupied(&none.app, &ch("room"), false).await;
    assert_eq!(none.queued().await, []);
}

#[tokio::test]
async fn server_to_user_channels_make_no_webhooks() {
    let f = fixture(&WebhookKind::ALL);
    f.hooks
        .occupied(&f.app, &ch("#server-to-user-u1"), false)
        .await;
    assert_eq!(f.queued().await, []);
}

impl Fixture {
    /// A connection leaves `channel` and vacates it, as a session's leave does.
    async fn vacate(&self, channel: &str) {
        let socket = SocketId::from_parts(9, 9);
        let bp = &self.backplane.channels;
        bp.subscribe(&self.app.id, &ch(channel), &socket)
            .await
            .unwrap();
        let check_at = self.hooks.vacancy_check_at(&self.app);
        bp.unsubscribe(&self.app.id, &ch(channel), &socket, check_at)
            .await
            .unwrap();
    }

    /// `user`'s last connection leaves presence `channel`, as a session's leave does.
    /// Joins `user` on a fresh socket; whether the join cancelled a pending removal.
    async fn join(&self, channel: &ChannelName, user: &UserId, n: u32) -> bool {
        let member = Member {
            user_id: user.clone(),
            user_info: None,
        };
        let socket = SocketId::from_parts(n, n);
        match self
            .backplane
            .presence
            .join(&self.app.id, channel, &socket, &member, 100)
            .await
            .unwrap()
        {
            Joined::Admitted {
                removal_cancelled, ..
            } => removal_cancelled,
            Joined::Full => panic!("full"),
        }
    }

    async fn member_leaves(&self, channel: &str, user: &UserId) {
        let socket = SocketId::from_parts(8, 8);
        let p = &self.backplane.presence;
        let member = Member {
            user_id: user.clone(),
            user_info: None,
        };
        p.join(&self.app.id, &ch(channel), &socket, &member, 100)
            .await
            .unwrap();
        let check_at = self.hooks.removal_check_at(&self.app);
        p.leave(&self.app.id, &ch(channel), &socket, check_at)
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn a_vacancy_is_sent_after_the_debounce_if_the_channel_stays_empty() {
    let f = fixture(&WebhookKind::ALL);
    f.vacate("room").await;
    f.run_due(0).await;
    assert_eq!(f.queued().await, [], "not before the debounce");
    f.run_due(1_000).await;
    assert_eq!(
        f.queued().await,
        [WebhookEvent::ChannelVacated {
            channel: "room".into()
        }]
    );
}

#[tokio::test]
async fn a_reoccupation_within_the_debounce_cancels_both_webhooks() {
    let f = fixture(&WebhookKind::ALL);
    f.vacate("room").await;
    let socket = SocketId::from_parts(1, 1);
    let back = f
        .backplane
        .channels
        .subscribe(&f.app.id, &ch("room"), &socket)
        .await
        .unwrap();
    assert!(back.vacancy_cancelled);
    f.hooks
        .occupied(&f.app, &ch("room"), back.vacancy_cancelled)
        .await;
    f.run_due(1_000).await;
    assert_eq!(
        f.queued().await,
        [],
        "to the app the channel never looked empty"
    );
}

/// Once the vacancy check is taken the vacancy goes out, and a re-occupation is a new
/// `channel_occupied` after it.
#[tokio::test]
async fn a_vacancy_taken_before_the_reoccupation_goes_out_before_it() {
    let f = fixture(&WebhookKind::ALL);
    f.vacate("room").await;
    f.run_due(1_000).await;
    let socket = SocketId::from_parts(1, 1);
    let back = f
        .backplane
        .channels
        .subscribe(&f.app.id, &ch("room"), &socket)
        .await
        .unwrap();
    assert!(back.transition && !back.vacancy_cancelled);
    f.hooks
        .occupied(&f.app, &ch("room"), back.vacancy_cancelled)
        .await;
    assert_eq!(
        f.queued().await,
        [
            WebhookEvent::ChannelVacated {
                channel: "room".into()
            },
            occupied("room")
        ]
    );
}

#[tokio::test]
async fn a_member_who_returns_within_the_debounce_causes_no_pair() {
    let f = fixture(&WebhookKind::ALL);
    let (c, u) = (ch("presence-room"), user("u1"));
    f.member_leaves("presence-room", &u).await;
    let back = f.join(&c, &u, 2).await;
    assert!(back, "the join cancelled the pending removal");
    f.hooks.member_added(&f.app, &c, &u, back).await;
    f.run_due(1_000).await;
    assert_eq!(f.queued().await, []);
    // Another user's arrival is not affected.
    let other = f.join(&c, &user("u2"), 3).await;
    f.hooks.member_added(&f.app, &c, &user("u2"), other).await;
    assert_eq!(
        f.queued().await,
        [WebhookEvent::MemberAdded {
            channel: "presence-room".into(),
            user_id: "u2".into()
        }]
    );
}

/// The removal falling due and the user coming back cannot both skip the removal: once the
/// check is taken the removal goes out, and the return is a new `member_added` after it.
#[tokio::test]
async fn a_removal_taken_before_the_return_goes_out_before_its_member_added() {
    let f = fixture(&WebhookKind::ALL);
    let (c, u) = (ch("presence-room"), user("u1"));
    f.member_leaves("presence-room", &u).await;
    f.run_due(1_000).await;
    let back = f.join(&c, &u, 2).await;
    assert!(!back, "nothing left to cancel");
    f.hooks.member_added(&f.app, &c, &u, back).await;
    assert_eq!(
        f.queued().await,
        [
            WebhookEvent::MemberRemoved {
                channel: "presence-room".into(),
                user_id: "u1".into()
            },
            WebhookEvent::MemberAdded {
                channel: "presence-room".into(),
                user_id: "u1".into()
            }
        ]
    );
}

#[tokio::test]
async fn leaves_get_a_check_time_only_when_the_app_takes_the_webhook() {
    let f = fixture(&[WebhookKind::ChannelVacated]);
    assert!(f.hooks.vacancy_check_at(&f.app).is_some());
    assert!(f.hooks.removal_check_at(&f.app).is_none());
    let none = fixture(&[]);
    assert!(none.hooks.vacancy_check_at(&none.app).is_none());
}

#[tokio::test]
async fn cache_misses_are_sent_once_per_window() {
    let f = fixture(&[WebhookKind::CacheMiss]);
    for _ in 0..3 {
        f.hooks.cache_miss(&f.app, &ch("cache-x")).await;
    }
    assert_eq!(
        f.queued().await,
        [WebhookEvent::CacheMiss {
            channel: "cache-x".into()
        }]
    );
}
