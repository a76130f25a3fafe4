//! Error codes of the protocol and the errors a connection can run into.

use std::fmt;

/// The `code` of a `pusher:error` and of the WebSocket close frame that follows a fatal one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u16)]
pub enum ErrorCode {
    TlsOnly = 4000,
    AppNotFound = 4001,
    AppDisabled = 4003,
    OverQuota = 4004,
    PathNotFound = 4005,
    InvalidVersion = 4006,
    UnsupportedProtocol = 4007,
    NoProtocol = 4008,
    Unauthorized = 4009,
    OverCapacity = 4100,
    ReconnectNow = 4200,
    PongTimeout = 4201,
    ClientEventRateLimit = 4301,
    WatchlistLimit = 4302,
}

/// What pusher-js does after a close with a given code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reconnect {
    Never,
    Backoff,
    Immediately,
    Unspecified,
}

impl ErrorCode {
    pub fn code(self) -> u16 {
        self as u16
    }

    /// 4301 and 4302 are reported without closing: pusher-js treats close codes >= 4300 as
    /// "refused" and would stay disconnected.
    pub fn closes(self) -> bool {
        !matches!(
            self,
            ErrorCode::ClientEventRateLimit | ErrorCode::WatchlistLimit
        )
    }

    pub fn reconnect(self) -> Reconnect {
        match self as u16 {
            4000..=4099 => Reconnect::Never,
            4100..=4199 => Reconnect::Backoff,
            4200..=4299 => Reconnect::Immediately,
            _ => Reconnect::Unspecified,
        }
    }

    /// Pusher's wording for the code.
    pub fn message(self) -> &'static str {
        match self {
            ErrorCode::TlsOnly => {
                "Application only accepts SSL connections, reconnect using wss://"
            }
            ErrorCode::AppNotFound => "Application does not exist",
            ErrorCode::AppDisabled => "Application disabled",
            ErrorCode::OverQuota => "Application is over connection quota",
            ErrorCode::PathNotFound => "Path not found",
            ErrorCode::InvalidVersion => "Invalid version string format",
            ErrorCode::UnsupportedProtocol => "Unsupported protocol version",
            ErrorCode::NoProtocol => "No protocol version supplied",
            ErrorCode::Unauthorized => "Connection is unauthorized",
            ErrorCode::OverCapacity => "Over capacity",
            ErrorCode::ReconnectNow => "Server is closing. Please reconnect shortly.",
            ErrorCode::PongTimeout => "Pong reply not received",
            ErrorCode::ClientEventRateLimit => "Client event rejected due to rate limit",
            ErrorCode::WatchlistLimit => {
                "Watchlist limit exceeded. Only the first 100 user IDs are accepted."
            }
        }
    }
}

/// The `type` of a `pusher:subscription_error` (PROTOCOL.md §2.5).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SubscriptionErrorKind {
    AuthError,
    InvalidChannel,
    InvalidChannelData,
    /// Presence channel already has the maximum number of distinct users.
    MembersLimit,
    /// Presence `user_info` larger than allowed.
    UserInfoLimit,
    /// Too many channels on one connection.
    ChannelsLimit,
    ServerError,
}

impl SubscriptionErrorKind {
    pub fn type_name(self) -> &'static str {
        match self {
            SubscriptionErrorKind::AuthError => "AuthError",
            SubscriptionErrorKind::InvalidChannel => "InvalidChannel",
            SubscriptionErrorKind::InvalidChannelData => "InvalidChannelData",
            SubscriptionErrorKind::MembersLimit
            | SubscriptionErrorKind::UserInfoLimit
            | SubscriptionErrorKind::ChannelsLimit => "LimitReached",
            SubscriptionErrorKind::ServerError => "ServerError",
        }
    }

    pub fn status(self) -> u16 {
        match self {
            SubscriptionErrorKind::AuthError => 401,
            SubscriptionErrorKind::InvalidChannel | SubscriptionErrorKind::InvalidChannelData => {
                400
            }
            SubscriptionErrorKind::MembersLimit | SubscriptionErrorKind::ChannelsLimit => 4100,
            SubscriptionErrorKind::UserInfoLimit => 4301,
            SubscriptionErrorKind::ServerError => 500,
        }
    }
}

/// Everything that can go wrong while handling one client frame. Each variant says what the
/// client is told and whether the connection closes (centrifuge keeps replies and disconnects
/// apart; so do we).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProtocolError {
    /// `pusher:error` with this code, then a close frame with the same code.
    Fatal { code: ErrorCode, message: String },
    /// `pusher:error` without closing; `code` is `null` when absent.
    Notice {
        code: Option<ErrorCode>,
        message: String,
        channel: Option<String>,
    },
    /// `pusher:subscription_error` on `channel`; never closes.
    Subscription {
        channel: String,
        kind: SubscriptionErrorKind,
        message: String,
    },
}

impl ProtocolError {
    pub fn fatal(code: ErrorCode) -> ProtocolError {
        ProtocolError::Fatal {
            code,
            message: code.message().to_owned(),
        }
    }

    pub fn notice(message: impl Into<String>) -> ProtocolError {
        ProtocolError::Notice {
            code: None,
            message: message.into(),
            channel: None,
        }
    }

    pub fn notice_on(channel: &str, message: impl Into<String>) -> ProtocolError {
        ProtocolError::Notice {
            code: None,
            message: message.into(),
            channel: Some(channel.to_owned()),
        }
    }

    pub fn subscription(
        channel: &str,
        kind: SubscriptionErrorKind,
        message: impl Into<String>,
    ) -> ProtocolError {
        ProtocolError::Subscription {
            channel: channel.to_owned(),
            kind,
            message: message.into(),
        }
    }

    /// The close code when this error ends the connection.
    pub fn close_code(&self) -> Option<ErrorCode> {
        match self {
            ProtocolError::Fatal { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// The frame the client receives.
    pub fn frame(&self) -> String {
        match self {
            ProtocolError::Fatal { code, message } => {
                crate::event::encode::error(Some(code.code()), message, None)
            }
            ProtocolError::Notice {
                code,
                message,
                channel,
            } => {
                crate::event::encode::error(code.map(ErrorCode::code), message, channel.as_deref())
            }
            ProtocolError::Subscription {
                channel,
                kind,
                message,
            } => crate::event::encode::subscription_error(channel, *kind, message),
        }
    }
}

impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProtocolError::Fatal { code, message } => write!(f, "{} {}", code.code(), message),
            ProtocolError::Notice { message, .. } => f.write_str(message),
            ProtocolError::Subscription {
                channel,
                kind,
                message,
            } => {
                write!(f, "{} on {channel}: {message}", kind.type_name())
            }
        }
    }
}

impl std::error::Error for ProtocolError {}
