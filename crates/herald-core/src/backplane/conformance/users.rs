//! `Users`: online and offline once per user.

use super::*;

pub async fn go_online_and_offline_once(bp: &Backplane) {
    let (a, u) = (app("a"), user("u1"));
    let us = &bp.users;
    assert!(us.signin(&a, &u, &sock(1)).await.unwrap());
    assert!(!us.signin(&a, &u, &sock(2)).await.unwrap());
    assert_eq!(
        us.online(&a, &[u.clone(), user("u2")]).await.unwrap(),
        vec![true, false]
    );
    assert!(!us.signout(&a, &u, &sock(1)).await.unwrap());
    assert!(us.signout(&a, &u, &sock(2)).await.unwrap());
    assert!(!us.signout(&a, &u, &sock(2)).await.unwrap());
    assert_eq!(us.online(&a, &[u]).await.unwrap(), vec![false]);
    assert_eq!(us.online(&a, &[]).await.unwrap(), Vec::<bool>::new());
}
