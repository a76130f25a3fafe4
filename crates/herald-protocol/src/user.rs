//! The user documents clients hand in: presence `channel_data` (§2.3) and sign-in `user_data`
//! (§5.1). Both are parsed only after their signature was checked.

use serde::Deserialize;
use serde_json::Value;
use serde_json::value::RawValue;

use crate::UserId;
use crate::ids::js_number_text;

/// A presence member as declared in `channel_data`.
#[derive(Debug, PartialEq, Eq)]
pub struct ChannelData<'a> {
    pub user_id: UserId,
    /// The raw JSON text of `user_info`, if present and not `null`.
    pub user_info: Option<&'a str>,
}

#[derive(Deserialize)]
struct RawChannelData<'a> {
    #[serde(borrow)]
    user_id: Option<&'a RawValue>,
    #[serde(borrow)]
    user_info: Option<&'a RawValue>,
}

/// The text when it is a JSON object: serde would also accept an array of the fields in order
/// (`[id, info]`), which no client sends and no spec allows (found by fuzzing).
fn object(text: &str) -> Option<&str> {
    text.trim_start().starts_with('{').then_some(text)
}

/// A user id given as a JSON string or number: the string, or the number as JavaScript writes
/// it. The number is read from its text by Rust's exact parser (serde_json's fast one can be
/// off by one unit in the last place for long integers, and then the key would differ).
fn id_text(raw: &RawValue) -> Option<String> {
    let text = raw.get();
    match text.as_bytes().first()? {
        b'"' => serde_json::from_str(text).ok(),
        b'-' | b'0'..=b'9' => text.parse::<f64>().ok().map(js_number_text),
        _ => None,
    }
}

/// `user_id` may be a string or a number; members are keyed by its string form, which for a
/// number is JavaScript's (`10.0` and `1e1` are `"10"`), as pusher-js keys them.
pub fn parse_channel_data(text: &str, max_user_id_len: usize) -> Result<ChannelData<'_>, String> {
    let raw: RawChannelData<'_> = object(text)
        .and_then(|t| serde_json::from_str(t).ok())
        .ok_or_else(|| "channel_data must be a JSON object".to_owned())?;
    let id = raw
        .user_id
        .and_then(id_text)
        .ok_or_else(|| "channel_data must have a user_id (string or number)".to_owned())?;
    let user_id = UserId::parse(&id, max_user_id_len)
        .ok_or_else(|| format!("user_id must be 1 to {max_user_id_len} characters"))?;
    Ok(ChannelData {
        user_id,
        user_info: raw.user_info.map(RawValue::get).filter(|t| *t != "null"),
    })
}

/// A signed-in user as declared in `user_data`.
#[derive(Debug, PartialEq, Eq)]
pub struct UserData<'a> {
    pub id: UserId,
    pub user_info: Option<&'a str>,
    /// Watched user ids in the order given (the caller applies the size limit).
    pub watchlist: Vec<UserId>,
}

#[derive(Deserialize)]
struct RawUserData<'a> {
    id: Option<Value>,
    #[serde(borrow)]
    user_info: Option<&'a RawValue>,
    #[serde(borrow)]
    watchlist: Option<Vec<&'a RawValue>>,
}

