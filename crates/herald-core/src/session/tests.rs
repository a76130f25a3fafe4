//! Sessions on a hub with the in-memory backplane, without sockets: frames go in as text and
//! come out of the connection's `Outbox`. Time is tokio's paused clock where it matters.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use herald_protocol::signature::{auth_token, channel_auth_payload};
use herald_protocol::{ChannelName, Secret, SocketId};
use serde_json::{Value, json};

use super::Session;
use crate::backplane::Backplane;
use crate::conn::{Outbox, Outgoing};
use crate::hub::{Hub, HubConfig};
use crate::webhook::MemoryWebhookQueue;
use crate::{App, Apps};

fn hub() -> Hub {
    let mut app = App::new("a", "key", "secret");
    app.features.client_events = true;
    let mut quiet = App::new("quiet", "quiet-key", "secret");
    quiet.features.client_events = false;
    let apps = Apps::new(vec![app, quiet]).unwrap();
    Hub::new(
        apps,
        Backplane::memory(),
        Arc::new(MemoryWebhookQueue::default()),
        HubConfig::default(),
    )
}

struct Conn {
    session: Session,
    outbox: Outbox,
}

impl Conn {
    async fn open(hub: &Hub, key: &str) -> Conn {
        let app = hub.apps().by_key(key).unwrap().clone();
        let (session, outbox) = Session::open(hub, app).await.unwrap();
        let mut c = Conn { session, outbox };
        assert_eq!(c.next()["event"], "pusher:connection_established");
        c
    }

    fn socket(&self) -> SocketId {
        self.session.socket_id().clone()
    }

    async fn send(&mut self, v: Value) {
        self.session.handle_text(&v.to_string()).await;
    }

    /// The next queued frame, decoded.
    fn next(&mut self) -> Value {
        let frame = self.outbox.try_next().expect("a queued frame");
        serde_json::from_slice(&frame).unwrap()
    }

    fn nothing_queued(&mut self) {
        assert_eq!(self.outbox.try_next(), None);
    }

    async fn subscribe(&mut self, channel: &str, channel_data: Option<&str>) -> Value {
        let name = ChannelName::parse(channel, 200).unwrap();
        let payload = channel_auth_payload(&self.socket(), &name, channel_data);
        let auth = auth_token("key", &Secret::new("secret"), &payload);
        self.send(json!({"event": "pusher:subscribe", "data": {"channel": channel, "auth": auth, "channel_data": channel_data}}))
            .await;
        self.next()
    }
}

fn data(frame: &Value) -> Value {
    serde_json::from_str(frame["data"].as_str().unwrap()).unwrap()
}

#[tokio::test]
async fn presence_members_see_each_other_arrive_and_leave_once() {
    let hub = hub();
    let mut ann = Conn::open(&hub, "key").await;
    let ok = ann
        .subscribe("presence-room", Some(r#"{"user_id":"ann"}"#))
        .await;
    assert_eq!(data(&ok)["presence"]["ids"], json!(["ann"]));
    let mut bob = Conn::open(&hub, "key").await;
    let ok = bob
        .subscribe("presence-room", Some(r#"{"user_id":"bob"}"#))
        .await;
    assert_eq!(data(&ok)["presence"]["count"], 2);
    let added = ann.next();
    assert_eq!(added["event"], "pusher_internal:member_added");
    assert_eq!(data(&added)["user_id"], "bob");
    // A second tab of bob is not a new member.
    let mut bob2 = Conn::open(&hub, "key").await;
    bob2.subscribe("presence-room", Some(r#"{"user_id":"bob"}"#))
        .await;
    ann.nothing_queued();
    bob2.session.close().await;
    ann.nothing_queued();
    bob.session.close().await;
    let removed = ann.next();
    assert_eq!(removed["event"], "pusher_internal:member_removed");
    assert_eq!(data(&removed)["user_id"], "bob");
    let app = hub.apps().by_id("a").unwrap().id.clone();
    let members = hub
        .backplane()
        .presence
        .members(&app, &ChannelName::parse("presence-room", 200).unwrap())
        .await
        .unwrap();
    assert_eq!(members.len(), 1);
}

#[tokio::test]
async fn a_bad_signature_is_a_subscription_error_and_the_connection_stays() {
    let hub = hub();
    let mut c = Conn::open(&hub, "key").await;
    c.send(
        json!({"event": "pusher:subscribe", "data": {"channel": "private-x", "auth": "key:00"}}),
    )
    .await;
    let err = c.next();
    assert_eq!(err["event"], "pusher:subscription_error");
    assert!(c.outbox.closing().is_none());
    c.send(json!({"event": "pusher:ping", "data": {}})).await;
    assert_eq!(c.next()["event"], "pusher:pong");
}

#[tokio::test(start_paused = true)]
async fn client_events_beyond_the_rate_get_4301_until_the_window_passes() {
    let hub = hub();
    let mut a = Conn::open(&hub, "key").await;
    let mut b = Conn::open(&hub, "key").await;
    a.subscribe("private-chat", None).await;
    b.subscribe("private-chat", None).await;
    let event = json!({"event": "client-typing", "channel": "private-chat", "data": {}});
    for _ in 0..10 {
        a.send(event.clone()).await;
    }
    let over = {
        a.send(event.clone()).await;
        a.next()
    };
    assert_eq!(over["event"], "pusher:error");
    assert_eq!(over["data"]["code"], 4301);
    for _ in 0..10 {
        assert_eq!(b.next()["event"], "client-typing");
    }
    b.nothing_queued();
    tokio::time::advance(Duration::from_millis(1100)).await;
    a.send(event).await;
    a.nothing_queued();
    assert_eq!(b.next()["event"], "client-typing", "a new window");
}

#[tokio::test]
async fn client_events_are_refused_first_when_the_app_disables_them() {
    let hub = hub();
    let mut c = Conn::open(&hub, "quiet-key").await;
    // A bad name and a public channel: rule 1 (disabled) is reported, not rules 2 or 3.
    c.send(json!({"event": "client-", "channel": "public", "data": {}}))
        .await;
    let err = c.next();
    assert!(
        err["data"]["message"]
            .as_str()
            .unwrap()
            .contains("enable this feature"),
        "{err}"
    );
}

#[tokio::test(start_paused = true)]
async fn an_unauthorized_connection_is_closed_at_the_deadline_and_a_signed_in_one_is_not() {
    let hub = hub();
    let c = Conn::open(&hub, "key").await;
    c.session.authorization_deadline();
    match c.outbox.closing() {
        Some(Outgoing::Close(reason)) => assert_eq!(reason.code, 4009),
        other => panic!("{other:?}"),
    }
    let mut d = Conn::open(&hub, "key").await;
    d.subscribe("private-ok", None).await;
    d.session.authorization_deadline();
    assert!(d.outbox.closing().is_none());
}
