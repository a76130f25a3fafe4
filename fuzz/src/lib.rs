//! The fuzz targets' bodies, shared by the libFuzzer binaries (`fuzz_targets/`) and the corpus
//! replay test (`tests/replay.rs`), which runs every saved input on a normal build in CI.
//!
//! Each target feeds outside bytes to one parser and checks more than "no panic" where the
//! parser promises more: accepted input round-trips, errors render as valid JSON frames.

use herald_protocol::api::{self, SignedRequest};
use herald_protocol::event::ClientEvent;
use herald_protocol::{ChannelKind, ChannelName, Limits, Secret};

fn text(data: &[u8]) -> Option<&str> {
    std::str::from_utf8(data).ok()
}

/// A client WebSocket text frame: decode and validate (PROTOCOL §2–§5).
pub fn client_frame(data: &[u8]) {
    let Some(text) = text(data) else { return };
    let limits = Limits::default();
    match ClientEvent::decode(text, &limits) {
        Ok(ClientEvent::Subscribe { channel, .. }) => {
            assert!(channel.as_str().len() <= limits.max_channel_name_len);
        }
        Ok(_) => {}
        Err(e) => {
            // Whatever went wrong, the client gets a well-formed pusher:error frame.
            let frame = e.frame();
            serde_json::from_str::<serde_json::Value>(&frame).expect("error frames are JSON");
        }
    }
}

/// A channel name from a subscribe, a trigger or a URL path.
pub fn channel_name(data: &[u8]) {
    let Some(text) = text(data) else { return };
    if let Ok(name) = ChannelName::parse(text, 200) {
        assert_eq!(name.as_str(), text);
        assert!(text.len() <= 200);
        let kind = name.kind();
        if name.server_to_user_id().is_some() {
            assert!(text.starts_with("#server-to-user-"));
        }
        if kind == ChannelKind::Public {
            assert!(!name.needs_auth() || name.is_cache());
        }
    }
}

/// Presence `channel_data` and sign-in `user_data` (parsed after their signature matched, but
/// the app server may hand through whatever its users sent).
pub fn user_data(data: &[u8]) {
    let Some(text) = text(data) else { return };
    if let Ok(d) = herald_protocol::user::parse_channel_data(text, 128) {
        // The limit counts characters (PROTOCOL §2.7), not bytes.
        assert!(!d.user_id.as_str().is_empty() && d.user_id.as_str().chars().count() <= 128);
        if let Some(info) = d.user_info {
            // Syntax only: numbers beyond f64 (`1e999`) are valid JSON, relayed verbatim.
            serde_json::from_str::<Box<serde_json::value::RawValue>>(info)
                .expect("user_info is JSON");
        }
    }
    if let Ok(d) = herald_protocol::user::parse_user_data(text, 128) {
        assert!(!d.id.as_str().is_empty() && d.id.as_str().len() <= 128);
    }
}

/// An HTTP API request: method, path, query and body split at NUL bytes, verified against a
/// fixed key and secret (query canonicalisation, percent-decoding, body MD5).
pub fn api_request(data: &[u8]) {
    let mut parts = data.splitn(4, |b| *b == 0);
    let (Some(method), Some(path), Some(query)) = (
        parts.next().and_then(text),
        parts.next().and_then(text),
        parts.next().and_then(text),
    ) else {
        return;
    };
    let body = parts.next().unwrap_or_default();
    let req = SignedRequest {
        method,
        path,
        query,
        body,
    };
    let secret = Secret::new("fuzz-secret");
    if let Err(e) = api::verify_request(&req, "fuzz-key", &secret, 1_700_000_000, 600) {
        assert!(matches!(e, api::ApiError::Unauthorized(_)), "{e}");
    }
    if let Some(info) = query.strip_prefix("info=") {
        let _ = api::Info::parse(info);
    }
}

/// `POST /events` and `POST /batch_events` bodies.
pub fn trigger_body(data: &[u8]) {
    let limits = Limits::default();
    match api::parse_trigger(data, &limits) {
        Ok(t) => {
            assert!(!t.channels.is_empty() && t.channels.len() <= limits.max_channels_per_trigger);
            assert!(t.data.len() <= limits.max_event_payload_bytes);
        }
        Err(e) => assert!(
            matches!(e, api::ApiError::BadRequest(_) | api::ApiError::TooLarge(_)),
            "{e}"
        ),
    }
    if let Ok(batch) = api::parse_batch(data, &limits) {
        assert!(batch.len() <= limits.max_batch_events);
    }
}

/// The TOML configuration file.
pub fn config(data: &[u8]) {
    let Some(text) = text(data) else { return };
    let sources = herald_server::config::Sources {
        toml: Some(text),
        ..Default::default()
    };
    let _ = herald_server::config::Config::load(sources);
}

/// What another node published through Redis: the channel name is the pub/sub topic's tail,
/// split from the payload at the first NUL.
pub fn redis_envelope(data: &[u8]) {
    let mut parts = data.splitn(2, |b| *b == 0);
    let (Some(channel), Some(payload)) = (parts.next().and_then(text), parts.next()) else {
        return;
    };
    use herald_redis::wire;
    if let Some((origin, env)) = wire::decode_envelope(channel, payload)
        && !origin.contains('\n')
    {
        let again = wire::encode_envelope(&origin, &env);
        let (origin2, env2) = wire::decode_envelope(channel, &again).expect("re-encoded envelope");
        assert_eq!(origin, origin2);
        assert_eq!(
            (env.frame, env.except, env.version, env.published_us),
            (env2.frame, env2.except, env2.version, env2.published_us)
        );
    }
    if let Some((origin, control)) = wire::decode_control(payload)
        && !origin.contains('\n')
    {
        let again = wire::encode_control(&origin, &control);
        assert_eq!(
            wire::decode_control(again.as_bytes()),
            Some((origin, control))
        );
    }
}

/// A webhook event read back from the cluster's Redis stream.
pub fn webhook_event(data: &[u8]) {
    let Some(text) = text(data) else { return };
    if let Some(event) = herald_protocol::webhook::WebhookEvent::from_json(text) {
        let again = herald_protocol::webhook::WebhookEvent::from_json(&event.to_json());
        assert_eq!(again, Some(event));
    }
}
