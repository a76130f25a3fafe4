//! The Pusher Channels wire protocol, version 7: what a client may send, what the server sends back,
//! channel and user naming rules, limits, error codes, and every signature (channel authorization,
//! user sign-in, HTTP API request signing, webhook signing).
//!
//! **Invariant:** this crate does no I/O, reads no clock and draws no randomness. Functions take the
//! current time as `now_secs` and return values, so everything here can be fuzzed and unit tested.

pub mod api;
pub mod channel;
pub mod error;
pub mod event;
pub mod ids;
pub mod limits;
pub mod signature;
pub mod user;
pub mod webhook;

pub use channel::{ChannelKind, ChannelName};
pub use error::{ErrorCode, ProtocolError, SubscriptionErrorKind};
pub use event::ClientEvent;
pub use ids::{SocketId, UserId};
pub use limits::Limits;
pub use signature::Secret;
