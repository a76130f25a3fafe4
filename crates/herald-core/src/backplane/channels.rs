//! Subscription counts per channel, cluster-wide.

use herald_protocol::{ChannelName, SocketId};

use super::{ChannelCount, Occupancy};
use crate::AppId;

concern! {
    /// How many connections, cluster-wide, are subscribed to each channel.
    ///
    /// Guarantees (checked by `conformance::channels`): `subscribe` and `unsubscribe` are
    /// atomic, so each occupied and vacated transition is reported to exactly one caller in the
    /// cluster; a repeated unsubscribe changes nothing; queries read shared state, never other
    /// nodes.
    pub trait Channels {
        /// One more subscription (a connection) on `channel`. On a cluster the node also starts
        /// receiving the channel's traffic, before the subscription counts. When it occupies
        /// the channel, a pending `Check::Vacated` is cancelled in the same step
        /// (`vacancy_cancelled`), as `Presence::join` does for removals.
        fn subscribe(&self, app: &AppId, channel: &ChannelName, socket: &SocketId) -> Occupancy = "subscribe";
        /// One subscription fewer. When `check_at` is given and the leave vacates the channel,
        /// `Check::Vacated(channel)` is scheduled for that time (ms since the epoch) in the same
        /// step, so a node killed right after the leave cannot lose the debounced webhook.
        fn unsubscribe(&self, app: &AppId, channel: &ChannelName, socket: &SocketId, check_at: Option<u64>) -> Occupancy = "unsubscribe";
        /// Occupied channels whose name starts with `prefix`, sorted by name.
        fn channels(&self, app: &AppId, prefix: &str) -> Vec<ChannelCount> = "channels";
        /// Counts of one channel (zero when unoccupied).
        fn channel(&self, app: &AppId, channel: &ChannelName) -> ChannelCount = "channel";
    }
}
