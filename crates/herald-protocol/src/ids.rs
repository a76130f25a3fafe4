//! Identifiers that arrive from outside: socket ids and user ids.

use std::fmt;

use compact_str::CompactString;

/// `^\d+\.\d+$`, as every server SDK checks before signing (GHSA-7v7m-pcw5-h3cg).
/// Inline up to 24 bytes, which every id this server makes fits: the hub keys several maps by
/// it, and a heap copy per entry would cost each idle connection about 100 bytes.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SocketId(CompactString);

impl SocketId {
    pub fn parse(s: &str) -> Option<SocketId> {
        let (a, b) = s.split_once('.')?;
        let digits =
            |p: &str| !p.is_empty() && p.len() <= 20 && p.bytes().all(|c| c.is_ascii_digit());
        (digits(a) && digits(b)).then(|| SocketId(CompactString::from(s)))
    }

    /// Builds the id of a new connection from two random numbers drawn by the caller.
    pub fn from_parts(a: u32, b: u32) -> SocketId {
        SocketId(compact_str::format_compact!("{a}.{b}"))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SocketId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A user id: non-empty, at most `max_len` characters. Presence members and signed-in users are
/// keyed by the string form (a numeric `user_id` in `channel_data` becomes its decimal text).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UserId(String);

impl UserId {
    /// Any non-empty string up to `max_len` characters (presence `channel_data`).
    pub fn parse(s: &str, max_len: usize) -> Option<UserId> {
        (!s.is_empty() && s.chars().count() <= max_len).then(|| UserId(s.to_owned()))
    }

    /// A user id that must also be usable inside `#server-to-user-{id}` and URL paths
    /// (sign-in `user_data.id`): the channel-name character set.
    pub fn parse_strict(s: &str, max_len: usize) -> Option<UserId> {
        (!s.is_empty() && s.len() <= max_len && s.bytes().all(crate::channel::is_name_byte))
            .then(|| UserId(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socket_ids() {
        for ok in ["1.1", "1234.5678", "4294967295.0"] {
            assert!(SocketId::parse(ok).is_some(), "{ok}");
        }
        for bad in [
            "",
            "1",
            "1.",
            ".1",
            "1.1.1",
            "-1.1",
            "1.1:private-x",
            "a.1",
            "1.1 ",
            "1e3.1",
        ] {
            assert!(SocketId::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn user_ids() {
        assert!(UserId::parse("", 128).is_none());
        assert!(UserId::parse(&"x".repeat(129), 128).is_none());
        assert!(UserId::parse("a b", 128).is_some());
        assert!(UserId::parse_strict("a b", 128).is_none());
        assert!(UserId::parse_strict("user-1@x.com", 128).is_some());
    }
}
