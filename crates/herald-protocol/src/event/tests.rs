use super::*;
use crate::ErrorCode;

fn decode(text: &str) -> Result<ClientEvent, ProtocolError> {
    ClientEvent::decode(text, &Limits::default())
}

#[test]
fn ping_and_pong() {
    assert!(matches!(
        decode(r#"{"event":"pusher:ping","data":{}}"#),
        Ok(ClientEvent::Ping)
    ));
    assert!(matches!(
        decode(r#"{"event":"pusher:pong"}"#),
        Ok(ClientEvent::Pong)
    ));
}

#[test]
fn subscribe_with_object_or_string_data() {
    for text in [
        r#"{"event":"pusher:subscribe","data":{"channel":"presence-r","auth":"k:s","channel_data":"{\"user_id\":10}"}}"#,
        r#"{"event":"pusher:subscribe","data":"{\"channel\":\"presence-r\",\"auth\":\"k:s\",\"channel_data\":\"{\\\"user_id\\\":10}\"}"}"#,
    ] {
        match decode(text).unwrap() {
            ClientEvent::Subscribe {
                channel,
                auth,
                channel_data,
            } => {
                assert_eq!(channel.as_str(), "presence-r");
                assert_eq!(auth.as_deref(), Some("k:s"));
                assert_eq!(channel_data.as_deref(), Some(r#"{"user_id":10}"#));
            }
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn empty_auth_is_no_auth() {
    match decode(r#"{"event":"pusher:subscribe","data":{"channel":"c","auth":""}}"#).unwrap() {
        ClientEvent::Subscribe { auth, .. } => assert_eq!(auth, None),
        other => panic!("{other:?}"),
    }
}

#[test]
fn subscribe_to_invalid_name_is_a_subscription_error() {
    let err = decode(r#"{"event":"pusher:subscribe","data":{"channel":"bad name"}}"#).unwrap_err();
    assert_eq!(
        err.frame(),
        r#"{"event":"pusher:subscription_error","channel":"bad name","data":"{\"type\":\"InvalidChannel\",\"error\":\"Invalid channel name 'bad name': channel name may only contain A-Z a-z 0-9 _ - = @ , . ;\",\"status\":400}"}"#
    );
}

#[test]
fn malformed_frames_are_notices() {
    for text in [
        "",
        "{",
        "[]",
        "42",
        r#"{"data":{}}"#,
        r#"{"event":"pusher:subscribe"}"#,
        r#"{"event":"pusher:subscribe","data":{"auth":"x"}}"#,
        r#"{"event":"pusher:signin","data":{}}"#,
    ] {
        let err = decode(text).unwrap_err();
        assert!(
            matches!(err, ProtocolError::Notice { code: None, .. }),
            "{text}: {err:?}"
        );
        assert_eq!(err.close_code(), None);
    }
}

#[test]
fn client_event_keeps_data_verbatim() {
    let text = r#"{"event":"client-typing","channel":"private-c","data":{ "a" : [1, 2] }}"#;
    match decode(text).unwrap() {
        ClientEvent::Client {
            event,
            channel,
            data,
        } => {
            assert_eq!(
                (event.as_str(), channel.as_str()),
                ("client-typing", "private-c")
            );
            assert_eq!(data.get(), r#"{ "a" : [1, 2] }"#);
            assert_eq!(
                encode::client_event(event.as_str(), channel.as_str(), &data, Some("10")),
                r#"{"event":"client-typing","channel":"private-c","data":{ "a" : [1, 2] },"user_id":"10"}"#
            );
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn client_event_names_and_channels_are_checked_when_decoded() {
    let limits = Limits::default();
    let rejected = |text: &str| match ClientEvent::decode(text, &limits).unwrap() {
        ClientEvent::RejectedClient { channel, error } => (channel, error.to_string()),
        other => panic!("{text}: {other:?}"),
    };
    let long = format!("client-{}", "x".repeat(200));
    let (channel, error) = rejected(&format!(
        r#"{{"event":"{long}","channel":"private-c","data":{{}}}}"#
    ));
    assert_eq!(channel, "private-c");
    assert!(error.contains("at most 200 characters"), "{error}");
    for channel in [
        "public",
        "private-encrypted-x",
        "#server-to-user-u",
        "bad name",
    ] {
        let text = format!(r#"{{"event":"client-x","channel":"{channel}","data":{{}}}}"#);
        let (got, error) = rejected(&text);
        assert_eq!(got, channel);
        assert!(
            error.contains("only allowed on private and presence"),
            "{error}"
        );
    }
    for channel in ["private-c", "presence-c"] {
        let text = format!(r#"{{"event":"client-x","channel":"{channel}"}}"#);
        assert!(matches!(
            ClientEvent::decode(&text, &limits),
            Ok(ClientEvent::Client { .. })
        ));
    }
}

#[test]
fn unknown_events_are_other() {
    assert!(matches!(
        decode(r#"{"event":"foo","data":1}"#),
        Ok(ClientEvent::Other { .. })
    ));
}

#[test]
fn encodes_server_frames() {
    let sid = crate::SocketId::parse("1.2").unwrap();
    assert_eq!(
        encode::connection_established(&sid, 120),
        r#"{"event":"pusher:connection_established","data":"{\"socket_id\":\"1.2\",\"activity_timeout\":120}"}"#
    );
    assert_eq!(
        ProtocolError::fatal(ErrorCode::AppNotFound).frame(),
        r#"{"event":"pusher:error","data":{"code":4001,"message":"Application does not exist"}}"#
    );
    assert_eq!(
        ProtocolError::notice("x").frame(),
        r#"{"event":"pusher:error","data":{"code":null,"message":"x"}}"#
    );
    assert_eq!(encode::pong(), r#"{"event":"pusher:pong","data":{}}"#);
    assert_eq!(
        encode::channel_event("ev", "c", r#"{"a":"b"}"#),
        r#"{"event":"ev","channel":"c","data":"{\"a\":\"b\"}"}"#
    );
    let members = [
        encode::MemberRef {
            user_id: "1",
            user_info: Some(r#"{"n":"a"}"#),
        },
        encode::MemberRef {
            user_id: "2",
            user_info: None,
        },
    ];
    assert_eq!(
        encode::presence_succeeded("presence-r", &members),
        r#"{"event":"pusher_internal:subscription_succeeded","channel":"presence-r","data":"{\"presence\":{\"ids\":[\"1\",\"2\"],\"hash\":{\"1\":{\"n\":\"a\"},\"2\":null},\"count\":2}}"}"#
    );
    assert_eq!(
        encode::member_removed("presence-r", "1"),
        r#"{"event":"pusher_internal:member_removed","channel":"presence-r","data":"{\"user_id\":\"1\"}"}"#
    );
    assert_eq!(
        encode::watchlist_events(&["7"], &[]),
        r#"{"event":"pusher_internal:watchlist_events","data":"{\"events\":[{\"name\":\"online\",\"user_ids\":[\"7\"]}]}"}"#
    );
    assert_eq!(
        encode::signin_success(r#"{"id":"1"}"#),
        r#"{"event":"pusher:signin_success","data":"{\"user_data\":\"{\\\"id\\\":\\\"1\\\"}\"}"}"#
    );
    assert_eq!(
        encode::cache_miss("cache-x"),
        r#"{"event":"pusher:cache_miss","channel":"cache-x"}"#
    );
}

#[test]
fn only_the_4300_notices_keep_the_connection() {
    for code in [ErrorCode::ClientEventRateLimit, ErrorCode::WatchlistLimit] {
        assert!(!code.closes(), "{code:?}");
    }
    for code in [
        ErrorCode::AppNotFound,
        ErrorCode::Unauthorized,
        ErrorCode::OverCapacity,
        ErrorCode::PongTimeout,
    ] {
        assert!(code.closes(), "{code:?}");
    }
}
