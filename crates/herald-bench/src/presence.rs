//! `presence`: N members join one presence channel at once (spread over two nodes with
//! `--port2`). Every member builds its view from `subscription_succeeded`, `member_added` and
//! `member_removed`; the run counts how many end with exactly the N members. A server that
//! sends `member_added` before the list, or loses joins across nodes, scores below N.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Args;
use futures_util::SinkExt;
use herald_protocol::Secret;
use serde_json::{Value, json};
use tokio::sync::Barrier;
use tokio_tungstenite::tungstenite::Message;

use crate::{Target, ws};

#[derive(Args, Debug)]
pub struct PresenceArgs {
    #[command(flatten)]
    pub target: Target,
    /// Members joining at once (Pusher's default cap is 100).
    #[arg(long, default_value_t = 100)]
    pub members: usize,
    /// Seconds to wait for every view to settle after the joins.
    #[arg(long, default_value_t = 10)]
    pub settle_secs: u64,
    /// Repeat the round this many times (a fresh channel each time).
    #[arg(long, default_value_t = 1)]
    pub rounds: usize,
}

fn data_of(v: &Value) -> Value {
    match &v["data"] {
        Value::String(s) => serde_json::from_str(s).unwrap_or_default(),
        other => other.clone(),
    }
}

/// One member's view of the channel until it holds `want` or the deadline passes.
async fn watch(
    conn: &mut ws::PusherConn,
    channel: String,
    want: BTreeSet<String>,
    deadline: Instant,
) -> (bool, BTreeSet<String>) {
    let mut view = BTreeSet::new();
    let mut listed = false;
    loop {
        if listed && view == want {
            // Exact now; stay a moment to catch a late duplicate or removal.
            let grace = Instant::now() + Duration::from_millis(500);
            let more = tokio::time::timeout_at(grace.into(), ws::next_json(&mut conn.ws)).await;
            match more {
                Err(_) => return (true, view),
                Ok(Ok(v)) => apply(&v, &channel, &mut view, &mut listed),
                Ok(Err(_)) => return (view == want, view),
            }
            continue;
        }
        match tokio::time::timeout_at(deadline.into(), ws::next_json(&mut conn.ws)).await {
            Ok(Ok(v)) => apply(&v, &channel, &mut view, &mut listed),
            _ => return (listed && view == want, view),
        }
    }
}

fn apply(v: &Value, channel: &str, view: &mut BTreeSet<String>, listed: &mut bool) {
    if v["channel"] != channel {
        return;
    }
    let data = data_of(v);
    match v["event"].as_str() {
        Some("pusher_internal:subscription_succeeded") => {
            *listed = true;
            view.extend(
                data["presence"]["ids"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|id| id.as_str().map(str::to_owned)),
            );
        }
        Some("pusher_internal:member_added") => {
            if let Some(id) = data["user_id"].as_str() {
                view.insert(id.to_owned());
            }
        }
        Some("pusher_internal:member_removed") => {
            if let Some(id) = data["user_id"].as_str() {
                view.remove(id);
            }
        }
        _ => {}
    }
}

pub async fn run(a: PresenceArgs) -> anyhow::Result<()> {
    let t = a.target.clone();
    let secret = Secret::new(t.secret.clone());
    let mut exact_total = 0;
    let mut rounds = Vec::new();
    for round in 0..a.rounds {
        let channel = format!("presence-bench-{}-{round}", std::process::id());
        eprintln!("… round {}: {} members connecting", round + 1, a.members);
        let mut conns = Vec::with_capacity(a.members);
        for i in 0..a.members {
            let port = match t.port2 {
                Some(p2) if i % 2 == 1 => p2,
                _ => t.port,
            };
            conns.push(ws::connect(&t.host, port, &t.key).await?);
        }
        let want: BTreeSet<String> = (0..a.members).map(|i| format!("member-{i}")).collect();
        let barrier = Arc::new(Barrier::new(a.members));
        let started = Instant::now();
        let deadline = started + Duration::from_secs(a.settle_secs);
        let mut tasks = Vec::new();
        for (i, mut conn) in conns.into_iter().enumerate() {
            let channel_data = json!({"user_id": format!("member-{i}")}).to_string();
            let frame = ws::subscribe_frame(&conn, &channel, &t.key, &secret, Some(&channel_data));
            let (barrier, channel, want) = (barrier.clone(), channel.clone(), want.clone());
            tasks.push(tokio::spawn(async move {
                barrier.wait().await;
                if conn.ws.send(Message::Text(frame.into())).await.is_err() {
                    return (false, BTreeSet::new(), conn);
                }
                let (ok, view) = watch(&mut conn, channel, want, deadline).await;
                // Kept open until every member is done: leaving early would show up as
                // member_removed in the views still settling.
                (ok, view, conn)
            }));
        }
        let mut exact = 0;
        let mut worst: Option<BTreeSet<String>> = None;
        let mut open = Vec::new();
        for task in tasks {
            let (ok, view, conn) = task.await?;
            open.push(conn);
            if ok {
                exact += 1;
            } else if worst.as_ref().is_none_or(|w| view.len() < w.len()) {
                worst = Some(view);
            }
        }
        let took = started.elapsed().as_secs_f64();
        drop(open);
        println!(
            "presence round {}: {exact}/{} members ended with the exact list ({took:.2} s)",
            round + 1,
            a.members
        );
        if let Some(w) = worst {
            let missing: Vec<&String> = want.difference(&w).take(5).collect();
            println!(
                "  a wrong view held {} members; missing e.g. {missing:?}",
                w.len()
            );
        }
        exact_total += exact;
        rounds.push(exact);
    }
    let json = json!({
        "scenario": "presence", "members": a.members, "rounds": a.rounds,
        "exact": exact_total, "expected": a.members * a.rounds, "exact_per_round": rounds,
    });
    println!("{json}");
    Ok(())
}
