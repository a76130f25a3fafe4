//! Signed-in users, cluster-wide.

use herald_protocol::{SocketId, UserId};

use crate::AppId;

concern! {
    /// Which users have a signed-in connection somewhere in the cluster.
    ///
    /// Guarantees (checked by `conformance::users`): a user's coming online (first connection)
    /// and going offline (last connection) are each reported to exactly one caller.
    pub trait Users {
        /// A connection signed in as `user`; true when the user just came online. On a cluster
        /// the node also starts receiving the user's `#server-to-user-` traffic.
        fn signin(&self, app: &AppId, user: &UserId, socket: &SocketId) -> bool = "user_signin";
        /// A signed-in connection closed; true when the user just went offline.
        fn signout(&self, app: &AppId, user: &UserId, socket: &SocketId) -> bool = "user_signout";
        /// Whether each user is online, in order.
        fn online(&self, app: &AppId, users: &[UserId]) -> Vec<bool> = "users_online";
    }
}
