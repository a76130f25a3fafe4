//! The hub's indexes and delivery on the in-memory backplane, without sockets: connections
//! are `ConnHandle`s and what they would write is read from their `Outbox`.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use herald_protocol::{ChannelName, SocketId, UserId};

use super::{Hub, HubConfig};
use crate::backplane::{Backplane, BackplaneError, Control, Envelope, Relay};
use crate::conn::{ConnHandle, Outbox, Outgoing};
use crate::webhook::MemoryWebhookQueue;
use crate::{App, AppId, Apps};

fn hub_on(backplane: Backplane) -> Hub {
    let apps = Apps::new(vec![App::new("a", "key", "secret")]).unwrap();
    let config = HubConfig {
        outbox_capacity: 4,
        ..HubConfig::default()
    };
    Hub::new(
        apps,
        backplane,
        Arc::new(MemoryWebhookQueue::default()),
        config,
    )
}

fn hub() -> Hub {
    hub_on(Backplane::memory())
}

fn app() -> AppId {
    AppId::new("a")
}

fn ch(name: &str) -> ChannelName {
    ChannelName::parse(name, 200).unwrap()
}

fn conn(n: u32) -> (ConnHandle, Outbox) {
    ConnHandle::new(SocketId::from_parts(n, n), 16)
}

/// Frames queued for a connection, as text.
fn drain(outbox: &mut Outbox) -> Vec<String> {
    std::iter::from_fn(|| outbox.try_next())
        .map(|b| String::from_utf8(b.to_vec()).unwrap())
        .collect()
}

fn envelope(channel: &str, frame: &str) -> Envelope {
    Envelope::new(ch(channel), Bytes::from(frame.to_owned()), None)
}

/// A relay that is down: the test double a small trait makes cheap.
struct DownRelay;

#[async_trait]
impl Relay for DownRelay {
    async fn publish(&self, _: &AppId, _: &Envelope) -> Result<(), BackplaneError> {
        Err(BackplaneError("redis is down".into()))
    }

    async fn control(&self, _: &AppId, _: &Control) -> Result<(), BackplaneError> {
        Err(BackplaneError("redis is down".into()))
    }
}

#[tokio::test]
async fn frames_reach_active_subscribers_except_the_excluded_one() {
    let hub = hub();
    let ((a, mut a_out), (b, mut b_out)) = (conn(1), conn(2));
    for c in [&a, &b] {
        hub.add_pending(&app(), &ch("room"), c);
        hub.activate(&app(), &ch("room"), c, 0, None);
    }
    hub.publish(&app(), envelope("room", "one")).await.unwrap();
    let mut except = envelope("room", "two");
    except.except = Some(a.socket_id().clone());
    hub.publish(&app(), except).await.unwrap();
    hub.publish(&app(), envelope("elsewhere", "x"))
        .await
        .unwrap();
    assert_eq!(drain(&mut a_out), ["one"]);
    assert_eq!(drain(&mut b_out), ["one", "two"]);
}

#[tokio::test]
async fn a_pending_subscriber_gets_held_frames_in_order_after_activation() {
    let hub = hub();
    let (c, mut out) = conn(1);
    hub.add_pending(&app(), &ch("room"), &c);
    hub.publish(&app(), envelope("room", "early"))
        .await
        .unwrap();
    let mut old = envelope("room", "membership v1");
    old.version = Some(1);
    hub.publish(&app(), old).await.unwrap();
    let mut new = envelope("room", "membership v3");
    new.version = Some(3);
    hub.publish(&app(), new).await.unwrap();
    assert_eq!(
        drain(&mut out),
        Vec::<String>::new(),
        "held until activated"
    );
    c.send(Bytes::from_static(b"confirmation"));
    hub.activate(&app(), &ch("room"), &c, 2, None);
    hub.publish(&app(), envelope("room", "late")).await.unwrap();
    assert_eq!(
        drain(&mut out),
        ["confirmation", "early", "membership v3", "late"],
        "a membership change the list already holds (v1 <= v2) is dropped"
    );
}

