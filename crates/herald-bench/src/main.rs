//! `herald-bench`: a bounded load generator for any Pusher-compatible server (Herald, soketi,
//! sockudo, Reverb). Progress goes to stderr; each run ends with a human summary and one JSON
//! line on stdout, so runs can be compared by a script.

mod api;
mod clientevents;
mod conns;
mod fanout;
mod floor;
mod presence;
mod proc_stat;
mod redis_ops;
mod soak;
mod ws;

use std::time::Duration;

use clap::{Args, Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "herald-bench",
    version,
    about = "Load generator for Pusher Channels compatible servers"
)]
struct Cli {
    #[command(subcommand)]
    scenario: Scenario,
}

#[derive(Subcommand, Debug)]
enum Scenario {
    /// Open N idle connections over C channels; report connect rate and latency, and with
    /// --server-pid the server's memory per idle connection.
    Conns(conns::ConnsArgs),
    /// S subscribers on one channel, R events/s published through the HTTP API for T seconds;
    /// report deliveries/s, loss, duplicates, order violations and end-to-end latency.
    Fanout(fanout::FanoutArgs),
    /// P pairs on private channels: one side sends client events at a rate, the other
    /// receives; report latency, loss and echoes (must be 0).
    Clientevents(clientevents::ClientEventsArgs),
    /// N members join one presence channel at once; count how many end with the exact list.
    Presence(presence::PresenceArgs),
    /// Bounded churn (connects, subscribes, presence, client events, publishes), then check
    /// the server returned to no channels and about its baseline memory.
    Soak(soak::SoakArgs),
    /// Redis commands per connect, subscribe, presence join, publish and disconnect (INFO
    /// commandstats of every --redis node), then publish throughput and Redis CPU per publish.
    RedisOps(redis_ops::RedisOpsArgs),
    /// Run the reference server benchmarks measure against: the least work a Pusher-compatible
    /// server does for a fan-out (no auth, limits or metrics), on Herald's stack.
    Floor(floor::FloorArgs),
}

/// Where the server is and which app to use (the peers' shared test app by default).
#[derive(Args, Debug, Clone)]
pub struct Target {
    /// Server host.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// WebSocket and HTTP API port.
    #[arg(long, default_value_t = 6001)]
    pub port: u16,
    /// A second node's port: half the subscribers connect there (cluster runs).
    #[arg(long)]
    pub port2: Option<u16>,
    #[arg(long, default_value = "app-1")]
    pub app_id: String,
    #[arg(long, default_value = "app-key")]
    pub key: String,
    #[arg(long, default_value = "app-secret")]
    pub secret: String,
    /// Server process ids to sample memory and CPU from (/proc), comma separated.
    #[arg(long, value_delimiter = ',')]
    pub server_pid: Vec<u32>,
    /// Allow a host other than loopback.
    #[arg(long)]
    pub allow_remote: bool,
    /// Hard deadline for the whole run, in seconds (a watchdog ends it).
    #[arg(long, default_value_t = 300)]
    pub deadline_secs: u64,
}

impl Target {
    fn check(&self) -> anyhow::Result<()> {
        let loopback = matches!(self.host.as_str(), "127.0.0.1" | "localhost" | "::1");
        anyhow::ensure!(
            loopback || self.allow_remote,
            "refusing to load {}: pass --allow-remote to target a non-loopback host",
            self.host
        );
        Ok(())
    }
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    if let Scenario::Floor(a) = cli.scenario {
        return rt.block_on(floor::run(a));
    }
    let target = match &cli.scenario {
        Scenario::Conns(a) => a.target.clone(),
        Scenario::Fanout(a) => a.target.clone(),
        Scenario::Clientevents(a) => a.target.clone(),
        Scenario::Presence(a) => a.target.clone(),
        Scenario::Soak(a) => a.target.clone(),
        Scenario::RedisOps(a) => a.target.clone(),
        Scenario::Floor(_) => unreachable!("served above"),
    };
    // Before any traffic: a non-loopback target needs --allow-remote.
    target.check()?;
    rt.block_on(async {
        let run = match cli.scenario {
            Scenario::Conns(a) => tokio::spawn(conns::run(a)),
            Scenario::Fanout(a) => tokio::spawn(fanout::run(a)),
            Scenario::Clientevents(a) => tokio::spawn(clientevents::run(a)),
            Scenario::Presence(a) => tokio::spawn(presence::run(a)),
            Scenario::Soak(a) => tokio::spawn(soak::run(a)),
            Scenario::RedisOps(a) => tokio::spawn(redis_ops::run(a)),
            Scenario::Floor(_) => unreachable!("served above"),
        };
        match tokio::time::timeout(Duration::from_secs(target.deadline_secs), run).await {
            Ok(joined) => joined?,
            Err(_) => anyhow::bail!(
                "watchdog: the run exceeded --deadline-secs {}",
                target.deadline_secs
            ),
        }
    })
}
