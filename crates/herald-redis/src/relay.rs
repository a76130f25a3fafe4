//! `Relay`: one PUBLISH per frame or command, on the channel's or the app's control topic.

use async_trait::async_trait;
use herald_core::AppId;
use herald_core::backplane::{BackplaneError, Control, Envelope, Relay};

use crate::{RedisBackplane, err, wire};

#[async_trait]
impl Relay for RedisBackplane {
    async fn publish(&self, app: &AppId, envelope: &Envelope) -> Result<(), BackplaneError> {
        let i = &self.inner;
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
        let mut c = i.conn().await?;
        redis::cmd(i.publish_cmd())
            .arg(i.keys.control_topic(app.as_str()))
            .arg(wire::encode_control(&i.node, control))
            .query_async::<()>(&mut c)
            .await
            .map_err(err)
    }
}
