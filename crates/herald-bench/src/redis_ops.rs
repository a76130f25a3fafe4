//! `redis-ops`: what each client operation costs the Redis backplane, and publish throughput
//! with Redis CPU per publish. Reads `INFO commandstats` of every Redis node given with
//! `--redis` before and after each phase (connect, subscribe, presence join, publish,
//! disconnect), subtracts the background rate measured while idle (heartbeats, stream polls),
//! and divides by the phase's operations. Then C publishers post to K channels (each with a
//! subscriber on the other node) as fast as they can for T seconds.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::Args;
use futures_util::StreamExt;
use herald_protocol::Secret;
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

use crate::{Target, api, proc_stat, ws};

#[derive(Args, Debug)]
pub struct RedisOpsArgs {
    #[command(flatten)]
    pub target: Target,
    /// Every Redis node to read `INFO commandstats` from (`redis://host:port`, comma separated;
    /// all six of a 3+3 cluster).
    #[arg(long, value_delimiter = ',', required = true)]
    pub redis: Vec<String>,
    /// Redis process ids, for their CPU (/proc).
    #[arg(long, value_delimiter = ',')]
    pub redis_pid: Vec<u32>,
    /// Operations per phase.
    #[arg(long, default_value_t = 400)]
    pub count: usize,
    /// Throughput phase: channels (one subscriber each, on the second node).
    #[arg(long, default_value_t = 64)]
    pub channels: usize,
    /// Throughput phase: concurrent HTTP publishers.
    #[arg(long, default_value_t = 32)]
    pub publishers: usize,
    /// Throughput phase: seconds.
    #[arg(long, default_value_t = 10)]
    pub seconds: u64,
    /// A label for the JSON line (the topology).
    #[arg(long, default_value = "")]
    pub label: String,
}

/// calls and µs per command, summed over the nodes.
type Stats = BTreeMap<String, (u64, u64)>;

async fn commandstats(urls: &[String]) -> anyhow::Result<Stats> {
    let mut total = Stats::new();
    for url in urls {
        let client = redis::Client::open(url.as_str())?;
        let mut c = client.get_multiplexed_async_connection().await?;
        let info: String = redis::cmd("INFO")
            .arg("commandstats")
            .query_async(&mut c)
            .await?;
        for line in info.lines() {
            let Some((name, rest)) = line
                .strip_prefix("cmdstat_")
                .and_then(|l| l.split_once(':'))
            else {
                continue;
            };
            let field = |k: &str| {
                rest.split(',')
                    .find_map(|kv| kv.strip_prefix(k)?.strip_prefix('='))
                    .and_then(|v| v.parse::<f64>().ok())
                    .unwrap_or(0.0)
            };
            let e = total.entry(name.to_owned()).or_default();
            e.0 += field("calls") as u64;
            e.1 += field("usec") as u64;
        }
    }
    Ok(total)
}

/// The commands of a phase: after − before − background × seconds, per operation.
fn per_op(
    before: &Stats,
    after: &Stats,
    background: &BTreeMap<String, f64>,
    secs: f64,
    ops: usize,
) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    for (name, (calls, _)) in after {
        let was = before.get(name).map_or(0, |s| s.0);
        let idle = background.get(name).copied().unwrap_or(0.0) * secs;
        let n = (*calls as f64 - was as f64 - idle) / ops as f64;
        if n > 0.05 {
            out.insert(name.clone(), (n * 100.0).round() / 100.0);
        }
    }
    out
}

/// Commands herald sends in the measured phases; everything else there runs inside a script
/// (and a script's time already includes its calls). Background traffic (heartbeats, stream
/// polls, the pool's checks while idle) is subtracted.
const TOP_LEVEL: &[&str] = &[
    "evalsha",
    "eval",
    "script|load",
    "publish",
    "spublish",
    "subscribe",
    "ssubscribe",
    "unsubscribe",
    "sunsubscribe",
    "ping",
    "unwatch",
];

fn top_level(name: &str) -> bool {
    TOP_LEVEL.contains(&name)
}

/// Time spent in top-level commands (scripts whole).
fn usec_of(before: &Stats, after: &Stats) -> u64 {
    after
        .iter()
        .filter(|(k, _)| top_level(k))
        .map(|(k, (_, us))| us.saturating_sub(before.get(k).map_or(0, |s| s.1)))
        .sum()
}

