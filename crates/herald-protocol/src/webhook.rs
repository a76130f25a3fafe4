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

/// `X-Pusher-Signature` of a webhook body: hex HMAC-SHA256 of the exact bytes sent.
pub fn body_signature(secret: &Secret, body: &[u8]) -> String {
    sign(secret, body)
}
