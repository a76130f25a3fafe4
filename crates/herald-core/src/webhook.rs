//! Webhook events leave the node through a `WebhookQueue`: the hub decides *what* happened
//! (from the backplane's atomic transitions, so once per cluster) and queues it; a dispatcher
//! (in the server) takes entries, delivers them to the app's endpoints and acknowledges them.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use herald_protocol::webhook::WebhookEvent;
use tokio::sync::{Notify, mpsc};

use crate::backplane::BackplaneError;

/// A queued event, as the dispatcher sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueuedWebhook {
    pub id: String,
    pub app: crate::AppId,
    pub event: WebhookEvent,
    /// When the event happened (ms since the epoch): the body's `time_ms`.
    pub time_ms: u64,
}

/// An entry given up on after the retry budget.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeadLetter {
    pub entry: QueuedWebhook,
    pub url: String,
    pub reason: String,
}

/// Appends signed webhook batches to a Redis stream the app reads with its own consumer group
/// (webman-push-server's hook-server model).
#[async_trait]
pub trait WebhookStreams: Send + Sync + 'static {
    /// Fields: `body` (the exact JSON that `signature` signs), `signature`, `key` (app key).
    async fn append(
        &self,
        stream: &str,
        body: &str,
        signature: &str,
        key: &str,
    ) -> Result<(), BackplaneError>;
}

/// Durable (Redis stream) or in-memory queue of decided webhook events.
///
/// Guarantees: an event pushed is handed out by `take` until a dispatcher `ack`s it (at least
/// once). Entries taken by a dispatcher that stops without acknowledging are handed out again
/// (Redis: after they sat idle long enough to be reclaimed).
#[async_trait]
pub trait WebhookQueue: Send + Sync + 'static {
    async fn push(&self, app: &crate::AppId, event: &WebhookEvent) -> Result<(), BackplaneError>;
    /// Up to `max` entries, waiting up to `wait` when there are none.
    async fn take(&self, max: usize, wait: Duration) -> Result<Vec<QueuedWebhook>, BackplaneError>;
    async fn ack(&self, ids: &[String]) -> Result<(), BackplaneError>;
    async fn dead_letter(&self, letter: DeadLetter) -> Result<(), BackplaneError>;
    /// The most recent dead letters, newest last.
    async fn dead_letters(&self, limit: usize) -> Result<Vec<DeadLetter>, BackplaneError>;
    /// Queues up to `limit` dead letters again, oldest first, and removes them from the dead
    /// letters; returns how many. Endpoints that had already received an event get it again
    /// (at least once).
    async fn replay_dead_letters(&self, limit: usize) -> Result<usize, BackplaneError>;
    /// Entries not yet acknowledged (a gauge for operators).
    async fn depth(&self) -> Result<u64, BackplaneError>;

    /// Which of `ids` (taken by this node) are still this node's to deliver. A cluster queue
    /// hands the entries of a node that looked dead (paused, cut off) to a live one; the
    /// first node must then not send them too. A single node's queue holds all it took.
    async fn still_held(&self, ids: &[String]) -> Result<Vec<String>, BackplaneError> {
        Ok(ids.to_vec())
    }
}

pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// The single-node queue: entries live in process memory (lost if the process dies, which is
/// the price of running without Redis); same delivery policy as the Redis stream.
pub struct MemoryWebhookQueue {
    tx: mpsc::UnboundedSender<QueuedWebhook>,
    rx: tokio::sync::Mutex<mpsc::UnboundedReceiver<QueuedWebhook>>,
    next: AtomicU64,
    /// Entries pushed and not yet taken.
    waiting: AtomicU64,
    dead: Mutex<VecDeque<DeadLetter>>,
    woken: Notify,
}

/// Dead letters kept in memory.
const DEAD_LETTERS_KEPT: usize = 1000;

impl Default for MemoryWebhookQueue {
    fn default() -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        MemoryWebhookQueue {
            tx,
            rx: tokio::sync::Mutex::new(rx),
            next: AtomicU64::new(1),
            waiting: AtomicU64::new(0),
            dead: Mutex::new(VecDeque::new()),
            woken: Notify::new(),
        }
    }
}

#[async_trait]
impl WebhookQueue for MemoryWebhookQueue {
    async fn push(&self, app: &crate::AppId, event: &WebhookEvent) -> Result<(), BackplaneError> {
        let id = self.next.fetch_add(1, Ordering::Relaxed).to_string();
        let entry = QueuedWebhook {
            id,
            app: app.clone(),
            event: event.clone(),
            time_ms: now_ms(),
        };
        if self.tx.send(entry).is_ok() {
            self.waiting.fetch_add(1, Ordering::Relaxed);
        }
        self.woken.notify_one();
        Ok(())
    }

    async fn take(&self, max: usize, wait: Duration) -> Result<Vec<QueuedWebhook>, BackplaneError> {
        let mut rx = self.rx.lock().await;
        let mut out = Vec::new();
        match tokio::time::timeout(wait, rx.recv()).await {
            Ok(Some(first)) => out.push(first),
            _ => return Ok(out),
        }
        while out.len() < max {
            match rx.try_recv() {
                Ok(e) => out.push(e),
                Err(_) => break,
            }
        }
        self.waiting.fetch_sub(out.len() as u64, Ordering::Relaxed);
        Ok(out)
    }

