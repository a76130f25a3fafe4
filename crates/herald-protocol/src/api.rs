//! The HTTP API's pure parts (PROTOCOL.md §6): request signature verification with the SDKs'
//! canonicalisation quirks, and parsing of trigger and batch bodies and `info` attributes.
//! Every failure carries the HTTP status it maps to.

use percent_encoding::percent_decode_str;
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::channel::{ChannelKind, ChannelName};
use crate::signature::{Secret, api_request_payload, body_md5, verify};
use crate::{Limits, SocketId};

/// Why an HTTP API request is refused. The variant decides the status (`status()`); the text
/// says what to fix and is sent as `{"error": …}`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    /// 400: the request is malformed or asks for something that does not apply.
    #[error("{0}")]
    BadRequest(String),
    /// 401: the signature, key, timestamp or body hash does not check out.
    #[error("{0}")]
    Unauthorized(String),
    /// 403: the app is disabled.
    #[error("{0}")]
    Forbidden(String),
    /// 404: no such app or endpoint.
    #[error("{0}")]
    NotFound(String),
    /// 405: the endpoint takes another method.
    #[error("{0}")]
    MethodNotAllowed(String),
    /// 408: the body did not arrive in time.
    #[error("{0}")]
    Timeout(String),
    /// 413: the body or the event data is over its limit.
    #[error("{0}")]
    TooLarge(String),
    /// 429: over a rate limit; try again later.
    #[error("{0}")]
    TooManyRequests(String),
}

impl ApiError {
    /// The HTTP status this refusal is answered with.
    pub fn status(&self) -> u16 {
        match self {
            ApiError::BadRequest(_) => 400,
            ApiError::Unauthorized(_) => 401,
            ApiError::Forbidden(_) => 403,
            ApiError::NotFound(_) => 404,
            ApiError::MethodNotAllowed(_) => 405,
            ApiError::Timeout(_) => 408,
            ApiError::TooLarge(_) => 413,
            ApiError::TooManyRequests(_) => 429,
        }
    }

    /// The text for the caller.
    pub fn message(&self) -> &str {
        match self {
            ApiError::BadRequest(m)
            | ApiError::Unauthorized(m)
            | ApiError::Forbidden(m)
            | ApiError::NotFound(m)
            | ApiError::MethodNotAllowed(m)
            | ApiError::Timeout(m)
            | ApiError::TooLarge(m)
            | ApiError::TooManyRequests(m) => m,
        }
    }

    /// The same refusal with `prefix` before its text (`batch[3]: …`).
    pub fn prefixed(self, prefix: &str) -> ApiError {
        let text = |m: String| format!("{prefix}{m}");
        match self {
            ApiError::BadRequest(m) => ApiError::BadRequest(text(m)),
            ApiError::Unauthorized(m) => ApiError::Unauthorized(text(m)),
            ApiError::Forbidden(m) => ApiError::Forbidden(text(m)),
            ApiError::NotFound(m) => ApiError::NotFound(text(m)),
            ApiError::MethodNotAllowed(m) => ApiError::MethodNotAllowed(text(m)),
            ApiError::Timeout(m) => ApiError::Timeout(text(m)),
            ApiError::TooLarge(m) => ApiError::TooLarge(text(m)),
            ApiError::TooManyRequests(m) => ApiError::TooManyRequests(text(m)),
        }
    }

    fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::BadRequest(message.into())
    }

    fn unauthorized(message: impl Into<String>) -> ApiError {
        ApiError::Unauthorized(message.into())
    }
}

const EMPTY_MD5: &str = "d41d8cd98f00b204e9800998ecf8427e";

/// One HTTP API request as received, before any decoding.
pub struct SignedRequest<'a> {
    pub method: &'a str,
    /// The path as received (may hold percent-escapes), starting at `/apps/`.
    pub path: &'a str,
    /// The raw query string without `?`.
    pub query: &'a str,
    pub body: &'a [u8],
}

