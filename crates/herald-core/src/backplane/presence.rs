//! Presence channel membership, cluster-wide.

use herald_protocol::{ChannelName, SocketId};

use super::{Joined, Left, Member};
use crate::AppId;

concern! {
    /// Who is in each presence channel. Members are users; a user may have several
    /// connections (tabs) in a channel.
    ///
    /// Guarantees (checked by `conformance::presence`): `join` and `leave` are atomic, so a
    /// user's arrival (`Joined::Admitted { new_user: true }`) and departure (`Some(Left)`) are
    /// each reported to exactly one caller in the cluster; every arrival and departure bumps the
    /// channel's membership version, which `join` and `leave` return with the change.
    pub trait Presence {
        /// Adds `socket` as `member`; refuses a new user beyond `max_members`. A new user's
        /// pending `Check::MemberRemoved` (a removal waiting out its debounce) is cancelled in
        /// the same step (`removal_cancelled`), so the check falling due and the re-join cannot
        /// interleave: either the removal was taken first (and is sent, then `member_added`) or
        /// the join cancelled it (and neither is sent).
        fn join(&self, app: &AppId, channel: &ChannelName, socket: &SocketId, member: &Member, max_members: usize) -> Joined = "presence_join";
        /// Removes `socket`; returns the user (and the new version) when it was the user's last
        /// connection in the channel. When `check_at` is given and the user left,
        /// `Check::MemberRemoved(channel, user)` is scheduled for that time in the same step
        /// (see `Channels::unsubscribe`).
        fn leave(&self, app: &AppId, channel: &ChannelName, socket: &SocketId, check_at: Option<u64>) -> Option<Left> = "presence_leave";
        /// The members, sorted by user id.
        fn members(&self, app: &AppId, channel: &ChannelName) -> Vec<Member> = "members";
    }
}
