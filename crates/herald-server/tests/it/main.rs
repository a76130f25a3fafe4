//! End-to-end tests: a real server on port 0, real WebSocket and HTTP clients, exact frames,
//! codes and statuses.

// Helpers outside #[test] functions: a panic is how they fail the test.
#![allow(clippy::unwrap_used)]

mod support;

mod apps_runtime;
mod authz;
mod channels;
mod client_events;
mod cluster;
mod cluster_faults;
mod connection;
mod console;
mod databases;
mod floods;
mod http_api;
mod mixed_versions;
mod monitoring;
mod rebalance;
mod redis_topologies;
mod secrets;
mod shutdown;
mod sql_stores;
mod tls;
mod users;
mod webhooks;