    async fn ack(&self, _: &[String]) -> Result<(), BackplaneError> {
        // Taken entries are owned by the dispatcher until delivered or dead-lettered.
        Ok(())
    }

    async fn dead_letter(&self, letter: DeadLetter) -> Result<(), BackplaneError> {
        let mut dead = crate::sync::lock(&self.dead);
        if dead.len() >= DEAD_LETTERS_KEPT {
            dead.pop_front();
        }
        dead.push_back(letter);
        Ok(())
    }

    async fn dead_letters(&self, limit: usize) -> Result<Vec<DeadLetter>, BackplaneError> {
        let dead = crate::sync::lock(&self.dead);
        Ok(dead.iter().rev().take(limit).rev().cloned().collect())
    }

    async fn depth(&self) -> Result<u64, BackplaneError> {
        // Waiting entries; taken ones are owned by the dispatcher until it finishes them.
        Ok(self.waiting.load(Ordering::Relaxed))
    }

    async fn replay_dead_letters(&self, limit: usize) -> Result<usize, BackplaneError> {
        let letters: Vec<DeadLetter> = {
            let mut dead = crate::sync::lock(&self.dead);
            let n = limit.min(dead.len());
            dead.drain(..n).collect()
        };
        for letter in &letters {
            let mut entry = letter.entry.clone();
            entry.id = self.next.fetch_add(1, Ordering::Relaxed).to_string();
            if self.tx.send(entry).is_ok() {
                self.waiting.fetch_add(1, Ordering::Relaxed);
            }
        }
        Ok(letters.len())
    }
}

/// Behaviour every `WebhookQueue` must show; run on memory here and on Redis in herald-redis.
#[cfg(any(test, feature = "test-support"))]
pub mod conformance {
    #![allow(clippy::unwrap_used)] // Test code: a panic is how a check reports failure.

    use super::*;

    fn occupied(channel: &str) -> WebhookEvent {
        WebhookEvent::ChannelOccupied {
            channel: channel.into(),
        }
    }

    pub async fn run_all(q: &dyn WebhookQueue) {
        hands_out_pushed_entries_in_order(q).await;
        take_returns_empty_after_waiting(q).await;
        keeps_dead_letters_newest_last(q).await;
    }

    pub async fn hands_out_pushed_entries_in_order(q: &dyn WebhookQueue) {
        for ch in ["a", "b", "c"] {
            q.push(&crate::AppId::new("app-1"), &occupied(ch))
                .await
                .unwrap();
        }
        assert_eq!(q.depth().await.unwrap(), 3);
        let mut got = Vec::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while got.len() < 3 && tokio::time::Instant::now() < deadline {
            got.extend(q.take(10, Duration::from_millis(200)).await.unwrap());
        }
        let channels: Vec<&str> = got.iter().map(|e| e.event.channel()).collect();
        assert_eq!(channels, ["a", "b", "c"]);
        assert!(got.iter().all(|e| e.app == "app-1" && e.time_ms > 0));
        let ids: Vec<String> = got.iter().map(|e| e.id.clone()).collect();
        q.ack(&ids).await.unwrap();
        assert_eq!(
            q.depth().await.unwrap(),
            0,
            "nothing left once taken and acknowledged"
        );
    }

    pub async fn take_returns_empty_after_waiting(q: &dyn WebhookQueue) {
        assert!(
            q.take(10, Duration::from_millis(100))
                .await
                .unwrap()
                .is_empty()
        );
    }

    pub async fn keeps_dead_letters_newest_last(q: &dyn WebhookQueue) {
        for ch in ["x", "y"] {
            let entry = QueuedWebhook {
                id: format!("id-{ch}"),
                app: crate::AppId::new("app-1"),
                event: occupied(ch),
                time_ms: 1,
            };
            let letter = DeadLetter {
                entry,
                url: "http://h/w".into(),
                reason: "answered 500".into(),
            };
            q.dead_letter(letter).await.unwrap();
        }
        let letters = q.dead_letters(10).await.unwrap();
        let channels: Vec<&str> = letters.iter().map(|d| d.entry.event.channel()).collect();
        assert_eq!(channels, ["x", "y"]);
        assert_eq!(letters[1].entry.id, "id-y");
        assert_eq!(letters[1].reason, "answered 500");
        assert_eq!(q.dead_letters(1).await.unwrap().len(), 1);
        // Replay puts them back in the queue, oldest first, and empties the dead letters.
        assert_eq!(q.replay_dead_letters(10).await.unwrap(), 2);
        assert!(q.dead_letters(10).await.unwrap().is_empty());
        let mut again = Vec::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while again.len() < 2 && tokio::time::Instant::now() < deadline {
            again.extend(q.take(10, Duration::from_millis(200)).await.unwrap());
        }
        let channels: Vec<&str> = again.iter().map(|e| e.event.channel()).collect();
        assert_eq!(channels, ["x", "y"]);
        let ids: Vec<String> = again.iter().map(|e| e.id.clone()).collect();
        q.ack(&ids).await.unwrap();
    }

    #[cfg(test)]
    #[tokio::test]
    async fn memory_queue_conforms() {
        run_all(&MemoryWebhookQueue::default()).await;
    }
}
