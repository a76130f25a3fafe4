//! Whether the backplane can serve, and its orderly exit.

use async_trait::async_trait;

/// Readiness and shutdown. Not timed: these are not round trips.
#[async_trait]
pub trait Health: Send + Sync + 'static {
    /// Whether the backplane can serve right now (readiness). The memory backplane always can.
    fn is_ready(&self) -> bool {
        true
    }

    /// How often the connection to the shared store was re-established (a counter; the memory
    /// backplane never reconnects).
    fn reconnects(&self) -> u64 {
        0
    }

    /// How often this node followed the shared store's primary to another server (a Redis
    /// Sentinel failover; a counter).
    fn primary_changes(&self) -> u64 {
        0
    }

    /// The cluster format version the nodes agreed on (the lowest any live node speaks); None
    /// for a single node, which shares no format with anyone.
    fn cluster_version(&self) -> Option<u32> {
        None
    }

    /// Called once at shutdown: withdraw this node's contributions so counts and members fall
    /// at once instead of after the dead-node timeout.
    async fn shutdown(&self) {}
}
