//! Behaviour every backplane must show, one module per concern. `herald-core` runs these on
//! `MemoryBackplane`; `herald-redis` runs the same checks on `RedisBackplane` against a real
//! redis-server. Each check takes a fresh backplane and panics with a description on failure.

#![allow(clippy::unwrap_used)] // Test code: a panic is how a check reports failure.

use herald_protocol::{ChannelName, SocketId, UserId};
use tokio::sync::mpsc;

use super::*;

pub mod cache;
pub mod channels;
pub mod load;
pub mod presence;
pub mod quota;
pub mod relay;
pub mod schedule;
pub mod users;

/// A node for the checks: its backplane and, on a cluster, what other nodes send it.
pub struct Node {
    pub backplane: Backplane,
    pub inbound: Option<mpsc::Receiver<Inbound>>,
}

impl From<Backplane> for Node {
    fn from(backplane: Backplane) -> Node {
        Node {
            backplane,
            inbound: None,
        }
    }
}

/// Runs every check of shared state, each on a fresh, empty backplane from `make`. The relay's
/// check needs the nodes of one cluster: each implementation runs
/// `relay::reaches_other_nodes_in_order_and_never_the_sender` with as many as it can have.
pub async fn run_all<F: std::future::Future<Output = Backplane>>(make: impl Fn() -> F) {
    channels::transitions_happen_once(&make().await).await;
    channels::queries_read_shared_state(&make().await).await;
    channels::a_vacating_leave_schedules_its_check(&make().await).await;
    channels::a_reoccupation_cancels_the_pending_vacancy_in_its_step(&make().await).await;
    presence::membership_is_per_user(&make().await).await;
    presence::the_limit_refuses_new_users_only(&make().await).await;
    presence::a_last_leave_schedules_its_check(&make().await).await;
    presence::a_rejoin_cancels_the_pending_removal_in_its_step(&make().await).await;
    users::go_online_and_offline_once(&make().await).await;
    cache::keeps_the_last_event(&make().await).await;
    quota::connection_totals_count_up_and_down(&make().await).await;
    quota::api_requests_share_one_budget_per_second(&make().await).await;
    schedule::marks_are_set_once_and_expire(&make().await).await;
    schedule::checks_fall_due_once(&make().await).await;
}

pub(crate) fn app(id: &str) -> AppId {
    AppId::new(id)
}

pub(crate) fn ch(name: &str) -> ChannelName {
    ChannelName::parse(name, 200).expect("valid test channel")
}

pub(crate) fn sock(n: u32) -> SocketId {
    SocketId::from_parts(n, n)
}

pub(crate) fn user(id: &str) -> UserId {
    UserId::parse(id, 128).expect("valid test user")
}

pub(crate) fn member(id: &str) -> Member {
    Member {
        user_id: user(id),
        user_info: Some(format!("{{\"name\":\"{id}\"}}").into()),
    }
}

#[cfg(test)]
mod memory {
    use super::*;

    #[tokio::test]
    async fn memory_backplane_conforms() {
        super::run_all(|| async { Backplane::memory() }).await;
    }

    #[tokio::test]
    async fn a_single_node_relays_to_nobody() {
        let mut a = Node::from(Backplane::memory());
        relay::reaches_other_nodes_in_order_and_never_the_sender(&mut a, None).await;
        load::reports_reach_the_other_nodes(&a.backplane, None).await;
    }
}
