//! `Channels`: counts in the app's `channels` hash, changed only by the SUBSCRIBE and UNSUBSCRIBE
//! scripts, which also record this node's contribution.

use std::collections::HashMap;

use async_trait::async_trait;
use herald_core::AppId;
use herald_core::backplane::{BackplaneError, ChannelCount, Channels, Check, Occupancy};
use herald_protocol::{ChannelKind, ChannelName, SocketId};

use crate::{Contribution, RedisBackplane, err, scripts};

#[async_trait]
impl Channels for RedisBackplane {
    async fn subscribe(
        &self,
        app: &AppId,
        channel: &ChannelName,
        socket: &SocketId,
    ) -> Result<Occupancy, BackplaneError> {
        let app = app.as_str();
        let i = &self.inner;
        let topic = i.keys.channel_topic(app, channel.as_str());
        // Listen first, so nothing published after the subscription counts is missed.
        i.listen(topic.clone()).await?;
        let _gate = i.gate.read().await;
        // Apps whose leaves schedule the debounced channel_vacated have it cancelled here.
        let vacated = i
            .checks(app)
            .vacated
            .then(|| Check::Vacated(channel.clone()).key());
        match i
            .run_occupancy(
                &scripts::SUBSCRIBE,
                app,
                &i.node,
                channel.as_str(),
                socket.as_str(),
                vacated.as_deref().map(|k| (k, 0)),
            )
            .await
        {
            Ok(o) => {
                i.remember(
                    app,
                    &Contribution::Subscription {
                        channel: channel.to_string(),
                        socket: socket.to_string(),
                    },
                    None,
                );
                Ok(o)
            }
            Err(e) => {
                i.unlisten(topic);
                Err(e)
            }
        }
    }

    async fn unsubscribe(
        &self,
        app: &AppId,
        channel: &ChannelName,
        socket: &SocketId,
        check_at: Option<u64>,
    ) -> Result<Occupancy, BackplaneError> {
        let check = check_at.map(|due| (Check::Vacated(channel.clone()).key(), due));
        let check = check.as_ref().map(|(key, due)| (key.as_str(), *due));
        self.inner
            .unsubscribe(app.as_str(), channel, socket, check)
            .await
    }

    async fn channels(
        &self,
        app: &AppId,
        prefix: &str,
    ) -> Result<Vec<ChannelCount>, BackplaneError> {
        let app = app.as_str();
        let i = &self.inner;
        let mut c = i.conn().await?;
        let key = i.keys.channels(app);
        let mut found: Vec<(String, u64)> = Vec::new();
        let mut cursor: u64 = 0;
        loop {
            let (next, page): (u64, Vec<(String, u64)>) = redis::cmd("HSCAN")
                .arg(&key)
                .arg(cursor)
                .arg("COUNT")
                .arg(1000)
                .query_async(&mut c)
                .await
                .map_err(err)?;
            found.extend(
                page.into_iter()
                    .filter(|(name, n)| name.starts_with(prefix) && *n > 0),
            );
            if next == 0 {
                break;
            }
            cursor = next;
        }
        found.sort();
        found.dedup_by(|a, b| a.0 == b.0);
        let presence: Vec<&String> = found
            .iter()
            .map(|(n, _)| n)
            .filter(|n| {
                ChannelName::parse(n, usize::MAX).is_ok_and(|c| c.kind() == ChannelKind::Presence)
            })
            .collect();
        let mut pipe = redis::pipe();
        for name in &presence {
            pipe.cmd("HLEN").arg(i.keys.presence_users(app, name));
        }
        let user_counts: Vec<u64> = if presence.is_empty() {
            Vec::new()
        } else {
            pipe.query_async(&mut c).await.map_err(err)?
        };
        let users: HashMap<&String, u64> = presence.into_iter().zip(user_counts).collect();
        Ok(found
            .iter()
            .map(|(name, n)| ChannelCount {
                name: name.clone(),
                subscription_count: *n,
                user_count: users.get(name).copied(),
            })
            .collect())
    }

    async fn channel(
        &self,
        app: &AppId,
        channel: &ChannelName,
    ) -> Result<ChannelCount, BackplaneError> {
        let app = app.as_str();
        let i = &self.inner;
        let mut c = i.conn().await?;
        let (count, users): (Option<u64>, u64) = redis::pipe()
            .cmd("HGET")
            .arg(i.keys.channels(app))
            .arg(channel.as_str())
            .cmd("HLEN")
            .arg(i.keys.presence_users(app, channel.as_str()))
            .query_async(&mut c)
            .await
            .map_err(err)?;
        Ok(ChannelCount {
            name: channel.to_string(),
            subscription_count: count.unwrap_or(0),
            user_count: (channel.kind() == ChannelKind::Presence).then_some(users),
        })
    }
}
