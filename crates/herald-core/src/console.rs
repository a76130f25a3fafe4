//! The debug console's tap: a live log of what happens in an app, gathered from every node of
//! the cluster, and each node's connection count. Opt-in and bounded: while nobody watches an
//! app, logging it costs one atomic load; while someone does, each node sends at most
//! `LINES_PER_SECOND` lines of the app and counts the rest as dropped.
//!
//! A node with a viewer tells the cluster every `HEARTBEAT` (`Control::ConsoleWatch`); nodes
//! that heard it within `WATCH_TTL` log the app and report their connection count
//! (`Control::ConsoleStats`). Log lines travel as `Control::ConsoleLine` to every node, where
//! they reach the local viewers through a broadcast channel (a viewer that falls behind is told
//! how many lines it missed).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde_json::json;
use tokio::sync::{broadcast, mpsc};

use crate::AppId;
use crate::backplane::{Control, Relay};
use crate::sync::{lock, read, write};
use crate::webhook::now_ms;

/// How often a node with a viewer re-announces it, and every watched node reports its count.
pub const HEARTBEAT: Duration = Duration::from_secs(2);
/// A watch announcement holds this long.
const WATCH_TTL_MS: u64 = 10_000;
/// Nodes whose count is older than this are left out of the cluster view.
const STATS_TTL_MS: u64 = 3 * HEARTBEAT.as_millis() as u64;
/// Log lines per app and second that one node sends; beyond, lines are counted as dropped.
pub const LINES_PER_SECOND: u32 = 200;
/// Event data longer than this is cut (with a trailing `…`).
const MAX_DATA: usize = 1024;
/// Lines a viewer may fall behind before it skips ahead.
const VIEWER_BUFFER: usize = 1024;

/// Something that happened, as the console shows it.
#[derive(Debug)]
pub enum LogEntry<'a> {
    ConnectionOpened {
        socket_id: &'a str,
    },
    /// `code`: the close code the server sent; None when the client left.
    ConnectionClosed {
        socket_id: &'a str,
        code: Option<u16>,
    },
    Subscribed {
        socket_id: &'a str,
        channel: &'a str,
    },
    Unsubscribed {
        socket_id: &'a str,
        channel: &'a str,
    },
    ApiEvent {
        channel: &'a str,
        event: &'a str,
        data: &'a str,
    },
    ClientEvent {
        socket_id: &'a str,
        channel: &'a str,
        event: &'a str,
        data: &'a str,
    },
    Webhook {
        kind: &'a str,
        channel: &'a str,
        outcome: &'a str,
    },
}

fn cut(data: &str) -> String {
    if data.len() <= MAX_DATA {
        return data.to_owned();
    }
    let mut end = MAX_DATA;
    while !data.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &data[..end])
}

impl LogEntry<'_> {
    /// One JSON line; `type` comes first (the SSE writer tells `dropped` lines by it).
    fn to_line(&self, node: &str) -> String {
        let ts = now_ms();
        let v = match self {
            LogEntry::ConnectionOpened { socket_id } => {
                json!({"type": "connection_opened", "ts": ts, "node": node, "socket_id": socket_id})
            }
            LogEntry::ConnectionClosed { socket_id, code } => {
                json!({"type": "connection_closed", "ts": ts, "node": node, "socket_id": socket_id, "code": code})
            }
            LogEntry::Subscribed { socket_id, channel } => {
                json!({"type": "subscribed", "ts": ts, "node": node, "socket_id": socket_id, "channel": channel})
            }
            LogEntry::Unsubscribed { socket_id, channel } => {
                json!({"type": "unsubscribed", "ts": ts, "node": node, "socket_id": socket_id, "channel": channel})
            }
            LogEntry::ApiEvent {
                channel,
                event,
                data,
            } => {
                json!({"type": "api_event", "ts": ts, "node": node, "channel": channel, "event": event, "data": cut(data)})
            }
            LogEntry::ClientEvent {
                socket_id,
                channel,
                event,
                data,
            } => {
                json!({"type": "client_event", "ts": ts, "node": node, "socket_id": socket_id, "channel": channel, "event": event, "data": cut(data)})
            }
            LogEntry::Webhook {
                kind,
                channel,
                outcome,
            } => {
                json!({"type": "webhook", "ts": ts, "node": node, "kind": kind, "channel": channel, "outcome": outcome})
            }
        };
        // serde_json keeps insertion order only with `preserve_order`; build the prefix by hand.
        let mut line = format!("{{\"type\":{}", v["type"]);
        if let serde_json::Value::Object(map) = &v {
            for (k, value) in map.iter().filter(|(k, _)| *k != "type") {
                line.push_str(&format!(",{}:{}", json!(k), value));
            }
        }
        line.push('}');
        line
    }
}

