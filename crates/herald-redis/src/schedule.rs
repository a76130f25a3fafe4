//! `Schedule`: debounced checks in the app's `scheduled` sorted set (key → due ms; TAKE_DUE
//! claims atomically), markers as keys with SET NX PX. Keys are `Check::key` and `Mark::key`.

use std::time::Duration;

use async_trait::async_trait;
use herald_core::AppId;
use herald_core::backplane::{BackplaneError, Check, Mark, Schedule, parse_claimed};

use crate::{RedisBackplane, err, scripts};

#[async_trait]
impl Schedule for RedisBackplane {
    async fn schedule(
        &self,
        app: &AppId,
        check: &Check,
        due_ms: u64,
    ) -> Result<(), BackplaneError> {
        let i = &self.inner;
        let mut c = i.conn().await?;
        redis::cmd("ZADD")
            .arg(i.keys.scheduled(app.as_str()))
            .arg(due_ms)
            .arg(check.key())
            .query_async::<()>(&mut c)
            .await
            .map_err(err)
    }

    async fn cancel(&self, app: &AppId, check: &Check) -> Result<bool, BackplaneError> {
        let i = &self.inner;
        let mut c = i.conn().await?;
        let removed: u32 = redis::cmd("ZREM")
            .arg(i.keys.scheduled(app.as_str()))
            .arg(check.key())
            .query_async(&mut c)
            .await
            .map_err(err)?;
        Ok(removed == 1)
    }

    async fn take_due(
        &self,
        app: &AppId,
        now_ms: u64,
        max: usize,
    ) -> Result<Vec<Check>, BackplaneError> {
        let i = &self.inner;
        let mut c = i.conn().await?;
        let keys: Vec<String> = scripts::TAKE_DUE
            .key(i.keys.scheduled(app.as_str()))
            .arg(now_ms)
            .arg(max)
            .invoke_async(&mut c)
            .await
            .map_err(err)?;
        Ok(parse_claimed(app, keys))
    }

    async fn mark(&self, app: &AppId, mark: &Mark, ttl: Duration) -> Result<bool, BackplaneError> {
        let i = &self.inner;
        let mut c = i.conn().await?;
        let set: Option<String> = redis::cmd("SET")
            .arg(i.keys.mark(app.as_str(), &mark.key()))
            .arg(1)
            .arg("NX")
            .arg("PX")
            .arg(ttl.as_millis().max(1) as u64)
            .query_async(&mut c)
            .await
            .map_err(err)?;
        Ok(set.is_some())
    }
}
