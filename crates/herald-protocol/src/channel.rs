//! Channel names and kinds (PROTOCOL.md §2.1–2.2). Nothing outside this file looks at prefixes.

use std::fmt;

use compact_str::CompactString;

pub const SERVER_TO_USER_PREFIX: &str = "#server-to-user-";

/// What a channel is, decided once from its name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ChannelKind {
    Public,
    Private,
    Presence,
    /// `private-encrypted-`: end-to-end encrypted; the server relays without looking.
    Encrypted,
    /// `#server-to-user-{id}`: delivered to the user's signed-in connections.
    ServerToUser,
}

impl ChannelKind {
    /// Whether every channel whose name starts with `prefix` is a presence channel (the HTTP
    /// API's `filter_by_prefix` with `info=user_count`).
    pub fn prefix_selects_presence_only(prefix: &str) -> bool {
        prefix.starts_with("presence-")
    }
}

/// Whether `name` (as carried by a webhook event) is a `#server-to-user-` channel.
pub fn is_server_to_user(name: &str) -> bool {
    name.starts_with(SERVER_TO_USER_PREFIX)
}

/// A valid channel name. Holding one means the name passed every rule.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ChannelName {
    /// Inline up to 24 bytes (most names): no allocation per copy held by a session or the hub.
    name: CompactString,
    kind: ChannelKind,
    cache: bool,
}

/// Why a name is not a channel name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChannelNameError {
    Empty,
    TooLong,
    BadCharacter,
    ReservedPrefix,
}

impl fmt::Display for ChannelNameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ChannelNameError::Empty => "channel name is empty",
            ChannelNameError::TooLong => "channel name is too long",
            ChannelNameError::BadCharacter => {
                "channel name may only contain A-Z a-z 0-9 _ - = @ , . ;"
            }
            ChannelNameError::ReservedPrefix => {
                "channel names starting with # are reserved for #server-to-user-{id}"
            }
        })
    }
}

pub(crate) fn is_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'=' | b'@' | b',' | b'.' | b';')
}

impl ChannelName {
    pub fn parse(name: &str, max_len: usize) -> Result<ChannelName, ChannelNameError> {
        if name.is_empty() {
            return Err(ChannelNameError::Empty);
        }
        if name.len() > max_len {
            return Err(ChannelNameError::TooLong);
        }
        let body = match name.strip_prefix(SERVER_TO_USER_PREFIX) {
            Some(user) if !user.is_empty() => user,
            _ if name.starts_with('#') => return Err(ChannelNameError::ReservedPrefix),
            _ => name,
        };
        if !body.bytes().all(is_name_byte) {
            return Err(ChannelNameError::BadCharacter);
        }
        let (kind, cache) = classify(name);
        Ok(ChannelName {
            name: CompactString::from(name),
            kind,
            cache,
        })
    }

    pub fn as_str(&self) -> &str {
        &self.name
    }

    pub fn kind(&self) -> ChannelKind {
        self.kind
    }

    /// Cache channels remember the last event published over the HTTP API (§2.8).
    pub fn is_cache(&self) -> bool {
        self.cache
    }

    /// Private, presence and encrypted channels need a signature to subscribe.
    pub fn needs_auth(&self) -> bool {
        matches!(
            self.kind,
            ChannelKind::Private | ChannelKind::Presence | ChannelKind::Encrypted
        )
    }

    /// Client events are allowed on private and presence channels only (§4 rule 3).
    pub fn allows_client_events(&self) -> bool {
        matches!(self.kind, ChannelKind::Private | ChannelKind::Presence)
    }

    /// The user a `#server-to-user-{id}` channel belongs to.
    pub fn server_to_user_id(&self) -> Option<&str> {
        match self.kind {
            ChannelKind::ServerToUser => self.name.strip_prefix(SERVER_TO_USER_PREFIX),
            _ => None,
        }
    }

    /// The `#server-to-user-{id}` channel of a user.
    pub fn for_user(user: &crate::UserId) -> ChannelName {
        ChannelName {
            name: compact_str::format_compact!("{SERVER_TO_USER_PREFIX}{user}"),
            kind: ChannelKind::ServerToUser,
            cache: false,
        }
    }
}

fn classify(name: &str) -> (ChannelKind, bool) {
    // Longest prefix first: `private-encrypted-cache-` before `private-encrypted-` before `private-`.
    const TABLE: [(&str, ChannelKind, bool); 8] = [
        ("private-encrypted-cache-", ChannelKind::Encrypted, true),
        ("private-encrypted-", ChannelKind::Encrypted, false),
        ("private-cache-", ChannelKind::Private, true),
        ("private-", ChannelKind::Private, false),
        ("presence-cache-", ChannelKind::Presence, true),
        ("presence-", ChannelKind::Presence, false),
        ("cache-", ChannelKind::Public, true),
        (SERVER_TO_USER_PREFIX, ChannelKind::ServerToUser, false),
    ];
    TABLE
        .iter()
        .find(|(prefix, ..)| name.starts_with(prefix))
        .map_or((ChannelKind::Public, false), |&(_, kind, cache)| {
            (kind, cache)
        })
}

impl fmt::Display for ChannelName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)
    }
}

#[cfg(test)]
mod tests;
