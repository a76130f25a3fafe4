//! Behaviour every `Backplane` must show. `herald-core` runs these on `MemoryBackplane`;
//! `herald-redis` runs the same checks on `RedisBackplane` against a real redis-server.
//! Each check takes a fresh backplane and panics with a description on failure.

#![allow(clippy::unwrap_used)] // Test code: a panic is how a check reports failure.

use std::time::Duration;

use bytes::Bytes;
use herald_protocol::{ChannelName, SocketId, UserId};

use super::*;

fn ch(name: &str) -> ChannelName {
    ChannelName::parse(name, 200).expect("valid test channel")
}

fn sock(n: u32) -> SocketId {
    SocketId::from_parts(n, n)
}

fn user(id: &str) -> UserId {
    UserId::parse(id, 128).expect("valid test user")
}

fn member(id: &str) -> Member {
    Member {
        user_id: user(id),
        user_info: Some(format!("{{\"name\":\"{id}\"}}").into()),
    }
}

/// Runs every check, each on a new backplane from `make`.
pub async fn run_all<B: Backplane, F: std::future::Future<Output = B>>(make: impl Fn() -> F) {
    occupancy_transitions_happen_once(&make().await).await;
    presence_membership_is_per_user(&make().await).await;
    presence_limit_refuses_new_users_only(&make().await).await;
    users_go_online_and_offline_once(&make().await).await;
    channel_queries_read_shared_state(&make().await).await;
    cache_keeps_the_last_event(&make().await).await;
    connection_totals_count_up_and_down(&make().await).await;
    marks_are_set_once_and_expire(&make().await).await;
    scheduled_keys_fall_due_once(&make().await).await;
    leaves_schedule_their_webhook_checks(&make().await).await;
}

pub async fn leaves_schedule_their_webhook_checks(bp: &dyn Backplane) {
    let c = ch("leaving");
    let (s1, s2) = (sock(1), sock(2));
    bp.subscribe("a", &c, &s1).await.unwrap();
    bp.subscribe("a", &c, &s2).await.unwrap();
    let first = bp
        .unsubscribe_scheduling("a", &c, &s1, "v|leaving", 100)
        .await
        .unwrap();
    assert!(!first.transition);
    assert_eq!(
        bp.take_due("a", 200, 10).await.unwrap(),
        Vec::<String>::new(),
        "a leave that vacates nothing schedules nothing"
    );
    let last = bp
        .unsubscribe_scheduling("a", &c, &s2, "v|leaving", 100)
        .await
        .unwrap();
    assert!(last.transition);
    assert_eq!(bp.take_due("a", 200, 10).await.unwrap(), ["v|leaving"]);
    let p = ch("presence-leaving");
    bp.presence_join("a", &p, &s1, &member("u"), 100)
        .await
        .unwrap();
    bp.presence_join("a", &p, &s2, &member("u"), 100)
        .await
        .unwrap();
    let first = bp
        .presence_leave_scheduling("a", &p, &s1, "r|presence-leaving|", 100)
        .await
        .unwrap();
    assert!(first.is_none(), "the user is still there");
    assert_eq!(
        bp.take_due("a", 200, 10).await.unwrap(),
        Vec::<String>::new()
    );
    let last = bp
        .presence_leave_scheduling("a", &p, &s2, "r|presence-leaving|", 100)
        .await
        .unwrap();
    assert_eq!(last.map(|l| l.user), Some(user("u")));
    assert_eq!(
        bp.take_due("a", 200, 10).await.unwrap(),
        ["r|presence-leaving|u"]
    );
    let again = bp
        .unsubscribe_scheduling("a", &c, &s2, "v|leaving", 100)
        .await
        .unwrap();
    assert!(!again.transition, "a repeated leave vacates nothing");
    assert_eq!(
        bp.take_due("a", 200, 10).await.unwrap(),
        Vec::<String>::new()
    );
}

