//! `fanout`: S subscribers on one channel (or spread over C); R events/s through the HTTP API for T seconds.
//! Each event carries a sequence number and its send time; subscribers record latency, loss,
//! duplicates and order violations.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use clap::Args;
use hdrhistogram::Histogram;
use serde::Deserialize;
use tokio::sync::Mutex;

use crate::api::Publisher;
use crate::{Target, proc_stat, ws};

#[derive(Args, Debug)]
pub struct FanoutArgs {
    #[command(flatten)]
    pub target: Target,
    #[arg(long, default_value_t = 1000)]
    pub subscribers: usize,
    /// Events per second.
    #[arg(long, default_value_t = 100)]
    pub rate: u32,
    #[arg(long, default_value_t = 10)]
    pub seconds: u64,
    /// Extra payload bytes per event.
    #[arg(long, default_value_t = 100)]
    pub payload: usize,
    /// Publishing connections. Event `seq` goes out on connection `seq % publishers`, each
    /// connection sending its next event once the last was answered: the offered rate holds
    /// while a publish takes less than `publishers / rate` seconds, whatever the server's speed
    /// (open loop), and order is checked per connection (Pusher orders events per publisher).
    #[arg(long, default_value_t = 8)]
    pub publishers: usize,
    /// Channels: subscriber `i` joins channel `i % channels`, event `seq` goes to channel
    /// `seq % channels` (so each event reaches subscribers / channels of them).
    #[arg(long, default_value_t = 1)]
    pub channels: usize,
    /// Events per request: above 1, each publishing connection sends its events in batches
    /// (`POST /apps/{id}/batch_events`, at most 10), so every subscriber gets that many frames
    /// at once (the rate stays in events per second).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=10))]
    pub batch: u16,
}

/// The name of fan-out channel `i` of `count`.
fn channel_name(i: usize, count: usize) -> String {
    if count == 1 {
        "bench-fanout".to_owned()
    } else {
        format!("bench-fanout-{i}")
    }
}

#[derive(Default)]
struct Tally {
    received: u64,
    duplicates: u64,
    out_of_order: u64,
}

/// A channel event as the wire has it: the payload is a JSON string.
#[derive(Deserialize)]
struct Frame<'a> {
    #[serde(borrow)]
    event: Cow<'a, str>,
    #[serde(borrow, default)]
    data: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct Stamp {
    seq: u64,
    t: u64,
}

/// Sequence number and send time of a `bench` event; None for any other frame. Typed, borrowed
/// parsing: the receive loop runs once per delivery, on the machine under test.
fn bench_event(text: &str) -> Option<(u64, u64)> {
    let frame: Frame = serde_json::from_str(text).ok()?;
    if frame.event != "bench" {
        return None;
    }
    let stamp: Stamp = serde_json::from_str(frame.data.as_deref()?).ok()?;
    Some((stamp.seq, stamp.t))
}

fn now_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

