//! The node's one pub/sub connection: SUBSCRIBEs to a Pusher channel's topic while the node has
//! local subscribers (requests batched into one command), hands what other nodes publish to the
//! hub, and reconnects with backoff, resubscribing everything, when Redis goes away. Every
//! command on it, and a PING each heartbeat, must be answered within the command timeout: a
//! link that went silent (a partition, a middlebox that dropped the flow) is treated as lost.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use futures_util::StreamExt;
use herald_core::backplane::Inbound;
use tokio::sync::{mpsc, oneshot};

use crate::keys::Topic;
use crate::{COMMAND_TIMEOUT, Inner, wire};

pub enum ListenCmd {
    /// Subscribe (if not yet) and answer once Redis confirmed.
    Listen(String, oneshot::Sender<Result<(), String>>),
    Unlisten(String),
}

/// Most topics in one SUBSCRIBE command.
const BATCH: usize = 512;

pub async fn run(inner: Arc<Inner>, mut cmds: mpsc::UnboundedReceiver<ListenCmd>) {
    // topic → local references; a topic is subscribed while its count is above zero.
    let mut counts: HashMap<String, usize> = HashMap::new();
    let mut backoff = Duration::from_millis(100);
    let mut first = true;
    let mut moves = inner.link.generation();
    loop {
        // Where Redis is now (behind Sentinel, the master the sentinels name).
        moves.borrow_and_update();
        let conn = match inner.link.current().await {
            Ok(current) => answered(current.client.get_async_pubsub()).await,
            Err(e) => Err(e.to_string()),
        };
        let conn = match conn {
            Ok(c) => c,
            Err(e) => {
                mark_down(&inner, &e);
                inner.link.suspect();
                fail_pending(&mut cmds, &mut counts, "Redis unreachable");
                wait(backoff, &mut moves).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
                continue;
            }
        };
        let (mut sink, mut stream) = conn.split();
        let mut topics: Vec<String> = inner
            .apps
            .iter()
            .map(|a| inner.keys.control_topic(a))
            .collect();
        topics.extend(
            counts
                .iter()
                .filter(|(_, n)| **n > 0)
                .map(|(t, _)| t.clone()),
        );
        let mut ok = true;
        for chunk in topics.chunks(BATCH) {
            if let Err(e) = answered(sink.subscribe(chunk)).await {
                mark_down(&inner, &e);
                inner.link.suspect();
                ok = false;
                break;
            }
        }
        if !ok {
            wait(backoff, &mut moves).await;
            continue;
        }
        backoff = Duration::from_millis(100);
        if !first {
            inner.reconnects.fetch_add(1, Ordering::Relaxed);
            tracing::info!(
                topics = topics.len(),
                "Redis pub/sub reconnected; re-asserting this node's state"
            );
        }
        // Ready only once Redis holds this node's state again (or, reaped meanwhile, the node
        // has fenced itself and sends its clients to rejoin). A node just started has none.
        if !first {
            let _ = inner.inbound.send(Inbound::Resubscribed).await;
            inner.clone().recover().await;
        }
        first = false;
        inner.pubsub_up.store(true, Ordering::SeqCst);

        let mut ping = tokio::time::interval(inner.config.heartbeat);
        ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ping.reset();
        loop {
            tokio::select! {
                _ = ping.tick() => {
                    if let Err(e) = answered(sink.ping::<redis::Value>()).await {
                        mark_down(&inner, &format!("pub/sub PING unanswered: {e}"));
                        inner.link.suspect();
                        break;
                    }
                }
                // Behind Sentinel: the master moved; subscribe there (publishers already
                // write to it).
                Ok(()) = moves.changed() => {
                    mark_down(&inner, "the Redis master moved");
                    break;
                }
                cmd = cmds.recv() => {
                    let Some(cmd) = cmd else { return };
                    let mut batch = vec![cmd];
                    while batch.len() < BATCH {
                        match cmds.try_recv() {
                            Ok(c) => batch.push(c),
                            Err(_) => break,
                        }
                    }
                    if let Err(e) = apply(&mut sink, &mut counts, batch).await {
                        mark_down(&inner, &e);
                        break;
                    }
                }
                msg = stream.next() => match msg {
                    Some(msg) => dispatch(&inner, msg).await,
                    None => {
                        mark_down(&inner, "pub/sub connection closed");
                        inner.link.suspect();
                        break;
                    }
                },
            }
        }
    }
}