/// Checks §6.1 in order: key, timestamp window, version, body MD5, signature. The app itself
/// (404 for unknown ids) is resolved by the caller.
pub fn verify_request(
    req: &SignedRequest<'_>,
    app_key: &str,
    secret: &Secret,
    now_secs: u64,
    max_skew_secs: u64,
) -> Result<(), ApiError> {
    let params: Vec<(String, String)> = form_urlencoded::parse(req.query.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let get = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };

    match get("auth_key") {
        Some(k) if k == app_key => {}
        Some(_) => {
            return Err(ApiError::unauthorized(
                "Invalid auth_key: not this app's key",
            ));
        }
        None => return Err(ApiError::unauthorized("Missing auth_key")),
    }
    let ts: u64 = get("auth_timestamp")
        .ok_or_else(|| ApiError::unauthorized("Missing auth_timestamp"))?
        .parse()
        .map_err(|_| ApiError::unauthorized("auth_timestamp must be Unix seconds"))?;
    let skew = now_secs.abs_diff(ts);
    if skew > max_skew_secs {
        return Err(ApiError::unauthorized(format!(
            "Timestamp expired: auth_timestamp {ts} is {skew} s away from the server time {now_secs} (allowed ±{max_skew_secs} s); check the clock of the calling server"
        )));
    }
    if get("auth_version") != Some("1.0") {
        return Err(ApiError::unauthorized("auth_version must be 1.0"));
    }
    match (req.body.is_empty(), get("body_md5")) {
        (false, None) => return Err(ApiError::unauthorized("Missing body_md5")),
        (false, Some(md5)) if md5 != body_md5(req.body) => {
            return Err(ApiError::unauthorized("body_md5 does not match the body"));
        }
        (true, Some(md5)) if md5 != EMPTY_MD5 => {
            return Err(ApiError::unauthorized("body_md5 given for an empty body"));
        }
        _ => {}
    }
    let signature =
        get("auth_signature").ok_or_else(|| ApiError::unauthorized("Missing auth_signature"))?;
    let signed: Vec<(&str, &str)> = params
        .iter()
        .filter(|(k, _)| k != "auth_signature")
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    // SDKs sign the unescaped channel name but may send it escaped: try both forms of the path.
    let raw = api_request_payload(req.method, req.path, &signed);
    if verify(secret, raw.as_bytes(), signature) {
        return Ok(());
    }
    if let Ok(decoded) = percent_decode_str(req.path).decode_utf8()
        && decoded != req.path
    {
        let payload = api_request_payload(req.method, &decoded, &signed);
        if verify(secret, payload.as_bytes(), signature) {
            return Ok(());
        }
    }
    Err(ApiError::unauthorized(format!(
        "Invalid signature: expected HMAC-SHA256 hex of {raw:?} keyed with the app secret"
    )))
}

/// The `info` attributes a request asks for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Info {
    pub user_count: bool,
    pub subscription_count: bool,
    pub cache: bool,
}

impl Info {
    /// Parses a comma list; unknown attributes are an error.
    pub fn parse(s: &str) -> Result<Info, ApiError> {
        let mut info = Info::default();
        for attr in s.split(',').map(str::trim).filter(|a| !a.is_empty()) {
            match attr {
                "user_count" => info.user_count = true,
                "subscription_count" => info.subscription_count = true,
                "cache" => info.cache = true,
                other => {
                    return Err(ApiError::bad_request(format!(
                        "Unknown info attribute '{other}' (expected user_count, subscription_count or cache)"
                    )));
                }
            }
        }
        Ok(info)
    }

    pub fn is_empty(&self) -> bool {
        *self == Info::default()
    }

    /// `GET /channels/{name}`: every attribute must apply to the channel's kind (§6.6).
    pub fn check_for_channel(&self, channel: &ChannelName) -> Result<(), ApiError> {
        if self.user_count && channel.kind() != ChannelKind::Presence {
            return Err(ApiError::bad_request(
                "user_count is only available for presence channels",
            ));
        }
        if self.cache && !channel.is_cache() {
            return Err(ApiError::bad_request(
                "cache is only available for cache channels",
            ));
        }
        Ok(())
    }
}

/// One event to publish, validated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Trigger {
    pub name: String,
    pub data: String,
    pub channels: Vec<ChannelName>,
    pub socket_id: Option<SocketId>,
    pub info: Info,
}

#[derive(Deserialize)]
struct RawTrigger {
    name: Option<Box<RawValue>>,
    data: Option<Box<RawValue>>,
    channels: Option<Vec<String>>,
    channel: Option<String>,
    socket_id: Option<String>,
    info: Option<String>,
}

