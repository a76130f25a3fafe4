//! `Quota`: per-app connection totals in a hash of per-node counts (CONNECTIONS script).

use async_trait::async_trait;
use herald_core::AppId;
use herald_core::backplane::{BackplaneError, Quota};

use crate::RedisBackplane;

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
}
