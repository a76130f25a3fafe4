//! `Presence`: members are users, each arrival and departure decided once, versioned.

use super::*;

pub async fn membership_is_per_user(bp: &Backplane) {
    let (a, c) = (app("a"), ch("presence-room"));
    let p = &bp.presence;
    let j1 = p.join(&a, &c, &sock(1), &member("u1"), 100).await.unwrap();
    assert_eq!(
        j1,
        Joined::Admitted {
            new_user: true,
            members: vec![member("u1")],
            version: 1,
            removal_cancelled: false,
        },
        "membership versions count additions and removals"
    );
    // Second tab of the same user: not a new member.
    let j2 = p.join(&a, &c, &sock(2), &member("u1"), 100).await.unwrap();
    assert_eq!(
        j2,
        Joined::Admitted {
            new_user: false,
            members: vec![member("u1")],
            version: 1,
            removal_cancelled: false,
        }
    );
    let j3 = p.join(&a, &c, &sock(3), &member("u2"), 100).await.unwrap();
    assert!(
        matches!(j3, Joined::Admitted { new_user: true, ref members, version: 2, .. } if members.len() == 2)
    );
    assert_eq!(
        p.leave(&a, &c, &sock(1), None).await.unwrap(),
        None,
        "u1 still has a tab"
    );
    assert_eq!(
        p.leave(&a, &c, &sock(2), None).await.unwrap(),
        Some(Left {
            user: user("u1"),
            version: 3
        })
    );
    assert_eq!(
        p.leave(&a, &c, &sock(2), None).await.unwrap(),
        None,
        "leaving twice is a no-op"
    );
    assert_eq!(p.members(&a, &c).await.unwrap(), vec![member("u2")]);
}

pub async fn the_limit_refuses_new_users_only(bp: &Backplane) {
    let (a, c) = (app("a"), ch("presence-small"));
    let p = &bp.presence;
    for i in 0..3 {
        let j = p
            .join(&a, &c, &sock(i), &member(&format!("u{i}")), 3)
            .await
            .unwrap();
        assert!(matches!(j, Joined::Admitted { new_user: true, .. }));
    }
    assert_eq!(
        p.join(&a, &c, &sock(9), &member("u9"), 3).await.unwrap(),
        Joined::Full
    );
    let again = p.join(&a, &c, &sock(10), &member("u0"), 3).await.unwrap();
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

pub async fn a_last_leave_schedules_its_check(bp: &Backplane) {
    let (a, c) = (app("a"), ch("presence-leaving"));
    let (s1, s2) = (sock(1), sock(2));
    bp.presence
        .join(&a, &c, &s1, &member("u"), 100)
        .await
        .unwrap();
    bp.presence
        .join(&a, &c, &s2, &member("u"), 100)
        .await
        .unwrap();
    let first = bp.presence.leave(&a, &c, &s1, Some(100)).await.unwrap();
    assert!(first.is_none(), "the user is still there");
    assert_eq!(bp.schedule.take_due(&a, 200, 10).await.unwrap(), []);
    let last = bp.presence.leave(&a, &c, &s2, Some(100)).await.unwrap();
    assert_eq!(last.map(|l| l.user), Some(user("u")));
    assert_eq!(
        bp.schedule.take_due(&a, 200, 10).await.unwrap(),
        [Check::MemberRemoved(c, user("u"))]
    );
}

/// A re-join within the debounce cancels the user's pending removal in the join's own step;
/// once the removal was taken, a re-join is a new arrival. (On Redis the cancellation is done
/// for apps whose leaves schedule removals, which the conformance nodes' apps do.)
pub async fn a_rejoin_cancels_the_pending_removal_in_its_step(bp: &Backplane) {
    let (a, c) = (app("a"), ch("presence-returning"));
    let p = &bp.presence;
    p.join(&a, &c, &sock(1), &member("u"), 100).await.unwrap();
    p.leave(&a, &c, &sock(1), Some(100)).await.unwrap();
    let back = p.join(&a, &c, &sock(2), &member("u"), 100).await.unwrap();
    assert!(
        matches!(
            back,
            Joined::Admitted {
                new_user: true,
                removal_cancelled: true,
                ..
            }
        ),
        "{back:?}"
    );
    assert_eq!(
        bp.schedule.take_due(&a, 200, 10).await.unwrap(),
        [],
        "cancelled"
    );
    p.leave(&a, &c, &sock(2), Some(100)).await.unwrap();
    assert_eq!(
        bp.schedule.take_due(&a, 200, 10).await.unwrap(),
        [Check::MemberRemoved(c.clone(), user("u"))]
    );
    let later = p.join(&a, &c, &sock(3), &member("u"), 100).await.unwrap();
    assert!(
        matches!(
            later,
            Joined::Admitted {
                new_user: true,
                removal_cancelled: false,
                ..
            }
        ),
        "the removal was taken: {later:?}"
    );
}
