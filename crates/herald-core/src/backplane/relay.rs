//! Traffic between nodes.

use super::{Control, Envelope};
use crate::AppId;

concern! {
    /// Carries frames and commands to the other nodes.
    ///
    /// Guarantees (checked by `conformance::relay`): what `publish` and `control` send reaches
    /// every *other* node's hub through its `Inbound` receiver, in publish order per channel
    /// (for `publish`: to the nodes with subscribers of the envelope's channel); the calling
    /// node delivers locally itself and never receives its own messages back. When the call
    /// fails, no node received it.
    pub trait Relay {
        /// A frame for the subscribers of `envelope.channel` on the other nodes.
        fn publish(&self, app: &AppId, envelope: &Envelope) -> () = "publish";
        /// A command for every other node.
        fn control(&self, app: &AppId, control: &Control) -> () = "control";
    }
}
