//! Subscribing and unsubscribing (PROTOCOL.md §2): authorization, presence membership, the
//! pending-then-active hand-over, cache channels, and the leaves that schedule removal webhooks.

use std::sync::Arc;

use bytes::Bytes;
use herald_protocol::event::encode;
use herald_protocol::signature::channel_auth_payload;
use herald_protocol::user::parse_channel_data;
use herald_protocol::{ChannelKind, ChannelName, ProtocolError, SubscriptionErrorKind as SubErr};

use super::{Admitted, Session, Subscription, server_error};
use crate::backplane::{Envelope, Joined, Member, Occupancy};
use crate::console::LogEntry;
use crate::hub::member_removed;

impl Session {
    pub(super) async fn subscribe(
        &mut self,
        channel: ChannelName,
        auth: Option<String>,
        channel_data: Option<String>,
    ) -> Result<(), ProtocolError> {
        let name = channel.as_str();
        let authed = |payload: String| {
            let ok = auth.as_deref().is_some_and(|a| self.verifies(a, &payload));
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
            hub.hooks()
                .occupied(&app, &channel, occupancy.vacancy_cancelled)
                .await;
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
        let cached = self.cached_event(&channel).await;
        hub.activate(&app.id, &channel, &self.conn, since, cached);
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
                .member_added(&app, &channel, &member.user_id, j.removal_cancelled)
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
                removal_cancelled,
            }) => Ok((
                occupancy,
                Some(Admitted {
                    new_user,
                    members,
                    version,
                    removal_cancelled,
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
    /// On a cache channel, after `subscription_succeeded`: the last event to send (through
    /// `Hub::activate`, which drops it when the same event is among the held live frames: it
    /// was published while this subscription was being set up), or `pusher:cache_miss`.
    async fn cached_event(&self, channel: &ChannelName) -> Option<Bytes> {
        if !channel.is_cache() {
            return None;
        }
        match self.hub.backplane().cache.get(&self.app.id, channel).await {
            Ok(Some(cached)) => Some(cached.frame),
            Ok(None) => {
                self.send(encode::cache_miss(channel.as_str()));
                self.hub.hooks().cache_miss(&self.app, channel).await;
                None
            }
            Err(e) => {
                tracing::warn!(channel = %channel, error = %e, "cache not read");
                None
            }
        }
    }

    fn log_subscribed(&self, channel: &str) {
        let entry = LogEntry::Subscribed {
            socket_id: self.socket_id().as_str(),
            channel,
        };
        self.hub.console().log(&self.app.id, entry);
    }

    pub(super) async fn unsubscribe(&mut self, channel: &ChannelName) {
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
            Ok(_) => hub.count_changed(&app, channel),
            Err(e) => {
                tracing::warn!(channel = %channel, error = %e, "unsubscribe failed on the backplane")
            }
        }
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
