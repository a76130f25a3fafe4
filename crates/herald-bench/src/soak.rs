//! `soak`: churn for a bounded time — W workers connect, subscribe to public, private and
//! presence channels, send client events, unsubscribe and disconnect (half politely, half by
//! dropping the socket), while a publisher triggers events — then let the server settle and
//! check it forgot everything: no occupied channels left, and resident memory back within 10 %
//! of the baseline taken before the churn (Reverb's users report ever-growing memory).
//! With `--rounds N` the churn and settle repeat against the same server: the first round
//! includes the server's warm-up (code paged in, allocator arenas touched), later rounds show
//! whether memory keeps growing.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::Args;
use futures_util::SinkExt;
use herald_protocol::Secret;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use crate::api::Publisher;
use crate::{Target, proc_stat, ws};

#[derive(Args, Debug)]
pub struct SoakArgs {
    #[command(flatten)]
    pub target: Target,
    /// Concurrent churning clients.
    #[arg(long, default_value_t = 50)]
    pub workers: usize,
    /// Seconds of churn.
    #[arg(long, default_value_t = 30)]
    pub seconds: u64,
    /// Seconds to wait after the churn before measuring.
    #[arg(long, default_value_t = 10)]
    pub settle_secs: u64,
    /// Channels of each kind the workers spread over.
    #[arg(long, default_value_t = 20)]
    pub channels: usize,
    /// HTTP API events per second during the churn.
    #[arg(long, default_value_t = 50)]
    pub publish_rate: u32,
    /// Churn-and-settle rounds against the same server (growth shows as later rounds settling
    /// higher than the first).
    #[arg(long, default_value_t = 1)]
    pub rounds: u32,
}

/// What one churn round did.
#[derive(Default)]
struct Round {
    published: u64,
    publish_errors: u64,
    peak_rss: u64,
}

#[derive(Default)]
struct Counts {
    cycles: AtomicU64,
    failures: AtomicU64,
    client_events: AtomicU64,
}

/// One connect → subscribe ×3 → client events → unsubscribe → disconnect cycle.
async fn cycle(
    t: &Target,
    secret: &Secret,
    worker: usize,
    n: u64,
    channels: usize,
    counts: &Counts,
) -> anyhow::Result<()> {
    let port = match t.port2 {
        Some(p2) if worker % 2 == 1 => p2,
        _ => t.port,
    };
    let mut c = ws::connect(&t.host, port, &t.key).await?;
    let r = (worker + n as usize) % channels.max(1);
    let public = format!("soak-{r}");
    ws::subscribe(&mut c, &public).await?;
    let private = format!("private-soak-{r}");
    let frame = ws::subscribe_frame(&c, &private, &t.key, secret, None);
    ws::subscribe_with(&mut c, &private, frame).await?;
    let presence = format!("presence-soak-{r}");
    let member = json!({"user_id": format!("w{worker}-{n}")}).to_string();
    let frame = ws::subscribe_frame(&c, &presence, &t.key, secret, Some(&member));
    ws::subscribe_with(&mut c, &presence, frame).await?;
    for i in 0..3 {
        let event = json!({"event": "client-soak", "channel": private, "data": {"i": i}});
        c.ws.send(Message::Text(event.to_string().into())).await?;
        counts.client_events.fetch_add(1, Ordering::Relaxed);
    }
    tokio::time::sleep(Duration::from_millis(20 + (n % 7) * 10)).await;
    let unsub = json!({"event": "pusher:unsubscribe", "data": {"channel": public}});
    c.ws.send(Message::Text(unsub.to_string().into())).await?;
    if n.is_multiple_of(2) {
        c.ws.close(None).await?;
    }
    // Odd cycles just drop the socket: the server must notice the peer is gone.
    Ok(())
}

async fn occupied_channels(p: &mut Publisher) -> anyhow::Result<usize> {
    let (status, body) = p.request("GET", "channels", "").await?;
    anyhow::ensure!(status == 200, "GET /channels answered {status}: {body}");
    let v: Value = serde_json::from_str(&body)?;
    Ok(v["channels"].as_object().map_or(0, |m| m.len()))
}

