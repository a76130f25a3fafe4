//! One connection's protocol logic: subscriptions, presence, client events, sign-in. The
//! transport hands it decoded text and timer ticks; it answers by pushing frames into its
//! outbox and by closing its handle. It never sees a socket.

use std::sync::Arc;

use bytes::Bytes;
use herald_protocol::event::encode;
use herald_protocol::signature::verify_auth;
use herald_protocol::{
    ChannelName, ClientEvent, ErrorCode, ProtocolError, SocketId, SubscriptionErrorKind as SubErr,
    UserId,
};

use crate::App;
use crate::backplane::{BackplaneError, Member};
use crate::conn::{CloseReason, ConnHandle, Outbox};
use crate::console::LogEntry;
use crate::hub::Hub;
use crate::rate::RateWindow;
use crate::smallmap::SmallMap;

/// A signed-in user on this connection.
#[derive(Debug)]
struct SignedIn {
    id: UserId,
    user_info: Option<Arc<str>>,
    watchlist: Vec<UserId>,
}

/// A presence join the backplane admitted.
struct Admitted {
    new_user: bool,
    members: Vec<Member>,
    version: u64,
    removal_cancelled: bool,
}

/// What this connection holds on a channel.
#[derive(Debug)]
struct Subscription {
    /// The presence member this connection joined as.
    presence_user: Option<UserId>,
}

pub struct Session {
    hub: Hub,
    app: Arc<App>,
    conn: ConnHandle,
    subscriptions: SmallMap<ChannelName, Subscription>,
    user: Option<SignedIn>,
    client_rate: RateWindow,
    authorized: bool,
}

const CLIENT_EVENTS_DISABLED: &str =
    "To send client events, you must enable this feature in the Settings page of your dashboard.";

fn server_error(channel: &ChannelName, e: BackplaneError) -> ProtocolError {
    tracing::warn!(channel = %channel, error = %e, "subscription failed on the backplane");
    ProtocolError::subscription(
        channel.as_str(),
        SubErr::ServerError,
        "Internal server error, try again",
    )
}

impl Session {
    /// Whether `auth` signs `payload` with one of the app's secrets as of now (the app may have
    /// been changed or its secret rotated since this connection opened).
    fn verifies(&self, auth: &str, payload: &str) -> bool {
        let app = self
            .hub
            .apps()
            .by_id(self.app.id.as_str())
            .unwrap_or_else(|| self.app.clone());
        app.verifying_secrets()
            .any(|secret| verify_auth(&app.key, secret, auth, payload))
    }

    /// Opens a connection of `app` (already admitted by `Hub::admit`): counts it against the
    /// app's quota and queues `connection_established`.
    pub async fn open(hub: &Hub, app: Arc<App>) -> Result<(Session, Outbox), ProtocolError> {
        let socket_id = SocketId::from_parts(rand::random(), rand::random());
        if !hub.admission().reserve() {
            return Err(ProtocolError::fatal(ErrorCode::OverCapacity));
        }
        if let Some(max) = app.max_connections {
            let total = match hub.backplane().quota.connections(&app.id, 1).await {
                Ok(total) => total,
                Err(e) => {
                    tracing::warn!(app = %app.id, error = %e, "connection quota not checked");
                    hub.admission().release();
                    return Err(ProtocolError::fatal(ErrorCode::OverCapacity));
                }
            };
            if total > max {
                let _ = hub.backplane().quota.connections(&app.id, -1).await;
                hub.admission().release();
                return Err(ProtocolError::fatal(ErrorCode::OverQuota));
            }
        }
        let (conn, outbox) = ConnHandle::new(socket_id.clone(), hub.config().outbox_capacity);
        let activity = hub.config().activity_timeout.as_secs().max(1);
        conn.send(Bytes::from(encode::connection_established(
            &socket_id, activity,
        )));
        hub.connection_opened(&app.id, &conn);
        let entry = LogEntry::ConnectionOpened {
            socket_id: socket_id.as_str(),
        };
        hub.console().log(&app.id, entry);
        let session = Session {
            hub: hub.clone(),
            client_rate: RateWindow::new(app.limits.client_events_per_second),
            app,
            conn,
            subscriptions: SmallMap::new(),
            user: None,
            authorized: false,
        };
        Ok((session, outbox))
    }

    pub fn socket_id(&self) -> &SocketId {
        self.conn.socket_id()
    }

    pub fn app(&self) -> &Arc<App> {
        &self.app
    }

