//! `conns`: open N connections over C channels at bounded concurrency and keep them idle.

use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Args;
use hdrhistogram::Histogram;
use tokio::sync::{Mutex, Semaphore};

use crate::{Target, proc_stat, ws};

#[derive(Args, Debug)]
pub struct ConnsArgs {
    #[command(flatten)]
    pub target: Target,
    /// Connections to open.
    #[arg(long, default_value_t = 10_000)]
    pub connections: usize,
    /// Public channels to spread them over (0: do not subscribe).
    #[arg(long, default_value_t = 100)]
    pub channels: usize,
    /// Handshakes in flight at once.
    #[arg(long, default_value_t = 200)]
    pub concurrency: usize,
    /// Seconds to hold the idle connections before measuring.
    #[arg(long, default_value_t = 3)]
    pub settle_secs: u64,
}

pub async fn run(a: ConnsArgs) -> anyhow::Result<()> {
    let t = &a.target;
    let rss_before = proc_stat::total_rss(&t.server_pid);
    let drops_before = proc_stat::listen_drops();
    let cpu_before = proc_stat::total_cpu_split(&t.server_pid);
    let gate = Arc::new(Semaphore::new(a.concurrency.max(1)));
    let latencies = Arc::new(Mutex::new(Histogram::<u64>::new(3)?));
    let held = Arc::new(Mutex::new(Vec::with_capacity(a.connections)));
    let failures = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(a.connections);
    for i in 0..a.connections {
        let (gate, latencies, held, failures, t) = (
            gate.clone(),
            latencies.clone(),
            held.clone(),
            failures.clone(),
            t.clone(),
        );
        let channels = a.channels;
        tasks.push(tokio::spawn(async move {
            let _permit = gate.acquire().await;
            let port = match t.port2 {
                Some(p2) if i % 2 == 1 => p2,
                _ => t.port,
            };
            let begun = Instant::now();
            let result = async {
                let mut conn = ws::connect(&t.host, port, &t.key).await?;
                if channels > 0 {
                    ws::subscribe(&mut conn, &format!("bench-{}", i % channels)).await?;
                }
                anyhow::Ok(conn)
            }
            .await;
            match result {
                Ok(conn) => {
                    let _ = latencies
                        .lock()
                        .await
                        .record(begun.elapsed().as_micros() as u64);
                    held.lock().await.push(conn.ws);
                }
                Err(_) => {
                    failures.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
            }
        }));
        if i > 0 && i % 1000 == 0 {
            eprintln!("… {i} connections started");
        }
    }
    for t in tasks {
        let _ = t.await;
    }
    let took = started.elapsed();
    let cpu = match (cpu_before, proc_stat::total_cpu_split(&t.server_pid)) {
        (Some(b), Some(a)) => Some(a.since(b)),
        _ => None,
    };
    let drops = match (drops_before, proc_stat::listen_drops()) {
        (Some(b), Some(a)) => Some((a.0 - b.0, a.1 - b.1)),
        _ => None,
    };
    let opened = held.lock().await.len();
    eprintln!("… {opened} open, holding them {} s", a.settle_secs);
    tokio::time::sleep(Duration::from_secs(a.settle_secs)).await;
    let rss_after = proc_stat::total_rss(&t.server_pid);
    let h = latencies.lock().await;
    let per_conn = match (rss_before, rss_after) {
        (Some(b), Some(a)) if opened > 0 => Some(a.saturating_sub(b) as f64 / opened as f64),
        _ => None,
    };
    let failed = failures.load(std::sync::atomic::Ordering::Relaxed);
    println!(
        "conns: {opened} open, {failed} failed in {:.2} s ({:.0}/s)",
        took.as_secs_f64(),
        opened as f64 / took.as_secs_f64()
    );
    println!(
        "connect+subscribe latency: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        h.value_at_quantile(0.5) as f64 / 1000.0,
        h.value_at_quantile(0.99) as f64 / 1000.0,
        h.max() as f64 / 1000.0
    );
    let cpu_per_conn = cpu.map(|c| c.total() * 1e6 / opened.max(1) as f64);
    if let (Some(c), Some(per)) = (cpu, cpu_per_conn) {
        println!(
            "server CPU while connecting: {:.2} s, {per:.0} µs per connection (user {:.2} s, system {:.2} s)",
            c.total(),
            c.user,
            c.system
        );
    }
    if let Some((overflows, drops)) = drops {
        println!("listen queue: {overflows} overflows, {drops} drops (host-wide TcpExt counters)");
    }
    if let Some(b) = per_conn {
        println!(
            "server memory per idle connection: {:.0} bytes (RSS {} → {} KiB)",
            b,
            rss_before.unwrap_or(0) / 1024,
            rss_after.unwrap_or(0) / 1024
        );
    }
    let json = serde_json::json!({
        "scenario": "conns",
        "connections": opened,
        "failures": failed,
        "seconds": took.as_secs_f64(),
        "connect_p50_ms": h.value_at_quantile(0.5) as f64 / 1000.0,
        "connect_p99_ms": h.value_at_quantile(0.99) as f64 / 1000.0,
        "rss_before_bytes": rss_before,
        "rss_after_bytes": rss_after,
        "bytes_per_idle_connection": per_conn,
        "server_cpu_secs": cpu.map(|c| c.total()),
        "server_cpu_us_per_connection": cpu_per_conn,
        "listen_overflows": drops.map(|d| d.0),
        "listen_drops": drops.map(|d| d.1),
    });
    println!("{json}");
    Ok(())
}
