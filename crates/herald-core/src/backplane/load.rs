//! Each node's connection count, for rebalancing (`crate::rebalance`).

use crate::rebalance::NodeLoad;

concern! {
    /// Where nodes tell each other how loaded they are.
    ///
    /// Guarantees (checked by `conformance::load`): a report is seen by every other node's
    /// next report until the reporting node stops reporting (a few seconds) or leaves the
    /// cluster; each node appears once, with its latest figures. A single node has no others.
    pub trait Load {
        /// Records this node's connections and whether it accepts new ones; returns every
        /// other live node's latest report.
        fn report(&self, connections: u64, accepting: bool) -> Vec<NodeLoad> = "load_report";
    }
}