/// A line saying how many lines a node left out to stay within its rate.
pub fn dropped_line(node: &str, count: u64) -> String {
    format!(
        "{{\"type\":\"dropped\",\"ts\":{},\"node\":{},\"count\":{count}}}",
        now_ms(),
        json!(node)
    )
}

/// True for lines made by `dropped_line`.
pub fn is_dropped_line(line: &str) -> bool {
    line.starts_with("{\"type\":\"dropped\"")
}

struct Bucket {
    second: u64,
    used: u32,
    dropped: u64,
}

pub(crate) struct AppConsole {
    watched_until_ms: AtomicU64,
    tx: broadcast::Sender<Arc<str>>,
    bucket: Mutex<Bucket>,
    /// node → (connections, when reported, ms).
    nodes: Mutex<HashMap<String, (u64, u64)>>,
}

impl Default for AppConsole {
    fn default() -> Self {
        AppConsole {
            watched_until_ms: AtomicU64::new(0),
            tx: broadcast::channel(VIEWER_BUFFER).0,
            bucket: Mutex::new(Bucket {
                second: 0,
                used: 0,
                dropped: 0,
            }),
            nodes: Mutex::new(HashMap::new()),
        }
    }
}

impl AppConsole {
    pub(crate) fn watched(&self) -> bool {
        self.watched_until_ms.load(Ordering::Relaxed) > now_ms()
    }

    pub(crate) fn has_viewers(&self) -> bool {
        self.tx.receiver_count() > 0
    }

    pub(crate) fn mark_watched(&self) {
        self.watched_until_ms
            .fetch_max(now_ms() + WATCH_TTL_MS, Ordering::Relaxed);
    }

    pub(crate) fn viewer(&self) -> broadcast::Receiver<Arc<str>> {
        self.mark_watched();
        self.tx.subscribe()
    }

    /// The line for `entry` when this second's budget allows it.
    pub(crate) fn admit(&self, node: &str, entry: &LogEntry<'_>) -> Option<Arc<str>> {
        let second = now_ms() / 1000;
        let mut b = lock(&self.bucket);
        if b.second != second {
            b.second = second;
            b.used = 0;
        }
        if b.used >= LINES_PER_SECOND {
            b.dropped += 1;
            return None;
        }
        b.used += 1;
        drop(b);
        Some(Arc::from(entry.to_line(node)))
    }

    /// Lines dropped since the last call.
    pub(crate) fn take_dropped(&self) -> u64 {
        std::mem::take(&mut lock(&self.bucket).dropped)
    }

    /// Hands a line to this node's viewers.
    pub(crate) fn show(&self, line: Arc<str>) {
        if self.has_viewers() {
            let _ = self.tx.send(line);
        }
    }

    pub(crate) fn node_stats(&self, node: &str, connections: u64) {
        lock(&self.nodes).insert(node.to_owned(), (connections, now_ms()));
    }

    /// Connections per node that reported recently.
    pub(crate) fn nodes(&self) -> Vec<(String, u64)> {
        let now = now_ms();
        let mut nodes = lock(&self.nodes);
        nodes.retain(|_, (_, seen)| now.saturating_sub(*seen) <= STATS_TTL_MS);
        let mut out: Vec<(String, u64)> = nodes.iter().map(|(n, (c, _))| (n.clone(), *c)).collect();
        out.sort();
        out
    }
}

/// The node's console tap: one `AppConsole` per app, and the queue of lines on their way to
/// the other nodes. Costs one atomic load per entry while nobody watches the app.
pub struct Console {
    /// Made for an app when someone watches it (here or on another node).
    apps: RwLock<HashMap<AppId, Arc<AppConsole>>>,
    /// Console lines on their way to the other nodes (set by `spawn`).
    out: std::sync::OnceLock<mpsc::Sender<(AppId, Control)>>,
    node_id: String,
}

impl Console {
    pub fn new(node_id: &str) -> Console {
        Console {
            apps: RwLock::default(),
            out: std::sync::OnceLock::new(),
            node_id: node_id.to_owned(),
        }
    }

    /// Logs `entry` for the app's console viewers on every node, if anyone watches.
    fn get(&self, app: &AppId) -> Option<Arc<AppConsole>> {
        read(&self.apps).get(app).cloned()
    }

    fn get_or_insert(&self, app: &AppId) -> Arc<AppConsole> {
        if let Some(c) = self.get(app) {
            return c;
        }
        write(&self.apps).entry(app.clone()).or_default().clone()
    }

    pub fn log(&self, app: &AppId, entry: LogEntry<'_>) {
        let Some(c) = self.get(app) else {
            return;
        };
        if !c.watched() {
            return;
        }
        if let Some(line) = c.admit(&self.node_id, &entry) {
            self.send(app, &c, line);
        }
    }

