//! Vectors from Pusher's documentation (PROTOCOL.md §3.1, §6.1, §7.1).
use super::*;

const KEY: &str = "278d425bdf160c739803";

fn secret() -> Secret {
    Secret::new("7ad3773142a6692b25b8")
}

fn socket() -> SocketId {
    SocketId::parse("1234.1234").unwrap()
}

fn channel(name: &str) -> ChannelName {
    ChannelName::parse(name, 164).unwrap()
}

#[test]
fn private_channel_vector() {
    let payload = channel_auth_payload(&socket(), &channel("private-foobar"), None);
    assert_eq!(
        auth_token(KEY, &secret(), &payload),
        "278d425bdf160c739803:58df8b0c36d6982b82c3ecf6b4662e34fe8c25bba48f5369f135bf843651c3a4"
    );
}

#[test]
fn presence_channel_vector() {
    let data = r#"{"user_id":10,"user_info":{"name":"Mr. Channels"}}"#;
    let payload = channel_auth_payload(&socket(), &channel("presence-foobar"), Some(data));
    let expected =
        "278d425bdf160c739803:31935e7d86dba64c2a90aed31fdc61869f9b22ba9d8863bba239c03ca481bc80";
    assert_eq!(auth_token(KEY, &secret(), &payload), expected);
    assert!(verify_auth(KEY, &secret(), expected, &payload));
}

#[test]
fn signin_vector() {
    let data = r#"{"id":"12345","user_info":{"name":"John Smith"}}"#;
    let payload = signin_payload(&socket(), data);
    assert_eq!(
        auth_token(KEY, &secret(), &payload),
        "278d425bdf160c739803:524de46191b798f3332eddfa1a83f000e060a3e8520942fb2ee0d297079f0d6b"
    );
}

#[test]
fn api_request_vector() {
    let body = r#"{"name":"foo","channels":["project-3"],"data":"{\"some\":\"data\"}"}"#;
    let md5 = body_md5(body.as_bytes());
    assert_eq!(md5, "ec365a775a4cd0599faeb73354201b6f");
    let payload = api_request_payload(
        "post",
        "/apps/3/events",
        &[
            ("body_md5", &md5),
            ("auth_version", "1.0"),
            ("auth_key", KEY),
            ("auth_timestamp", "1353088179"),
        ],
    );
    assert_eq!(
        payload,
        "POST\n/apps/3/events\nauth_key=278d425bdf160c739803&auth_timestamp=1353088179&auth_version=1.0&body_md5=ec365a775a4cd0599faeb73354201b6f"
    );
    assert_eq!(
        sign(&secret(), payload.as_bytes()),
        "da454824c97ba181a32ccc17a72625ba02771f50b50e1e7430e47a1f3f457e6c"
    );
}

#[test]
fn webhook_vector() {
    let body = r#"{"time_ms":1327078148132,"events":[{"name":"channel_occupied","channel":"test-channel"}]}"#;
    assert_eq!(
        sign(&secret(), body.as_bytes()),
        "5dd6562a9f744b72a688bcdfea41c14c2c56d12c44c99e32c08face4cc1e8aeb"
    );
}

#[test]
fn auth_with_foreign_key_part_is_refused() {
    let payload = channel_auth_payload(&socket(), &channel("private-foobar"), None);
    let sig = sign(&secret(), payload.as_bytes());
    assert!(verify_auth(
        KEY,
        &secret(),
        &format!("{KEY}:{sig}"),
        &payload
    ));
    assert!(!verify_auth(
        KEY,
        &secret(),
        &format!("other:{sig}"),
        &payload
    ));
    assert!(!verify_auth(KEY, &secret(), &sig, &payload));
    assert!(!verify_auth(KEY, &secret(), &format!("{KEY}:zz"), &payload));
    assert!(!verify_auth(KEY, &secret(), "", &payload));
}

#[test]
fn secret_debug_hides_value() {
    assert_eq!(format!("{:?}", secret()), "Secret(***)");
}

#[test]
fn tokens_match_only_themselves() {
    let token = Secret::new("a-long-random-token");
    assert!(token.matches("a-long-random-token"));
    for other in [
        "",
        "a-long-random-toke",
        "a-long-random-token ",
        "A-long-random-token",
    ] {
        assert!(!token.matches(other), "{other:?}");
    }
}
