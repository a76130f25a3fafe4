//! `Cache`: the last event, with its time left.

use std::time::Duration;

use bytes::Bytes;

use super::*;

pub async fn keeps_the_last_event(bp: &Backplane) {
    let (a, c) = (app("a"), ch("cache-x"));
    assert_eq!(bp.cache.get(&a, &c).await.unwrap(), None);
    for data in ["1", "2"] {
        let ev = CachedEvent {
            frame: Bytes::from(format!("frame{data}")),
            data: data.into(),
            ttl: Duration::from_secs(60),
        };
        bp.cache.set(&a, &c, ev).await.unwrap();
    }
    let got = bp.cache.get(&a, &c).await.unwrap().expect("cached");
    assert_eq!((got.frame, got.data.as_str()), (Bytes::from("frame2"), "2"));
    assert!(got.ttl <= Duration::from_secs(60) && got.ttl >= Duration::from_secs(1));
    assert_eq!(
        bp.cache.get(&app("b"), &c).await.unwrap(),
        None,
        "apps are separate"
    );
}