/// Waits out a backoff, cut short when the master moves (behind Sentinel: the new one is
/// worth trying at once).
async fn wait(backoff: Duration, moves: &mut tokio::sync::watch::Receiver<u64>) {
    tokio::select! {
        _ = tokio::time::sleep(backoff) => {}
        _ = moves.changed() => {}
    }
}

/// `op`'s result, or an error once it has gone unanswered for the command timeout.
async fn answered<T>(
    op: impl std::future::Future<Output = redis::RedisResult<T>>,
) -> Result<T, String> {
    match tokio::time::timeout(COMMAND_TIMEOUT, op).await {
        Ok(r) => r.map_err(|e| e.to_string()),
        Err(_) => Err(format!("no answer within {} s", COMMAND_TIMEOUT.as_secs())),
    }
}

fn mark_down(inner: &Inner, why: &str) {
    if inner.pubsub_up.swap(false, Ordering::SeqCst) {
        tracing::error!(
            error = why,
            "Redis pub/sub lost; node not ready until it is back"
        );
    }
}

/// While disconnected, listen requests fail at once (the caller reports a server error);
/// unlisten requests still update the counts so the reconnect subscribes the right set.
fn fail_pending(
    cmds: &mut mpsc::UnboundedReceiver<ListenCmd>,
    counts: &mut HashMap<String, usize>,
    why: &str,
) {
    while let Ok(cmd) = cmds.try_recv() {
        match cmd {
            ListenCmd::Listen(_, reply) => {
                let _ = reply.send(Err(why.to_owned()));
            }
            ListenCmd::Unlisten(topic) => {
                release(counts, &topic);
            }
        }
    }
}

fn release(counts: &mut HashMap<String, usize>, topic: &str) -> bool {
    match counts.get_mut(topic) {
        Some(n) if *n > 1 => {
            *n -= 1;
            false
        }
        Some(_) => {
            counts.remove(topic);
            true
        }
        None => false,
    }
}

async fn apply(
    sink: &mut redis::aio::PubSubSink,
    counts: &mut HashMap<String, usize>,
    batch: Vec<ListenCmd>,
) -> Result<(), String> {
    let mut subscribe = Vec::new();
    let mut unsubscribe = Vec::new();
    let mut waiters = Vec::new();
    for cmd in batch {
        match cmd {
            ListenCmd::Listen(topic, reply) => {
                let n = counts.entry(topic.clone()).or_default();
                *n += 1;
                if *n == 1 {
                    unsubscribe.retain(|t| t != &topic);
                    subscribe.push(topic);
                }
                waiters.push(reply);
            }
            ListenCmd::Unlisten(topic) => {
                if release(counts, &topic) {
                    subscribe.retain(|t| t != &topic);
                    unsubscribe.push(topic);
                }
            }
        }
    }
    let result = async {
        if !subscribe.is_empty() {
            answered(sink.subscribe(&subscribe)).await?;
        }
        if !unsubscribe.is_empty() {
            answered(sink.unsubscribe(&unsubscribe)).await?;
        }
        Ok::<_, String>(())
    }
    .await;
    for w in waiters {
        let _ = w.send(result.clone());
    }
    result
}

async fn dispatch(inner: &Inner, msg: redis::Msg) {
    let topic = msg.get_channel_name().to_owned();
    let payload = msg.get_payload_bytes();
    let inbound = match inner.keys.parse_topic(&topic) {
        Some(Topic::Channel { app, channel }) => match wire::decode_envelope(channel, payload) {
            Some((origin, envelope)) if origin != inner.node => Inbound::Envelope {
                app: herald_core::AppId::new(app),
                envelope,
            },
            Some(_) => return, // Our own publish: already delivered locally.
            None => {
                tracing::warn!(topic, "malformed envelope ignored");
                return;
            }
        },
        Some(Topic::Control { app }) => match wire::decode_control(payload) {
            Some((origin, control)) if origin != inner.node => Inbound::Control {
                app: herald_core::AppId::new(app),
                control,
            },
            Some(_) => return,
            None => {
                tracing::warn!(topic, "malformed control message ignored");
                return;
            }
        },
        None => return,
    };
    if inner.inbound.send(inbound).await.is_err() {
        tracing::debug!("hub gone; dropping inbound message");
    }
}