/// W workers churn for `a.seconds` while `publisher` triggers events.
async fn churn(
    a: &SoakArgs,
    secret: &Secret,
    counts: &Arc<Counts>,
    publisher: &mut Publisher,
) -> Round {
    let t = &a.target;
    let started = Instant::now();
    let end = started + Duration::from_secs(a.seconds);
    let mut tasks = Vec::new();
    for worker in 0..a.workers {
        let (t, secret, counts) = (t.clone(), secret.clone(), counts.clone());
        let channels = a.channels;
        tasks.push(tokio::spawn(async move {
            let mut n = 0u64;
            while Instant::now() < end {
                match cycle(&t, &secret, worker, n, channels, &counts).await {
                    Ok(()) => counts.cycles.fetch_add(1, Ordering::Relaxed),
                    Err(_) => counts.failures.fetch_add(1, Ordering::Relaxed),
                };
                n += 1;
            }
        }));
    }
    let interval = Duration::from_secs_f64(1.0 / f64::from(a.publish_rate.max(1)));
    let mut round = Round::default();
    let mut next = Instant::now();
    let mut report = Instant::now();
    while Instant::now() < end {
        tokio::time::sleep_until(next.into()).await;
        next += interval;
        let channel = format!("soak-{}", round.published as usize % a.channels.max(1));
        match publisher.trigger(&channel, "tick", "{\"soak\":true}").await {
            Ok(200) => round.published += 1,
            _ => round.publish_errors += 1,
        }
        if report.elapsed() >= Duration::from_secs(5) {
            report = Instant::now();
            let rss = proc_stat::total_rss(&t.server_pid).unwrap_or(0);
            round.peak_rss = round.peak_rss.max(rss);
            eprintln!(
                "… {:.0} s: {} cycles, {} failures, RSS {} KiB",
                started.elapsed().as_secs_f64(),
                counts.cycles.load(Ordering::Relaxed),
                counts.failures.load(Ordering::Relaxed),
                rss / 1024
            );
        }
    }
    for task in tasks {
        let _ = task.await;
    }
    round
}

pub async fn run(a: SoakArgs) -> anyhow::Result<()> {
    let t = a.target.clone();
    let secret = Secret::new(t.secret.clone());
    let rss_baseline = proc_stat::total_rss(&t.server_pid);
    let counts = Arc::new(Counts::default());
    let mut publisher = Publisher::connect(&t.host, t.port, &t.app_id, &t.key, &t.secret).await?;
    let (mut published, mut publish_errors, mut peak_rss) = (0u64, 0u64, 0u64);
    let (mut rss_after_churn, mut rss_settled, mut left) = (None, None, 0);
    let mut settled_per_round = Vec::new();
    let rounds = a.rounds.max(1);
    for r in 1..=rounds {
        eprintln!(
            "… round {r}/{rounds}: {} workers churning for {} s (baseline RSS {} KiB)",
            a.workers,
            a.seconds,
            rss_baseline.unwrap_or(0) / 1024
        );
        let round = churn(&a, &secret, &counts, &mut publisher).await;
        published += round.published;
        publish_errors += round.publish_errors;
        peak_rss = peak_rss.max(round.peak_rss);
        rss_after_churn = proc_stat::total_rss(&t.server_pid);
        eprintln!("… churn over; settling {} s", a.settle_secs);
        tokio::time::sleep(Duration::from_secs(a.settle_secs)).await;
        rss_settled = proc_stat::total_rss(&t.server_pid);
        left = left.max(occupied_channels(&mut publisher).await?);
        settled_per_round.push(rss_settled);
        eprintln!(
            "… round {r}: settled RSS {} KiB",
            rss_settled.unwrap_or(0) / 1024
        );
    }
    let cycles = counts.cycles.load(Ordering::Relaxed);
    let failures = counts.failures.load(Ordering::Relaxed);
    let ratio = match (rss_baseline, rss_settled) {
        (Some(b), Some(s)) if b > 0 => Some(s as f64 / b as f64),
        _ => None,
    };
    // Growth after warm-up: the last round's settled RSS over the first's.
    let growth = match (settled_per_round.first(), settled_per_round.last()) {
        (Some(Some(f)), Some(Some(l))) if rounds > 1 && *f > 0 => Some(*l as f64 / *f as f64),
        _ => None,
    };
    println!(
        "soak: {cycles} cycles ({failures} failed), {} client events, {published} API events ({publish_errors} errors) in {rounds} × {} s",
        counts.client_events.load(Ordering::Relaxed),
        a.seconds
    );
    println!("occupied channels after settling: {left} (must be 0)");
    if let (Some(b), Some(c), Some(s)) = (rss_baseline, rss_after_churn, rss_settled) {
        println!(
            "server RSS: baseline {} KiB, after churn {} KiB (peak sampled {} KiB), settled {} KiB = {:.0} % of baseline (target ≤ 110 %)",
            b / 1024,
            c / 1024,
            peak_rss.max(c) / 1024,
            s / 1024,
            ratio.unwrap_or(0.0) * 100.0
        );
    }
    if let Some(g) = growth {
        println!(
            "settled RSS, last round over first: {:.1} % (growth after warm-up)",
            g * 100.0
        );
    }
    let json = json!({
        "scenario": "soak", "workers": a.workers, "seconds": a.seconds, "rounds": rounds,
        "cycles": cycles, "failures": failures, "published": published,
        "publish_errors": publish_errors, "channels_left": left,
        "rss_baseline_bytes": rss_baseline, "rss_after_churn_bytes": rss_after_churn,
        "rss_settled_bytes": rss_settled, "rss_settled_ratio": ratio,
        "rss_growth_after_first_round": growth,
    });
    println!("{json}");
    Ok(())
}