    pub fn handle(&self) -> &ConnHandle {
        &self.conn
    }

    /// Signed in, or subscribed to a private or presence channel (§5.6).
    pub fn is_authorized(&self) -> bool {
        self.authorized
    }

    fn send(&self, frame: String) {
        self.conn.send(Bytes::from(frame));
    }

    /// Handles one text frame from the client. Errors are reported to the client here; fatal
    /// ones close the connection.
    pub async fn handle_text(&mut self, text: &str) {
        let result = match ClientEvent::decode(text, &self.app.limits) {
            Ok(ev) => self.dispatch(ev).await,
            Err(e) => Err(e),
        };
        if let Err(e) = result {
            self.report(e);
        }
    }

    /// Binary frames are not part of the protocol.
    pub fn handle_binary(&mut self) {
        self.report(ProtocolError::notice(
            "Binary messages are not supported; send JSON text frames",
        ));
    }

    fn report(&self, e: ProtocolError) {
        match &e {
            ProtocolError::Fatal { code, message } => {
                self.conn.close(CloseReason::from_error(*code, message));
            }
            ProtocolError::Subscription {
                channel, message, ..
            } => {
                self.send(e.frame());
                if self.hub.config().p_compat_errors {
                    self.send(ProtocolError::notice_on(channel, message.clone()).frame());
                }
            }
            ProtocolError::Notice { .. } => self.send(e.frame()),
        }
    }

    /// The server-initiated ping after `activity_timeout` of silence.
    pub fn ping(&self) {
        self.send(encode::ping());
    }

    /// No answer to the ping in time.
    pub fn pong_timeout(&self) {
        self.report(ProtocolError::fatal(ErrorCode::PongTimeout));
    }

    /// The authorized-connection deadline passed; closes unless signed in or subscribed to a
    /// private channel.
    pub fn authorization_deadline(&self) {
        if !self.authorized {
            self.report(ProtocolError::Fatal {
                code: ErrorCode::Unauthorized,
                message: "Connection not authorized within timeout".to_owned(),
            });
        }
    }

    async fn dispatch(&mut self, ev: ClientEvent) -> Result<(), ProtocolError> {
        match ev {
            ClientEvent::Ping => {
                self.send(encode::pong());
                Ok(())
            }
            ClientEvent::Pong | ClientEvent::Other { .. } => Ok(()),
            ClientEvent::Subscribe {
                channel,
                auth,
                channel_data,
            } => self.subscribe(channel, auth, channel_data).await,
            ClientEvent::Unsubscribe { channel } => {
                if let Ok(name) = ChannelName::parse(&channel, usize::MAX) {
                    self.unsubscribe(&name).await;
                }
                Ok(())
            }
            ClientEvent::Signin { auth, user_data } => self.signin(&auth, &user_data).await,
            ClientEvent::Client {
                event,
                channel,
                data,
            } => self.client_event(&event, &channel, &data).await,
            // Rule 1 comes before the name and channel rules the decoder already applied.
            ClientEvent::RejectedClient { channel, error } => {
                Err(if self.app.features.client_events {
                    error
                } else {
                    ProtocolError::notice_on(&channel, CLIENT_EVENTS_DISABLED)
                })
            }
        }
    }

    /// The connection is gone: leave every channel, sign out, release the quota slot.
    pub async fn close(mut self) {
        self.conn.abandon();
        let channels: Vec<ChannelName> = self.subscriptions.keys().cloned().collect();
        for channel in channels {
            self.unsubscribe(&channel).await;
        }
        let app = self.app.clone();
        if let Some(user) = self.user.take() {
            for watched in &user.watchlist {
                self.hub.remove_watcher(&app.id, watched, self.socket_id());
            }
            self.hub.remove_user(&app.id, &user.id, self.socket_id());
            self.hub
                .user_signed(&app, &user.id, self.socket_id(), false)
                .await;
        }
        if app.max_connections.is_some()
            && let Err(e) = self.hub.backplane().quota.connections(&app.id, -1).await
        {
            tracing::warn!(error = %e, "connection quota not released");
        }
        self.hub.connection_closed(&app.id, self.socket_id());
        let entry = LogEntry::ConnectionClosed {
            socket_id: self.socket_id().as_str(),
            code: self.conn.close_code(),
        };
        self.hub.console().log(&app.id, entry);
    }
}

mod client_events;
mod signin;
mod subscribe;
#[cfg(test)]
mod tests;
