//! `Cache`: one string per cache channel, `{data length}\n{data}{frame}`, expiring with PX.

use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use herald_core::AppId;
use herald_core::backplane::{BackplaneError, Cache, CachedEvent};
use herald_protocol::ChannelName;

use crate::{RedisBackplane, err};

#[async_trait]
impl Cache for RedisBackplane {
    async fn set(
        &self,
        app: &AppId,
        channel: &ChannelName,
        event: CachedEvent,
    ) -> Result<(), BackplaneError> {
        let app = app.as_str();
        let i = &self.inner;
        let mut c = i.conn().await?;
        // `{data length}\n{data}{frame}`: both strings back without any JSON work.
        let mut value = format!("{}\n{}", event.data.len(), event.data).into_bytes();
        value.extend_from_slice(&event.frame);
        redis::cmd("SET")
            .arg(i.keys.cache(app, channel.as_str()))
            .arg(value)
            .arg("PX")
            .arg(event.ttl.as_millis().max(1) as u64)
            .query_async::<()>(&mut c)
            .await
            .map_err(err)
    }

    async fn get(
        &self,
        app: &AppId,
        channel: &ChannelName,
    ) -> Result<Option<CachedEvent>, BackplaneError> {
        let app = app.as_str();
        let i = &self.inner;
        let mut c = i.conn().await?;
        let key = i.keys.cache(app, channel.as_str());
        let (value, ttl_ms): (Option<Vec<u8>>, i64) = redis::pipe()
            .cmd("GET")
            .arg(&key)
            .cmd("PTTL")
            .arg(&key)
            .query_async(&mut c)
            .await
            .map_err(err)?;
        let Some(value) = value else { return Ok(None) };
        let parsed = (|| {
            let nl = value.iter().position(|b| *b == b'\n')?;
            let len: usize = std::str::from_utf8(&value[..nl]).ok()?.parse().ok()?;
            let data = std::str::from_utf8(value.get(nl + 1..nl + 1 + len)?)
                .ok()?
                .to_owned();
            let frame = Bytes::copy_from_slice(value.get(nl + 1 + len..)?);
            Some((data, frame))
        })();
        Ok(parsed.map(|(data, frame)| CachedEvent {
            frame,
            data,
            ttl: Duration::from_millis(ttl_ms.max(1000) as u64),
        }))
    }
}
