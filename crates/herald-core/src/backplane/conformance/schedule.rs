//! `Schedule`: checks claimed once, replaced, cancelled; marks set once per time to live.

use std::time::Duration;

use super::*;

pub async fn marks_are_set_once_and_expire(bp: &Backplane) {
    let (a, s) = (app("a"), &bp.schedule);
    let ttl = Duration::from_millis(300);
    let k = Mark::CacheMiss(ch("cache-k"));
    let short = Mark::CacheMiss(ch("cache-short"));
    assert!(s.mark(&a, &k, ttl).await.unwrap());
    assert!(!s.mark(&a, &k, ttl).await.unwrap(), "already set");
    assert!(
        s.mark(&app("b"), &k, ttl).await.unwrap(),
        "apps are separate"
    );
    assert!(s.mark(&a, &short, Duration::from_millis(50)).await.unwrap());
    tokio::time::sleep(Duration::from_millis(120)).await;
    assert!(
        s.mark(&a, &short, ttl).await.unwrap(),
        "settable again after expiry"
    );
}

pub async fn checks_fall_due_once(bp: &Backplane) {
    let (a, s) = (app("a"), &bp.schedule);
    let check = |name: &str| Check::Vacated(ch(name));
    s.schedule(&a, &check("late"), 200).await.unwrap();
    s.schedule(&a, &check("early"), 100).await.unwrap();
    s.schedule(&a, &check("cancelled"), 100).await.unwrap();
    s.schedule(&a, &check("future"), 10_000).await.unwrap();
    let removed = Check::MemberRemoved(ch("presence-p"), user("u"));
    s.schedule(&a, &removed, 150).await.unwrap();
    s.schedule(&app("b"), &check("other-app"), 100)
        .await
        .unwrap();
    assert!(s.cancel(&a, &check("cancelled")).await.unwrap());
    assert!(
        !s.cancel(&a, &check("cancelled")).await.unwrap(),
        "already cancelled"
    );
    assert_eq!(s.take_due(&a, 50, 10).await.unwrap(), []);
    assert_eq!(
        s.take_due(&a, 300, 10).await.unwrap(),
        [check("early"), removed, check("late")],
        "earliest first"
    );
    assert_eq!(s.take_due(&a, 300, 10).await.unwrap(), [], "claimed once");
    s.schedule(&a, &check("future"), 400).await.unwrap();
    assert_eq!(
        s.take_due(&a, 500, 10).await.unwrap(),
        [check("future")],
        "re-scheduling replaces"
    );
    assert_eq!(
        s.take_due(&app("b"), 500, 10).await.unwrap(),
        [check("other-app")]
    );
}
