//! Webhook vocabulary (PROTOCOL.md §7): the event kinds an endpoint can subscribe to, and the
//! signature of a webhook body.

use std::fmt;
use std::str::FromStr;

use crate::signature::{Secret, sign};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum WebhookKind {
    ChannelOccupied,
    ChannelVacated,
    MemberAdded,
    MemberRemoved,
    ClientEvent,
    CacheMiss,
    SubscriptionCount,
}

impl WebhookKind {
    pub const ALL: [WebhookKind; 7] = [
        WebhookKind::ChannelOccupied,
        WebhookKind::ChannelVacated,
        WebhookKind::MemberAdded,
        WebhookKind::MemberRemoved,
        WebhookKind::ClientEvent,
        WebhookKind::CacheMiss,
        WebhookKind::SubscriptionCount,
    ];

    pub fn name(self) -> &'static str {
        match self {
            WebhookKind::ChannelOccupied => "channel_occupied",
            WebhookKind::ChannelVacated => "channel_vacated",
            WebhookKind::MemberAdded => "member_added",
            WebhookKind::MemberRemoved => "member_removed",
            WebhookKind::ClientEvent => "client_event",
            WebhookKind::CacheMiss => "cache_miss",
            WebhookKind::SubscriptionCount => "subscription_count",
        }
    }
}

impl fmt::Display for WebhookKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for WebhookKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        WebhookKind::ALL
            .into_iter()
            .find(|k| k.name() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = WebhookKind::ALL.iter().map(|k| k.name()).collect();
                format!(
                    "unknown webhook event type '{s}', expected one of {}",
                    names.join(", ")
                )
            })
    }
}

/// One event of a webhook body (PROTOCOL.md §7.2).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WebhookEvent {
    ChannelOccupied {
        channel: String,
    },
    ChannelVacated {
        channel: String,
    },
    MemberAdded {
        channel: String,
        user_id: String,
    },
    MemberRemoved {
        channel: String,
        user_id: String,
    },
    /// `data` is the client's data as JSON text, sent as a string.
    ClientEvent {
        channel: String,
        event: String,
        data: String,
        socket_id: String,
        user_id: Option<String>,
    },
    CacheMiss {
        channel: String,
    },
    SubscriptionCount {
        channel: String,
        subscription_count: u64,
    },
}

impl WebhookEvent {
    pub fn kind(&self) -> WebhookKind {
        match self {
            WebhookEvent::ChannelOccupied { .. } => WebhookKind::ChannelOccupied,
            WebhookEvent::ChannelVacated { .. } => WebhookKind::ChannelVacated,
            WebhookEvent::MemberAdded { .. } => WebhookKind::MemberAdded,
            WebhookEvent::MemberRemoved { .. } => WebhookKind::MemberRemoved,
            WebhookEvent::ClientEvent { .. } => WebhookKind::ClientEvent,
            WebhookEvent::CacheMiss { .. } => WebhookKind::CacheMiss,
            WebhookEvent::SubscriptionCount { .. } => WebhookKind::SubscriptionCount,
        }
    }

    pub fn channel(&self) -> &str {
        match self {
            WebhookEvent::ChannelOccupied { channel }
            | WebhookEvent::ChannelVacated { channel }
            | WebhookEvent::MemberAdded { channel, .. }
            | WebhookEvent::MemberRemoved { channel, .. }
            | WebhookEvent::ClientEvent { channel, .. }
            | WebhookEvent::CacheMiss { channel }
            | WebhookEvent::SubscriptionCount { channel, .. } => channel,
        }
    }

