//! `Quota`: per-app connection totals in a hash of per-node counts (CONNECTIONS script), and
//! the per-second HTTP API budget shared by every node (API_REQUEST script, one round trip).

use async_trait::async_trait;
use herald_core::AppId;
use herald_core::backplane::{BackplaneError, Quota};

use crate::{RedisBackplane, err, scripts};

#[async_trait]
impl Quota for RedisBackplane {
    async fn connections(&self, app: &AppId, delta: i64) -> Result<u64, BackplaneError> {
        let app = app.as_str();
        let i = &self.inner;
        let _gate = i.gate.read().await;
        {
            let mut m = herald_core::sync::lock(&i.mirror);
            *m.connections.entry(app.to_owned()).or_default() += delta;
        }
        i.run_connections(app, &i.node, &[delta.to_string()]).await
    }

    async fn api_request(&self, app: &AppId, per_second: u32) -> Result<bool, BackplaneError> {
        let i = &self.inner;
        let mut c = i.conn().await?;
        let fits: u8 = scripts::API_REQUEST
            .key(i.keys.api_rate(app.as_str()))
            .arg(per_second)
            .invoke_async(&mut c)
            .await
            .map_err(err)?;
        Ok(fits == 1)
    }
}
