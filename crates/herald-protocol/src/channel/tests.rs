use super::*;

fn check(name: &str, expected: Result<(ChannelKind, bool), ChannelNameError>) {
    let got = ChannelName::parse(name, 164).map(|c| (c.kind(), c.is_cache()));
    assert_eq!(got, expected, "{name}");
}

#[test]
fn kinds_by_prefix() {
    use ChannelKind::*;
    check("my-channel", Ok((Public, false)));
    check("cache-btc", Ok((Public, true)));
    check("private-chat", Ok((Private, false)));
    check("private-cache-x", Ok((Private, true)));
    check("private-encrypted-x", Ok((Encrypted, false)));
    check("private-encrypted-cache-x", Ok((Encrypted, true)));
    check("presence-room", Ok((Presence, false)));
    check("presence-cache-room", Ok((Presence, true)));
    check("#server-to-user-42", Ok((ServerToUser, false)));
    // Prefixes are anchored at the start.
    check("foo-private-x", Ok((Public, false)));
    check("xcache-1", Ok((Public, false)));
}

#[test]
fn invalid_names() {
    check("", Err(ChannelNameError::Empty));
    check(&"a".repeat(165), Err(ChannelNameError::TooLong));
    check(&"a".repeat(164), Ok((ChannelKind::Public, false)));
    check("a b", Err(ChannelNameError::BadCharacter));
    check("a/b", Err(ChannelNameError::BadCharacter));
    check("é", Err(ChannelNameError::BadCharacter));
    check("#foo", Err(ChannelNameError::ReservedPrefix));
    check("#server-to-user-", Err(ChannelNameError::ReservedPrefix));
    check("#server-to-user-a#b", Err(ChannelNameError::BadCharacter));
    check("Az09_-=@,.;", Ok((ChannelKind::Public, false)));
}

#[test]
fn server_to_user_channel() {
    let c = ChannelName::parse("#server-to-user-42", 164).unwrap();
    assert_eq!(c.server_to_user_id(), Some("42"));
    let u = crate::UserId::parse("42", 128).unwrap();
    assert_eq!(ChannelName::for_user(&u), c);
}