#[derive(Deserialize)]
struct RawBatch {
    batch: Vec<RawTrigger>,
}

/// `POST /apps/{id}/events`.
pub fn parse_trigger(body: &[u8], limits: &Limits) -> Result<Trigger, ApiError> {
    let raw: RawTrigger = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("Invalid JSON body: {e}")))?;
    let t = validate(raw, limits)?;
    if t.channels.len() > 1
        && t.channels
            .iter()
            .any(|c| c.kind() == ChannelKind::Encrypted)
    {
        return Err(ApiError::bad_request(
            "Encrypted channels cannot be triggered together with other channels",
        ));
    }
    Ok(t)
}

/// `POST /apps/{id}/batch_events`: all events valid, or nothing published.
pub fn parse_batch(body: &[u8], limits: &Limits) -> Result<Vec<Trigger>, ApiError> {
    let raw: RawBatch = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("Invalid JSON body: {e}")))?;
    if raw.batch.len() > limits.max_batch_events {
        return Err(ApiError::bad_request(format!(
            "Batch has {} events; at most {} are allowed",
            raw.batch.len(),
            limits.max_batch_events
        )));
    }
    raw.batch
        .into_iter()
        .enumerate()
        .map(|(i, r)| {
            let t = validate(r, limits).map_err(|e| e.prefixed(&format!("batch[{i}]: ")))?;
            if t.channels.len() != 1 {
                return Err(ApiError::bad_request(format!(
                    "batch[{i}]: each event takes exactly one channel"
                )));
            }
            Ok(t)
        })
        .collect()
}

fn validate(raw: RawTrigger, limits: &Limits) -> Result<Trigger, ApiError> {
    let name: String = match raw.name {
        Some(v) => serde_json::from_str(v.get())
            .map_err(|_| ApiError::bad_request("name must be a string"))?,
        None => return Err(ApiError::bad_request("name is required")),
    };
    if name.is_empty() || name.chars().count() > limits.max_event_name_len {
        return Err(ApiError::bad_request(format!(
            "Event name must be 1 to {} characters",
            limits.max_event_name_len
        )));
    }
    if name.starts_with("pusher:") || name.starts_with("pusher_internal:") {
        return Err(ApiError::bad_request(
            "Event names starting with pusher: are reserved",
        ));
    }
    let data: String = match raw.data {
        Some(v) => serde_json::from_str(v.get())
            .map_err(|_| ApiError::bad_request("data must be a string (JSON-encode objects)"))?,
        None => return Err(ApiError::bad_request("data is required")),
    };
    if data.len() > limits.max_event_payload_bytes {
        return Err(ApiError::TooLarge(format!(
            "Event data is {} bytes; the limit is {} bytes",
            data.len(),
            limits.max_event_payload_bytes
        )));
    }
    let names = match (raw.channels, raw.channel) {
        (Some(list), None) => list,
        (None, Some(one)) => vec![one],
        (Some(_), Some(_)) => {
            return Err(ApiError::bad_request(
                "Give either channels or channel, not both",
            ));
        }
        (None, None) => return Err(ApiError::bad_request("channels is required")),
    };
    if names.is_empty() || names.len() > limits.max_channels_per_trigger {
        return Err(ApiError::bad_request(format!(
            "An event goes to 1 to {} channels",
            limits.max_channels_per_trigger
        )));
    }
    // `channels` is a set: a name given twice is delivered and counted once.
    let mut channels: Vec<ChannelName> = Vec::with_capacity(names.len());
    for n in &names {
        let name = ChannelName::parse(n, limits.max_channel_name_len)
            .map_err(|e| ApiError::bad_request(format!("Invalid channel name '{n}': {e}")))?;
        if !channels.contains(&name) {
            channels.push(name);
        }
    }
    let socket_id = match raw.socket_id.as_deref() {
        None | Some("") => None,
        Some(s) => Some(
            SocketId::parse(s)
                .ok_or_else(|| ApiError::bad_request(format!("Invalid socket_id '{s}'")))?,
        ),
    };
    let info = Info::parse(raw.info.as_deref().unwrap_or(""))?;
    Ok(Trigger {
        name,
        data,
        channels,
        socket_id,
        info,
    })
}

#[cfg(test)]
mod tests;
