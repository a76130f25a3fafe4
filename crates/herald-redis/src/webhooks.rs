//! The webhook queue on a Redis stream with a consumer group: any node's dispatcher delivers,
//! entries are acknowledged (and deleted) after delivery, and entries a dead node had taken are
//! claimed by a live one. Exhausted entries go to a capped dead-letter stream.
//!
//! Stream entry fields: `app`, `event` (the event JSON), `t` (ms). Dead letters add `url`,
//! `reason` and `id` (the original entry id).

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use herald_core::backplane::BackplaneError;
use herald_core::webhook::{DeadLetter, QueuedWebhook, WebhookQueue};
use herald_protocol::webhook::WebhookEvent;
use redis::streams::{StreamId, StreamReadReply};

use crate::{Inner, err};

const GROUP: &str = "dispatchers";
/// Bounds on the streams (approximate trimming).
const MAX_QUEUED: usize = 1_000_000;
const MAX_DEAD: usize = 10_000;
/// Entries kept in an app's own stream target.
const MAX_STREAM_TARGET: usize = 10_000;

pub struct RedisWebhookQueue {
    pub(crate) inner: Arc<Inner>,
    /// Looking for dead consumers costs a few commands: at most once per second.
    pub(crate) last_reclaim: std::sync::Mutex<Option<tokio::time::Instant>>,
}

impl RedisWebhookQueue {
    async fn ensure_group(&self) -> Result<(), BackplaneError> {
        let i = &self.inner;
        let mut c = i.conn().await?;
        let created: redis::RedisResult<()> = redis::cmd("XGROUP")
            .arg("CREATE")
            .arg(i.keys.webhooks())
            .arg(GROUP)
            .arg("0")
            .arg("MKSTREAM")
            .query_async(&mut c)
            .await;
        match created {
            Ok(()) => Ok(()),
            Err(e) if e.code() == Some("BUSYGROUP") => Ok(()),
            Err(e) => Err(err(e)),
        }
    }

    /// Takes over the pending entries of consumers that are no longer live nodes.
    async fn claim_from_dead(&self, max: usize) -> Result<Vec<StreamId>, BackplaneError> {
        let i = &self.inner;
        let mut c = i.conn().await?;
        let cutoff =
            crate::liveness::now_ms().saturating_sub(i.config.node_timeout.as_millis() as u64);
        let live: HashSet<String> = redis::cmd("ZRANGEBYSCORE")
            .arg(i.keys.nodes())
            .arg(cutoff)
            .arg("+inf")
            .query_async::<Vec<String>>(&mut c)
            .await
            .map_err(err)?
            .into_iter()
            .collect();
        let consumers: Vec<redis::Value> = redis::cmd("XINFO")
            .arg("CONSUMERS")
            .arg(i.keys.webhooks())
            .arg(GROUP)
            .query_async(&mut c)
            .await
            .map_err(err)?;
        let mut claimed = Vec::new();
        for consumer in consumers {
            let fields: std::collections::HashMap<String, redis::Value> =
                redis::from_redis_value(consumer).map_err(err)?;
            let name: String = fields
                .get("name")
                .map(redis::from_redis_value_ref)
                .transpose()
                .map_err(err)?
                .unwrap_or_default();
            let pending: u64 = fields
                .get("pending")
                .map(redis::from_redis_value_ref)
                .transpose()
                .map_err(err)?
                .unwrap_or(0);
            if name == i.node || live.contains(&name) {
                continue;
            }
            if pending > 0 {
                let rows: Vec<(String, String, u64, u64)> = redis::cmd("XPENDING")
                    .arg(i.keys.webhooks())
                    .arg(GROUP)
                    .arg("-")
                    .arg("+")
                    .arg(max)
                    .arg(&name)
                    .query_async(&mut c)
                    .await
                    .map_err(err)?;
                if !rows.is_empty() {
                    let ids: Vec<&String> = rows.iter().map(|r| &r.0).collect();
                    let reply: redis::streams::StreamClaimReply = redis::cmd("XCLAIM")
                        .arg(i.keys.webhooks())
                        .arg(GROUP)
                        .arg(&i.node)
                        .arg(0)
                        .arg(&ids)
                        .query_async(&mut c)
                        .await
                        .map_err(err)?;
                    tracing::warn!(dead_consumer = %name, entries = reply.ids.len(), "took over webhook entries of a dead node");
                    claimed.extend(reply.ids);
                }
            } else {
                let _: redis::RedisResult<u64> = redis::cmd("XGROUP")
                    .arg("DELCONSUMER")
                    .arg(i.keys.webhooks())
                    .arg(GROUP)
                    .arg(&name)
                    .query_async(&mut c)
                    .await;
            }
            if claimed.len() >= max {
                break;
            }
        }
        Ok(claimed)
    }
}