/// `id` must be a non-empty string of channel-name characters (it names `#server-to-user-{id}`).
pub fn parse_user_data(text: &str, max_user_id_len: usize) -> Result<UserData<'_>, String> {
    let raw: RawUserData<'_> = object(text)
        .and_then(|t| serde_json::from_str(t).ok())
        .ok_or_else(|| "user_data must be a JSON object".to_owned())?;
    let id = match raw.id {
        Some(Value::String(s)) => UserId::parse_strict(&s, max_user_id_len).ok_or_else(|| {
            format!("id must be 1 to {max_user_id_len} characters from A-Z a-z 0-9 _ - = @ , . ;")
        })?,
        _ => return Err("id must be a non-empty string".to_owned()),
    };
    // Watched ids are user ids (what `id` accepts, numbers as JavaScript writes them); each
    // counts once against the watchlist limit.
    let mut seen = std::collections::HashSet::new();
    let mut watchlist = Vec::new();
    for v in raw.watchlist.unwrap_or_default() {
        let text = id_text(v)
            .ok_or_else(|| format!("watchlist entries must be user ids, got {}", v.get()))?;
        let id = UserId::parse_strict(&text, max_user_id_len).ok_or_else(|| {
            format!("watchlist entry {text:?} is not a user id (1 to {max_user_id_len} characters from A-Z a-z 0-9 _ - = @ , . ;)")
        })?;
        if seen.insert(text) {
            watchlist.push(id);
        }
    }
    Ok(UserData {
        id,
        user_info: raw.user_info.map(RawValue::get).filter(|t| *t != "null"),
        watchlist,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channel_data_user_ids() {
        let cd = parse_channel_data(r#"{"user_id":10,"user_info":{"name":"Mr. Channels"}}"#, 128)
            .unwrap();
        assert_eq!(cd.user_id.as_str(), "10");
        assert_eq!(cd.user_info, Some(r#"{"name":"Mr. Channels"}"#));
        assert_eq!(
            parse_channel_data(r#"{"user_id":"a"}"#, 128)
                .unwrap()
                .user_info,
            None
        );
        assert_eq!(
            parse_channel_data(r#"{"user_id":"a","user_info":null}"#, 128)
                .unwrap()
                .user_info,
            None
        );
        for bad in [
            "",
            "[]",
            "{}",
            r#"{"user_id":null}"#,
            r#"{"user_id":""}"#,
            r#"{"user_id":[1]}"#,
            "\"x\"",
            // Serde would read an array as the fields in order; channel_data is an object.
            r#"["u1",{"name":"a"}]"#,
        ] {
            assert!(parse_channel_data(bad, 128).is_err(), "{bad}");
        }
        assert!(
            parse_channel_data(&format!(r#"{{"user_id":"{}"}}"#, "x".repeat(129)), 128).is_err()
        );
    }

    #[test]
    fn user_data_must_be_an_object() {
        assert!(parse_user_data(r#"["u1",null,[]]"#, 128).is_err());
        assert!(parse_user_data(r#" {"id":"u1"}"#, 128).is_ok());
    }

    #[test]
    fn user_data() {
        let u = parse_user_data(
            r#"{"id":"12345","user_info":{"name":"John"},"watchlist":["7","8",9]}"#,
            128,
        )
        .unwrap();
        assert_eq!(u.id.as_str(), "12345");
        assert_eq!(u.user_info, Some(r#"{"name":"John"}"#));
        assert_eq!(
            u.watchlist.iter().map(UserId::as_str).collect::<Vec<_>>(),
            ["7", "8", "9"]
        );
        for bad in [
            "",
            "{}",
            r#"{"id":12345}"#,
            r#"{"id":""}"#,
            r#"{"id":"a b"}"#,
        ] {
            assert!(parse_user_data(bad, 128).is_err(), "{bad}");
        }
    }

    #[test]
    fn numeric_user_ids_are_keyed_as_javascript_writes_them() {
        for (json, key) in [
            ("10", "10"),
            ("10.0", "10"),
            ("1e1", "10"),
            ("1e3", "1000"),
            ("-0", "0"),
            ("-0.0", "0"),
            ("0.5", "0.5"),
            ("-12.25", "-12.25"),
            ("123456789012345678901", "123456789012345680000"),
            ("1e21", "1e+21"),
            ("1.5e300", "1.5e+300"),
            ("0.000001", "0.000001"),
            ("1e-7", "1e-7"),
            ("1.25e-7", "1.25e-7"),
            ("9007199254740993", "9007199254740992"),
        ] {
            let text = format!(r#"{{"user_id":{json}}}"#);
            let cd = parse_channel_data(&text, 128).unwrap();
            assert_eq!(cd.user_id.as_str(), key, "{json}");
        }
    }

    #[test]
    fn watchlists_hold_distinct_user_ids() {
        let many = format!(
            r#"{{"id":"u","watchlist":[{}]}}"#,
            vec![r#""w""#; 5000].join(",")
        );
        let u = parse_user_data(&many, 128).unwrap();
        assert_eq!(
            u.watchlist.iter().map(UserId::as_str).collect::<Vec<_>>(),
            ["w"]
        );
        let u = parse_user_data(r#"{"id":"u","watchlist":[7,"7",7.0,"8"]}"#, 128).unwrap();
        assert_eq!(
            u.watchlist.iter().map(UserId::as_str).collect::<Vec<_>>(),
            ["7", "8"]
        );
        for bad in [
            r#"{"id":"u","watchlist":["a b"]}"#,
            r#"{"id":"u","watchlist":[""]}"#,
            r#"{"id":"u","watchlist":[null]}"#,
            r#"{"id":"u","watchlist":[["x"]]}"#,
        ] {
            assert!(parse_user_data(bad, 128).is_err(), "{bad}");
        }
    }
}