#[tokio::test]
async fn a_subscriber_flooded_while_pending_is_cut_off_with_4100() {
    let hub = hub();
    let (c, out) = conn(1);
    hub.add_pending(&app(), &ch("room"), &c);
    for i in 0..5 {
        hub.publish(&app(), envelope("room", &format!("f{i}")))
            .await
            .unwrap();
    }
    match out.closing() {
        Some(Outgoing::Close(reason)) => assert_eq!(reason.code, 4100),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn server_to_user_frames_reach_every_connection_of_the_user() {
    let hub = hub();
    let user = UserId::parse("u1", 128).unwrap();
    let ((tab1, mut out1), (tab2, mut out2), (other, mut out3)) = (conn(1), conn(2), conn(3));
    hub.add_user(&app(), &user, &tab1);
    hub.add_user(&app(), &user, &tab2);
    hub.add_user(&app(), &UserId::parse("u2", 128).unwrap(), &other);
    hub.publish(&app(), envelope("#server-to-user-u1", "note"))
        .await
        .unwrap();
    assert_eq!(
        (drain(&mut out1), drain(&mut out2)),
        (vec!["note".to_owned()], vec!["note".to_owned()])
    );
    assert!(drain(&mut out3).is_empty());
    hub.remove_user(&app(), &user, tab1.socket_id());
    hub.publish(&app(), envelope("#server-to-user-u1", "again"))
        .await
        .unwrap();
    assert!(drain(&mut out1).is_empty());
    assert_eq!(drain(&mut out2), ["again"]);
}

#[tokio::test]
async fn terminate_closes_the_users_connections_with_4009() {
    let hub = hub();
    let user = UserId::parse("u1", 128).unwrap();
    let ((c, out), (stranger, stranger_out)) = (conn(1), conn(2));
    hub.add_user(&app(), &user, &c);
    hub.add_pending(&app(), &ch("room"), &stranger);
    hub.control(&app(), Control::TerminateUser(user))
        .await
        .unwrap();
    match out.closing() {
        Some(Outgoing::Close(reason)) => assert_eq!(reason.code, 4009),
        other => panic!("{other:?}"),
    }
    assert!(stranger_out.closing().is_none());
}

#[tokio::test]
async fn when_the_relay_fails_nobody_gets_the_event() {
    let backplane = Backplane {
        relay: Arc::new(DownRelay),
        ..Backplane::memory()
    };
    let hub = hub_on(backplane);
    let (c, mut out) = conn(1);
    hub.add_pending(&app(), &ch("room"), &c);
    hub.activate(&app(), &ch("room"), &c, 0, None);
    assert!(hub.publish(&app(), envelope("room", "lost")).await.is_err());
    assert!(drain(&mut out).is_empty(), "the caller's 503 is true");
    let user = UserId::parse("u1", 128).unwrap();
    hub.add_user(&app(), &user, &c);
    assert!(
        hub.control(&app(), Control::TerminateUser(user))
            .await
            .is_err()
    );
    assert!(
        c.close_code().is_none(),
        "a command not relayed is not applied here either"
    );
}

#[tokio::test]
async fn an_emptied_channel_leaves_the_index() {
    let hub = hub();
    let (c, _out) = conn(1);
    hub.add_pending(&app(), &ch("room"), &c);
    hub.activate(&app(), &ch("room"), &c, 0, None);
    assert_eq!(hub.app_channel_count("a"), 1);
    hub.remove_subscriber(&app(), &ch("room"), c.socket_id());
    assert_eq!(hub.app_channel_count("a"), 0);
}

#[tokio::test]
async fn a_cached_event_also_held_live_is_delivered_once() {
    let hub = hub();
    // Published while the subscription was being set up: held live, and read from the cache.
    let (c, mut out) = conn(1);
    hub.add_pending(&app(), &ch("cache-x"), &c);
    hub.publish(&app(), envelope("cache-x", "tick 1"))
        .await
        .unwrap();
    hub.activate(
        &app(),
        &ch("cache-x"),
        &c,
        0,
        Some(Bytes::from_static(b"tick 1")),
    );
    assert_eq!(drain(&mut out), ["tick 1"]);
    // Published before: only the cache has it, and it comes before the live frames.
    let (d, mut out) = conn(2);
    hub.add_pending(&app(), &ch("cache-x"), &d);
    hub.publish(&app(), envelope("cache-x", "tick 2"))
        .await
        .unwrap();
    hub.activate(
        &app(),
        &ch("cache-x"),
        &d,
        0,
        Some(Bytes::from_static(b"tick 0")),
    );
    assert_eq!(drain(&mut out), ["tick 0", "tick 2"]);
}

fn membership(event: &str, user: &str, version: u64) -> Envelope {
    let frame = match event {
        "added" => herald_protocol::event::encode::member_added(
            "presence-room",
            &herald_protocol::event::encode::MemberRef {
                user_id: user,
                user_info: None,
            },
        ),
        _ => herald_protocol::event::encode::member_removed("presence-room", user),
    };
    Envelope::membership(ch("presence-room"), Bytes::from(frame), None, version)
}

#[tokio::test]
async fn a_membership_frame_older_than_one_delivered_for_its_user_is_dropped() {
    let hub = hub();
    let (a, mut a_out) = conn(1);
    hub.add_pending(&app(), &ch("presence-room"), &a);
    hub.activate(&app(), &ch("presence-room"), &a, 3, None);
    // u left on one node (version 4) and rejoined on another (5); the rejoin's frame came first.
    hub.deliver_local(&app(), &membership("added", "u", 5), true);
    hub.deliver_local(&app(), &membership("removed", "u", 4), true);
    // Another user's older frame is not held back by u's.
    hub.deliver_local(&app(), &membership("added", "v", 4), true);
    let got = drain(&mut a_out);
    assert_eq!(got.len(), 2, "{got:?}");
    assert!(got[0].contains("member_added") && got[0].contains(r#"\"u\""#));
    assert!(got[1].contains("member_added") && got[1].contains(r#"\"v\""#));

    // After the backplane resubscribed (the store may have restarted, counting from 1 again),
    // low versions are new again.
    hub.forget_membership_versions();
    hub.deliver_local(&app(), &membership("removed", "u", 1), true);
    assert_eq!(drain(&mut a_out).len(), 1);
}

#[tokio::test]
async fn a_new_subscriber_with_an_older_snapshot_does_not_reopen_the_order_for_the_others() {
    let hub = hub();
    let (a, mut a_out) = conn(1);
    hub.add_pending(&app(), &ch("presence-room"), &a);
    hub.activate(&app(), &ch("presence-room"), &a, 3, None);
    // b starts subscribing here; its snapshot is taken at version 4 (u just left).
    let (b, mut b_out) = conn(2);
    hub.add_pending(&app(), &ch("presence-room"), &b);
    // u rejoined on another node (5); its frame overtakes its leave (4).
    hub.deliver_local(&app(), &membership("added", "u", 5), true);
    hub.activate(&app(), &ch("presence-room"), &b, 4, None);
    // u's leave arrives last: stale for everyone here, a included.
    hub.deliver_local(&app(), &membership("removed", "u", 4), true);
    let got = drain(&mut a_out);
    assert_eq!(got.len(), 1, "a gets u's rejoin only: {got:?}");
    assert!(got[0].contains("member_added"));
    let got = drain(&mut b_out);
    assert_eq!(got.len(), 1, "b gets the rejoin it held: {got:?}");
    assert!(got[0].contains("member_added"));
}