pub async fn marks_are_set_once_and_expire(bp: &dyn Backplane) {
    let ttl = Duration::from_millis(300);
    assert!(bp.mark("a", "k", ttl).await.unwrap());
    assert!(!bp.mark("a", "k", ttl).await.unwrap(), "already set");
    assert!(bp.mark("b", "k", ttl).await.unwrap(), "apps are separate");
    assert!(
        bp.mark("a", "short", Duration::from_millis(50))
            .await
            .unwrap()
    );
    tokio::time::sleep(Duration::from_millis(120)).await;
    assert!(
        bp.mark("a", "short", ttl).await.unwrap(),
        "settable again after expiry"
    );
}

pub async fn scheduled_keys_fall_due_once(bp: &dyn Backplane) {
    bp.schedule("a", "late", 200).await.unwrap();
    bp.schedule("a", "early", 100).await.unwrap();
    bp.schedule("a", "cancelled", 100).await.unwrap();
    bp.schedule("a", "future", 10_000).await.unwrap();
    bp.schedule("b", "other-app", 100).await.unwrap();
    assert!(bp.cancel("a", "cancelled").await.unwrap());
    assert!(
        !bp.cancel("a", "cancelled").await.unwrap(),
        "already cancelled"
    );
    assert_eq!(
        bp.take_due("a", 50, 10).await.unwrap(),
        Vec::<String>::new()
    );
    assert_eq!(bp.take_due("a", 300, 10).await.unwrap(), ["early", "late"]);
    assert_eq!(
        bp.take_due("a", 300, 10).await.unwrap(),
        Vec::<String>::new(),
        "claimed once"
    );
    bp.schedule("a", "future", 400).await.unwrap();
    assert_eq!(
        bp.take_due("a", 500, 10).await.unwrap(),
        ["future"],
        "re-scheduling replaces"
    );
    assert_eq!(bp.take_due("b", 500, 10).await.unwrap(), ["other-app"]);
}

pub async fn occupancy_transitions_happen_once(bp: &dyn Backplane) {
    let c = ch("room");
    assert_eq!(
        bp.subscribe("a", &c, &sock(1)).await.unwrap(),
        Occupancy {
            count: 1,
            transition: true
        }
    );
    assert_eq!(
        bp.subscribe("a", &c, &sock(2)).await.unwrap(),
        Occupancy {
            count: 2,
            transition: false
        }
    );
    assert_eq!(
        bp.unsubscribe("a", &c, &sock(1)).await.unwrap(),
        Occupancy {
            count: 1,
            transition: false
        }
    );
    assert_eq!(
        bp.unsubscribe("a", &c, &sock(2)).await.unwrap(),
        Occupancy {
            count: 0,
            transition: true
        }
    );
    // Apps are separate namespaces.
    assert_eq!(
        bp.subscribe("b", &c, &sock(1)).await.unwrap(),
        Occupancy {
            count: 1,
            transition: true
        }
    );
}

pub async fn presence_membership_is_per_user(bp: &dyn Backplane) {
    let c = ch("presence-room");
    let j1 = bp
        .presence_join("a", &c, &sock(1), &member("u1"), 100)
        .await
        .unwrap();
    assert_eq!(
        j1,
        Joined::Admitted {
            new_user: true,
            members: vec![member("u1")],
            version: 1,
        },
        "membership versions count additions and removals"
    );
    // Second tab of the same user: not a new member.
    let j2 = bp
        .presence_join("a", &c, &sock(2), &member("u1"), 100)
        .await
        .unwrap();
    assert_eq!(
        j2,
        Joined::Admitted {
            new_user: false,
            members: vec![member("u1")],
            version: 1,
        }
    );
    let j3 = bp
        .presence_join("a", &c, &sock(3), &member("u2"), 100)
        .await
        .unwrap();
    assert!(
        matches!(j3, Joined::Admitted { new_user: true, ref members, version: 2 } if members.len() == 2)
    );
    assert_eq!(
        bp.presence_leave("a", &c, &sock(1)).await.unwrap(),
        None,
        "u1 still has a tab"
    );
    assert_eq!(
        bp.presence_leave("a", &c, &sock(2)).await.unwrap(),
        Some(Left {
            user: user("u1"),
            version: 3
        })
    );
    assert_eq!(
        bp.presence_leave("a", &c, &sock(2)).await.unwrap(),
        None,
        "leaving twice is a no-op"
    );
    assert_eq!(bp.members("a", &c).await.unwrap(), vec![member("u2")]);
}