pub async fn run(args: RedisOpsArgs) -> anyhow::Result<()> {
    let t = &args.target;
    let port2 = t.port2.unwrap_or(t.port);
    let ports = [t.port, port2];
    let redis = &args.redis;

    // Background: what the nodes do while idle.
    let idle_secs = 3.0;
    let s0 = commandstats(redis).await?;
    tokio::time::sleep(Duration::from_secs_f64(idle_secs)).await;
    let s1 = commandstats(redis).await?;
    let background: BTreeMap<String, f64> = s1
        .iter()
        .map(|(k, (c, _))| {
            let was = s0.get(k).map_or(0, |s| s.0);
            (k.clone(), (c - was) as f64 / idle_secs)
        })
        .collect();
    eprintln!("background: {background:?} calls/s");

    let mut phases = BTreeMap::new();
    let background_us: f64 = {
        let us = usec_of(&s0, &s1) as f64;
        us / idle_secs
    };
    let mut phase = |name: &str, before: &Stats, after: &Stats, secs: f64, ops: usize| {
        let ops_map = per_op(before, after, &background, secs, ops);
        // Round trips: top-level commands other than the pool's UNWATCH (pipelined with its
        // PING in one round trip).
        let trips: f64 = ops_map
            .iter()
            .filter(|(k, _)| top_level(k) && k.as_str() != "unwatch")
            .map(|(_, v)| v)
            .sum();
        let inner: f64 = ops_map
            .iter()
            .filter(|(k, _)| !top_level(k))
            .map(|(_, v)| v)
            .sum();
        let us = (usec_of(before, after) as f64 - background_us * secs).max(0.0) / ops as f64;
        eprintln!(
            "{name}: {trips:.2} round trips, {inner:.2} calls inside scripts, {us:.1} µs of command time per operation {ops_map:?}"
        );
        phases.insert(
            name.to_owned(),
            json!({"round_trips": trips, "script_calls": inner, "usec_per_op": us, "commands": ops_map}),
        );
    };

    // Connect.
    let before = commandstats(redis).await?;
    let start = Instant::now();
    let mut conns = Vec::with_capacity(args.count);
    for i in 0..args.count {
        conns.push(ws::connect(&t.host, ports[i % 2], &t.key).await?);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after = commandstats(redis).await?;
    phase(
        "connect",
        &before,
        &after,
        start.elapsed().as_secs_f64(),
        args.count,
    );

    // Subscribe, each to a channel of its own (the first subscriber: an occupied channel and a
    // new topic on its node).
    let before = after;
    let start = Instant::now();
    for (i, c) in conns.iter_mut().enumerate() {
        ws::subscribe(c, &format!("ops-{i}")).await?;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after = commandstats(redis).await?;
    phase(
        "subscribe (new channel)",
        &before,
        &after,
        start.elapsed().as_secs_f64(),
        args.count,
    );

    // Subscribe to one shared channel (already occupied after the first).
    let before = after;
    let start = Instant::now();
    for c in conns.iter_mut() {
        ws::subscribe(c, "ops-shared").await?;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after = commandstats(redis).await?;
    phase(
        "subscribe (occupied channel)",
        &before,
        &after,
        start.elapsed().as_secs_f64(),
        args.count,
    );

    // Presence joins, 50 members per channel, each a distinct user.
    let secret = Secret::new(t.secret.clone());
    let before = after;
    let start = Instant::now();
    for (i, c) in conns.iter_mut().enumerate() {
        let channel = format!("presence-ops-{}", i / 50);
        let data = json!({"user_id": format!("u{i}")}).to_string();
        let frame = ws::subscribe_frame(c, &channel, &t.key, &secret, Some(&data));
        ws::subscribe_with(c, &channel, frame).await?;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after = commandstats(redis).await?;
    phase(
        "presence join",
        &before,
        &after,
        start.elapsed().as_secs_f64(),
        args.count,
    );

    // Publishes to channels with one subscriber each.
    let mut publisher =
        api::Publisher::connect(&t.host, t.port, &t.app_id, &t.key, &t.secret).await?;
    let before = after;
    let start = Instant::now();
    for i in 0..args.count {
        let status = publisher.trigger(&format!("ops-{i}"), "e", "x").await?;
        anyhow::ensure!(status == 200, "publish answered {status}");
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after = commandstats(redis).await?;
    phase(
        "publish",
        &before,
        &after,
        start.elapsed().as_secs_f64(),
        args.count,
    );

    // Disconnect (unsubscribes, presence leaves, connection counts).
    let before = after;
    let start = Instant::now();
    for mut c in conns.drain(..) {
        let _ = c.ws.close(None).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after = commandstats(redis).await?;
    phase(
        "disconnect",
        &before,
        &after,
        start.elapsed().as_secs_f64(),
        args.count,
    );

    // Throughput: K channels with a subscriber each on the second node, C publishers on the
    // first, as fast as they go.
    let mut subs = Vec::new();
    for i in 0..args.channels {
        let mut c = ws::connect(&t.host, port2, &t.key).await?;
        ws::subscribe(&mut c, &format!("tp-{i}")).await?;
        subs.push(c);
    }
    let delivered = Arc::new(AtomicU64::new(0));
    let mut readers = Vec::new();
    for mut c in subs {
        let delivered = delivered.clone();
        readers.push(tokio::spawn(async move {
            while let Some(Ok(m)) = c.ws.next().await {
                if let Message::Text(t) = m
                    && t.contains("\"tp\"")
                {
                    delivered.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    let accepted = Arc::new(AtomicU64::new(0));
    let refused = Arc::new(AtomicU64::new(0));
    let before = commandstats(redis).await?;
    let cpu_before = proc_stat::total_cpu(&args.redis_pid);
    let nodes_cpu_before = proc_stat::total_cpu(&t.server_pid);
    let start = Instant::now();
    let until = start + Duration::from_secs(args.seconds);
    let mut tasks = Vec::new();
    for p in 0..args.publishers {
        let (accepted, refused) = (accepted.clone(), refused.clone());
        let (host, app, key, secret) = (
            t.host.clone(),
            t.app_id.clone(),
            t.key.clone(),
            t.secret.clone(),
        );
        let (port, channels) = (t.port, args.channels);
        tasks.push(tokio::spawn(async move {
            let mut publisher = api::Publisher::connect(&host, port, &app, &key, &secret).await?;
            let mut i = p;
            while Instant::now() < until {
                let status = publisher
                    .trigger(&format!("tp-{}", i % channels), "tp", "x")
                    .await?;
                if status == 200 {
                    accepted.fetch_add(1, Ordering::Relaxed);
                } else {
                    refused.fetch_add(1, Ordering::Relaxed);
                }
                i += 1;
            }
            anyhow::Ok(())
        }));
    }
    for task in tasks {
        task.await??;
    }
    let secs = start.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after = commandstats(redis).await?;
    let redis_cpu = match (cpu_before, proc_stat::total_cpu(&args.redis_pid)) {
        (Some(a), Some(b)) => Some(b - a),
        _ => None,
    };
    let nodes_cpu = match (nodes_cpu_before, proc_stat::total_cpu(&t.server_pid)) {
        (Some(a), Some(b)) => Some(b - a),
        _ => None,
    };
    for r in readers {
        r.abort();
    }
    let accepted = accepted.load(Ordering::Relaxed);
    let per_publish_us = |cpu: Option<f64>| cpu.map(|c| c * 1e6 / accepted.max(1) as f64);
    let command_us = usec_of(&before, &after) as f64 / accepted.max(1) as f64;
    let throughput = json!({
        "publishes_per_sec": accepted as f64 / secs,
        "refused": refused.load(Ordering::Relaxed),
        "delivered": delivered.load(Ordering::Relaxed),
        "accepted": accepted,
        "redis_cpu_us_per_publish": per_publish_us(redis_cpu),
        "redis_command_us_per_publish": command_us,
        "nodes_cpu_us_per_publish": per_publish_us(nodes_cpu),
    });
    eprintln!("throughput: {throughput}");
    println!(
        "{}",
        json!({"scenario": "redis-ops", "label": args.label, "count": args.count, "phases": phases, "throughput": throughput})
    );
    Ok(())
}