fn entry(id: &StreamId) -> Option<QueuedWebhook> {
    let app: String = id.get("app")?;
    let event: String = id.get("event")?;
    let time_ms: u64 = id.get("t")?;
    Some(QueuedWebhook {
        id: id.id.clone(),
        app: herald_core::AppId::new(&app),
        event: WebhookEvent::from_json(&event)?,
        time_ms,
    })
}

#[async_trait]
impl WebhookQueue for RedisWebhookQueue {
    async fn push(
        &self,
        app: &herald_core::AppId,
        event: &WebhookEvent,
    ) -> Result<(), BackplaneError> {
        let i = &self.inner;
        let mut c = i.conn().await?;
        redis::cmd("XADD")
            .arg(i.keys.webhooks())
            .arg("MAXLEN")
            .arg("~")
            .arg(MAX_QUEUED)
            .arg("*")
            .arg("app")
            .arg(app.as_str())
            .arg("event")
            .arg(event.to_json())
            .arg("t")
            .arg(herald_core::webhook::now_ms())
            .query_async::<String>(&mut c)
            .await
            .map_err(err)?;
        Ok(())
    }

    async fn take(&self, max: usize, wait: Duration) -> Result<Vec<QueuedWebhook>, BackplaneError> {
        let due = {
            let mut last = herald_core::sync::lock(&self.last_reclaim);
            let now = tokio::time::Instant::now();
            let due = last.is_none_or(|t| now.duration_since(t) >= Duration::from_secs(1));
            if due {
                *last = Some(now);
            }
            due
        };
        let mut ids = Vec::new();
        if due {
            // Fails with NOGROUP before the group exists (fresh or restarted Redis): the read
            // below creates it.
            match self.claim_from_dead(max).await {
                Ok(claimed) => ids = claimed,
                Err(e) => tracing::debug!(error = %e, "webhook reclaim skipped"),
            }
        }
        if ids.is_empty() {
            let i = &self.inner;
            let read = {
                let mut c = i.blocking_conn().await?;
                redis::cmd("XREADGROUP")
                    .arg("GROUP")
                    .arg(GROUP)
                    .arg(&i.node)
                    .arg("COUNT")
                    .arg(max)
                    .arg("BLOCK")
                    // Below the command timeout: a longer wait returns empty sooner.
                    .arg(wait.min(Duration::from_secs(2)).as_millis().max(1) as u64)
                    .arg("STREAMS")
                    .arg(i.keys.webhooks())
                    .arg(">")
                    .query_async::<Option<StreamReadReply>>(&mut c)
                    .await
            };
            match read {
                Ok(reply) => {
                    ids = reply
                        .map(|r| r.keys.into_iter().flat_map(|k| k.ids).collect())
                        .unwrap_or_default()
                }
                Err(e) if e.code() == Some("NOGROUP") => {
                    self.ensure_group().await?;
                }
                Err(e) => return Err(err(e)),
            }
        }
        let mut out = Vec::with_capacity(ids.len());
        let mut malformed = Vec::new();
        for id in &ids {
            match entry(id) {
                Some(e) => out.push(e),
                None => malformed.push(id.id.clone()),
            }
        }
        if !malformed.is_empty() {
            tracing::warn!(count = malformed.len(), "malformed webhook entries dropped");
            self.ack(&malformed).await?;
        }
        Ok(out)
    }

    async fn ack(&self, ids: &[String]) -> Result<(), BackplaneError> {
        if ids.is_empty() {
            return Ok(());
        }
        let i = &self.inner;
        let mut c = i.conn().await?;
        redis::pipe()
            .cmd("XACK")
            .arg(i.keys.webhooks())
            .arg(GROUP)
            .arg(ids)
            .ignore()
            .cmd("XDEL")
            .arg(i.keys.webhooks())
            .arg(ids)
            .ignore()
            .query_async::<()>(&mut c)
            .await
            .map_err(err)
    }

