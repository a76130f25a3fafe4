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

/// A JSON number as JavaScript's `String(n)` writes it (ECMA-262 `Number::toString`): the
/// shortest digits that read back as the same double, plain up to 21 integer digits, and an
/// exponent beyond (`1e+21`, `1e-7`). pusher-js keys presence members by `String(user_id)` after
/// `JSON.parse`, so `10`, `10.0` and `1e1` are all the member `"10"`, and integers past 2^53
/// lose what a double cannot hold, exactly as they do in the browser.
pub fn js_number_text(v: f64) -> String {
    if v.is_nan() {
        return "NaN".to_owned();
    }
    if v == 0.0 {
        return "0".to_owned(); // -0 too
    }
    if v.is_infinite() {
        return if v < 0.0 { "-Infinity" } else { "Infinity" }.to_owned();
    }
    // Rust's `{:e}` writes the shortest round-trip digits: "1.2345e3", "5e-7".
    let sci = format!("{:e}", v.abs());
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    let k = digits.len() as i64;
    // The value is 0.DIGITS × 10^n.
    let n = exp.parse::<i64>().unwrap_or(0) + 1;
    let body = if k <= n && n <= 21 {
        format!("{digits}{}", "0".repeat((n - k) as usize))
    } else if 0 < n && n <= 21 {
        format!("{}.{}", &digits[..n as usize], &digits[n as usize..])
    } else if -6 < n && n <= 0 {
        format!("0.{}{digits}", "0".repeat((-n) as usize))
    } else {
        let e = n - 1;
        let sign = if e < 0 { '-' } else { '+' };
        match digits.split_at(1) {
            (first, "") => format!("{first}e{sign}{}", e.abs()),
            (first, rest) => format!("{first}.{rest}e{sign}{}", e.abs()),
        }
    };
    if v < 0.0 { format!("-{body}") } else { body }
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
