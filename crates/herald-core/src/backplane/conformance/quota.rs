//! `Quota`: cluster-wide totals.

use super::*;

pub async fn connection_totals_count_up_and_down(bp: &Backplane) {
    let (a, b) = (app("a"), app("b"));
    assert_eq!(bp.quota.connections(&a, 1).await.unwrap(), 1);
    assert_eq!(bp.quota.connections(&a, 1).await.unwrap(), 2);
    assert_eq!(bp.quota.connections(&a, -1).await.unwrap(), 1);
    assert_eq!(bp.quota.connections(&b, 1).await.unwrap(), 1);
}

/// One budget per app and second, whoever asks.
pub async fn api_requests_share_one_budget_per_second(bp: &Backplane) {
    let (a, b) = (app("a"), app("b"));
    // Within one second (retried if the second turns over midway).
    for _ in 0..3 {
        let started = std::time::SystemTime::now();
        let mut allowed = 0;
        for _ in 0..8 {
            allowed += usize::from(bp.quota.api_request(&a, 5).await.unwrap());
        }
        let other = bp.quota.api_request(&b, 5).await.unwrap();
        let same_second = started.elapsed().unwrap() < std::time::Duration::from_millis(500)
            && now_secs(started) == now_secs(std::time::SystemTime::now());
        if same_second {
            assert_eq!(allowed, 5, "5 of 8 requests in one second");
            assert!(other, "another app has its own budget");
            return;
        }
    }
    panic!("three attempts straddled a second");
}

fn now_secs(t: std::time::SystemTime) -> u64 {
    t.duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
}
