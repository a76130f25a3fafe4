//! What reaping a dead node changed, announced as the dead node would have: its members'
//! `member_removed` frames, counts, users gone offline. Their removal webhooks are already
//! scheduled: the backplane's reaper schedules each check in the leave's own step. The
//! backplane's reaper (on a cluster) undoes the dead node's contributions and reports each
//! transition it caused as `Inbound::Reaped`; the hub hands them here.

use crate::AppId;
use crate::backplane::Reaped;
use crate::hub::{Hub, member_removed};

/// Announces what reaping a dead node changed, as the dead node would have.
pub(crate) async fn announce(hub: &Hub, app: &AppId, event: Reaped) {
    let Some(app) = hub.apps().by_id(app.as_str()) else {
        return;
    };
    match event {
        // The removal webhooks' debounced checks were scheduled by the backplane in the same
        // step as the reaped leave (so a reaper that dies midway loses none).
        Reaped::MemberRemoved { channel, left } => {
            hub.relay(
                &app.id,
                member_removed(channel, &left, None),
                "member_removed",
            )
            .await;
        }
        Reaped::Vacated { channel } | Reaped::Unsubscribed { channel } => {
            hub.count_changed(&app, &channel)
        }
        Reaped::Offline { user } => hub.announce_online(&app, user, false).await,
    }
}
