//! The last event of each cache channel.

use herald_protocol::ChannelName;

use super::CachedEvent;
use crate::AppId;

concern! {
    /// Cache channels remember their last event for its time to live.
    ///
    /// Guarantees (checked by `conformance::cache`): `get` returns the last `set` until it
    /// expires, with the time it has left.
    pub trait Cache {
        fn set(&self, app: &AppId, channel: &ChannelName, event: CachedEvent) -> () = "cache_set";
        fn get(&self, app: &AppId, channel: &ChannelName) -> Option<CachedEvent> = "cache_get";
    }
}
