//! User sign-in (PROTOCOL.md §5): the signed `user_data`, the user's online state and watchlist.

use std::sync::Arc;

use herald_protocol::event::encode;
use herald_protocol::signature::signin_payload;
use herald_protocol::user::parse_user_data;
use herald_protocol::{ErrorCode, ProtocolError};

use super::{Session, SignedIn};

impl Session {
    pub(super) async fn signin(
        &mut self,
        auth: &str,
        user_data: &str,
    ) -> Result<(), ProtocolError> {
        if !self.app.features.user_authentication {
            return Err(ProtocolError::notice(
                "User authentication is disabled for this app",
            ));
        }
        let payload = signin_payload(self.socket_id(), user_data);
        if !self.verifies(auth, &payload) {
            return Err(ProtocolError::notice("Invalid signature: sign-in refused"));
        }
        let parsed = parse_user_data(user_data, self.app.limits.max_user_id_len)
            .map_err(|m| ProtocolError::notice(format!("Invalid user_data: {m}")))?;
        if let Some(current) = &self.user {
            if current.id != parsed.id {
                return Err(ProtocolError::notice(format!(
                    "Already signed in as user '{}'",
                    current.id
                )));
            }
            self.send(encode::signin_success(user_data));
            return Ok(());
        }
        let app = self.app.clone();
        let mut watchlist = parsed.watchlist;
        let over_limit = watchlist.len() > app.limits.max_watchlist;
        watchlist.truncate(app.limits.max_watchlist);
        self.authorized = true;
        self.hub.add_user(&app.id, &parsed.id, &self.conn);
        // Recorded (and, on a cluster, the user's #server-to-user- topic listened to) before the
        // client hears it is signed in: a message sent to the user right after reaches it.
        self.hub
            .user_signed(&app, &parsed.id, self.socket_id(), true)
            .await;
        self.send(encode::signin_success(user_data));
        if over_limit {
            self.report(ProtocolError::Notice {
                code: Some(ErrorCode::WatchlistLimit),
                message: ErrorCode::WatchlistLimit.message().to_owned(),
                channel: None,
            });
        }
        if app.features.watchlist_events && !watchlist.is_empty() {
            for watched in &watchlist {
                self.hub.add_watcher(&app.id, watched, &self.conn);
            }
            match self.hub.backplane().users.online(&app.id, &watchlist).await {
                Ok(states) => {
                    let (on, off): (Vec<_>, Vec<_>) =
                        watchlist.iter().zip(states).partition(|(_, s)| *s);
                    let on: Vec<&str> = on.iter().map(|(u, _)| u.as_str()).collect();
                    let off: Vec<&str> = off.iter().map(|(u, _)| u.as_str()).collect();
                    self.send(encode::watchlist_events(&on, &off));
                }
                Err(e) => tracing::warn!(error = %e, "watchlist status not read"),
            }
        }
        self.user = Some(SignedIn {
            id: parsed.id,
            user_info: parsed.user_info.map(Arc::from),
            watchlist,
        });
        Ok(())
    }
}