    async fn dead_letter(&self, letter: DeadLetter) -> Result<(), BackplaneError> {
        let i = &self.inner;
        let mut c = i.conn().await?;
        redis::cmd("XADD")
            .arg(i.keys.webhooks_dead())
            .arg("MAXLEN")
            .arg("~")
            .arg(MAX_DEAD)
            .arg("*")
            .arg("app")
            .arg(letter.entry.app.as_str())
            .arg("event")
            .arg(letter.entry.event.to_json())
            .arg("t")
            .arg(letter.entry.time_ms)
            .arg("id")
            .arg(&letter.entry.id)
            .arg("url")
            .arg(&letter.url)
            .arg("reason")
            .arg(&letter.reason)
            .query_async::<String>(&mut c)
            .await
            .map_err(err)?;
        Ok(())
    }

    async fn dead_letters(&self, limit: usize) -> Result<Vec<DeadLetter>, BackplaneError> {
        let i = &self.inner;
        let mut c = i.conn().await?;
        let reply: redis::streams::StreamRangeReply = redis::cmd("XREVRANGE")
            .arg(i.keys.webhooks_dead())
            .arg("+")
            .arg("-")
            .arg("COUNT")
            .arg(limit)
            .query_async(&mut c)
            .await
            .map_err(err)?;
        let mut out: Vec<DeadLetter> = reply
            .ids
            .iter()
            .filter_map(|id| {
                let mut e = entry(id)?;
                e.id = id.get("id")?;
                Some(DeadLetter {
                    entry: e,
                    url: id.get("url")?,
                    reason: id.get("reason")?,
                })
            })
            .collect();
        out.reverse();
        Ok(out)
    }

    async fn depth(&self) -> Result<u64, BackplaneError> {
        // Acknowledged entries are deleted, so the length is waiting plus in delivery.
        let i = &self.inner;
        let mut c = i.conn().await?;
        redis::cmd("XLEN")
            .arg(i.keys.webhooks())
            .query_async(&mut c)
            .await
            .map_err(err)
    }

    async fn replay_dead_letters(&self, limit: usize) -> Result<usize, BackplaneError> {
        let i = &self.inner;
        let mut c = i.conn().await?;
        let reply: redis::streams::StreamRangeReply = redis::cmd("XRANGE")
            .arg(i.keys.webhooks_dead())
            .arg("-")
            .arg("+")
            .arg("COUNT")
            .arg(limit)
            .query_async(&mut c)
            .await
            .map_err(err)?;
        let mut replayed = 0;
        for id in &reply.ids {
            let (Some(app), Some(event), Some(t)) = (
                id.get::<String>("app"),
                id.get::<String>("event"),
                id.get::<u64>("t"),
            ) else {
                continue;
            };
            redis::pipe()
                .atomic()
                .cmd("XADD")
                .arg(i.keys.webhooks())
                .arg("*")
                .arg("app")
                .arg(app)
                .arg("event")
                .arg(event)
                .arg("t")
                .arg(t)
                .ignore()
                .cmd("XDEL")
                .arg(i.keys.webhooks_dead())
                .arg(&id.id)
                .ignore()
                .query_async::<()>(&mut c)
                .await
                .map_err(err)?;
            replayed += 1;
        }
        Ok(replayed)
    }

    async fn still_held(&self, ids: &[String]) -> Result<Vec<String>, BackplaneError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let i = &self.inner;
        let mut c = i.conn().await?;
        let mut pipe = redis::pipe();
        for id in ids {
            pipe.cmd("XPENDING")
                .arg(i.keys.webhooks())
                .arg(GROUP)
                .arg(id)
                .arg(id)
                .arg(1)
                .arg(&i.node);
        }
        let owned: Vec<Vec<(String, String, u64, u64)>> =
            pipe.query_async(&mut c).await.map_err(err)?;
        Ok(ids
            .iter()
            .zip(owned)
            .filter(|(_, rows)| !rows.is_empty())
            .map(|(id, _)| id.clone())
            .collect())
    }
}

/// Stream webhook targets: `XADD {stream} MAXLEN ~ 10000 * body … signature … key …`.
#[async_trait]
impl herald_core::webhook::WebhookStreams for crate::RedisBackplane {
    async fn append(
        &self,
        stream: &str,
        body: &str,
        signature: &str,
        key: &str,
    ) -> Result<(), BackplaneError> {
        let mut c = self.inner.conn().await?;
        redis::cmd("XADD")
            .arg(stream)
            .arg("MAXLEN")
            .arg("~")
            .arg(MAX_STREAM_TARGET)
            .arg("*")
            .arg("body")
            .arg(body)
            .arg("signature")
            .arg(signature)
            .arg("key")
            .arg(key)
            .query_async::<String>(&mut c)
            .await
            .map_err(err)?;
        Ok(())
    }
}
