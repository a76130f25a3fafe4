//! Client frames in (`ClientEvent::decode`) and server frames out (`encode`). This module is the
//! only place that looks at event-name strings.

use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::fmt;

use crate::Limits;
use crate::channel::{ChannelName, ChannelNameError};
use crate::error::{ProtocolError, SubscriptionErrorKind};

/// What a client may send, decoded once at the edge.
#[derive(Debug)]
pub enum ClientEvent {
    Ping,
    Pong,
    Subscribe {
        channel: ChannelName,
        auth: Option<String>,
        channel_data: Option<String>,
    },
    /// The name is kept as sent: unsubscribing from an unknown or invalid name is ignored.
    Unsubscribe {
        channel: String,
    },
    Signin {
        auth: String,
        user_data: String,
    },
    /// A `client-…` event whose name and channel passed PROTOCOL.md §4 rules 2 and 3. The
    /// session applies rule 1 (the app allows client events) first, then rules 4–6 (subscribed,
    /// size, rate); `data` is relayed verbatim.
    Client {
        event: ClientEventName,
        channel: ChannelName,
        data: Box<RawValue>,
    },
    /// A `client-…` event that failed rule 2 (its name) or 3 (its channel). Reported with
    /// `error`, unless the app refuses client events altogether: rule 1 is checked first.
    RejectedClient {
        /// The channel as sent, for the error frame.
        channel: String,
        error: ProtocolError,
    },
    /// Any other event name: ignored.
    Other {
        event: String,
    },
}

#[derive(Deserialize)]
struct Frame<'a> {
    #[serde(borrow)]
    event: Cow<'a, str>,
    #[serde(default, borrow)]
    channel: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    data: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct SubscribeData {
    channel: String,
    #[serde(default)]
    auth: Option<String>,
    #[serde(default)]
    channel_data: Option<Box<RawValue>>,
}

#[derive(Deserialize)]
struct UnsubscribeData {
    channel: String,
}

#[derive(Deserialize)]
struct SigninData {
    auth: String,
    user_data: String,
}

pub const CLIENT_EVENT_PREFIX: &str = "client-";

impl ClientEvent {
    pub fn decode(text: &str, limits: &Limits) -> Result<ClientEvent, ProtocolError> {
        let frame: Frame<'_> = serde_json::from_str(text)
            .map_err(|e| ProtocolError::notice(format!("Invalid message: {e}")))?;
        match frame.event.as_ref() {
            "pusher:ping" => Ok(ClientEvent::Ping),
            "pusher:pong" => Ok(ClientEvent::Pong),
            "pusher:subscribe" => decode_subscribe(frame.data, limits),
            "pusher:unsubscribe" => {
                let d: UnsubscribeData = object(frame.data, "pusher:unsubscribe")?;
                Ok(ClientEvent::Unsubscribe { channel: d.channel })
            }
            "pusher:signin" => {
                let d: SigninData = object(frame.data, "pusher:signin")?;
                Ok(ClientEvent::Signin {
                    auth: d.auth,
                    user_data: d.user_data,
                })
            }
            name if name.starts_with(CLIENT_EVENT_PREFIX) => {
                let channel = frame.channel.ok_or_else(|| {
                    ProtocolError::notice("Client event rejected: no channel given")
                })?;
                Ok(decode_client(
                    name,
                    channel.into_owned(),
                    frame.data,
                    limits,
                ))
            }
            other => Ok(ClientEvent::Other {
                event: other.to_owned(),
            }),
        }
    }
}

fn null_raw() -> Box<RawValue> {
    RawValue::from_string("null".to_owned()).expect("null is valid JSON")
}

/// pusher-js sends `data` as an object; Reverb-style clients send a string holding JSON. Accept both.
fn object<T: DeserializeOwned>(data: Option<&RawValue>, event: &str) -> Result<T, ProtocolError> {
    let raw = data.ok_or_else(|| ProtocolError::notice(format!("{event}: data is required")))?;
    let text: Cow<'_, str> = match serde_json::from_str::<String>(raw.get()) {
        Ok(inner) => Cow::Owned(inner),
        Err(_) => Cow::Borrowed(raw.get()),
    };
    serde_json::from_str(&text)
        .map_err(|e| ProtocolError::notice(format!("{event}: invalid data: {e}")))
}