    /// The event object as JSON text, `name` then `channel` first as in Pusher's examples.
    pub fn to_json(&self) -> String {
        let q = |v: &str| serde_json::to_string(v).expect("a str always serializes");
        let mut out = format!(
            "{{\"name\":\"{}\",\"channel\":{}",
            self.kind().name(),
            q(self.channel())
        );
        match self {
            WebhookEvent::ChannelOccupied { .. }
            | WebhookEvent::ChannelVacated { .. }
            | WebhookEvent::CacheMiss { .. } => {}
            WebhookEvent::MemberAdded { user_id, .. }
            | WebhookEvent::MemberRemoved { user_id, .. } => {
                out.push_str(&format!(",\"user_id\":{}", q(user_id)));
            }
            WebhookEvent::ClientEvent {
                event,
                data,
                socket_id,
                user_id,
                ..
            } => {
                out.push_str(&format!(
                    ",\"event\":{},\"data\":{},\"socket_id\":{}",
                    q(event),
                    q(data),
                    q(socket_id)
                ));
                if let Some(u) = user_id {
                    out.push_str(&format!(",\"user_id\":{}", q(u)));
                }
            }
            WebhookEvent::SubscriptionCount {
                subscription_count, ..
            } => {
                out.push_str(&format!(",\"subscription_count\":{subscription_count}"));
            }
        }
        out.push('}');
        out
    }

    /// Decodes what `to_json` produced (events travel through queues as JSON).
    pub fn from_json(text: &str) -> Option<WebhookEvent> {
        let v: serde_json::Value = serde_json::from_str(text).ok()?;
        let s = |k: &str| v.get(k).and_then(|x| x.as_str()).map(str::to_owned);
        let channel = s("channel")?;
        Some(match v.get("name")?.as_str()? {
            "channel_occupied" => WebhookEvent::ChannelOccupied { channel },
            "channel_vacated" => WebhookEvent::ChannelVacated { channel },
            "member_added" => WebhookEvent::MemberAdded {
                channel,
                user_id: s("user_id")?,
            },
            "member_removed" => WebhookEvent::MemberRemoved {
                channel,
                user_id: s("user_id")?,
            },
            "client_event" => WebhookEvent::ClientEvent {
                channel,
                event: s("event")?,
                data: s("data")?,
                socket_id: s("socket_id")?,
                user_id: s("user_id"),
            },
            "cache_miss" => WebhookEvent::CacheMiss { channel },
            "subscription_count" => WebhookEvent::SubscriptionCount {
                channel,
                subscription_count: v.get("subscription_count")?.as_u64()?,
            },
            _ => return None,
        })
    }
}

/// A webhook body: `{"time_ms":…,"events":[…]}`, the exact bytes that get signed.
pub fn body(time_ms: u64, events: &[WebhookEvent]) -> String {
    let events: Vec<String> = events.iter().map(WebhookEvent::to_json).collect();
    format!(
        "{{\"time_ms\":{time_ms},\"events\":[{}]}}",
        events.join(",")
    )
}

/// `X-Pusher-Signature` of a webhook body: hex HMAC-SHA256 of the exact bytes sent.
pub fn body_signature(secret: &Secret, body: &[u8]) -> String {
    sign(secret, body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_round_trip_through_json() {
        for e in [
            WebhookEvent::ChannelOccupied {
                channel: "c".into(),
            },
            WebhookEvent::MemberRemoved {
                channel: "presence-c".into(),
                user_id: "u".into(),
            },
            WebhookEvent::ClientEvent {
                channel: "private-c".into(),
                event: "client-x".into(),
                data: "{\"a\":1}".into(),
                socket_id: "1.2".into(),
                user_id: None,
            },
            WebhookEvent::ClientEvent {
                channel: "presence-c".into(),
                event: "client-x".into(),
                data: "1".into(),
                socket_id: "1.2".into(),
                user_id: Some("u".into()),
            },
            WebhookEvent::SubscriptionCount {
                channel: "c".into(),
                subscription_count: 3,
            },
        ] {
            let text = e.to_json();
            assert!(text.starts_with("{\"name\":"), "{text}");
            assert_eq!(WebhookEvent::from_json(&text), Some(e));
        }
    }

    #[test]
    fn body_matches_pushers_vector_signature() {
        let b = body(
            1327078148132,
            &[WebhookEvent::ChannelOccupied {
                channel: "test-channel".into(),
            }],
        );
        assert_eq!(
            b,
            r#"{"time_ms":1327078148132,"events":[{"name":"channel_occupied","channel":"test-channel"}]}"#
        );
        let secret = Secret::new("7ad3773142a6692b25b8");
        assert_eq!(
            body_signature(&secret, b.as_bytes()),
            "5dd6562a9f744b72a688bcdfea41c14c2c56d12c44c99e32c08face4cc1e8aeb"
        );
    }
}
