//! Debounced webhook checks and de-duplication markers, shared so they survive any one node.

use std::time::Duration;

use herald_protocol::{ChannelName, UserId};

use crate::AppId;

/// A debounced webhook check: when it falls due, the node that claims it asks the cluster
/// whether the removal still holds and, if so, sends the webhook.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Check {
    /// `channel_vacated`, unless the channel was re-occupied meanwhile.
    Vacated(ChannelName),
    /// `member_removed`, unless the user came back meanwhile.
    MemberRemoved(ChannelName, UserId),
}

impl Check {
    /// The key in the shared schedule: `v|{channel}` or `r|{channel}|{user}` (channel names
    /// never contain `|`). Part of the cluster's stored format: nodes of the previous release
    /// read and write the same keys.
    pub fn key(&self) -> String {
        match self {
            Check::Vacated(channel) => format!("v|{channel}"),
            Check::MemberRemoved(channel, user) => {
                format!("{}{user}", Check::member_removed_prefix(channel))
            }
        }
    }

    /// `MemberRemoved(channel, _)`'s key without the user. A leave whose user is only known
    /// inside the backplane's atomic step (a Redis script, a reaper replaying a dead node's
    /// leave) completes it with the user it removed; this is the one place that spells it.
    pub fn member_removed_prefix(channel: &ChannelName) -> String {
        format!("r|{channel}|")
    }

    /// The check a schedule key names; None for a key this release does not know.
    pub fn parse(key: &str) -> Option<Check> {
        let mut parts = key.splitn(3, '|');
        let kind = parts.next()?;
        let channel = ChannelName::parse(parts.next()?, usize::MAX).ok()?;
        match (kind, parts.next()) {
            ("v", None) => Some(Check::Vacated(channel)),
            ("r", Some(user)) => Some(Check::MemberRemoved(
                channel,
                UserId::parse(user, usize::MAX)?,
            )),
            _ => None,
        }
    }
}

/// A cluster-wide marker that something happened recently.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Mark {
    /// A `cache_miss` webhook went out for the channel.
    CacheMiss(ChannelName),
}

impl Mark {
    /// The marker's key (part of the stored format, like `Check::key`).
    pub fn key(&self) -> String {
        match self {
            Mark::CacheMiss(channel) => format!("cache-miss:{channel}"),
        }
    }
}

concern! {
    /// A shared schedule of debounced checks, and markers. The debounce lives here, not in a
    /// node's timers, so a webhook survives the node that scheduled it.
    ///
    /// Guarantees (checked by `conformance::schedule`): each due check is claimed by exactly
    /// one caller; scheduling a check again replaces its time; a cancelled check never falls
    /// due; a mark is set once per time to live.
    pub trait Schedule {
        /// Schedules `check` to fall due at `due_ms` (ms since the epoch).
        fn schedule(&self, app: &AppId, check: &Check, due_ms: u64) -> () = "schedule";
        /// Cancels a scheduled check; true if it was still scheduled.
        fn cancel(&self, app: &AppId, check: &Check) -> bool = "cancel";
        /// Claims up to `max` checks due at `now_ms`, earliest first. Keys this release cannot
        /// read are claimed and dropped with a warning.
        fn take_due(&self, app: &AppId, now_ms: u64, max: usize) -> Vec<Check> = "take_due";
        /// Sets `mark` for `ttl`; true if it was not set already.
        fn mark(&self, app: &AppId, mark: &Mark, ttl: Duration) -> bool = "mark";
    }
}

/// The checks named by claimed keys; unknown ones are logged (shared by the implementations).
pub fn parse_claimed(app: &AppId, keys: Vec<String>) -> Vec<Check> {
    keys.into_iter()
        .filter_map(|key| {
            let check = Check::parse(&key);
            if check.is_none() {
                tracing::warn!(app = %app, key, "unknown debounced webhook check ignored");
            }
            check
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ch(name: &str) -> ChannelName {
        ChannelName::parse(name, 200).unwrap()
    }

    #[test]
    fn keys_round_trip_in_the_stored_format() {
        let user = UserId::parse("u|1", 128).unwrap();
        for (check, key) in [
            (Check::Vacated(ch("room")), "v|room"),
            (
                Check::MemberRemoved(ch("presence-room"), user),
                "r|presence-room|u|1",
            ),
        ] {
            assert_eq!(check.key(), key);
            assert_eq!(Check::parse(key), Some(check));
        }
        assert_eq!(
            Check::member_removed_prefix(&ch("presence-x")) + "u",
            "r|presence-x|u"
        );
        for unknown in ["", "v", "x|room", "v|room|extra", "r|room", "v|bad name"] {
            assert_eq!(Check::parse(unknown), None, "{unknown}");
        }
        assert_eq!(Mark::CacheMiss(ch("cache-a")).key(), "cache-miss:cache-a");
    }
}