    fn send(&self, app: &AppId, c: &AppConsole, line: Arc<str>) {
        c.show(line.clone());
        if let Some(out) = self.out.get() {
            // A full queue means Redis lags: the console loses the line, nothing else waits.
            let _ = out.try_send((app.clone(), Control::ConsoleLine(line.to_string())));
        }
    }

    /// A live feed of the app's console log (from every node). `connections`: the app's
    /// connections on this node.
    pub fn viewer(&self, app: &AppId, connections: u64) -> broadcast::Receiver<Arc<str>> {
        let c = self.get_or_insert(app);
        let rx = c.viewer();
        c.node_stats(&self.node_id, connections);
        rx
    }

    /// Connections of the app per node that reported within the last seconds (this node,
    /// with `connections`, always included).
    pub fn nodes(&self, app: &AppId, connections: u64) -> Vec<(String, u64)> {
        let c = self.get_or_insert(app);
        c.node_stats(&self.node_id, connections);
        c.nodes()
    }

    /// Applies a console command from another node; false for commands that are not the
    /// console's.
    pub fn apply(&self, app: &AppId, control: &Control) -> bool {
        let c = match control {
            Control::ConsoleWatch | Control::ConsoleLine(_) | Control::ConsoleStats { .. } => {
                self.get_or_insert(app)
            }
            _ => return false,
        };
        match control {
            Control::ConsoleWatch => c.mark_watched(),
            Control::ConsoleLine(line) => c.show(Arc::from(line.as_str())),
            Control::ConsoleStats { node, connections } => c.node_stats(node, *connections),
            _ => return false,
        }
        true
    }

    /// Runs the console's cluster traffic: forwards log lines, announces local viewers and
    /// reports this node's counts (`connections(app)`) while anyone watches. Idle apps cost a
    /// check per heartbeat.
    pub fn spawn(
        self: &Arc<Self>,
        relay: Arc<dyn Relay>,
        connections: impl Fn(&AppId) -> u64 + Send + Sync + 'static,
    ) -> tokio::task::JoinHandle<()> {
        let (tx, mut rx) = mpsc::channel::<(AppId, Control)>(4096);
        let _ = self.out.set(tx);
        let console = self.clone();
        tokio::spawn(async move {
            let mut beat = tokio::time::interval(HEARTBEAT);
            loop {
                tokio::select! {
                    msg = rx.recv() => {
                        let Some((app, control)) = msg else { return };
                        let _ = relay.control(&app, &control).await;
                    }
                    _ = beat.tick() => console.heartbeat(relay.as_ref(), &connections).await,
                }
            }
        })
    }

    async fn heartbeat(&self, relay: &dyn Relay, connections: &impl Fn(&AppId) -> u64) {
        let node = &self.node_id;
        let apps: Vec<(AppId, Arc<AppConsole>)> = read(&self.apps)
            .iter()
            .map(|(a, c)| (a.clone(), c.clone()))
            .collect();
        for (app, c) in &apps {
            if c.has_viewers() {
                c.mark_watched();
                let _ = relay.control(app, &Control::ConsoleWatch).await;
            }
            if !c.watched() {
                continue;
            }
            let count = connections(app);
            c.node_stats(node, count);
            let stats = Control::ConsoleStats {
                node: node.clone(),
                connections: count,
            };
            let _ = relay.control(app, &stats).await;
            let dropped = c.take_dropped();
            if dropped > 0 {
                self.send(app, c, Arc::from(dropped_line(node, dropped)));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_json_with_the_type_first_and_long_data_cut() {
        let data = "é".repeat(1000);
        let line = LogEntry::ApiEvent {
            channel: "c",
            event: "e",
            data: &data,
        }
        .to_line("n1");
        assert!(line.starts_with("{\"type\":\"api_event\","), "{line}");
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["node"], "n1");
        assert!(v["data"].as_str().unwrap().ends_with('…'));
        assert!(v["data"].as_str().unwrap().len() <= MAX_DATA + 3);
        let dropped = dropped_line("n1", 7);
        assert!(is_dropped_line(&dropped));
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&dropped).unwrap()["count"],
            7
        );
    }

    #[test]
    fn the_budget_admits_a_bounded_number_per_second() {
        let c = AppConsole::default();
        let e = LogEntry::ConnectionOpened { socket_id: "1.1" };
        let admitted = (0..LINES_PER_SECOND + 50)
            .filter(|_| c.admit("n", &e).is_some())
            .count() as u32;
        // A second boundary may fall inside the loop: at most two budgets.
        assert!((LINES_PER_SECOND..=2 * LINES_PER_SECOND).contains(&admitted));
        assert_eq!(
            c.take_dropped() + u64::from(admitted),
            u64::from(LINES_PER_SECOND) + 50
        );
    }
}
