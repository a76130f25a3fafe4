//! The rebalancer: every second this node reports its connection count through the backplane,
//! reads the others', and sheds what `herald_core::rebalance::Policy` decides: its oldest
//! connections (never one younger than `MIN_AGE`, so a client that just moved is not moved
//! again), closed with 4200 so pusher-js reconnects at once through the balancer. An operator
//! can also ask for a hand-off (`POST /admin/rebalance`), shed at the same pace.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use herald_core::CloseReason;
use herald_core::rebalance::{Decision, Policy};
use herald_protocol::ErrorCode;

use crate::State;

/// How often loads are reported and decisions taken.
pub const TICK: Duration = Duration::from_secs(1);
/// A connection younger than this is never shed.
pub const MIN_AGE: Duration = Duration::from_secs(10);

/// The rebalancer's state shared with the admin API and the metrics.
#[derive(Default)]
pub struct Rebalancer {
    /// Connections an operator asked this node to hand off, not yet shed.
    pub handoff: AtomicU64,
    /// Connections shed so far (rebalancing and hand-offs).
    pub shed: AtomicU64,
    /// The cluster mean this node saw last (connections per accepting node), as f64 bits.
    mean: AtomicU64,
}

impl Rebalancer {
    pub fn mean(&self) -> Option<f64> {
        let bits = self.mean.load(Ordering::Relaxed);
        (bits != u64::MAX).then(|| f64::from_bits(bits))
    }

    fn set_mean(&self, mean: Option<f64>) {
        self.mean
            .store(mean.map_or(u64::MAX, f64::to_bits), Ordering::Relaxed);
    }
}

/// Whether this node takes new connections: what `/ready` says.
pub fn accepting(state: &State) -> bool {
    crate::admin::readiness(state).is_ok()
}

/// Runs until the process ends.
pub fn spawn(state: Arc<State>, policy: Policy) -> tokio::task::JoinHandle<()> {
    state.rebalancer.set_mean(None);
    if policy.tolerance_percent == 0 {
        tracing::info!("rebalancing off (rebalance_tolerance_percent = 0); hand-offs still work");
    }
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut shedding = false;
        loop {
            tick.tick().await;
            let own = state.hub.connection_count() as u64;
            let accepting = accepting(&state);
            // A backplane that cannot answer: nothing is known, nothing is shed.
            let loads = match state.hub.backplane().load.report(own, accepting).await {
                Ok(loads) => loads,
                Err(e) => {
                    tracing::debug!(error = %e, "load not reported; not rebalancing");
                    shedding = false;
                    continue;
                }
            };
            let handoff = state.rebalancer.handoff.load(Ordering::SeqCst);
            let d: Decision = policy.decide(
                state.hub.node_id(),
                own,
                accepting,
                &loads,
                shedding,
                handoff,
            );
            state.rebalancer.set_mean(d.mean);
            state.metrics.cluster_mean(d.mean);
            let shed = if d.shed == 0 {
                0
            } else {
                shed_oldest(&state, d.shed as usize)
            };
            // A node is shedding once it has moved someone: a passing imbalance while every
            // connection is younger than MIN_AGE (two nodes filling up at start) moves nobody
            // and must not start the hysteresis that would later shed a node within tolerance.
            let now_shedding = d.shedding && (shedding || shed > 0);
            if now_shedding && !shedding {
                tracing::info!(
                    connections = own,
                    mean = d.mean.unwrap_or(0.0).round(),
                    tolerance_percent = policy.tolerance_percent,
                    "above the cluster mean: moving connections to less loaded nodes"
                );
            } else if shedding && !now_shedding {
                tracing::info!(
                    connections = own,
                    "back near the cluster mean: rebalancing done"
                );
            }
            shedding = now_shedding;
            if shed == 0 {
                continue;
            }
            state
                .rebalancer
                .shed
                .fetch_add(shed as u64, Ordering::Relaxed);
            state.metrics.rebalanced(shed as u64);
            let from_handoff = (shed as u64).min(handoff);
            state
                .rebalancer
                .handoff
                .fetch_sub(from_handoff, Ordering::SeqCst);
        }
    })
}

/// Closes up to `n` of the oldest connections at least `MIN_AGE` old with 4200; how many.
fn shed_oldest(state: &State, n: usize) -> usize {
    let mut conns: Vec<_> = state
        .hub
        .connections()
        .into_iter()
        .filter(|c| c.age() >= MIN_AGE && !c.is_closing())
        .collect();
    if conns.is_empty() {
        return 0;
    }
    let n = n.min(conns.len());
    if n < conns.len() {
        conns.select_nth_unstable_by_key(n - 1, |c| std::cmp::Reverse(c.age()));
    }
    let reason = CloseReason::from_error(
        ErrorCode::ReconnectNow,
        "Rebalancing: reconnect to a less loaded node",
    );
    conns[..n]
        .iter()
        .filter(|c| c.close(reason.clone()))
        .count()
}