fn decode_subscribe(
    data: Option<&RawValue>,
    limits: &Limits,
) -> Result<ClientEvent, ProtocolError> {
    let d: SubscribeData = object(data, "pusher:subscribe")?;
    let channel = ChannelName::parse(&d.channel, limits.max_channel_name_len)
        .map_err(|e| invalid_channel(&d.channel, e))?;
    // `channel_data` is a JSON string whose exact text is signed. A client that sends an object
    // instead is checked against that object's text as received.
    let channel_data = d.channel_data.map(|raw| {
        serde_json::from_str::<String>(raw.get()).unwrap_or_else(|_| raw.get().to_owned())
    });
    Ok(ClientEvent::Subscribe {
        channel,
        auth: d.auth.filter(|a| !a.is_empty()),
        channel_data,
    })
}

pub fn invalid_channel(name: &str, e: ChannelNameError) -> ProtocolError {
    ProtocolError::subscription(
        name,
        SubscriptionErrorKind::InvalidChannel,
        format!("Invalid channel name '{}': {e}", truncate(name, 200)),
    )
}

fn truncate(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// Client event names: `client-` prefix and at most `max_len` characters (§4 rule 2).
/// The name of a client event: `client-…`, at most the app's `max_event_name_len` characters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientEventName(String);

impl ClientEventName {
    pub fn parse(name: &str, max_len: usize) -> Option<ClientEventName> {
        (name.starts_with(CLIENT_EVENT_PREFIX) && name.chars().count() <= max_len)
            .then(|| ClientEventName(name.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ClientEventName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Rules 2 and 3 of PROTOCOL.md §4: the name, then a channel that allows client events.
fn decode_client(
    name: &str,
    channel: String,
    data: Option<&RawValue>,
    limits: &Limits,
) -> ClientEvent {
    let Some(event) = ClientEventName::parse(name, limits.max_event_name_len) else {
        let error = ProtocolError::notice_on(
            &channel,
            format!(
                "Client event rejected: the name must start with client- and be at most {} characters",
                limits.max_event_name_len
            ),
        );
        return ClientEvent::RejectedClient { channel, error };
    };
    let parsed = ChannelName::parse(&channel, limits.max_channel_name_len)
        .ok()
        .filter(ChannelName::allows_client_events);
    let Some(name) = parsed else {
        let error = ProtocolError::notice_on(
            &channel,
            "Client event rejected: client events are only allowed on private and presence channels",
        );
        return ClientEvent::RejectedClient { channel, error };
    };
    ClientEvent::Client {
        event,
        channel: name,
        data: data.map_or_else(null_raw, RawValue::to_owned),
    }
}

/// Server frames, encoded to their final text once (the hub turns them into shared bytes).
pub mod encode {
    use super::*;

    /// Appends `s` as a JSON string literal.
    fn push_str(out: &mut String, s: &str) {
        out.push_str(&serde_json::to_string(s).expect("a str always serializes"));
    }

    fn frame(event: &str, channel: Option<&str>, data_json: &str) -> String {
        let mut out = String::with_capacity(32 + event.len() + data_json.len());
        out.push_str("{\"event\":");
        push_str(&mut out, event);
        if let Some(ch) = channel {
            out.push_str(",\"channel\":");
            push_str(&mut out, ch);
        }
        out.push_str(",\"data\":");
        out.push_str(data_json);
        out.push('}');
        out
    }

    /// A frame whose `data` is a string holding `data_text`.
    fn frame_str(event: &str, channel: Option<&str>, data_text: &str) -> String {
        let mut data = String::with_capacity(data_text.len() + 8);
        push_str(&mut data, data_text);
        frame(event, channel, &data)
    }

    pub fn connection_established(socket_id: &crate::SocketId, activity_timeout: u64) -> String {
        let data = format!(
            "{{\"socket_id\":\"{}\",\"activity_timeout\":{activity_timeout}}}",
            socket_id.as_str()
        );
        frame_str("pusher:connection_established", None, &data)
    }

    pub fn error(code: Option<u16>, message: &str, channel: Option<&str>) -> String {
        let mut data = String::from("{\"code\":");
        match code {
            Some(c) => data.push_str(&c.to_string()),
            None => data.push_str("null"),
        }
        data.push_str(",\"message\":");
        push_str(&mut data, message);
        data.push('}');
        frame("pusher:error", channel, &data)
    }

    pub fn ping() -> String {
        frame("pusher:ping", None, "{}")
    }

    pub fn pong() -> String {
        frame("pusher:pong", None, "{}")
    }

    pub fn subscription_succeeded(channel: &str) -> String {
        frame_str(
            "pusher_internal:subscription_succeeded",
            Some(channel),
            "{}",
        )
    }

    /// One presence member: its id and the raw JSON of its `user_info` (if any).
    pub struct MemberRef<'a> {
        pub user_id: &'a str,
        pub user_info: Option<&'a str>,
    }

    /// `subscription_succeeded` on a presence channel: `{"presence":{"ids","hash","count"}}`.
    pub fn presence_succeeded(channel: &str, members: &[MemberRef<'_>]) -> String {
        let mut ids = String::from("[");
        let mut hash = String::from("{");
        for (i, m) in members.iter().enumerate() {
            if i > 0 {
                ids.push(',');
                hash.push(',');
            }
            push_str(&mut ids, m.user_id);
            push_str(&mut hash, m.user_id);
            hash.push(':');
            hash.push_str(m.user_info.unwrap_or("null"));
        }
        ids.push(']');
        hash.push('}');
        let data = format!(
            "{{\"presence\":{{\"ids\":{ids},\"hash\":{hash},\"count\":{}}}}}",
            members.len()
        );
        frame_str(
            "pusher_internal:subscription_succeeded",
            Some(channel),
            &data,
        )
    }

    pub fn member_added(channel: &str, member: &MemberRef<'_>) -> String {
        let mut data = String::from("{\"user_id\":");
        push_str(&mut data, member.user_id);
        if let Some(info) = member.user_info {
            data.push_str(",\"user_info\":");
            data.push_str(info);
        }
        data.push('}');
        frame_str("pusher_internal:member_added", Some(channel), &data)
    }

    /// The `user_id` of a `member_added` / `member_removed` frame built above.
    pub fn membership_user(frame: &[u8]) -> Option<String> {
        #[derive(serde::Deserialize)]
        struct Frame {
            data: String,
        }
        #[derive(serde::Deserialize)]
        struct Member {
            user_id: String,
        }
        let frame: Frame = serde_json::from_slice(frame).ok()?;
        let member: Member = serde_json::from_str(&frame.data).ok()?;
        Some(member.user_id)
    }

    pub fn member_removed(channel: &str, user_id: &str) -> String {
        let mut data = String::from("{\"user_id\":");
        push_str(&mut data, user_id);
        data.push('}');
        frame_str("pusher_internal:member_removed", Some(channel), &data)
    }

    pub fn subscription_count(channel: &str, count: u64) -> String {
        let data = format!("{{\"subscription_count\":{count}}}");
        frame_str("pusher_internal:subscription_count", Some(channel), &data)
    }

    pub fn subscription_error(channel: &str, kind: SubscriptionErrorKind, message: &str) -> String {
        let mut data = String::from("{\"type\":");
        push_str(&mut data, kind.type_name());
        data.push_str(",\"error\":");
        push_str(&mut data, message);
        data.push_str(&format!(",\"status\":{}}}", kind.status()));
        frame_str("pusher:subscription_error", Some(channel), &data)
    }

    pub fn cache_miss(channel: &str) -> String {
        let mut out = String::from("{\"event\":\"pusher:cache_miss\",\"channel\":");
        push_str(&mut out, channel);
        out.push('}');
        out
    }

    pub fn signin_success(user_data: &str) -> String {
        let mut data = String::from("{\"user_data\":");
        push_str(&mut data, user_data);
        data.push('}');
        frame_str("pusher:signin_success", None, &data)
    }

    /// `pusher_internal:watchlist_events`; empty groups are left out.
    pub fn watchlist_events(online: &[&str], offline: &[&str]) -> String {
        let mut events = Vec::new();
        for (name, ids) in [("online", online), ("offline", offline)] {
            if !ids.is_empty() {
                let ids = serde_json::to_string(ids).expect("strings serialize");
                events.push(format!("{{\"name\":\"{name}\",\"user_ids\":{ids}}}"));
            }
        }
        let data = format!("{{\"events\":[{}]}}", events.join(","));
        frame_str("pusher_internal:watchlist_events", None, &data)
    }

    /// An event published over the HTTP API: `data` is the caller's string, sent as a string.
    pub fn channel_event(event: &str, channel: &str, data: &str) -> String {
        frame_str(event, Some(channel), data)
    }

    /// A relayed client event: `data` verbatim, plus `user_id` on presence channels.
    pub fn client_event(
        event: &str,
        channel: &str,
        data: &RawValue,
        user_id: Option<&str>,
    ) -> String {
        let mut out = frame(event, Some(channel), data.get());
        if let Some(uid) = user_id {
            out.pop();
            out.push_str(",\"user_id\":");
            push_str(&mut out, uid);
            out.push('}');
        }
        out
    }
}

#[cfg(test)]
mod tests;
