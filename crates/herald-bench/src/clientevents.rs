//! `clientevents`: P pairs of connections, each pair on its own private channel; one side sends
//! client events at a rate for T seconds, the other receives them. Reports latency, loss and
//! echoes (the sender must never get its own events back).

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use clap::Args;
use futures_util::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use herald_protocol::Secret;
use serde_json::{Value, json};
use tokio::sync::Mutex;
use tokio_tungstenite::tungstenite::Message;

use crate::{Target, proc_stat, ws};

#[derive(Args, Debug)]
pub struct ClientEventsArgs {
    #[command(flatten)]
    pub target: Target,
    /// Sender/receiver pairs.
    #[arg(long, default_value_t = 100)]
    pub pairs: usize,
    /// Client events per second and sender (Pusher allows 10).
    #[arg(long, default_value_t = 5)]
    pub rate: u32,
    #[arg(long, default_value_t = 10)]
    pub seconds: u64,
}

fn now_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

pub async fn run(a: ClientEventsArgs) -> anyhow::Result<()> {
    let t = a.target.clone();
    let secret = Secret::new(t.secret.clone());
    eprintln!("… connecting {} pairs", a.pairs);
    let mut pairs = Vec::with_capacity(a.pairs);
    for i in 0..a.pairs {
        let channel = format!("private-bench-pair-{i}");
        let mut sides = Vec::new();
        for side in 0..2 {
            let port = match t.port2 {
                Some(p2) if side == 1 => p2,
                _ => t.port,
            };
            let mut c = ws::connect(&t.host, port, &t.key).await?;
            let frame = ws::subscribe_frame(&c, &channel, &t.key, &secret, None);
            ws::subscribe_with(&mut c, &channel, frame).await?;
            sides.push(c);
        }
        let receiver = sides.pop().expect("two sides");
        let sender = sides.pop().expect("two sides");
        pairs.push((channel, sender, receiver));
    }
    let per_sender = u64::from(a.rate) * a.seconds;
    let hist = Arc::new(Mutex::new(Histogram::<u64>::new_with_bounds(
        1, 60_000_000, 3,
    )?));
    let totals = Arc::new(Mutex::new((0u64, 0u64, 0u64, 0u64))); // received, echoes, refused, out of order
    let cpu_before = proc_stat::total_cpu(&t.server_pid);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for (i, (channel, sender, receiver)) in pairs.into_iter().enumerate() {
        let (hist, totals) = (hist.clone(), totals.clone());
        let rate = a.rate.max(1);
        tasks.push(tokio::spawn(async move {
            let (mut tx, mut echo_rx) = sender.ws.split();
            let mut rx = receiver.ws;
            // Senders start spread over the first interval, not all at once.
            let interval = Duration::from_secs_f64(1.0 / f64::from(rate));
            let offset = interval.mul_f64((i % 100) as f64 / 100.0);
            let send = async move {
                for seq in 0..per_sender {
                    let due = started + offset + interval * seq as u32;
                    tokio::time::sleep_until(due.into()).await;
                    let frame = json!({"event": "client-bench", "channel": channel,
                        "data": {"seq": seq, "t": now_micros()}});
                    if tx
                        .send(Message::Text(frame.to_string().into()))
                        .await
                        .is_err()
                    {
                        break;
                    }
                }
                tx
            };
            // The sender's own socket: counts echoes and 4301 refusals until the end.
            let watch_sender = async move {
                let (mut echoes, mut refused) = (0u64, 0u64);
                let end = started + Duration::from_secs(a.seconds + 3);
                while let Ok(Some(Ok(Message::Text(text)))) =
                    tokio::time::timeout_at(end.into(), echo_rx.next()).await
                {
                    let v: Value = serde_json::from_str(text.as_str()).unwrap_or_default();
                    match v["event"].as_str() {
                        Some("client-bench") => echoes += 1,
                        Some("pusher:error") => refused += 1,
                        _ => {}
                    }
                }
                (echoes, refused)
            };
            let receive = async move {
                let mut local =
                    Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("valid bounds");
                let (mut got, mut ooo, mut last) = (0u64, 0u64, None::<u64>);
                let end = started + Duration::from_secs(a.seconds + 3);
                while got < per_sender {
                    let Ok(Ok(v)) =
                        tokio::time::timeout_at(end.into(), ws::next_json(&mut rx)).await
                    else {
                        break;
                    };
                    if v["event"] != "client-bench" {
                        continue;
                    }
                    let data: Value = match &v["data"] {
                        Value::String(s) => serde_json::from_str(s).unwrap_or_default(),
                        other => other.clone(),
                    };
                    if let (Some(seq), Some(sent)) = (data["seq"].as_u64(), data["t"].as_u64()) {
                        let _ = local.record(now_micros().saturating_sub(sent).max(1));
                        if last.is_some_and(|l| seq < l) {
                            ooo += 1;
                        }
                        last = Some(seq);
                        got += 1;
                    }
                }
                (local, got, ooo)
            };
            let (_tx, (echoes, refused), (local, got, ooo)) =
                tokio::join!(send, watch_sender, receive);
            let _ = hist.lock().await.add(&local);
            let mut tot = totals.lock().await;
            tot.0 += got;
            tot.1 += echoes;
            tot.2 += refused;
            tot.3 += ooo;
        }));
    }
    eprintln!(
        "… {} senders × {} events/s for {} s",
        a.pairs, a.rate, a.seconds
    );
    for task in tasks {
        let _ = task.await;
    }
    let took = started.elapsed().as_secs_f64();
    let cpu = match (cpu_before, proc_stat::total_cpu(&t.server_pid)) {
        (Some(b), Some(a)) => Some(a - b),
        _ => None,
    };
    let (received, echoes, refused, ooo) = *totals.lock().await;
    let expected = per_sender * a.pairs as u64;
    let h = hist.lock().await;
    let ms = |q: f64| h.value_at_quantile(q) as f64 / 1000.0;
    println!(
        "clientevents: {} pairs × {per_sender} events: {received}/{expected} received, {} lost, {echoes} echoes, {refused} refused (4301), {ooo} out of order",
        a.pairs,
        expected - received
    );
    println!(
        "latency: p50 {:.2} ms, p90 {:.2}, p99 {:.2}, max {:.2}",
        ms(0.5),
        ms(0.9),
        ms(0.99),
        h.max() as f64 / 1000.0
    );
    if let Some(c) = cpu {
        println!(
            "server CPU: {c:.2} s, {:.2} µs per event",
            c * 1e6 / received.max(1) as f64
        );
    }
    let json = json!({
        "scenario": "clientevents", "pairs": a.pairs, "rate": a.rate, "seconds": a.seconds,
        "received": received, "expected": expected, "lost": expected - received,
        "echoes": echoes, "refused": refused, "out_of_order": ooo, "run_seconds": took,
        "latency_ms": {"p50": ms(0.5), "p90": ms(0.9), "p99": ms(0.99), "max": h.max() as f64 / 1000.0},
        "server_cpu_secs": cpu,
    });
    println!("{json}");
    Ok(())
}