pub async fn presence_limit_refuses_new_users_only(bp: &dyn Backplane) {
    let c = ch("presence-small");
    for i in 0..3 {
        let j = bp
            .presence_join("a", &c, &sock(i), &member(&format!("u{i}")), 3)
            .await
            .unwrap();
        assert!(matches!(j, Joined::Admitted { new_user: true, .. }));
    }
    assert_eq!(
        bp.presence_join("a", &c, &sock(9), &member("u9"), 3)
            .await
            .unwrap(),
        Joined::Full
    );
    let again = bp
        .presence_join("a", &c, &sock(10), &member("u0"), 3)
        .await
        .unwrap();
    assert!(
        matches!(
            again,
            Joined::Admitted {
                new_user: false,
                ..
            }
        ),
        "an existing user may open another tab"
    );
}

pub async fn users_go_online_and_offline_once(bp: &dyn Backplane) {
    let u = user("u1");
    assert!(bp.user_signin("a", &u, &sock(1)).await.unwrap());
    assert!(!bp.user_signin("a", &u, &sock(2)).await.unwrap());
    assert_eq!(
        bp.users_online("a", &[u.clone(), user("u2")])
            .await
            .unwrap(),
        vec![true, false]
    );
    assert!(!bp.user_signout("a", &u, &sock(1)).await.unwrap());
    assert!(bp.user_signout("a", &u, &sock(2)).await.unwrap());
    assert!(!bp.user_signout("a", &u, &sock(2)).await.unwrap());
    assert_eq!(bp.users_online("a", &[u]).await.unwrap(), vec![false]);
}

pub async fn channel_queries_read_shared_state(bp: &dyn Backplane) {
    let p = ch("presence-x");
    bp.subscribe("a", &ch("news"), &sock(1)).await.unwrap();
    bp.subscribe("a", &p, &sock(1)).await.unwrap();
    bp.presence_join("a", &p, &sock(1), &member("u1"), 100)
        .await
        .unwrap();
    bp.subscribe("a", &p, &sock(2)).await.unwrap();
    bp.presence_join("a", &p, &sock(2), &member("u1"), 100)
        .await
        .unwrap();
    let all = bp.channels("a", "").await.unwrap();
    assert_eq!(
        all.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(),
        ["news", "presence-x"]
    );
    let presence = bp.channels("a", "presence-").await.unwrap();
    assert_eq!(
        presence,
        vec![ChannelCount {
            name: "presence-x".into(),
            subscription_count: 2,
            user_count: Some(1)
        }]
    );
    let one = bp.channel("a", &p).await.unwrap();
    assert_eq!((one.subscription_count, one.user_count), (2, Some(1)));
    let none = bp.channel("a", &ch("empty")).await.unwrap();
    assert_eq!((none.subscription_count, none.user_count), (0, None));
}

pub async fn cache_keeps_the_last_event(bp: &dyn Backplane) {
    let c = ch("cache-x");
    assert_eq!(bp.cache_get("a", &c).await.unwrap(), None);
    for data in ["1", "2"] {
        let ev = CachedEvent {
            frame: Bytes::from(format!("frame{data}")),
            data: data.into(),
            ttl: Duration::from_secs(60),
        };
        bp.cache_set("a", &c, ev).await.unwrap();
    }
    let got = bp.cache_get("a", &c).await.unwrap().expect("cached");
    assert_eq!((got.frame, got.data.as_str()), (Bytes::from("frame2"), "2"));
    assert!(got.ttl <= Duration::from_secs(60) && got.ttl >= Duration::from_secs(1));
}

pub async fn connection_totals_count_up_and_down(bp: &dyn Backplane) {
    assert_eq!(bp.connections("a", 1).await.unwrap(), 1);
    assert_eq!(bp.connections("a", 1).await.unwrap(), 2);
    assert_eq!(bp.connections("a", -1).await.unwrap(), 1);
    assert_eq!(bp.connections("b", 1).await.unwrap(), 1);
}

#[cfg(test)]
mod memory {
    #[tokio::test]
    async fn memory_backplane_conforms() {
        super::run_all(|| async { super::MemoryBackplane::new() }).await;
    }
}
