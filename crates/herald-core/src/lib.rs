//! The node: apps and their limits, the hub (local connections, local subscriptions, fan-out),
//! sessions (everything about one connection), presence and user logic, rate limits, and the
//! `Backplane` trait with its in-memory implementation.
//!
//! **Invariant:** this crate never touches a socket, an HTTP request or Redis. It receives
//! decoded text from the transport and pushes encoded frames into bounded outboxes.

pub mod admission;
pub mod app;
pub mod backplane;
pub mod conn;
pub mod console;
pub mod hooks;
pub mod hub;
pub mod rate;
mod reaped;
pub mod rebalance;
pub mod redact;
pub mod session;
pub mod smallmap;
pub mod store;
mod subscription_count;
pub mod sync;
pub mod webhook;

pub use app::{
    App, AppChanges, AppFeatures, AppId, AppSet, Apps, PreviousSecret, WebhookEndpoint,
    WebhookTarget,
};
pub use backplane::{Backplane, BackplaneError, MemoryBackplane};
pub use conn::{CloseReason, ConnHandle, Outbox, Outgoing, Sent};
pub use hub::{Hub, HubConfig};
pub use session::Session;
pub use webhook::{MemoryWebhookQueue, WebhookQueue};
