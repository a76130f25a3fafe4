//! Cluster-wide counts that limits are checked against.

use crate::AppId;

concern! {
    /// Counters shared by every node.
    ///
    /// Guarantees (checked by `conformance::quota`): each change is atomic and returns the
    /// cluster-wide total after it; a node's share is withdrawn when it shuts down or is reaped.
    pub trait Quota {
        /// Counts a connection of the app in (`+1`) or out (`-1`); returns the cluster-wide
        /// total.
        fn connections(&self, app: &AppId, delta: i64) -> u64 = "connections";

        /// Takes one of the app's HTTP API requests of the current second; false when the
        /// `per_second` budget of this second is spent (one budget for the whole cluster).
        fn api_request(&self, app: &AppId, per_second: u32) -> bool = "api_request";
    }
}
