use super::*;
use crate::signature::sign;

const KEY: &str = "278d425bdf160c739803";
const NOW: u64 = 1353088179;

fn secret() -> Secret {
    Secret::new("7ad3773142a6692b25b8")
}

/// Signs like pusher-http-node: values unescaped in the signature.
fn signed_query(method: &str, path: &str, body: &[u8], ts: u64, extra: &[(&str, &str)]) -> String {
    let md5 = body_md5(body);
    let ts = ts.to_string();
    let mut params: Vec<(&str, &str)> = vec![
        ("auth_key", KEY),
        ("auth_timestamp", &ts),
        ("auth_version", "1.0"),
    ];
    if !body.is_empty() {
        params.push(("body_md5", &md5));
    }
    params.extend_from_slice(extra);
    let sig = sign(
        &secret(),
        api_request_payload(method, path, &params).as_bytes(),
    );
    let q: Vec<String> = params.iter().map(|(k, v)| format!("{k}={v}")).collect();
    format!("{}&auth_signature={sig}", q.join("&"))
}

fn check(method: &str, path: &str, query: &str, body: &[u8], now: u64) -> Result<(), ApiError> {
    verify_request(
        &SignedRequest {
            method,
            path,
            query,
            body,
        },
        KEY,
        &secret(),
        now,
        600,
    )
}

#[test]
fn pusher_docs_request_verifies() {
    let body = br#"{"name":"foo","channels":["project-3"],"data":"{\"some\":\"data\"}"}"#;
    let q = "auth_key=278d425bdf160c739803&auth_timestamp=1353088179&auth_version=1.0&body_md5=ec365a775a4cd0599faeb73354201b6f&auth_signature=da454824c97ba181a32ccc17a72625ba02771f50b50e1e7430e47a1f3f457e6c";
    assert_eq!(check("POST", "/apps/3/events", q, body, NOW), Ok(()));
}

#[test]
fn timestamp_window_is_600_seconds() {
    let q = signed_query("GET", "/apps/3/channels", b"", NOW, &[]);
    assert_eq!(check("GET", "/apps/3/channels", &q, b"", NOW + 600), Ok(()));
    assert_eq!(check("GET", "/apps/3/channels", &q, b"", NOW - 600), Ok(()));
    assert_eq!(
        check("GET", "/apps/3/channels", &q, b"", NOW + 601)
            .unwrap_err()
            .status(),
        401
    );
    assert_eq!(
        check("GET", "/apps/3/channels", &q, b"", NOW - 601)
            .unwrap_err()
            .status(),
        401
    );
}

#[test]
fn escaped_values_are_signed_decoded() {
    // PHP/Guzzle escapes the comma; node does not. Both must verify.
    let q = signed_query(
        "GET",
        "/apps/3/channels/presence-x",
        b"",
        NOW,
        &[("info", "user_count,subscription_count")],
    );
    assert_eq!(
        check("GET", "/apps/3/channels/presence-x", &q, b"", NOW),
        Ok(())
    );
    let escaped = q.replace(
        "user_count,subscription_count",
        "user_count%2Csubscription_count",
    );
    assert_eq!(
        check("GET", "/apps/3/channels/presence-x", &escaped, b"", NOW),
        Ok(())
    );
}

#[test]
fn escaped_channel_in_path_is_signed_decoded() {
    let q = signed_query("GET", "/apps/3/channels/a@b;c", b"", NOW, &[]);
    assert_eq!(
        check("GET", "/apps/3/channels/a%40b%3Bc", &q, b"", NOW),
        Ok(())
    );
}

#[test]
fn each_check_fails_with_401() {
    let body = b"{}";
    let good = signed_query(
        "POST",
        "/apps/3/users/1/terminate_connections",
        body,
        NOW,
        &[],
    );
    let p = "/apps/3/users/1/terminate_connections";
    assert_eq!(check("POST", p, &good, body, NOW), Ok(()));
    for (query, body) in [
        (good.replace(KEY, "otherkey"), &body[..]),
        (good.replace("auth_version=1.0", "auth_version=2.0"), body),
        (good.replace("auth_timestamp=", "auth_timestamp=x"), body),
        (good.clone(), b"{ }"),
        (good.split("&body_md5").next().unwrap().to_owned(), body),
        (good.replace("auth_signature=", "auth_signature=00"), body),
        (
            good.split("&auth_signature").next().unwrap().to_owned(),
            body,
        ),
    ] {
        assert_eq!(
            check("POST", p, &query, body, NOW).unwrap_err().status(),
            401,
            "{query}"
        );
    }
    assert_eq!(check("GET", p, &good, body, NOW).unwrap_err().status(), 401);
}

#[test]
fn empty_body_with_empty_md5_is_accepted() {
    let q = signed_query(
        "POST",
        "/apps/3/events",
        b"",
        NOW,
        &[("body_md5", EMPTY_MD5)],
    );
    assert_eq!(check("POST", "/apps/3/events", &q, b"", NOW), Ok(()));
}

fn trigger(body: &str) -> Result<Trigger, ApiError> {
    parse_trigger(body.as_bytes(), &Limits::default())
}

