//! Protocol limits (PROTOCOL.md §8). Every value is per app and configurable; `Default` holds
//! hosted Pusher's values.

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Largest `data` of an event published over HTTP, and of a client event, in bytes.
    pub max_event_payload_bytes: usize,
    pub max_event_name_len: usize,
    pub max_channel_name_len: usize,
    pub max_channels_per_trigger: usize,
    pub max_batch_events: usize,
    pub max_presence_members: usize,
    pub max_presence_user_info_bytes: usize,
    pub max_user_id_len: usize,
    /// Client events a connection may send per second.
    pub client_events_per_second: u32,
    pub max_watchlist: usize,
    pub max_channels_per_connection: usize,
    /// Allowed distance between an HTTP API request's `auth_timestamp` and the server clock.
    pub max_timestamp_skew_secs: u64,
    /// HTTP API requests per second and node (None: unlimited); beyond it 429.
    pub api_requests_per_second: Option<u32>,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_event_payload_bytes: 10 * 1024,
            max_event_name_len: 200,
            max_channel_name_len: 164,
            max_channels_per_trigger: 100,
            max_batch_events: 10,
            max_presence_members: 100,
            max_presence_user_info_bytes: 1024,
            max_user_id_len: 128,
            client_events_per_second: 10,
            max_watchlist: 100,
            max_channels_per_connection: 10_000,
            max_timestamp_skew_secs: 600,
            api_requests_per_second: None,
        }
    }
}
