//! Negative tests for every authorization path: channel signatures of every kind (PROTOCOL.md
//! §3), presence `channel_data`, `#server-to-user-` channels and sign-in (§5), client events (§4),
//! HTTP API request signatures (§6.1), and each hole §2.11 lists for other Pusher-compatible
//! servers. Each refusal is checked exactly, and so is everything it must not cause: no delivery
//! to the refused socket, no relay, no member announced, no connection closed.

use herald_protocol::signature::{
    api_request_payload, auth_token, body_md5, channel_auth_payload, sign, signin_payload,
};
use herald_protocol::{ChannelName, Secret, SocketId};
use serde_json::{Value, json};

use crate::support::*;

const KEY2: &str = "key-2";
const SECRET2: &str = "secret-2";

const ANN: &str = r#"{"user_id":"ann","user_info":{"name":"Ann"}}"#;
const BOB: &str = r#"{"user_id":"bob"}"#;

const BAD_SIGNATURE: &str = "Invalid signature";
const PRESENCE_NEEDS_USER: &str = "Presence channels need channel_data, or a signed-in connection";
const NOT_THIS_USER: &str =
    "Only the connection signed in as this user may subscribe to its #server-to-user- channel";
const SIGNIN_REFUSED: &str = "Invalid signature: sign-in refused";
const NOT_SUBSCRIBED: &str = "Client event rejected: not subscribed to the channel";
const WRONG_KIND: &str =
    "Client event rejected: client events are only allowed on private and presence channels";
const CLIENT_EVENTS_OFF: &str =
    "To send client events, you must enable this feature in the Settings page of your dashboard.";

/// Every channel kind that needs a signature, with the `channel_data` the signature covers.
const SIGNED_KINDS: [(&str, Option<&str>); 6] = [
    ("private-a", None),
    ("private-cache-a", None),
    ("private-encrypted-a", None),
    ("private-encrypted-cache-a", None),
    ("presence-a", Some(ANN)),
    ("presence-cache-a", Some(ANN)),
];

/// The default apps plus `app-2`, whose credentials are tried against `app-1`.
fn two_apps(client_events: bool) -> String {
    format!(
        "{DEFAULT_TOML}\n[[apps]]\nid = \"app-2\"\nkey = \"{KEY2}\"\nsecret = \"{SECRET2}\"\nclient_events = {client_events}\n"
    )
}

fn app2_api(server: &TestServer) -> Api {
    Api {
        addr: server.addr,
        app_id: "app-2".into(),
        key: KEY2.into(),
        secret: SECRET2.into(),
    }
}

/// The channel `auth` an app's auth endpoint returns, for any key and secret.
fn token(
    key: &str,
    secret: &str,
    socket_id: &str,
    channel: &str,
    channel_data: Option<&str>,
) -> String {
    let socket = SocketId::parse(socket_id).unwrap();
    let channel = ChannelName::parse(channel, 200).unwrap();
    auth_token(
        key,
        &Secret::new(secret),
        &channel_auth_payload(&socket, &channel, channel_data),
    )
}

/// The sign-in `auth` an app's user endpoint returns, for any key and secret.
fn signin_token(key: &str, secret: &str, socket_id: &str, user_data: &str) -> String {
    let socket = SocketId::parse(socket_id).unwrap();
    auth_token(
        key,
        &Secret::new(secret),
        &signin_payload(&socket, user_data),
    )
}

/// Sends `pusher:subscribe` with exactly these fields (None leaves the field out); the answer.
async fn subscribe_raw(
    c: &mut Client,
    channel: &str,
    auth: Option<&str>,
    channel_data: Option<&str>,
) -> Value {
    let mut data = json!({ "channel": channel });
    if let Some(auth) = auth {
        data["auth"] = json!(auth);
    }
    if let Some(cd) = channel_data {
        data["channel_data"] = json!(cd);
    }
    c.send(json!({"event": "pusher:subscribe", "data": data}))
        .await;
    c.recv().await
}

async fn signin_raw(c: &mut Client, auth: &str, user_data: &str) -> Value {
    c.send(json!({"event": "pusher:signin", "data": {"auth": auth, "user_data": user_data}}))
        .await;
    c.recv().await
}

/// A request target signed the way `Api::request_at` signs, for requests `Api` cannot express:
/// `ts` is any text, `md5_of` is the body the signature vouches for (None: no `body_md5`).
fn signed_target(
    key: &str,
    secret: &str,
    method: &str,
    path: &str,
    ts: &str,
    md5_of: Option<&str>,
) -> String {
    let md5 = md5_of.map(|body| body_md5(body.as_bytes()));
    let mut params = vec![
        ("auth_key", key),
        ("auth_timestamp", ts),
        ("auth_version", "1.0"),
    ];
    if let Some(md5) = &md5 {
        params.push(("body_md5", md5.as_str()));
    }
    let payload = api_request_payload(method, path, &params);
    let signature = sign(&Secret::new(secret), payload.as_bytes());
    let query: Vec<String> = params.iter().map(|(k, v)| format!("{k}={v}")).collect();
    format!("{path}?{}&auth_signature={signature}", query.join("&"))
}

