//! Client events (PROTOCOL.md §4): rule 1 (the app allows them) here, rules 2-3 in the decoder,
//! rules 4-6 (subscribed, size, rate) here; relayed with the sender excluded.

use bytes::Bytes;
use herald_protocol::event::{ClientEventName, encode};
use herald_protocol::webhook::WebhookEvent;
use herald_protocol::{ChannelName, ErrorCode, ProtocolError, UserId};
use serde_json::value::RawValue;
use tokio::time::Instant;

use super::{CLIENT_EVENTS_DISABLED, Session};
use crate::backplane::Envelope;
use crate::console::LogEntry;

impl Session {
    pub(super) async fn client_event(
        &mut self,
        event: &ClientEventName,
        name: &ChannelName,
        data: &RawValue,
    ) -> Result<(), ProtocolError> {
        let limits = &self.app.limits;
        let channel = name.as_str();
        if !self.app.features.client_events {
            return Err(ProtocolError::notice_on(channel, CLIENT_EVENTS_DISABLED));
        }
        let Some(sub) = self.subscriptions.get(name) else {
            return Err(ProtocolError::notice_on(
                channel,
                "Client event rejected: not subscribed to the channel",
            ));
        };
        if data.get().len() > limits.max_event_payload_bytes {
            return Err(ProtocolError::notice_on(
                channel,
                format!(
                    "Client event rejected: data is {} bytes; the limit is {} bytes",
                    data.get().len(),
                    limits.max_event_payload_bytes
                ),
            ));
        }
        if !self.client_rate.allow(Instant::now()) {
            return Err(ProtocolError::Notice {
                code: Some(ErrorCode::ClientEventRateLimit),
                message: ErrorCode::ClientEventRateLimit.message().to_owned(),
                channel: Some(channel.to_owned()),
            });
        }
        let user_id = sub.presence_user.as_ref().map(UserId::as_str);
        let frame = Bytes::from(encode::client_event(event.as_str(), channel, data, user_id));
        let env = Envelope::new(name.clone(), frame, Some(self.socket_id().clone()));
        if let Err(e) = self.hub.publish(&self.app.id, env).await {
            tracing::warn!(error = %e, "client event not relayed");
            return Err(ProtocolError::notice_on(
                channel,
                "Client event could not be delivered, try again",
            ));
        }
        let entry = LogEntry::ClientEvent {
            socket_id: self.socket_id().as_str(),
            channel,
            event: event.as_str(),
            data: data.get(),
        };
        self.hub.console().log(&self.app.id, entry);
        let event = WebhookEvent::ClientEvent {
            channel: channel.to_owned(),
            event: event.to_string(),
            data: data.get().to_owned(),
            socket_id: self.socket_id().to_string(),
            user_id: user_id.map(str::to_owned),
        };
        self.hub.hooks().event(&self.app, event).await;
        Ok(())
    }
}
