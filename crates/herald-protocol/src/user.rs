//! The user documents clients hand in: presence `channel_data` (§2.3) and sign-in `user_data`
//! (§5.1). Both are parsed only after their signature was checked.

use serde::Deserialize;
use serde_json::Value;
use serde_json::value::RawValue;

use crate::UserId;

/// A presence member as declared in `channel_data`.
#[derive(Debug, PartialEq, Eq)]
pub struct ChannelData<'a> {
    pub user_id: UserId,
    /// The raw JSON text of `user_info`, if present and not `null`.
    pub user_info: Option<&'a str>,
}

#[derive(Deserialize)]
struct RawChannelData<'a> {
    user_id: Option<Value>,
    #[serde(borrow)]
    user_info: Option<&'a RawValue>,
}

/// The text when it is a JSON object: serde would also accept an array of the fields in order
/// (`[id, info]`), which no client sends and no spec allows (found by fuzzing).
fn object(text: &str) -> Option<&str> {
    text.trim_start().starts_with('{').then_some(text)
}

/// `user_id` may be a string or a number; members are keyed by its string form.
pub fn parse_channel_data(text: &str, max_user_id_len: usize) -> Result<ChannelData<'_>, String> {
    let raw: RawChannelData<'_> = object(text)
        .and_then(|t| serde_json::from_str(t).ok())
        .ok_or_else(|| "channel_data must be a JSON object".to_owned())?;
    let id = match raw.user_id {
        Some(Value::String(s)) => s,
        Some(Value::Number(n)) => n.to_string(),
        _ => return Err("channel_data must have a user_id (string or number)".to_owned()),
    };
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
    watchlist: Option<Vec<Value>>,
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
    let watchlist = raw
        .watchlist
        .unwrap_or_default()
        .into_iter()
        .filter_map(|v| match v {
            Value::String(s) => UserId::parse(&s, max_user_id_len),
            _ => None,
        })
        .collect();
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
            ["7", "8"]
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
}
