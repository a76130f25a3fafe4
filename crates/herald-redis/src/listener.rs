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
    if inner.link.is_cluster() {
        return run_sharded(inner, cmds).await;
    }
    // topic → local references; a topic is subscribed while its count is above zero.
    let mut counts: HashMap<String, usize> = HashMap::new();
    let mut backoff = Duration::from_millis(100);
    let mut first = true;
    let mut moves = inner.link.generation();
    let mut apps_changed = inner.config.apps.changes();
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
        apps_changed.borrow_and_update();
        let mut fixed = inner.fixed_topics();
        let mut topics: Vec<String> = fixed.iter().cloned().collect();
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
            inner.apps_announced.send_modify(|n| *n += 1);
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
                // An app was added at runtime: its control topic from now on.
                Ok(()) = apps_changed.changed() => {
                    let new = inner.new_fixed_topics(&mut fixed);
                    if !new.is_empty() && let Err(e) = answered(sink.subscribe(&new)).await {
                        mark_down(&inner, &e);
                        inner.link.suspect();
                        break;
                    }
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
                    Some(msg) => dispatch(&inner, msg.get_channel_name(), msg.get_payload_bytes()).await,
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

/// On a Redis Cluster: sharded pub/sub (SSUBSCRIBE on the shard that owns each topic's slot,
/// one topic per command since a command's channels must share a slot), messages and
/// disconnections arriving as RESP3 pushes. Any lost node connection, or a PING to the masters
/// unanswered, rebuilds the connection and resubscribes everything, as on one server; a topic
/// Redis unsubscribed by itself (its slot moved to another shard) is subscribed again at once.
async fn run_sharded(inner: Arc<Inner>, mut cmds: mpsc::UnboundedReceiver<ListenCmd>) {
    let mut counts: HashMap<String, usize> = HashMap::new();
    let mut backoff = Duration::from_millis(100);
    let mut first = true;
    let mut apps_changed = inner.config.apps.changes();
    loop {
        let (push, mut pushes) = mpsc::unbounded_channel();
        let mut conn = match answered(inner.link.cluster_pubsub(push)).await {
            Ok(c) => c,
            Err(e) => {
                mark_down(&inner, &e);
                fail_pending(&mut cmds, &mut counts, "Redis unreachable");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
                continue;
            }
        };
        apps_changed.borrow_and_update();
        let mut fixed = inner.fixed_topics();
        let mut topics: Vec<String> = fixed.iter().cloned().collect();
        topics.extend(
            counts
                .iter()
                .filter(|(_, n)| **n > 0)
                .map(|(t, _)| t.clone()),
        );
        if let Err(e) = shard_subscribe(&conn, topics.clone()).await {
            mark_down(&inner, &e);
            fail_pending(&mut cmds, &mut counts, "Redis unreachable");
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(5));
            continue;
        }
        backoff = Duration::from_millis(100);
        if !first {
            inner.reconnects.fetch_add(1, Ordering::Relaxed);
            tracing::info!(
                topics = topics.len(),
                "Redis Cluster pub/sub reconnected; re-asserting this node's state"
            );
            let _ = inner.inbound.send(Inbound::Resubscribed).await;
            inner.apps_announced.send_modify(|n| *n += 1);
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
                    // Routed to every master: one that is gone is noticed here.
                    let ping_cmd = redis::cmd("PING");
                    if let Err(e) = answered(ping_cmd.query_async::<redis::Value>(&mut conn)).await {
                        mark_down(&inner, &format!("PING to the cluster's masters unanswered: {e}"));
                        break;
                    }
                }
                Ok(()) = apps_changed.changed() => {
                    let new = inner.new_fixed_topics(&mut fixed);
                    if let Err(e) = shard_subscribe(&conn, new).await {
                        mark_down(&inner, &e);
                        break;
                    }
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
                    if let Err(e) = apply_sharded(&conn, &mut counts, batch).await {
                        mark_down(&inner, &e);
                        break;
                    }
                }
                push = pushes.recv() => match push {
                    None => {
                        mark_down(&inner, "pub/sub connection closed");
                        break;
                    }
                    Some(p) => match (p.kind, p.data.as_slice()) {
                        (redis::PushKind::SMessage, [topic, payload]) => {
                            if let (Some(topic), Some(payload)) = (bytes(topic), bytes(payload)) {
                                dispatch(&inner, &String::from_utf8_lossy(topic), payload).await;
                            }
                        }
                        (redis::PushKind::Disconnection, _) => {
                            mark_down(&inner, "a Redis Cluster node closed its connection");
                            break;
                        }
                        // Redis drops the subscriptions of a slot that moved to another shard.
                        (redis::PushKind::SUnsubscribe, [topic, ..]) => {
                            let topic = bytes(topic).map(|t| String::from_utf8_lossy(t).into_owned());
                            let wanted = topic.as_ref().is_some_and(|t| {
                                counts.get(t).is_some_and(|n| *n > 0) || fixed.contains(t)
                            });
                            if let (true, Some(topic)) = (wanted, topic) {
                                tracing::info!(topic, "Redis dropped a shard subscription (its slot moved); subscribing again");
                                if let Err(e) = shard_subscribe(&conn, vec![topic]).await {
                                    mark_down(&inner, &e);
                                    break;
                                }
                            }
                        }
                        _ => {}
                    },
                },
            }
        }
    }
}

