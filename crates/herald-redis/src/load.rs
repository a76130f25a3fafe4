//! `Load`: `{prefix}:load` (node → `connections:accepting:ms`), written and read in one round
//! trip by the LOAD_REPORT script, which also drops the entries of nodes that stopped
//! reporting or left the node list. A new key: nodes of `da0b2f5` neither write nor read it
//! (they take no part in rebalancing and are not counted).

use async_trait::async_trait;
use herald_core::backplane::{BackplaneError, Load};
use herald_core::rebalance::NodeLoad;

use crate::{RedisBackplane, err, scripts};

/// A report older than this no longer counts (reports come every second).
const STALE_MS: u64 = 5_000;

#[async_trait]
impl Load for RedisBackplane {
    async fn report(
        &self,
        connections: u64,
        accepting: bool,
    ) -> Result<Vec<NodeLoad>, BackplaneError> {
        let i = &self.inner;
        let mut c = i.conn().await?;
        let flat: Vec<String> = scripts::LOAD_REPORT
            .key(i.keys.load())
            .key(i.keys.nodes())
            .arg(&i.node)
            .arg(connections)
            .arg(u8::from(accepting))
            .arg(STALE_MS)
            .invoke_async(&mut c)
            .await
            .map_err(err)?;
        Ok(flat
            .chunks_exact(3)
            .filter(|n| n[0] != i.node)
            .filter_map(|n| {
                Some(NodeLoad {
                    node: n[0].clone(),
                    connections: n[1].parse().ok()?,
                    accepting: n[2] == "1",
                })
            })
            .collect())
    }
}