#[test]
fn trigger_bodies() {
    let t = trigger(r#"{"name":"e","channels":["a","b"],"data":"{}","socket_id":"1.2","info":"subscription_count"}"#).unwrap();
    assert_eq!(t.channels.len(), 2);
    assert_eq!(t.socket_id.unwrap().as_str(), "1.2");
    assert!(t.info.subscription_count);
    let t = trigger(r#"{"name":"e","channel":"a","data":"x"}"#).unwrap();
    assert_eq!(t.channels[0].as_str(), "a");
    // node SDK sends a single encrypted channel as an array of one.
    assert!(trigger(r#"{"name":"e","channels":["private-encrypted-x"],"data":"x"}"#).is_ok());
}

#[test]
fn channels_are_a_set() {
    let many = vec!["c"; 100];
    let body = serde_json::json!({"name": "e", "channels": many, "data": "x"}).to_string();
    let t = trigger(&body).unwrap();
    assert_eq!(
        t.channels.iter().map(|c| c.as_str()).collect::<Vec<_>>(),
        ["c"]
    );
    let t = trigger(r#"{"name":"e","channels":["b","a","b","c","a"],"data":"x"}"#).unwrap();
    assert_eq!(
        t.channels.iter().map(|c| c.as_str()).collect::<Vec<_>>(),
        ["b", "a", "c"],
        "first occurrences, in order"
    );
}

#[test]
fn trigger_errors() {
    let status = |b: &str| trigger(b).unwrap_err().status();
    assert_eq!(status("nope"), 400);
    assert_eq!(status(r#"{"channels":["a"],"data":"x"}"#), 400);
    assert_eq!(status(r#"{"name":"e","channels":["a"]}"#), 400);
    assert_eq!(
        status(r#"{"name":"e","channels":["a"],"data":{"a":1}}"#),
        400
    );
    assert_eq!(status(r#"{"name":"e","channels":[],"data":"x"}"#), 400);
    assert_eq!(status(r#"{"name":"e","data":"x"}"#), 400);
    assert_eq!(status(r#"{"name":"e","channels":["a b"],"data":"x"}"#), 400);
    assert_eq!(
        status(r#"{"name":"e","channels":["a"],"data":"x","socket_id":"1.1:x"}"#),
        400
    );
    assert_eq!(
        status(r#"{"name":"e","channels":["private-encrypted-a","b"],"data":"x"}"#),
        400
    );
    assert_eq!(
        status(r#"{"name":"pusher:x","channels":["a"],"data":"x"}"#),
        400
    );
    let long_name = format!(
        r#"{{"name":"{}","channels":["a"],"data":"x"}}"#,
        "e".repeat(201)
    );
    assert_eq!(status(&long_name), 400);
    let many: Vec<String> = (0..101).map(|i| format!("\"c{i}\"")).collect();
    assert_eq!(
        status(&format!(
            r#"{{"name":"e","channels":[{}],"data":"x"}}"#,
            many.join(",")
        )),
        400
    );
    let big = format!(
        r#"{{"name":"e","channels":["a"],"data":"{}"}}"#,
        "x".repeat(10 * 1024 + 1)
    );
    assert_eq!(status(&big), 413);
    let limit = format!(
        r#"{{"name":"e","channels":["a"],"data":"{}"}}"#,
        "x".repeat(10 * 1024)
    );
    assert!(trigger(&limit).is_ok());
}

#[test]
fn batches() {
    let limits = Limits::default();
    let ok = r#"{"batch":[{"name":"a","channel":"c","data":"1"},{"name":"b","channels":["d"],"data":"2","info":"user_count"}]}"#;
    assert_eq!(parse_batch(ok.as_bytes(), &limits).unwrap().len(), 2);
    let eleven: Vec<&str> = (0..11)
        .map(|_| r#"{"name":"a","channel":"c","data":"1"}"#)
        .collect();
    let body = format!(r#"{{"batch":[{}]}}"#, eleven.join(","));
    assert_eq!(
        parse_batch(body.as_bytes(), &limits).unwrap_err().status(),
        400
    );
    let bad = r#"{"batch":[{"name":"a","channel":"c","data":"1"},{"name":"b","data":"2"}]}"#;
    assert_eq!(
        parse_batch(bad.as_bytes(), &limits).unwrap_err().status(),
        400
    );
    let two = r#"{"batch":[{"name":"a","channels":["c","d"],"data":"1"}]}"#;
    assert_eq!(
        parse_batch(two.as_bytes(), &limits).unwrap_err().status(),
        400
    );
}

#[test]
fn info_attributes() {
    assert_eq!(
        Info::parse("user_count,subscription_count").unwrap(),
        Info {
            user_count: true,
            subscription_count: true,
            cache: false
        }
    );
    assert_eq!(Info::parse("bogus").unwrap_err().status(), 400);
    let public = ChannelName::parse("x", 164).unwrap();
    let presence = ChannelName::parse("presence-x", 164).unwrap();
    assert!(
        Info::parse("user_count")
            .unwrap()
            .check_for_channel(&public)
            .is_err()
    );
    assert!(
        Info::parse("user_count,subscription_count")
            .unwrap()
            .check_for_channel(&presence)
            .is_ok()
    );
    assert!(
        Info::parse("cache")
            .unwrap()
            .check_for_channel(&public)
            .is_err()
    );
}