fn bytes(v: &redis::Value) -> Option<&[u8]> {
    match v {
        redis::Value::BulkString(b) => Some(b),
        redis::Value::SimpleString(s) => Some(s.as_bytes()),
        _ => None,
    }
}

/// SSUBSCRIBE each topic (a command's channels must share a slot), many at once.
async fn shard_subscribe(
    conn: &redis::cluster_async::ClusterConnection,
    topics: Vec<String>,
) -> Result<(), String> {
    let mut pending = futures_util::stream::iter(topics.into_iter().map(|t| {
        let mut c = conn.clone();
        async move { answered(c.ssubscribe(t)).await }
    }))
    .buffer_unordered(64);
    while let Some(r) = pending.next().await {
        r?;
    }
    Ok(())
}

async fn shard_unsubscribe(
    conn: &redis::cluster_async::ClusterConnection,
    topics: Vec<String>,
) -> Result<(), String> {
    let mut pending = futures_util::stream::iter(topics.into_iter().map(|t| {
        let mut c = conn.clone();
        async move { answered(c.sunsubscribe(t)).await }
    }))
    .buffer_unordered(64);
    while let Some(r) = pending.next().await {
        r?;
    }
    Ok(())
}

/// `apply` for sharded pub/sub.
async fn apply_sharded(
    conn: &redis::cluster_async::ClusterConnection,
    counts: &mut HashMap<String, usize>,
    batch: Vec<ListenCmd>,
) -> Result<(), String> {
    let (subscribe, unsubscribe, waiters) = plan(counts, batch);
    let result = async {
        shard_subscribe(conn, subscribe).await?;
        shard_unsubscribe(conn, unsubscribe).await
    }
    .await;
    for w in waiters {
        let _ = w.send(result.clone());
    }
    result
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

/// What a batch of listen requests changes: topics to subscribe, to unsubscribe, and the
/// callers waiting for the subscriptions.
type Waiters = Vec<oneshot::Sender<Result<(), String>>>;

fn plan(
    counts: &mut HashMap<String, usize>,
    batch: Vec<ListenCmd>,
) -> (Vec<String>, Vec<String>, Waiters) {
    let mut subscribe = Vec::new();
    let mut unsubscribe: Vec<String> = Vec::new();
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
    (subscribe, unsubscribe, waiters)
}

async fn apply(
    sink: &mut redis::aio::PubSubSink,
    counts: &mut HashMap<String, usize>,
    batch: Vec<ListenCmd>,
) -> Result<(), String> {
    let (subscribe, unsubscribe, waiters) = plan(counts, batch);
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

async fn dispatch(inner: &Inner, topic: &str, payload: &[u8]) {
    let inbound = match inner.keys.parse_topic(topic) {
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
        Some(Topic::Apps) => {
            // Another node changed the app store: reload (this node's own change too; the
            // reload is idempotent).
            inner.apps_announced.send_modify(|n| *n += 1);
            return;
        }
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
