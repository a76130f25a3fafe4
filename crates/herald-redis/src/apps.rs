//! `app_store = "redis"`: apps kept in the cluster's Redis (`{prefix}:apps`, id → record, and
//! `{prefix}:app-keys`, key → id, so keys stay unique), written by atomic scripts and announced
//! on `{prefix}:apps-changed` so every node reloads within a moment. On a Redis Cluster all
//! three carry the cluster-wide hash tag: one slot.

use std::sync::Arc;

use async_trait::async_trait;
use herald_core::backplane::BackplaneError;
use herald_core::store::{AppStore, StoredApp, Written};
use tokio::sync::watch;

use crate::{Inner, Unavailable, err, scripts};

pub(crate) struct RedisAppStore {
    pub(crate) inner: Arc<Inner>,
}

/// The key inside a record (a JSON object with the `[[apps]]` keys).
fn record_key(record: &str) -> Option<String> {
    serde_json::from_str::<serde_json::Value>(record)
        .ok()?
        .get("key")?
        .as_str()
        .map(str::to_owned)
}

fn stored(id: String, record: String) -> Result<StoredApp, BackplaneError> {
    let key = record_key(&record).ok_or_else(|| {
        BackplaneError(Box::new(Unavailable(format!(
            "the stored record of app '{id}' is not a JSON object with a key"
        ))))
    })?;
    Ok(StoredApp { id, key, record })
}

impl RedisAppStore {
    /// Tells every node (this one included) that the apps changed. A lost announcement is
    /// caught up by the periodic reload.
    async fn announce(&self, written: Written) -> Written {
        let i = &self.inner;
        if written == Written::Done {
            i.apps_announced.send_modify(|n| *n += 1);
            let published = async {
                let mut c = i.conn().await?;
                redis::cmd(i.publish_cmd())
                    .arg(i.keys.apps_topic())
                    .arg(&i.node)
                    .query_async::<i64>(&mut c)
                    .await
                    .map_err(err)
            }
            .await;
            if let Err(e) = published {
                tracing::warn!(error = %e, "app change not announced; other nodes see it at their next reload");
            }
        }
        written
    }

    async fn run(&self, script: &redis::Script, args: &[&str]) -> Result<i64, BackplaneError> {
        let i = &self.inner;
        let mut c = i.conn().await?;
        let mut invocation = script.key(i.keys.apps());
        invocation.key(i.keys.app_keys());
        for a in args {
            invocation.arg(*a);
        }
        invocation.invoke_async(&mut c).await.map_err(err)
    }
}

fn written(code: i64) -> Written {
    match code {
        0 => Written::Done,
        1 => Written::IdTaken,
        2 => Written::KeyTaken,
        3 => Written::NotFound,
        _ => Written::Conflict,
    }
}

#[async_trait]
impl AppStore for RedisAppStore {
    async fn list(&self) -> Result<Vec<StoredApp>, BackplaneError> {
        let i = &self.inner;
        let mut c = i.conn().await?;
        let all: Vec<(String, String)> = redis::cmd("HGETALL")
            .arg(i.keys.apps())
            .query_async(&mut c)
            .await
            .map_err(err)?;
        all.into_iter().map(|(id, r)| stored(id, r)).collect()
    }

    async fn get(&self, id: &str) -> Result<Option<StoredApp>, BackplaneError> {
        let i = &self.inner;
        let mut c = i.conn().await?;
        let record: Option<String> = redis::cmd("HGET")
            .arg(i.keys.apps())
            .arg(id)
            .query_async(&mut c)
            .await
            .map_err(err)?;
        record.map(|r| stored(id.to_owned(), r)).transpose()
    }

    async fn create(&self, app: &StoredApp) -> Result<Written, BackplaneError> {
        let code = self
            .run(&scripts::APP_CREATE, &[&app.id, &app.key, &app.record])
            .await?;
        Ok(self.announce(written(code)).await)
    }

    async fn update(
        &self,
        expected: &StoredApp,
        app: &StoredApp,
    ) -> Result<Written, BackplaneError> {
        let args = [
            &*expected.id,
            &expected.record,
            &expected.key,
            &app.key,
            &app.record,
        ];
        let code = self.run(&scripts::APP_UPDATE, &args).await?;
        Ok(self.announce(written(code)).await)
    }

    async fn delete(&self, id: &str) -> Result<Written, BackplaneError> {
        let code = self.run(&scripts::APP_DELETE, &[id]).await?;
        Ok(self.announce(written(code)).await)
    }

    fn changes(&self) -> watch::Receiver<u64> {
        self.inner.apps_announced.subscribe()
    }
}
