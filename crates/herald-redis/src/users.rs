//! `Users`: a set of socket ids per signed-in user, changed by the SIGNIN and SIGNOUT scripts.

use async_trait::async_trait;
use herald_core::AppId;
use herald_core::backplane::{BackplaneError, Users};
use herald_protocol::{ChannelName, SocketId, UserId};

use crate::{Contribution, RedisBackplane, err};

#[async_trait]
impl Users for RedisBackplane {
    async fn signin(
        &self,
        app: &AppId,
        user: &UserId,
        socket: &SocketId,
    ) -> Result<bool, BackplaneError> {
        let app = app.as_str();
        let i = &self.inner;
        let topic = i
            .keys
            .channel_topic(app, ChannelName::for_user(user).as_str());
        i.listen(topic.clone()).await?;
        let _gate = i.gate.read().await;
        match i
            .run_signin(app, &i.node, user.as_str(), socket.as_str(), true)
            .await
        {
            Ok(online) => {
                i.remember(
                    app,
                    &Contribution::Signin {
                        user: user.to_string(),
                        socket: socket.to_string(),
                    },
                    None,
                );
                Ok(online)
            }
            Err(e) => {
                i.unlisten(topic);
                Err(e)
            }
        }
    }

    async fn signout(
        &self,
        app: &AppId,
        user: &UserId,
        socket: &SocketId,
    ) -> Result<bool, BackplaneError> {
        let app = app.as_str();
        let i = &self.inner;
        i.unlisten(
            i.keys
                .channel_topic(app, ChannelName::for_user(user).as_str()),
        );
        let _gate = i.gate.read().await;
        i.forget(
            app,
            &Contribution::Signin {
                user: user.to_string(),
                socket: socket.to_string(),
            },
        );
        i.run_signin(app, &i.node, user.as_str(), socket.as_str(), false)
            .await
    }

    async fn online(&self, app: &AppId, users: &[UserId]) -> Result<Vec<bool>, BackplaneError> {
        let app = app.as_str();
        if users.is_empty() {
            return Ok(Vec::new());
        }
        let i = &self.inner;
        let mut c = i.conn().await?;
        let mut pipe = redis::pipe();
        for u in users {
            pipe.cmd("SCARD").arg(i.keys.user(app, u.as_str()));
        }
        let counts: Vec<u64> = pipe.query_async(&mut c).await.map_err(err)?;
        Ok(counts.into_iter().map(|n| n > 0).collect())
    }
}
