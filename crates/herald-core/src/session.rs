//! One connection's protocol logic: subscriptions, presence, client events, sign-in. The
//! transport hands it decoded text and timer ticks; it answers by pushing frames into its
//! outbox and by closing its handle. It never sees a socket.

use std::sync::Arc;

use bytes::Bytes;
use herald_protocol::event::{ClientEventName, encode};
use herald_protocol::signature::{channel_auth_payload, signin_payload, verify_auth};
use herald_protocol::user::{parse_channel_data, parse_user_data};
use herald_protocol::webhook::WebhookEvent;
use herald_protocol::{
    ChannelKind, ChannelName, ClientEvent, ErrorCode, ProtocolError, SocketId,
    SubscriptionErrorKind as SubErr, UserId,
};
use serde_json::value::RawValue;
use tokio::time::Instant;

use crate::App;
use crate::backplane::{BackplaneError, Envelope, Joined, Member, Occupancy};
use crate::conn::{CloseReason, ConnHandle, Outbox};
use crate::console::LogEntry;
use crate::hub::{Hub, member_removed};
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

    async fn subscribe(
        &mut self,
        channel: ChannelName,
        auth: Option<String>,
        channel_data: Option<String>,
    ) -> Result<(), ProtocolError> {
        let name = channel.as_str();
        let authed = |payload: String| {
            let ok = auth
                .as_deref()
                .is_some_and(|a| verify_auth(&self.app.key, &self.app.secret, a, &payload));
            if ok {
                Ok(())
            } else {
                Err(ProtocolError::subscription(
                    name,
                    SubErr::AuthError,
                    "Invalid signature",
                ))
            }
        };
        let member = match channel.kind() {
            ChannelKind::ServerToUser => {
                let mine = self
                    .user
                    .as_ref()
                    .is_some_and(|u| Some(u.id.as_str()) == channel.server_to_user_id());
                if !mine {
                    return Err(ProtocolError::subscription(
                        name,
                        SubErr::AuthError,
                        "Only the connection signed in as this user may subscribe to its #server-to-user- channel",
                    ));
                }
                None
            }
            ChannelKind::Public => None,
            ChannelKind::Private | ChannelKind::Encrypted => {
                authed(channel_auth_payload(self.socket_id(), &channel, None))?;
                None
            }
            ChannelKind::Presence => Some(match (&channel_data, &self.user) {
                (Some(data), _) => {
                    authed(channel_auth_payload(self.socket_id(), &channel, Some(data)))?;
                    self.presence_member(name, data)?
                }
                (None, Some(user)) => {
                    authed(channel_auth_payload(self.socket_id(), &channel, None))?;
                    Member {
                        user_id: user.id.clone(),
                        user_info: user.user_info.clone(),
                    }
                }
                (None, None) => {
                    return Err(ProtocolError::subscription(
                        name,
                        SubErr::AuthError,
                        "Presence channels need channel_data, or a signed-in connection",
                    ));
                }
            }),
        };
        if let Some(existing) = self.subscriptions.get(&channel) {
            // Already subscribed: confirm again, announce nothing new.
            let presence = existing.presence_user.is_some();
            return self.confirm(&channel, presence).await;
        }
        if self.subscriptions.len() >= self.app.limits.max_channels_per_connection {
            return Err(ProtocolError::subscription(
                name,
                SubErr::ChannelsLimit,
                format!(
                    "A connection may subscribe to at most {} channels",
                    self.app.limits.max_channels_per_connection
                ),
            ));
        }
        if channel.needs_auth() {
            self.authorized = true;
        }
        if channel.kind() == ChannelKind::ServerToUser {
            self.subscriptions.insert(
                channel.clone(),
                Subscription {
                    presence_user: None,
                },
            );
            self.send(encode::subscription_succeeded(name));
            self.log_subscribed(name);
            return Ok(());
        }
        self.join(channel, member).await
    }

    /// Parses and checks a presence `channel_data` (§2.7 limits).
    fn presence_member(&self, channel: &str, data: &str) -> Result<Member, ProtocolError> {
        let limits = &self.app.limits;
        let cd = parse_channel_data(data, limits.max_user_id_len)
            .map_err(|m| ProtocolError::subscription(channel, SubErr::InvalidChannelData, m))?;
        if let Some(info) = cd.user_info
            && info.len() > limits.max_presence_user_info_bytes
        {
            return Err(ProtocolError::subscription(
                channel,
                SubErr::UserInfoLimit,
                format!(
                    "user_info is {} bytes; at most {} are allowed",
                    info.len(),
                    limits.max_presence_user_info_bytes
                ),
            ));
        }
        Ok(Member {
            user_id: cd.user_id,
            user_info: cd.user_info.map(Arc::from),
        })
    }

    /// Subscribes this connection: held delivery, backplane subscription (and presence join),
    /// confirmation (or member list), cache, then activation of the held frames.
    async fn join(
        &mut self,
        channel: ChannelName,
        member: Option<Member>,
    ) -> Result<(), ProtocolError> {
        let app = self.app.clone();
        let hub = self.hub.clone();
        hub.add_pending(&app.id, &channel, &self.conn);
        let (occupancy, joined) = match self.join_backplane(&channel, member.as_ref()).await {
            Ok(joined) => joined,
            Err(e) => {
                hub.remove_subscriber(&app.id, &channel, self.socket_id());
                return Err(e);
            }
        };
        if occupancy.transition {
            hub.hooks().occupied(&app, &channel).await;
        }
        let presence_user = member.as_ref().map(|m| m.user_id.clone());
        self.subscriptions
            .insert(channel.clone(), Subscription { presence_user });
        self.log_subscribed(channel.as_str());
        let since = match &joined {
            None => {
                self.send(encode::subscription_succeeded(channel.as_str()));
                0
            }
            Some(j) => {
                self.send(presence_list(&channel, &j.members));
                j.version
            }
        };
        self.send_cache(&channel).await;
        hub.activate(&app.id, &channel, &self.conn, since);
        if let (Some(j), Some(member)) = (&joined, &member)
            && j.new_user
        {
            let info = member.user_info.as_deref();
            let frame = encode::member_added(
                channel.as_str(),
                &encode::MemberRef {
                    user_id: member.user_id.as_str(),
                    user_info: info,
                },
            );
            let except = Some(self.socket_id().clone());
            let env = Envelope::membership(channel.clone(), Bytes::from(frame), except, j.version);
            hub.relay(&app.id, env, "member_added").await;
            hub.hooks()
                .member_added(&app, &channel, &member.user_id)
                .await;
        }
        hub.count_changed(&app, &channel);
        Ok(())
    }

    /// The backplane part of a subscription: counted, and for presence joined as `member`.
    /// Returns the presence join (presence channels only).
    async fn join_backplane(
        &self,
        channel: &ChannelName,
        member: Option<&Member>,
    ) -> Result<(Occupancy, Option<Admitted>), ProtocolError> {
        let app = &self.app;
        let bp = self.hub.backplane();
        let occupancy = bp
            .channels
            .subscribe(&app.id, channel, self.socket_id())
            .await
            .map_err(|e| server_error(channel, e))?;
        let Some(member) = member else {
            return Ok((occupancy, None));
        };
        let undo = || async {
            let left = bp
                .channels
                .unsubscribe(&app.id, channel, self.socket_id(), None);
            if let Err(e) = left.await {
                tracing::warn!(channel = %channel, error = %e, "unsubscribe after a failed join failed");
            }
        };
        match bp
            .presence
            .join(
                &app.id,
                channel,
                self.socket_id(),
                member,
                app.limits.max_presence_members,
            )
            .await
        {
            Ok(Joined::Admitted {
                new_user,
                members,
                version,
            }) => Ok((
                occupancy,
                Some(Admitted {
                    new_user,
                    members,
                    version,
                }),
            )),
            Ok(Joined::Full) => {
                undo().await;
                Err(ProtocolError::subscription(
                    channel.as_str(),
                    SubErr::MembersLimit,
                    format!(
                        "Presence channel already has {} members",
                        app.limits.max_presence_members
                    ),
                ))
            }
            Err(e) => {
                undo().await;
                Err(server_error(channel, e))
            }
        }
    }

    /// Re-confirms an existing subscription.
    async fn confirm(&self, channel: &ChannelName, presence: bool) -> Result<(), ProtocolError> {
        if presence {
            let members = self
                .hub
                .backplane()
                .presence
                .members(&self.app.id, channel)
                .await
                .map_err(|e| server_error(channel, e))?;
            self.send(presence_list(channel, &members));
        } else {
            self.send(encode::subscription_succeeded(channel.as_str()));
        }
        Ok(())
    }

    /// After `subscription_succeeded` on a cache channel: the last event, or `pusher:cache_miss`.
    async fn send_cache(&self, channel: &ChannelName) {
        if !channel.is_cache() {
            return;
        }
        match self.hub.backplane().cache.get(&self.app.id, channel).await {
            Ok(Some(cached)) => {
                self.conn.send(cached.frame);
            }
            Ok(None) => {
                self.send(encode::cache_miss(channel.as_str()));
                self.hub.hooks().cache_miss(&self.app, channel).await;
            }
            Err(e) => tracing::warn!(channel = %channel, error = %e, "cache not read"),
        }
    }

    fn log_subscribed(&self, channel: &str) {
        let entry = LogEntry::Subscribed {
            socket_id: self.socket_id().as_str(),
            channel,
        };
        self.hub.console().log(&self.app.id, entry);
    }

    async fn unsubscribe(&mut self, channel: &ChannelName) {
        let Some(sub) = self.subscriptions.remove(channel) else {
            return;
        };
        let entry = LogEntry::Unsubscribed {
            socket_id: self.socket_id().as_str(),
            channel: channel.as_str(),
        };
        self.hub.console().log(&self.app.id, entry);
        let app = self.app.clone();
        let hub = self.hub.clone();
        if channel.kind() == ChannelKind::ServerToUser {
            return;
        }
        hub.remove_subscriber(&app.id, channel, self.socket_id());
        let bp = hub.backplane();
        if sub.presence_user.is_some() {
            // Like the vacancy check below: scheduled by the backplane in the leave's own step.
            let check_at = hub.hooks().removal_check_at(&app);
            match bp
                .presence
                .leave(&app.id, channel, self.socket_id(), check_at)
                .await
            {
                Ok(Some(left)) => {
                    if check_at.is_none() {
                        hub.hooks().member_removed(&app, channel, &left.user).await;
                    }
                    let env =
                        member_removed(channel.clone(), &left, Some(self.socket_id().clone()));
                    hub.relay(&app.id, env, "member_removed").await;
                }
                Ok(None) => {}
                Err(e) => tracing::warn!(channel = %channel, error = %e, "presence leave failed"),
            }
        }
        // A vacancy's debounced check is scheduled by the backplane in the same step as the
        // leave, so it survives this node dying right after.
        let check_at = hub.hooks().vacancy_check_at(&app);
        match bp
            .channels
            .unsubscribe(&app.id, channel, self.socket_id(), check_at)
            .await
        {
            Ok(occupancy) => {
                if occupancy.transition && check_at.is_none() {
                    hub.hooks().vacated(&app, channel).await;
                }
                hub.count_changed(&app, channel);
            }
            Err(e) => {
                tracing::warn!(channel = %channel, error = %e, "unsubscribe failed on the backplane")
            }
        }
    }

    async fn client_event(
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

    async fn signin(&mut self, auth: &str, user_data: &str) -> Result<(), ProtocolError> {
        if !self.app.features.user_authentication {
            return Err(ProtocolError::notice(
                "User authentication is disabled for this app",
            ));
        }
        let payload = signin_payload(self.socket_id(), user_data);
        if !verify_auth(&self.app.key, &self.app.secret, auth, &payload) {
            return Err(ProtocolError::notice("Invalid signature: sign-in refused"));
        }
        let parsed = parse_user_data(user_data, self.app.limits.max_user_id_len)
            .map_err(|m| ProtocolError::notice(format!("Invalid user_data: {m}")))?;
        if let Some(current) = &self.user {
            if current.id != parsed.id {
                return Err(ProtocolError::notice(format!(
                    "Already signed in as user '{}'",
                    current.id
                )));
            }
            self.send(encode::signin_success(user_data));
            return Ok(());
        }
        let app = self.app.clone();
        let mut watchlist = parsed.watchlist;
        let over_limit = watchlist.len() > app.limits.max_watchlist;
        watchlist.truncate(app.limits.max_watchlist);
        self.authorized = true;
        self.hub.add_user(&app.id, &parsed.id, &self.conn);
        self.send(encode::signin_success(user_data));
        self.hub
            .user_signed(&app, &parsed.id, self.socket_id(), true)
            .await;
        if over_limit {
            self.report(ProtocolError::Notice {
                code: Some(ErrorCode::WatchlistLimit),
                message: ErrorCode::WatchlistLimit.message().to_owned(),
                channel: None,
            });
        }
        if app.features.watchlist_events && !watchlist.is_empty() {
            for watched in &watchlist {
                self.hub.add_watcher(&app.id, watched, &self.conn);
            }
            match self.hub.backplane().users.online(&app.id, &watchlist).await {
                Ok(states) => {
                    let (on, off): (Vec<_>, Vec<_>) =
                        watchlist.iter().zip(states).partition(|(_, s)| *s);
                    let on: Vec<&str> = on.iter().map(|(u, _)| u.as_str()).collect();
                    let off: Vec<&str> = off.iter().map(|(u, _)| u.as_str()).collect();
                    self.send(encode::watchlist_events(&on, &off));
                }
                Err(e) => tracing::warn!(error = %e, "watchlist status not read"),
            }
        }
        self.user = Some(SignedIn {
            id: parsed.id,
            user_info: parsed.user_info.map(Arc::from),
            watchlist,
        });
        Ok(())
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

fn presence_list(channel: &ChannelName, members: &[Member]) -> String {
    let refs: Vec<encode::MemberRef<'_>> = members
        .iter()
        .map(|m| encode::MemberRef {
            user_id: m.user_id.as_str(),
            user_info: m.user_info.as_deref(),
        })
        .collect();
    encode::presence_succeeded(channel.as_str(), &refs)
}

#[cfg(test)]
mod tests;
