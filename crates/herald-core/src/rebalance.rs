//! Rebalancing after a scale-out. A load balancer places only new connections, and WebSocket
//! connections live for hours: without help a node added by the autoscaler carries nothing while
//! the old ones stay hot. Each node reports its connection count through the backplane every
//! second (`Load`) and reads everyone's; a node holding more than the cluster mean by more than
//! the tolerance closes some of its oldest connections with 4200 (pusher-js reconnects at once,
//! through the balancer, to a less loaded node), a few per second, until it is back near the
//! mean. This module decides how many; the server closes them.

/// One node's latest report.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeLoad {
    pub node: String,
    pub connections: u64,
    /// Ready for new connections (not starting, draining, full or cut off from the backplane).
    pub accepting: bool,
}

/// The knobs (`rebalance_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Policy {
    /// Shed when holding more than the mean by more than this share (percent); 0: never.
    pub tolerance_percent: u32,
    /// A node holding fewer connections never sheds: below it an imbalance costs nothing.
    pub min_connections: u64,
    /// Most connections shed per second; None: 2 % of the node's connections (at least 1).
    pub max_per_second: Option<u64>,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            tolerance_percent: 20,
            min_connections: 100,
            max_per_second: None,
        }
    }
}

/// What one tick (a second) decided.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Decision {
    /// Connections per accepting node, cluster-wide (None when nobody accepts).
    pub mean: Option<f64>,
    /// How many connections to close now.
    pub shed: u64,
    /// Whether the node is (still) shedding: once started it goes on down to within a quarter
    /// of the tolerance, so the new node ends near the mean, not at its lower edge.
    pub shedding: bool,
}

impl Policy {
    /// The connections a node holding `own` may shed in one second.
    pub fn rate(&self, own: u64) -> u64 {
        self.max_per_second.unwrap_or(own / 50).max(1)
    }

    /// Decides one tick for the node `me` holding `own` connections. `loads` are the nodes'
    /// latest reports (this node's among them or not: its own figures are used). `handoff`:
    /// connections an operator asked this node to hand off, shed regardless of the tolerance.
    /// Nothing is shed unless this node accepts and another accepting node holds fewer than
    /// the mean (somewhere for the clients to go).
    pub fn decide(
        &self,
        me: &str,
        own: u64,
        accepting: bool,
        loads: &[NodeLoad],
        was_shedding: bool,
        handoff: u64,
    ) -> Decision {
        let others: Vec<&NodeLoad> = loads.iter().filter(|l| l.node != me).collect();
        let accepting_nodes =
            others.iter().filter(|l| l.accepting).count() + usize::from(accepting);
        let total: u64 = others.iter().map(|l| l.connections).sum::<u64>() + own;
        let mean = (accepting_nodes > 0).then(|| total as f64 / accepting_nodes as f64);
        let idle = Decision {
            mean,
            shed: 0,
            shedding: false,
        };
        let Some(mean) = mean else { return idle };
        if !accepting || accepting_nodes < 2 {
            return idle;
        }
        let room = others
            .iter()
            .any(|l| l.accepting && (l.connections as f64) < mean);
        if !room {
            return idle;
        }
        let rate = self.rate(own);
        let mut shed = handoff.min(rate);
        let mut shedding = false;
        if self.tolerance_percent > 0 && own >= self.min_connections {
            let tolerance = f64::from(self.tolerance_percent) / 100.0;
            let start = mean * (1.0 + tolerance);
            let stop = mean * (1.0 + tolerance / 4.0);
            let over = own as f64 > start || (was_shedding && own as f64 > stop);
            if over {
                let excess = (own as f64 - stop).ceil() as u64;
                shed = shed.max(excess.min(rate));
                shedding = true;
            }
        }
        Decision {
            mean: Some(mean),
            shed,
            shedding,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(node: &str, connections: u64, accepting: bool) -> NodeLoad {
        NodeLoad {
            node: node.into(),
            connections,
            accepting,
        }
    }

    #[test]
    fn a_scale_out_moves_load_down_to_near_the_mean_then_stops() {
        let p = Policy::default();
        let loads = [
            load("a", 150, true),
            load("b", 150, true),
            load("c", 0, true),
        ];
        let d = p.decide("a", 150, true, &loads, false, 0);
        assert_eq!(d.mean, Some(100.0));
        assert_eq!(d.shed, 3, "2 % of 150 per second");
        assert!(d.shedding);
        // Inside the tolerance but still shedding: down to within a quarter of it (105).
        let loads = [
            load("a", 110, true),
            load("b", 110, true),
            load("c", 80, true),
        ];
        let d = p.decide("a", 110, true, &loads, true, 0);
        assert_eq!((d.shed, d.shedding), (2, true));
        let d = p.decide("a", 110, true, &loads, false, 0);
        assert_eq!(
            (d.shed, d.shedding),
            (0, false),
            "not started inside the tolerance"
        );
        let loads = [
            load("a", 105, true),
            load("b", 105, true),
            load("c", 90, true),
        ];
        let d = p.decide("a", 105, true, &loads, true, 0);
        assert_eq!((d.shed, d.shedding), (0, false), "stops near the mean");
    }

    #[test]
    fn nothing_is_shed_without_somewhere_to_go() {
        let p = Policy::default();
        // Alone.
        assert_eq!(
            p.decide("a", 500, true, &[load("a", 500, true)], false, 0)
                .shed,
            0
        );
        assert_eq!(p.decide("a", 500, true, &[], false, 9).shed, 0);
        // The only other node is starting or draining.
        let loads = [load("a", 500, true), load("b", 0, false)];
        assert_eq!(p.decide("a", 500, true, &loads, false, 0).shed, 0);
        // This node is not accepting (draining handles its clients; backplane down).
        let loads = [load("a", 500, true), load("b", 0, true)];
        assert_eq!(p.decide("a", 500, false, &loads, false, 0).shed, 0);
        // Within tolerance, or too few connections to matter, or turned off.
        let loads = [load("a", 115, true), load("b", 85, true)];
        assert_eq!(p.decide("a", 115, true, &loads, false, 0).shed, 0);
        let loads = [load("a", 90, true), load("b", 0, true)];
        assert_eq!(p.decide("a", 90, true, &loads, false, 0).shed, 0);
        let off = Policy {
            tolerance_percent: 0,
            ..p
        };
        let loads = [load("a", 900, true), load("b", 0, true)];
        assert_eq!(off.decide("a", 900, true, &loads, false, 0).shed, 0);
    }

    #[test]
    fn a_handoff_is_shed_at_the_rate_whatever_the_tolerance() {
        let p = Policy {
            max_per_second: Some(5),
            ..Policy::default()
        };
        let loads = [load("a", 50, true), load("b", 40, true)];
        assert_eq!(p.decide("a", 50, true, &loads, false, 30).shed, 5);
        assert_eq!(p.decide("a", 50, true, &loads, false, 2).shed, 2);
        let alone = [load("a", 50, true)];
        assert_eq!(p.decide("a", 50, true, &alone, false, 30).shed, 0);
    }
}
