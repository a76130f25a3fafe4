//! What reaping a dead node changed, announced as the dead node would have: its members'
//! `member_removed` (frames and webhooks), vacated channels, counts, users gone offline. The
//! backplane's reaper (on a cluster) undoes the dead node's contributions and reports each
//! transition it caused as `Inbound::Reaped`; the hub hands them here.

use crate::AppId;
use crate::backplane::Reaped;
use crate::hub::{Hub, member_removed};

/// Announces what reaping a dead node changed, as the dead node would have.
pub(crate) async fn announce(hub: &Hub, app: &AppId, event: Reaped) {
    let Some(app) = hub.apps().by_id(app.as_str()).cloned() else {
        return;
    };
    match event {
        Reaped::MemberRemoved { channel, left } => {
            hub.hooks().member_removed(&app, &channel, &left.user).await;
            hub.relay(
                &app.id,
                member_removed(channel, &left, None),
                "member_removed",
            )
            .await;
        }
        Reaped::Vacated { channel } => {
            hub.hooks().vacated(&app, &channel).await;
            hub.count_changed(&app, &channel);
        }
        Reaped::Unsubscribed { channel } => hub.count_changed(&app, &channel),
        Reaped::Offline { user } => hub.announce_online(&app, user, false).await,
    }
}