pub async fn run(a: FanoutArgs) -> anyhow::Result<()> {
    let t = a.target.clone();
    let channels = a.channels.max(1);
    let names: Vec<String> = (0..channels).map(|i| channel_name(i, channels)).collect();
    eprintln!(
        "… connecting {} subscribers to {channels} channel(s)",
        a.subscribers
    );
    let mut conns = Vec::with_capacity(a.subscribers);
    for i in 0..a.subscribers {
        let port = match t.port2 {
            Some(p2) if i % 2 == 1 => p2,
            _ => t.port,
        };
        let mut c = ws::connect(&t.host, port, &t.key).await?;
        ws::subscribe(&mut c, &names[i % channels]).await?;
        conns.push(c);
    }
    let total = (a.rate as u64) * a.seconds;
    // Events for channel `ch`: the sequence numbers below `total` that are `ch` modulo channels.
    let events_for = |ch: usize| (total + (channels - 1 - ch) as u64) / channels as u64;
    let hist = Arc::new(Mutex::new(Histogram::<u64>::new_with_bounds(
        1, 60_000_000, 3,
    )?));
    let tallies = Arc::new(Mutex::new(Vec::new()));
    let mut readers = Vec::new();
    let publishers = a.publishers.max(1);
    for (i, c) in conns.into_iter().enumerate() {
        let (hist, tallies) = (hist.clone(), tallies.clone());
        let expected = events_for(i % channels);
        readers.push(tokio::spawn(async move {
            let mut ws = c.ws;
            let mut tally = Tally::default();
            let mut seen = vec![false; total as usize];
            // The last sequence number seen per publishing connection.
            let mut last: Vec<Option<u64>> = vec![None; publishers];
            let mut local =
                Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("valid bounds");
            while tally.received < expected {
                let Ok(Ok(text)) =
                    tokio::time::timeout(Duration::from_secs(5), ws::next_text(&mut ws)).await
                else {
                    break;
                };
                let Some((seq, sent)) = bench_event(text.as_str()) else {
                    continue;
                };
                let _ = local.record(now_micros().saturating_sub(sent).max(1));
                match seen.get_mut(seq as usize) {
                    Some(s) if *s => tally.duplicates += 1,
                    Some(s) => {
                        *s = true;
                        tally.received += 1;
                    }
                    None => {}
                }
                let stream = &mut last[seq as usize % publishers];
                if stream.is_some_and(|l| seq < l) {
                    tally.out_of_order += 1;
                }
                *stream = Some(seq);
            }
            let _ = hist.lock().await.add(&local);
            tallies.lock().await.push(tally);
        }));
    }
    let cpu_before = proc_stat::total_cpu_split(&t.server_pid);
    let padding = Arc::new("x".repeat(a.payload));
    let started = Instant::now();
    let interval = Duration::from_secs_f64(1.0 / a.rate.max(1) as f64);
    let mut senders = Vec::new();
    for first in 0..publishers as u64 {
        let mut publisher =
            Publisher::connect(&t.host, t.port, &t.app_id, &t.key, &t.secret).await?;
        let padding = padding.clone();
        let names = names.clone();
        let rate = a.rate as u64;
        let batch = usize::from(a.batch);
        senders.push(tokio::spawn(async move {
            let mut publish = Histogram::<u64>::new(3).expect("valid sigfig");
            let mut errors = 0u64;
            let seqs: Vec<u64> = (first..total).step_by(publishers).collect();
            for chunk in seqs.chunks(batch) {
                tokio::time::sleep_until((started + interval * chunk[0] as u32).into()).await;
                let stamp = now_micros();
                let events: Vec<(&str, String)> = chunk
                    .iter()
                    .map(|&seq| {
                        let data =
                            serde_json::json!({"seq": seq, "t": stamp, "pad": padding.as_str()})
                                .to_string();
                        (names[seq as usize % names.len()].as_str(), data)
                    })
                    .collect();
                let sent = Instant::now();
                let status = match events.as_slice() {
                    [(channel, data)] => publisher.trigger(channel, "bench", data).await,
                    _ => publisher.trigger_batch("bench", &events).await,
                };
                if !matches!(status, Ok(200)) {
                    errors += chunk.len() as u64;
                }
                let _ = publish.record(sent.elapsed().as_micros() as u64);
                if chunk.iter().any(|seq| seq % rate.max(1) == 0) {
                    eprintln!("… {}/{total} published", chunk[0]);
                }
            }
            (publish, errors)
        }));
    }
    let mut publish = Histogram::<u64>::new(3)?;
    let mut errors = 0u64;
    for s in senders {
        let (h, e) = s.await?;
        publish.add(&h)?;
        errors += e;
    }
    let publish_secs = started.elapsed().as_secs_f64();
    for r in readers {
        let _ = r.await;
    }
    let took = started.elapsed().as_secs_f64();
    let cpu = match (cpu_before, proc_stat::total_cpu_split(&t.server_pid)) {
        (Some(b), Some(a)) => Some(a.since(b)),
        _ => None,
    };
    let tallies = tallies.lock().await;
    let h = hist.lock().await;
    let delivered: u64 = tallies.iter().map(|t| t.received).sum();
    let expected: u64 = (0..a.subscribers).map(|i| events_for(i % channels)).sum();
    let dups: u64 = tallies.iter().map(|t| t.duplicates).sum();
    let ooo: u64 = tallies.iter().map(|t| t.out_of_order).sum();
    let ms = |q: f64| h.value_at_quantile(q) as f64 / 1000.0;
    println!(
        "fanout: {} subscribers on {channels} channel(s) × {total} events: {delivered}/{expected} delivered ({:.0}/s), {} lost, {dups} duplicates, {ooo} out of order, {errors} publish errors",
        a.subscribers,
        delivered as f64 / took,
        expected - delivered
    );
    println!(
        "end-to-end latency: p50 {:.2} ms, p90 {:.2}, p99 {:.2}, p99.9 {:.2}, max {:.2}",
        ms(0.5),
        ms(0.9),
        ms(0.99),
        ms(0.999),
        h.max() as f64 / 1000.0
    );
    println!(
        "publish latency: p50 {:.2} ms, p99 {:.2} ms",
        publish.value_at_quantile(0.5) as f64 / 1000.0,
        publish.value_at_quantile(0.99) as f64 / 1000.0
    );
    println!(
        "publishing took {publish_secs:.2} s for {total} events ({:.0}/s of {} asked)",
        total as f64 / publish_secs,
        a.rate
    );
    let per_delivery = |secs: f64| secs * 1e6 / delivered.max(1) as f64;
    if let Some(c) = cpu {
        println!(
            "server CPU: {:.2} s, {:.2} µs per delivery (user {:.2} µs, system {:.2} µs)",
            c.total(),
            per_delivery(c.total()),
            per_delivery(c.user),
            per_delivery(c.system)
        );
    }
    let json = serde_json::json!({
        "scenario": "fanout", "subscribers": a.subscribers, "channels": channels, "batch": a.batch, "rate": a.rate, "seconds": a.seconds,
        "delivered": delivered, "expected": expected, "lost": expected - delivered, "duplicates": dups, "out_of_order": ooo,
        "publish_errors": errors, "deliveries_per_sec": delivered as f64 / took,
        "latency_ms": {"p50": ms(0.5), "p90": ms(0.9), "p99": ms(0.99), "p999": ms(0.999), "max": h.max() as f64 / 1000.0},
        "publish_p50_ms": publish.value_at_quantile(0.5) as f64 / 1000.0,
        "achieved_rate": total as f64 / publish_secs,
        "server_cpu_secs": cpu.map(|c| c.total()),
        "server_cpu_us_per_delivery": cpu.map(|c| per_delivery(c.total())),
        "server_user_us_per_delivery": cpu.map(|c| per_delivery(c.user)),
        "server_system_us_per_delivery": cpu.map(|c| per_delivery(c.system)),
    });
    println!("{json}");
    Ok(())
}