/// The frame with its `data` decoded when that is a JSON string, for exact comparison.
fn decoded(v: &Value) -> Value {
    let mut v = v.clone();
    let data = Client::data(&v);
    v["data"] = data;
    v
}

/// `pusher:subscription_error` of type `AuthError` (401), as `decoded` shows it.
fn auth_error(channel: &str, message: &str) -> Value {
    json!({
        "event": "pusher:subscription_error",
        "channel": channel,
        "data": {"type": "AuthError", "error": message, "status": 401}
    })
}

/// `pusher:error` with code `null`, which never closes; scoped to `channel` when given.
fn notice(channel: Option<&str>, message: &str) -> Value {
    let mut v = json!({"event": "pusher:error", "data": {"code": null, "message": message}});
    if let Some(channel) = channel {
        v["channel"] = json!(channel);
    }
    v
}

fn client_event(channel: &str, event: &str) -> Value {
    json!({"event": event, "channel": channel, "data": {"text": "hi"}})
}

fn expired(r: &Reply) -> bool {
    r.status == 401
        && r.body["error"]
            .as_str()
            .is_some_and(|e| e.starts_with("Timestamp expired: "))
}

fn bad_signature(r: &Reply) -> bool {
    r.status == 401
        && r.body["code"] == 401
        && r.body["error"]
            .as_str()
            .is_some_and(|e| e.starts_with("Invalid signature: "))
}

#[tokio::test]
async fn forged_channel_auth_is_refused_for_every_signed_kind() {
    let server = TestServer::with_config(&two_apps(true)).await;
    let mut c = server.connect().await;
    let mut owner = server.connect().await;
    for (channel, cd) in SIGNED_KINDS {
        // The owner subscribes with its own token, which `c` then tries to reuse.
        let ok = owner.subscribe_signed(channel, cd).await;
        assert_eq!(
            ok["event"], "pusher_internal:subscription_succeeded",
            "{channel}"
        );
        if channel.contains("cache-") {
            owner.expect("pusher:cache_miss").await;
        }
        let good = token(KEY, SECRET, &c.socket_id, channel, cd);
        let sig = good.split_once(':').unwrap().1.to_owned();
        let owners = token(KEY, SECRET, &owner.socket_id, channel, cd);
        let other_channel = format!("{channel}-b");
        let forged = [
            ("no auth field", None),
            ("empty auth", Some(String::new())),
            ("another socket's token", Some(owners.clone())),
            (
                "a token for another channel",
                Some(token(KEY, SECRET, &c.socket_id, &other_channel, cd)),
            ),
            (
                "signed with another app's secret",
                Some(token(KEY, SECRET2, &c.socket_id, channel, cd)),
            ),
            (
                "another app's key with this app's HMAC",
                Some(format!("{KEY2}:{sig}")),
            ),
            (
                "another app's valid token",
                Some(token(KEY2, SECRET2, &c.socket_id, channel, cd)),
            ),
            ("key only", Some(KEY.to_owned())),
            ("HMAC only", Some(sig.clone())),
            ("not hex", Some(format!("{KEY}:zzz"))),
            ("empty HMAC", Some(format!("{KEY}:"))),
            ("empty key", Some(format!(":{sig}"))),
            (
                "key in other case",
                Some(format!("{}:{sig}", KEY.to_uppercase())),
            ),
            ("truncated HMAC", Some(format!("{KEY}:{}", &sig[..32]))),
            ("HMAC with extra bytes", Some(format!("{good}00"))),
            ("trailing colon", Some(format!("{good}:"))),
        ];
        for (what, auth) in &forged {
            let v = subscribe_raw(&mut c, channel, auth.as_deref(), cd).await;
            assert_eq!(
                decoded(&v),
                auth_error(channel, BAD_SIGNATURE),
                "{channel}: {what}"
            );
        }
        // The signed socket id is the server's, never one the frame claims (§3.2).
        let mut data = json!({"channel": channel, "auth": owners, "socket_id": owner.socket_id});
        if let Some(cd) = cd {
            data["channel_data"] = json!(cd);
        }
        c.send(json!({"event": "pusher:subscribe", "data": data}))
            .await;
        assert_eq!(
            decoded(&c.recv().await),
            auth_error(channel, BAD_SIGNATURE),
            "{channel}: claimed socket_id"
        );
        // What is published on the channel reaches the owner and not the refused socket.
        assert_eq!(
            server
                .api()
                .trigger(&[channel], "leak", "secret")
                .await
                .status,
            200
        );
        assert_eq!(owner.expect("leak").await["channel"], channel);
        c.expect_nothing_queued().await;
        // The connection's own token still works: only the forgeries were wrong.
        let v = subscribe_raw(&mut c, channel, Some(good.as_str()), cd).await;
        assert_eq!(
            v["event"], "pusher_internal:subscription_succeeded",
            "{channel}"
        );
        if channel.contains("cache-") {
            assert_eq!(c.expect("leak").await["channel"], channel);
        }
        // Same presence user as the owner: no member_added.
        owner.expect_nothing_queued().await;
    }
}

