//! `Presence`: members in the channel's presence hashes, changed only by the PRESENCE_JOIN and
//! PRESENCE_LEAVE scripts (member cap, membership version, this node's contribution).

use async_trait::async_trait;
use herald_core::AppId;
use herald_core::backplane::{BackplaneError, Check, Joined, Left, Member, Presence};
use herald_protocol::{ChannelName, SocketId};

use crate::{Contribution, RedisBackplane, err, members_from};

#[async_trait]
impl Presence for RedisBackplane {
    async fn join(
        &self,
        app: &AppId,
        channel: &ChannelName,
        socket: &SocketId,
        member: &Member,
        max_members: usize,
    ) -> Result<Joined, BackplaneError> {
        let app = app.as_str();
        let i = &self.inner;
        let _gate = i.gate.read().await;
        // Apps whose leaves schedule the debounced member_removed have it cancelled here.
        let removal_check = i
            .checks(app)
            .member_removed
            .then(|| Check::MemberRemoved(channel.clone(), member.user_id.clone()).key());
        let joined = i
            .run_join(
                app,
                &i.node,
                channel.as_str(),
                socket.as_str(),
                member,
                max_members,
                removal_check,
            )
            .await?;
        if matches!(joined, Joined::Admitted { .. }) {
            let c = Contribution::Presence {
                channel: channel.to_string(),
                socket: socket.to_string(),
            };
            i.remember(app, &c, Some(member.clone()));
        }
        Ok(joined)
    }

    async fn leave(
        &self,
        app: &AppId,
        channel: &ChannelName,
        socket: &SocketId,
        check_at: Option<u64>,
    ) -> Result<Option<Left>, BackplaneError> {
        // The script completes the key with the user it removes.
        let check = check_at.map(|due| (Check::member_removed_prefix(channel), due));
        let check = check.as_ref().map(|(prefix, due)| (prefix.as_str(), *due));
        self.inner
            .presence_leave(app.as_str(), channel, socket, check)
            .await
    }

    async fn members(
        &self,
        app: &AppId,
        channel: &ChannelName,
    ) -> Result<Vec<Member>, BackplaneError> {
        let app = app.as_str();
        let i = &self.inner;
        let mut c = i.conn().await?;
        let flat: Vec<redis::Value> = redis::cmd("HGETALL")
            .arg(i.keys.presence_info(app, channel.as_str()))
            .query_async(&mut c)
            .await
            .map_err(err)?;
        Ok(members_from(&flat))
    }
}
