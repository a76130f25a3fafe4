//! `pusher_internal:subscription_count` (and its webhook): when a channel's subscription count
//! changes, one event per channel per second at most, carrying the latest cluster-wide count.
//! Per node: each node tells its own subscribers.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use herald_protocol::event::encode;
use herald_protocol::webhook::WebhookEvent;
use herald_protocol::{ChannelKind, ChannelName};
use tokio::time::Instant;

use crate::backplane::Envelope;
use crate::hub::Hub;
use crate::sync::lock;
use crate::{App, AppId};

/// Coalescing state of one channel.
#[derive(Default)]
struct CountState {
    pending: bool,
    last_sent: Option<Instant>,
}

/// (app, channel) → coalescing state (only channels whose count changed recently).
#[derive(Default)]
pub(crate) struct SubscriptionCounts {
    channels: Mutex<HashMap<(AppId, String), CountState>>,
}

impl SubscriptionCounts {
    /// The channel's count changed: schedule an event unless one is already on its way, no
    /// sooner than a second after the last.
    pub(crate) fn changed(&self, hub: &Hub, app: &Arc<App>, channel: &ChannelName) {
        if !app.features.subscription_count
            || channel.kind() == ChannelKind::Presence
            || channel.kind() == ChannelKind::ServerToUser
        {
            return;
        }
        let delay = {
            let mut counts = lock(&self.channels);
            let state = counts
                .entry((app.id.clone(), channel.as_str().to_owned()))
                .or_default();
            if state.pending {
                return;
            }
            state.pending = true;
            let now = Instant::now();
            state.last_sent.map_or(Duration::ZERO, |t| {
                (t + Duration::from_secs(1)).saturating_duration_since(now)
            })
        };
        let hub = hub.clone();
        let app = app.clone();
        let channel = channel.clone();
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            send(&hub, &app, channel).await;
        });
    }

    fn sent(&self, app: &AppId, channel: &ChannelName, vacant: bool) {
        let key = (app.clone(), channel.as_str().to_owned());
        let mut counts = lock(&self.channels);
        if vacant {
            counts.remove(&key);
        } else if let Some(state) = counts.get_mut(&key) {
            state.pending = false;
            state.last_sent = Some(Instant::now());
        }
    }
}

/// Reads the cluster-wide count and tells the channel's subscribers on every node (and the
/// webhook). An empty channel has nobody to tell.
async fn send(hub: &Hub, app: &Arc<App>, channel: ChannelName) {
    let count = hub
        .backplane()
        .channels
        .channel(&app.id, &channel)
        .await
        .map(|c| c.subscription_count);
    hub.subscription_counts()
        .sent(&app.id, &channel, matches!(count, Ok(0)));
    match count {
        Ok(0) => {}
        Ok(n) => {
            let frame = Bytes::from(encode::subscription_count(channel.as_str(), n));
            let event = WebhookEvent::SubscriptionCount {
                channel: channel.to_string(),
                subscription_count: n,
            };
            let env = Envelope::new(channel, frame, None);
            hub.relay(&app.id, env, "subscription_count").await;
            hub.hooks().event(app, event).await;
        }
        Err(e) => {
            tracing::warn!(app = %app.id, error = %e, "subscription_count not computed")
        }
    }
}