#[tokio::test]
async fn presence_channel_data_must_be_exactly_what_was_signed() {
    let server = TestServer::start().await;
    let mut watcher = server.connect().await;
    let ok = watcher.subscribe_signed("presence-room", Some(BOB)).await;
    assert_eq!(ok["event"], "pusher_internal:subscription_succeeded");
    let mut c = server.connect().await;
    let signed = token(KEY, SECRET, &c.socket_id, "presence-room", Some(ANN));
    for claimed in [
        r#"{"user_id":"root","user_info":{"name":"Ann"}}"#,
        r#"{"user_id":"ann","user_info":{"name":"Admin"}}"#,
        r#"{"user_id": "ann", "user_info": {"name": "Ann"}}"#,
        r#"{"user_id":"ann"}"#,
    ] {
        let v = subscribe_raw(
            &mut c,
            "presence-room",
            Some(signed.as_str()),
            Some(claimed),
        )
        .await;
        assert_eq!(
            decoded(&v),
            auth_error("presence-room", BAD_SIGNATURE),
            "{claimed}"
        );
    }
    // Not signed in, presence needs channel_data whatever the auth covers.
    let v = subscribe_raw(&mut c, "presence-room", Some(signed.as_str()), None).await;
    assert_eq!(
        decoded(&v),
        auth_error("presence-room", PRESENCE_NEEDS_USER)
    );
    // Signed in, a token over channel_data does not work without it ...
    assert_eq!(
        c.signin(r#"{"id":"ann"}"#).await["event"],
        "pusher:signin_success"
    );
    let v = subscribe_raw(&mut c, "presence-room", Some(signed.as_str()), None).await;
    assert_eq!(decoded(&v), auth_error("presence-room", BAD_SIGNATURE));
    // ... and a token to join as the signed-in user cannot bring a user of its own.
    let as_self = token(KEY, SECRET, &c.socket_id, "presence-room", None);
    let v = subscribe_raw(
        &mut c,
        "presence-room",
        Some(as_self.as_str()),
        Some(r#"{"user_id":"root"}"#),
    )
    .await;
    assert_eq!(decoded(&v), auth_error("presence-room", BAD_SIGNATURE));
    // Nobody joined.
    watcher.expect_nothing_queued().await;
    let r = server.api().get("/channels/presence-room/users", &[]).await;
    assert_eq!((r.status, r.body), (200, json!({"users": [{"id": "bob"}]})));
    // The signed channel_data itself is accepted.
    let v = subscribe_raw(&mut c, "presence-room", Some(signed.as_str()), Some(ANN)).await;
    assert_eq!(v["event"], "pusher_internal:subscription_succeeded");
    let added = watcher.expect("pusher_internal:member_added").await;
    assert_eq!(
        Client::data(&added),
        json!({"user_id": "ann", "user_info": {"name": "Ann"}})
    );
}

#[tokio::test]
async fn presence_without_channel_data_needs_a_signed_in_connection() {
    let server = TestServer::start().await;
    let mut c = server.connect().await;
    for channel in ["presence-room", "presence-cache-room"] {
        let signed = channel_auth(&c.socket_id, channel, None);
        for auth in [Some(signed.as_str()), Some(""), None] {
            let v = subscribe_raw(&mut c, channel, auth, None).await;
            assert_eq!(
                decoded(&v),
                auth_error(channel, PRESENCE_NEEDS_USER),
                "{channel} {auth:?}"
            );
        }
    }
    // An AuthError, not a dropped socket (§2.11).
    c.expect_nothing_queued().await;
    assert_eq!(
        c.subscribe("public-after").await["event"],
        "pusher_internal:subscription_succeeded"
    );
}

#[tokio::test]
async fn server_to_user_channels_belong_to_the_connection_signed_in_as_that_user() {
    let server = TestServer::start().await;
    let mut c = server.connect().await;
    let mut u43 = server.connect().await;
    assert_eq!(
        u43.signin(r#"{"id":"43"}"#).await["event"],
        "pusher:signin_success"
    );
    // Not signed in: refused, even with a channel signature.
    let auth = channel_auth(&c.socket_id, "#server-to-user-42", None);
    let v = subscribe_raw(&mut c, "#server-to-user-42", Some(auth.as_str()), None).await;
    assert_eq!(decoded(&v), auth_error("#server-to-user-42", NOT_THIS_USER));
    assert_eq!(
        c.signin(r#"{"id":"42"}"#).await["event"],
        "pusher:signin_success"
    );
    // Signed in as 42: any other id is refused, however close.
    for channel in [
        "#server-to-user-43",
        "#server-to-user-4",
        "#server-to-user-420",
        "#server-to-user-42-x",
    ] {
        let auth = channel_auth(&c.socket_id, channel, None);
        let v = subscribe_raw(&mut c, channel, Some(auth.as_str()), None).await;
        assert_eq!(decoded(&v), auth_error(channel, NOT_THIS_USER), "{channel}");
    }
    // The bare prefix names nobody.
    let v = c.subscribe("#server-to-user-").await;
    assert_eq!(
        decoded(&v),
        json!({
            "event": "pusher:subscription_error",
            "channel": "#server-to-user-",
            "data": {
                "type": "InvalidChannel",
                "error": "Invalid channel name '#server-to-user-': channel names starting with # are reserved for #server-to-user-{id}",
                "status": 400
            }
        })
    );
    // What the app sends to 43 reaches 43 only.
    let r = server
        .api()
        .trigger(&["#server-to-user-43"], "note", "for 43")
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(u43.expect("note").await["data"], "for 43");
    c.expect_nothing_queued().await;
    // Its own channel is fine.
    assert_eq!(
        c.subscribe("#server-to-user-42").await,
        json!({"event": "pusher_internal:subscription_succeeded", "channel": "#server-to-user-42", "data": "{}"})
    );
}

#[tokio::test]
async fn forged_signins_are_refused_and_leave_the_connection_signed_out() {
    let server = TestServer::with_config(&two_apps(true)).await;
    let mut c = server.connect().await;
    let other = server.connect().await;
    let user = r#"{"id":"u1"}"#;
    let good = signin_token(KEY, SECRET, &c.socket_id, user);
    let sig = good.split_once(':').unwrap().1.to_owned();
    let forged = [
        (
            "signed with another app's secret",
            signin_token(KEY, SECRET2, &c.socket_id, user),
            user,
        ),
        (
            "signed for another socket",
            signin_token(KEY, SECRET, &other.socket_id, user),
            user,
        ),
        (
            "another app's key with this app's HMAC",
            format!("{KEY2}:{sig}"),
            user,
        ),
        (
            "another app's valid sign-in",
            signin_token(KEY2, SECRET2, &c.socket_id, user),
            user,
        ),
        (
            "signed for other user_data",
            good.clone(),
            r#"{"id":"admin"}"#,
        ),
        (
            "signed for the same id without a watchlist",
            good.clone(),
            r#"{"id":"u1","watchlist":["x"]}"#,
        ),
        ("empty auth", String::new(), user),
        ("key only", KEY.to_owned(), user),
        ("not hex", format!("{KEY}:zzz"), user),
        ("empty HMAC", format!("{KEY}:"), user),
        ("truncated HMAC", format!("{KEY}:{}", &sig[..32]), user),
    ];
    for (what, auth, user_data) in &forged {
        let v = signin_raw(&mut c, auth, user_data).await;
        assert_eq!(v, notice(None, SIGNIN_REFUSED), "{what}");
    }
    // Correctly signed, but not a user.
    let no_id = "Invalid user_data: id must be a non-empty string";
    for (user_data, message) in [
        (r#"{"user_info":{"name":"x"}}"#, no_id),
        (r#"{"id":null}"#, no_id),
        (r#"{"id":42}"#, no_id),
        (
            r#"{"id":"a b"}"#,
            "Invalid user_data: id must be 1 to 128 characters from A-Z a-z 0-9 _ - = @ , . ;",
        ),
    ] {
        let auth = signin_token(KEY, SECRET, &c.socket_id, user_data);
        let v = signin_raw(&mut c, &auth, user_data).await;
        assert_eq!(v, notice(None, message), "{user_data}");
    }
    // Still signed out: no user channel, no presence as the user, untouched by what the app
    // sends to or does with u1.
    let v = c.subscribe("#server-to-user-u1").await;
    assert_eq!(decoded(&v), auth_error("#server-to-user-u1", NOT_THIS_USER));
    let v = c.subscribe_signed("presence-room", None).await;
    assert_eq!(
        decoded(&v),
        auth_error("presence-room", PRESENCE_NEEDS_USER)
    );
    let api = server.api();
    let r = api.trigger(&["#server-to-user-u1"], "note", "x").await;
    assert_eq!(r.status, 200);
    for id in ["u1", "admin"] {
        let r = api
            .post(&format!("/users/{id}/terminate_connections"), json!({}))
            .await;
        assert_eq!((r.status, r.body), (200, json!({})), "{id}");
    }
    c.expect_nothing_queued().await;
    // The genuine sign-in still works.
    assert_eq!(
        signin_raw(&mut c, &good, user).await["event"],
        "pusher:signin_success"
    );
}

#[tokio::test]
async fn refused_subscribes_and_signins_do_not_authorize_a_connection() {
    let toml = "[[apps]]\nid=\"app-1\"\nkey=\"app-key\"\nsecret=\"app-secret\"\nrequire_authorized_connection = true\nauthorized_connection_timeout_secs = 2";
    let server = TestServer::with_config(toml).await;
    let mut c = server.connect().await;
    let v = c.subscribe("private-x").await;
    assert_eq!(decoded(&v), auth_error("private-x", BAD_SIGNATURE));
    let v = c.subscribe("presence-x").await;
    assert_eq!(decoded(&v), auth_error("presence-x", PRESENCE_NEEDS_USER));
    let v = c.subscribe("#server-to-user-u").await;
    assert_eq!(decoded(&v), auth_error("#server-to-user-u", NOT_THIS_USER));
    let v = signin_raw(&mut c, &format!("{KEY}:00"), r#"{"id":"u"}"#).await;
    assert_eq!(v, notice(None, SIGNIN_REFUSED));
    let v = c.expect("pusher:error").await;
    assert_eq!(
        v["data"],
        json!({"code": 4009, "message": "Connection not authorized within timeout"})
    );
    assert_eq!(c.ended().await, Ended::Closed(4009));
}

#[tokio::test]
async fn client_events_on_encrypted_channels_are_refused_and_never_relayed() {
    let server = TestServer::start().await;
    let mut a = server.connect().await;
    let mut b = server.connect().await;
    for channel in ["private-encrypted-e", "private-encrypted-cache-e"] {
        for c in [&mut a, &mut b] {
            let ok = c.subscribe_signed(channel, None).await;
            assert_eq!(
                ok["event"], "pusher_internal:subscription_succeeded",
                "{channel}"
            );
            if channel.contains("cache-") {
                c.expect("pusher:cache_miss").await;
            }
        }
        // A plaintext client event would defeat end-to-end encryption (§2.11, §3.3).
        a.send(client_event(channel, "client-plain")).await;
        assert_eq!(
            a.recv().await,
            notice(Some(channel), WRONG_KIND),
            "{channel}"
        );
        b.expect_nothing_queued().await;
    }
}

#[tokio::test]
async fn client_events_are_refused_on_public_and_server_to_user_channels() {
    let server = TestServer::start().await;
    let mut a = server.connect().await;
    let mut b = server.connect().await;
    let channels = ["news", "cache-news", "#server-to-user-42"];
    for c in [&mut a, &mut b] {
        assert_eq!(
            c.signin(r#"{"id":"42"}"#).await["event"],
            "pusher:signin_success"
        );
        for channel in channels {
            assert_eq!(
                c.subscribe(channel).await["event"],
                "pusher_internal:subscription_succeeded",
                "{channel}"
            );
            if channel == "cache-news" {
                c.expect("pusher:cache_miss").await;
            }
        }
    }
    for channel in channels {
        a.send(client_event(channel, "client-x")).await;
        assert_eq!(
            a.recv().await,
            notice(Some(channel), WRONG_KIND),
            "{channel}"
        );
    }
    b.expect_nothing_queued().await;
}

#[tokio::test]
async fn client_events_need_a_subscription_that_succeeded() {
    let server = TestServer::start().await;
    let mut member = server.connect().await;
    assert_eq!(
        member.subscribe_signed("private-room", None).await["event"],
        "pusher_internal:subscription_succeeded"
    );
    assert_eq!(
        member.subscribe_signed("presence-room", Some(BOB)).await["event"],
        "pusher_internal:subscription_succeeded"
    );
    let mut c = server.connect().await;
    // Refused subscriptions do not count.
    let stolen = token(KEY, SECRET, &member.socket_id, "private-room", None);
    let v = subscribe_raw(&mut c, "private-room", Some(stolen.as_str()), None).await;
    assert_eq!(decoded(&v), auth_error("private-room", BAD_SIGNATURE));
    let v = c.subscribe("presence-room").await;
    assert_eq!(
        decoded(&v),
        auth_error("presence-room", PRESENCE_NEEDS_USER)
    );
    for channel in ["private-room", "presence-room", "private-never"] {
        c.send(client_event(channel, "client-x")).await;
        assert_eq!(
            c.recv().await,
            notice(Some(channel), NOT_SUBSCRIBED),
            "{channel}"
        );
    }
    // Nor does one that was left.
    assert_eq!(
        c.subscribe_signed("private-room", None).await["event"],
        "pusher_internal:subscription_succeeded"
    );
    c.send(json!({"event": "pusher:unsubscribe", "data": {"channel": "private-room"}}))
        .await;
    c.send(client_event("private-room", "client-x")).await;
    assert_eq!(c.recv().await, notice(Some("private-room"), NOT_SUBSCRIBED));
    member.expect_nothing_queued().await;
    // Subscribed again, its client events do arrive (the refusals above were not vacuous).
    c.subscribe_signed("private-room", None).await;
    c.send(client_event("private-room", "client-x")).await;
    assert_eq!(
        member.recv_text().await,
        r#"{"event":"client-x","channel":"private-room","data":{"text":"hi"}}"#
    );
}

#[tokio::test]
async fn frames_without_the_client_prefix_are_not_relayed_and_user_ids_cannot_be_claimed() {
    let server = TestServer::start().await;
    let mut a = server.connect().await;
    let mut b = server.connect().await;
    a.subscribe_signed("presence-room", Some(ANN)).await;
    b.subscribe_signed("presence-room", Some(BOB)).await;
    a.expect("pusher_internal:member_added").await;
    a.subscribe_signed("private-room", None).await;
    b.subscribe_signed("private-room", None).await;
    // Spoofed server frames and other names are ignored (§1.5), never relayed.
    for event in [
        "typing",
        "Client-typing",
        "pusher_internal:member_added",
        "pusher_internal:member_removed",
        "pusher_internal:subscription_succeeded",
        "pusher:error",
    ] {
        for channel in ["presence-room", "private-room"] {
            a.send(json!({"event": event, "channel": channel, "data": {"user_id": "root"}}))
                .await;
        }
    }
    a.expect_nothing_queued().await;
    b.expect_nothing_queued().await;
    // A client event's user_id is the sender's membership, whatever the frame claims.
    a.send_text(r#"{"event":"client-x","channel":"presence-room","data":{},"user_id":"root"}"#)
        .await;
    assert_eq!(
        b.recv_text().await,
        r#"{"event":"client-x","channel":"presence-room","data":{},"user_id":"ann"}"#
    );
    a.send_text(r#"{"event":"client-x","channel":"private-room","data":{},"user_id":"root"}"#)
        .await;
    assert_eq!(
        b.recv_text().await,
        r#"{"event":"client-x","channel":"private-room","data":{}}"#
    );
    a.expect_nothing_queued().await;
}

#[tokio::test]
async fn client_events_are_refused_in_an_app_that_disables_them() {
    let server = TestServer::with_config(&two_apps(false)).await;
    let mut a = Client::connect(&server.ws_url(KEY2)).await;
    let mut b = Client::connect(&server.ws_url(KEY2)).await;
    for c in [&mut a, &mut b] {
        let auth = token(KEY2, SECRET2, &c.socket_id, "private-room", None);
        let v = subscribe_raw(c, "private-room", Some(auth.as_str()), None).await;
        assert_eq!(v["event"], "pusher_internal:subscription_succeeded", "{v}");
    }
    a.send(client_event("private-room", "client-x")).await;
    assert_eq!(
        a.recv().await,
        notice(Some("private-room"), CLIENT_EVENTS_OFF)
    );
    b.expect_nothing_queued().await;
    // app-1 has them on; its events on the same channel name stay in app-1.
    let mut one = server.connect().await;
    let mut other = server.connect().await;
    one.subscribe_signed("private-room", None).await;
    other.subscribe_signed("private-room", None).await;
    one.send(client_event("private-room", "client-y")).await;
    assert_eq!(other.expect("client-y").await["channel"], "private-room");
    b.expect_nothing_queued().await;
    a.expect_nothing_queued().await;
}

#[tokio::test]
async fn apps_never_share_channels_users_or_signatures() {
    let server = TestServer::with_config(&two_apps(true)).await;
    let mut one = server.connect().await;
    let mut two = Client::connect(&server.ws_url(KEY2)).await;
    // app-1's signature does not open app-2's channel.
    let auth = channel_auth(&two.socket_id, "private-x", None);
    let v = subscribe_raw(&mut two, "private-x", Some(auth.as_str()), None).await;
    assert_eq!(decoded(&v), auth_error("private-x", BAD_SIGNATURE));
    let auth = signin_token(KEY, SECRET, &two.socket_id, r#"{"id":"u1"}"#);
    let v = signin_raw(&mut two, &auth, r#"{"id":"u1"}"#).await;
    assert_eq!(v, notice(None, SIGNIN_REFUSED));
    // The same channel and user names in both apps.
    let auth = token(KEY2, SECRET2, &two.socket_id, "private-x", None);
    let v = subscribe_raw(&mut two, "private-x", Some(auth.as_str()), None).await;
    assert_eq!(v["event"], "pusher_internal:subscription_succeeded");
    assert_eq!(
        two.subscribe("app-2-only").await["event"],
        "pusher_internal:subscription_succeeded"
    );
    let auth = signin_token(KEY2, SECRET2, &two.socket_id, r#"{"id":"u1"}"#);
    assert_eq!(
        signin_raw(&mut two, &auth, r#"{"id":"u1"}"#).await["event"],
        "pusher:signin_success"
    );
    assert_eq!(
        one.subscribe_signed("private-x", None).await["event"],
        "pusher_internal:subscription_succeeded"
    );
    assert_eq!(
        one.signin(r#"{"id":"u1"}"#).await["event"],
        "pusher:signin_success"
    );
    // app-1 publishes on private-x and to u1: only app-1's connection gets either.
    let api = server.api();
    assert_eq!(api.trigger(&["private-x"], "ev", "app-1").await.status, 200);
    assert_eq!(
        api.trigger(&["#server-to-user-u1"], "note", "app-1")
            .await
            .status,
        200
    );
    assert_eq!(one.expect("ev").await["data"], "app-1");
    assert_eq!(one.expect("note").await["data"], "app-1");
    two.expect_nothing_queued().await;
    // A client event in app-2 stays in app-2.
    two.send(client_event("private-x", "client-x")).await;
    two.expect_nothing_queued().await;
    one.expect_nothing_queued().await;
    // app-1's channel list shows app-1's channels only.
    let r = api.get("/channels", &[]).await;
    assert_eq!(r.body, json!({"channels": {"private-x": {}}}));
}

#[tokio::test]
async fn api_requests_with_another_apps_credentials_are_refused() {
    let server = TestServer::with_config(&two_apps(true)).await;
    let mut c = server.connect().await;
    c.subscribe("news").await;
    let path = "/apps/app-1/events";
    let body = r#"{"name":"ev","channels":["news"],"data":"forged"}"#;
    // app-1's key, signed with app-2's secret.
    let ts = now().to_string();
    let md5 = body_md5(body.as_bytes());
    let target = signed_target(KEY, SECRET2, "POST", path, &ts, Some(body));
    let r = raw_http(server.addr, "POST", &target, body).await;
    let expected = api_request_payload(
        "POST",
        path,
        &[
            ("auth_key", KEY),
            ("auth_timestamp", ts.as_str()),
            ("auth_version", "1.0"),
            ("body_md5", md5.as_str()),
        ],
    );
    assert_eq!(
        (r.status, r.body),
        (
            401,
            json!({"error": format!("Invalid signature: expected HMAC-SHA256 hex of {expected:?} keyed with the app secret"), "code": 401})
        )
    );
    // app-2's key for app-1's id (`/apps/app-1/events?auth_key=key-2`), with either secret.
    for secret in [SECRET2, SECRET] {
        let api = Api {
            app_id: "app-1".into(),
            secret: secret.into(),
            ..app2_api(&server)
        };
        let r = api.trigger(&["news"], "ev", "forged").await;
        assert_eq!(
            (r.status, r.body),
            (
                401,
                json!({"error": "Invalid auth_key: not this app's key", "code": 401})
            )
        );
    }
    c.expect_nothing_queued().await;
    // app-2's own request publishes in app-2 only.
    let mut c2 = Client::connect(&server.ws_url(KEY2)).await;
    c2.subscribe("news").await;
    let r = app2_api(&server).trigger(&["news"], "ev", "app-2").await;
    assert_eq!(r.status, 200);
    assert_eq!(c2.expect("ev").await["data"], "app-2");
    c.expect_nothing_queued().await;
}

#[tokio::test]
async fn api_timestamps_more_than_600_seconds_away_are_refused_both_ways() {
    let server = TestServer::start().await;
    let mut c = server.connect().await;
    c.subscribe("news").await;
    let api = server.api();
    let body = r#"{"name":"ev","channels":["news"],"data":"x"}"#;
    for ts in [now() - 700, now() + 700] {
        let r = api.request_at("POST", "/events", &[], body, ts).await;
        assert!(expired(&r), "{ts}: {} {}", r.status, r.body);
        let error = r.body["error"].as_str().unwrap();
        assert!(
            error.starts_with(&format!("Timestamp expired: auth_timestamp {ts} is ")),
            "{error}"
        );
        assert!(
            error.ends_with("(allowed ±600 s); check the clock of the calling server"),
            "{error}"
        );
    }
    for ts in ["abc", "-5", "1e9", ""] {
        let target = signed_target(KEY, SECRET, "POST", "/apps/app-1/events", ts, Some(body));
        let r = raw_http(server.addr, "POST", &target, body).await;
        assert_eq!(
            (r.status, r.body),
            (
                401,
                json!({"error": "auth_timestamp must be Unix seconds", "code": 401})
            ),
            "{ts:?}"
        );
    }
    c.expect_nothing_queued().await;
    // Inside the window, either way.
    for ts in [now() - 590, now() + 590] {
        let r = api.request_at("POST", "/events", &[], body, ts).await;
        assert_eq!(r.status, 200, "{ts}");
        assert_eq!(c.expect("ev").await["data"], "x");
    }
}

#[tokio::test]
async fn a_body_changed_after_signing_is_refused() {
    let server = TestServer::start().await;
    let mut c = server.connect().await;
    c.subscribe("news").await;
    let path = "/apps/app-1/events";
    let signed_body = r#"{"name":"ev","channels":["news"],"data":"signed"}"#;
    let sent_body = r#"{"name":"ev","channels":["news"],"data":"changed"}"#;
    let ts = now().to_string();
    let target = signed_target(KEY, SECRET, "POST", path, &ts, Some(signed_body));
    let r = raw_http(server.addr, "POST", &target, sent_body).await;
    assert_eq!(
        (r.status, r.body),
        (
            401,
            json!({"error": "body_md5 does not match the body", "code": 401})
        )
    );
    // With body_md5 fixed up to match the new body, the signature no longer matches.
    let fixed = target.replace(
        &body_md5(signed_body.as_bytes()),
        &body_md5(sent_body.as_bytes()),
    );
    assert_ne!(fixed, target);
    let r = raw_http(server.addr, "POST", &fixed, sent_body).await;
    assert!(bad_signature(&r), "{} {}", r.status, r.body);
    // A signature without body_md5 does not cover a body.
    let unhashed = signed_target(KEY, SECRET, "POST", path, &ts, None);
    let r = raw_http(server.addr, "POST", &unhashed, sent_body).await;
    assert_eq!(
        (r.status, r.body),
        (401, json!({"error": "Missing body_md5", "code": 401}))
    );
    c.expect_nothing_queued().await;
    // The request as signed goes through.
    let r = raw_http(server.addr, "POST", &target, signed_body).await;
    assert_eq!((r.status, r.body), (200, json!({})));
    assert_eq!(c.expect("ev").await["data"], "signed");
}

#[tokio::test]
async fn a_captured_request_cannot_be_refreshed_or_extended() {
    let server = TestServer::start().await;
    let mut c = server.connect().await;
    c.subscribe("news").await;
    let body = r#"{"name":"ev","channels":["news"],"data":"replayed"}"#;
    // Captured 700 s ago: a valid signature over a stale timestamp.
    let old = (now() - 700).to_string();
    let captured = signed_target(KEY, SECRET, "POST", "/apps/app-1/events", &old, Some(body));
    let r = raw_http(server.addr, "POST", &captured, body).await;
    assert!(expired(&r), "{} {}", r.status, r.body);
    // Moving its timestamp into the window breaks the signature.
    let refreshed = captured.replace(
        &format!("auth_timestamp={old}"),
        &format!("auth_timestamp={}", now()),
    );
    assert_ne!(refreshed, captured);
    let r = raw_http(server.addr, "POST", &refreshed, body).await;
    assert!(bad_signature(&r), "{} {}", r.status, r.body);
    c.expect_nothing_queued().await;
    // A fresh signed query, extended with parameters or sent to another path, is refused.
    let ts = now().to_string();
    let list = signed_target(KEY, SECRET, "GET", "/apps/app-1/channels", &ts, None);
    assert_eq!(raw_http(server.addr, "GET", &list, "").await.status, 200);
    for extra in [
        "&filter_by_prefix=presence-",
        "&info=user_count&filter_by_prefix=presence-",
    ] {
        let r = raw_http(server.addr, "GET", &format!("{list}{extra}"), "").await;
        assert!(bad_signature(&r), "{extra}: {} {}", r.status, r.body);
    }
    let moved = list.replacen("/apps/app-1/channels", "/apps/app-1/channels/news", 1);
    let r = raw_http(server.addr, "GET", &moved, "").await;
    assert!(bad_signature(&r), "{} {}", r.status, r.body);
}

#[tokio::test]
async fn terminate_connections_with_another_apps_credentials_spares_this_apps_user() {
    let server = TestServer::with_config(&two_apps(true)).await;
    let user = r#"{"id":"u1"}"#;
    let mut mine = server.connect().await;
    assert_eq!(mine.signin(user).await["event"], "pusher:signin_success");
    let mut theirs = Client::connect(&server.ws_url(KEY2)).await;
    let auth = signin_token(KEY2, SECRET2, &theirs.socket_id, user);
    assert_eq!(
        signin_raw(&mut theirs, &auth, user).await["event"],
        "pusher:signin_success"
    );
    let terminate = "/users/u1/terminate_connections";
    // app-1's id with app-2's key: refused.
    let api = Api {
        app_id: "app-1".into(),
        ..app2_api(&server)
    };
    let r = api.post(terminate, json!({})).await;
    assert_eq!(
        (r.status, r.body),
        (
            401,
            json!({"error": "Invalid auth_key: not this app's key", "code": 401})
        )
    );
    // app-1's key with app-2's secret, on either path: refused.
    let api = Api {
        secret: SECRET2.into(),
        ..server.api()
    };
    let r = api.post(terminate, json!({})).await;
    assert!(bad_signature(&r), "{} {}", r.status, r.body);
    let target = signed_target(
        KEY,
        SECRET2,
        "POST",
        terminate,
        &now().to_string(),
        Some("{}"),
    );
    let r = raw_http(server.addr, "POST", &target, "{}").await;
    assert!(bad_signature(&r), "{} {}", r.status, r.body);
    mine.expect_nothing_queued().await;
    theirs.expect_nothing_queued().await;
    // app-2 terminating its own u1 (the Python SDK's unprefixed path) closes app-2's only.
    let target = signed_target(
        KEY2,
        SECRET2,
        "POST",
        terminate,
        &now().to_string(),
        Some("{}"),
    );
    let r = raw_http(server.addr, "POST", &target, "{}").await;
    assert_eq!((r.status, r.body), (200, json!({})));
    let v = theirs.expect("pusher:error").await;
    assert_eq!(
        v["data"],
        json!({"code": 4009, "message": "You got disconnected by the app."})
    );
    assert_eq!(theirs.ended().await, Ended::Closed(4009));
    let r = app2_api(&server).post(terminate, json!({})).await;
    assert_eq!((r.status, r.body), (200, json!({})));
    mine.expect_nothing_queued().await;
    // app-1's own credentials do reach it.
    let r = server.api().post(terminate, json!({})).await;
    assert_eq!((r.status, r.body), (200, json!({})));
    assert_eq!(mine.expect("pusher:error").await["data"]["code"], 4009);
    assert_eq!(mine.ended().await, Ended::Closed(4009));
}

#[tokio::test]
async fn unsigned_requests_do_not_use_up_the_apps_rate_limit() {
    let toml = "[[apps]]\nid=\"app-1\"\nkey=\"app-key\"\nsecret=\"app-secret\"\napi_requests_per_second = 3";
    let server = TestServer::with_config(toml).await;
    // Anyone can send these: the app id, or just the public key on the unprefixed path.
    let mut statuses = Vec::new();
    for _ in 0..3 {
        statuses.push(
            raw_http(server.addr, "GET", "/apps/app-1/channels", "")
                .await
                .status,
        );
        statuses.push(
            raw_http(
                server.addr,
                "POST",
                "/users/u1/terminate_connections?auth_key=app-key",
                "{}",
            )
            .await
            .status,
        );
    }
    statuses.push(server.api().get("/channels", &[]).await.status);
    assert_eq!(statuses, [401, 401, 401, 401, 401, 401, 200]);
}
