//! `Relay`: one PUBLISH (SPUBLISH on a Redis Cluster) per frame or command, on the channel's or
//! the app's control topic. On a Redis Cluster it is refused while this node's pub/sub
//! connection is down (the node is not ready): when a shard has lost its master the client
//! library sends SPUBLISH to the shard's replica, which takes it and delivers it to no one (the
//! subscriptions were on the master), so an accepted publish could reach nobody. On one server
//! a PUBLISH either reaches it or fails, and other nodes hear it while this one reconnects.

use async_trait::async_trait;
use herald_core::AppId;
use herald_core::backplane::{BackplaneError, Control, Envelope, Relay};

use crate::{Inner, RedisBackplane, Unavailable, err, wire};

fn up(i: &Inner) -> Result<(), BackplaneError> {
    if !i.link.is_cluster() || i.pubsub_up.load(std::sync::atomic::Ordering::SeqCst) {
        Ok(())
    } else {
        Err(BackplaneError(Box::new(Unavailable(
            "Redis pub/sub is down on this node (not ready)".into(),
        ))))
    }
}

#[async_trait]
impl Relay for RedisBackplane {
    async fn publish(&self, app: &AppId, envelope: &Envelope) -> Result<(), BackplaneError> {
        let i = &self.inner;
        up(i)?;
        let mut c = i.conn().await?;
        let topic = i
            .keys
            .channel_topic(app.as_str(), envelope.channel.as_str());
        redis::cmd(i.publish_cmd())
            .arg(topic)
            .arg(wire::encode_envelope(&i.node, envelope))
            .query_async::<()>(&mut c)
            .await
            .map_err(err)
    }

    async fn control(&self, app: &AppId, control: &Control) -> Result<(), BackplaneError> {
        let i = &self.inner;
        up(i)?;
        let mut c = i.conn().await?;
        redis::cmd(i.publish_cmd())
            .arg(i.keys.control_topic(app.as_str()))
            .arg(wire::encode_control(&i.node, control))
            .query_async::<()>(&mut c)
            .await
            .map_err(err)
    }
}
