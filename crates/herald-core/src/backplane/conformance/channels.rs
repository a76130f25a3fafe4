//! `Channels`: occupancy transitions once per cluster, queries of shared state.

use super::*;

pub async fn transitions_happen_once(bp: &Backplane) {
    let (a, c) = (app("a"), ch("room"));
    let ch = &bp.channels;
    let occ = |count, transition| Occupancy {
        count,
        transition,
        vacancy_cancelled: false,
    };
    assert_eq!(ch.subscribe(&a, &c, &sock(1)).await.unwrap(), occ(1, true));
    assert_eq!(ch.subscribe(&a, &c, &sock(2)).await.unwrap(), occ(2, false));
    assert_eq!(
        ch.unsubscribe(&a, &c, &sock(1), None).await.unwrap(),
        occ(1, false)
    );
    assert_eq!(
        ch.unsubscribe(&a, &c, &sock(2), None).await.unwrap(),
        occ(0, true)
    );
    assert_eq!(
        ch.unsubscribe(&a, &c, &sock(2), None).await.unwrap(),
        occ(0, false),
        "a repeated leave vacates nothing"
    );
    // Apps are separate namespaces.
    assert_eq!(
        ch.subscribe(&app("b"), &c, &sock(1)).await.unwrap(),
        occ(1, true)
    );
}

pub async fn queries_read_shared_state(bp: &Backplane) {
    let (a, p) = (app("a"), ch("presence-x"));
    bp.channels
        .subscribe(&a, &ch("news"), &sock(1))
        .await
        .unwrap();
    for s in [sock(1), sock(2)] {
        bp.channels.subscribe(&a, &p, &s).await.unwrap();
        bp.presence
            .join(&a, &p, &s, &member("u1"), 100)
            .await
            .unwrap();
    }
    let all = bp.channels.channels(&a, "").await.unwrap();
    assert_eq!(
        all.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(),
        ["news", "presence-x"]
    );
    let presence = bp.channels.channels(&a, "presence-").await.unwrap();
    assert_eq!(
        presence,
        vec![ChannelCount {
            name: "presence-x".into(),
            subscription_count: 2,
            user_count: Some(1)
        }]
    );
    let one = bp.channels.channel(&a, &p).await.unwrap();
    assert_eq!((one.subscription_count, one.user_count), (2, Some(1)));
    let none = bp.channels.channel(&a, &ch("empty")).await.unwrap();
    assert_eq!((none.subscription_count, none.user_count), (0, None));
}

pub async fn a_vacating_leave_schedules_its_check(bp: &Backplane) {
    let (a, c) = (app("a"), ch("leaving"));
    let (s1, s2) = (sock(1), sock(2));
    bp.channels.subscribe(&a, &c, &s1).await.unwrap();
    bp.channels.subscribe(&a, &c, &s2).await.unwrap();
    let first = bp
        .channels
        .unsubscribe(&a, &c, &s1, Some(100))
        .await
        .unwrap();
    assert!(!first.transition);
    assert_eq!(
        bp.schedule.take_due(&a, 200, 10).await.unwrap(),
        [],
        "a leave that vacates nothing schedules nothing"
    );
    let last = bp
        .channels
        .unsubscribe(&a, &c, &s2, Some(100))
        .await
        .unwrap();
    assert!(last.transition);
    assert_eq!(
        bp.schedule.take_due(&a, 200, 10).await.unwrap(),
        [Check::Vacated(c.clone())]
    );
    let again = bp
        .channels
        .unsubscribe(&a, &c, &s2, Some(100))
        .await
        .unwrap();
    assert!(!again.transition, "a repeated leave vacates nothing");
    assert_eq!(bp.schedule.take_due(&a, 200, 10).await.unwrap(), []);
}

/// Re-occupying a channel within the debounce cancels its pending vacancy in the same step;
/// once the check was taken, an occupancy is a new one. (On Redis, for apps whose leaves
/// schedule vacancies, as the conformance nodes' apps do.)
pub async fn a_reoccupation_cancels_the_pending_vacancy_in_its_step(bp: &Backplane) {
    let (a, c) = (app("a"), ch("returning"));
    let chans = &bp.channels;
    chans.subscribe(&a, &c, &sock(1)).await.unwrap();
    chans
        .unsubscribe(&a, &c, &sock(1), Some(100))
        .await
        .unwrap();
    let back = chans.subscribe(&a, &c, &sock(2)).await.unwrap();
    assert!(back.transition && back.vacancy_cancelled, "{back:?}");
    assert_eq!(
        bp.schedule.take_due(&a, 200, 10).await.unwrap(),
        [],
        "cancelled"
    );
    chans
        .unsubscribe(&a, &c, &sock(2), Some(100))
        .await
        .unwrap();
    assert_eq!(
        bp.schedule.take_due(&a, 200, 10).await.unwrap(),
        [Check::Vacated(c.clone())]
    );
    let later = chans.subscribe(&a, &c, &sock(3)).await.unwrap();
    assert!(
        later.transition && !later.vacancy_cancelled,
        "the check was taken: {later:?}"
    );
}
