//! Property tests: what the server encodes decodes back to the same thing, and HTTP API
//! signing agrees with the rule every Pusher server SDK implements.

use herald_protocol::api::{SignedRequest, verify_request};
use herald_protocol::event::{ClientEvent, encode};
use herald_protocol::signature::{api_request_payload, body_md5, sign};
use herald_protocol::webhook::WebhookEvent;
use herald_protocol::{ChannelName, Limits, Secret};
use proptest::prelude::*;
use serde_json::Value;

/// Channel names as PROTOCOL.md §2.1 allows them (kind prefixes included).
fn channel_name() -> impl Strategy<Value = String> {
    (
        prop_oneof![
            Just(""),
            Just("private-"),
            Just("presence-"),
            Just("private-encrypted-"),
            Just("cache-"),
            Just("presence-cache-"),
        ],
        "[A-Za-z0-9_=@,.;-]{1,60}",
    )
        .prop_map(|(prefix, rest)| format!("{prefix}{rest}"))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Any valid name parses to itself and survives a subscribe frame built by a client.
    #[test]
    fn subscribe_frames_round_trip(name in channel_name(), auth in "[a-z0-9:]{0,80}") {
        let parsed = ChannelName::parse(&name, 200).unwrap();
        prop_assert_eq!(parsed.as_str(), name.as_str());
        let frame = serde_json::json!({"event": "pusher:subscribe",
            "data": {"channel": name, "auth": auth}}).to_string();
        match ClientEvent::decode(&frame, &Limits::default()) {
            Ok(ClientEvent::Subscribe { channel, auth: a, .. }) => {
                prop_assert_eq!(channel.as_str(), name.as_str());
                // An empty `auth` counts as none.
                prop_assert_eq!(a.as_deref().unwrap_or(""), auth.as_str());
            }
            other => prop_assert!(false, "{:?}", other.map(|_| ())),
        }
    }

    /// Channel events the server encodes are JSON whose fields are exactly the inputs, for any
    /// event name and any data string (quotes, newlines, unicode, control characters).
    #[test]
    fn channel_events_encode_to_their_fields(
        name in channel_name(), event in "\\PC{1,40}", data in "\\PC*|[\\x00-\\x1f\"\\\\]*",
    ) {
        let frame = encode::channel_event(&event, &name, &data);
        let v: Value = serde_json::from_str(&frame).unwrap();
        prop_assert_eq!(&v["event"], &Value::String(event));
        prop_assert_eq!(&v["channel"], &Value::String(name));
        prop_assert_eq!(&v["data"], &Value::String(data));
    }

    /// Client events keep their `data` verbatim through decode and re-encode.
    #[test]
    fn client_event_data_is_relayed_verbatim(
        name in "[A-Za-z0-9_-]{1,30}", text in "\\PC{0,200}", n in any::<i64>(),
    ) {
        let channel = format!("private-{name}");
        let data = serde_json::json!({"text": text, "n": n, "list": [1, "two", null]});
        let frame = serde_json::json!({"event": "client-x", "channel": channel, "data": data})
            .to_string();
        let Ok(ClientEvent::Client { data: raw, .. }) =
            ClientEvent::decode(&frame, &Limits::default())
        else {
            return Err(TestCaseError::fail("not decoded as a client event"));
        };
        let out = encode::client_event("client-x", &channel, &raw, Some("u1"));
        let v: Value = serde_json::from_str(&out).unwrap();
        prop_assert_eq!(&v["data"], &data);
        prop_assert_eq!(&v["user_id"], &Value::String("u1".into()));
    }

    /// Webhook events read back from the cluster's stream are the events written.
    #[test]
    fn webhook_events_round_trip(
        channel in channel_name(), user in "\\PC{1,40}", data in "\\PC{0,100}",
        socket in "[0-9]{1,9}\\.[0-9]{1,9}", kind in 0..5u8,
    ) {
        let event = match kind {
            0 => WebhookEvent::ChannelOccupied { channel },
            1 => WebhookEvent::ChannelVacated { channel },
            2 => WebhookEvent::MemberAdded { channel, user_id: user },
            3 => WebhookEvent::MemberRemoved { channel, user_id: user },
            _ => WebhookEvent::ClientEvent {
                channel, event: "client-e".into(), data, socket_id: socket, user_id: Some(user),
            },
        };
        prop_assert_eq!(WebhookEvent::from_json(&event.to_json()), Some(event));
    }

    /// The string to sign is the SDKs' rule — `METHOD\npath\n` and the parameters with
    /// lower-cased keys, sorted by key, joined as `k=v` with `&`, values not escaped —
    /// whatever order and case the caller used.
    #[test]
    fn the_string_to_sign_follows_the_sdk_rule(
        method in "(get|post|GET|POST)", path in "/apps/[0-9]{1,6}/[a-z_]{1,20}",
        params in proptest::collection::btree_map("[A-Za-z_]{1,12}", "\\PC{0,20}", 0..8),
    ) {
        let pairs: Vec<(&str, &str)> =
            params.iter().rev().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let mut lowered: Vec<(String, String)> =
            params.iter().map(|(k, v)| (k.to_lowercase(), v.clone())).collect();
        lowered.sort();
        let query: Vec<String> = lowered.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let want = format!("{}\n{path}\n{}", method.to_uppercase(), query.join("&"));
        prop_assert_eq!(api_request_payload(&method, &path, &pairs), want);
    }

    /// A request an SDK signs (over unescaped values) and sends percent-encoded verifies, and
    /// any change to a signed value does not.
    #[test]
    fn sdk_signed_requests_verify_and_tampered_ones_do_not(
        extra in "\\PC{1,30}", body in "\\PC{0,200}", flip in 0usize..4,
    ) {
        let secret = Secret::new("s3cret");
        let ts = "1700000000";
        let md5 = body_md5(body.as_bytes());
        let mut params = vec![
            ("auth_key", "key"), ("auth_timestamp", ts), ("auth_version", "1.0"),
            ("info", extra.as_str()),
        ];
        if !body.is_empty() {
            params.push(("body_md5", md5.as_str()));
        }
        let path = "/apps/1/events";
        let signature = sign(&secret, api_request_payload("POST", path, &params).as_bytes());
        let mut q = form_urlencoded::Serializer::new(String::new());
        for (k, v) in &params {
            q.append_pair(k, v);
        }
        q.append_pair("auth_signature", &signature);
        let query = q.finish();
        let req = SignedRequest { method: "POST", path, query: &query, body: body.as_bytes() };
        prop_assert!(verify_request(&req, "key", &secret, 1_700_000_000, 600).is_ok());

        let tampered_query = query.replacen("info=", "info=x", 1);
        let tampered_body = format!("{body} ");
        let tampered = match flip {
            0 => SignedRequest { query: &tampered_query, ..req },
            1 => SignedRequest { body: tampered_body.as_bytes(), ..req },
            2 => SignedRequest { method: "GET", ..req },
            _ => SignedRequest { path: "/apps/2/events", ..req },
        };
        prop_assert!(verify_request(&tampered, "key", &secret, 1_700_000_000, 600).is_err());
    }
}
