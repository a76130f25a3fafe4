//! `Quota`: cluster-wide totals.

use super::*;

pub async fn connection_totals_count_up_and_down(bp: &Backplane) {
    let (a, b) = (app("a"), app("b"));
    assert_eq!(bp.quota.connections(&a, 1).await.unwrap(), 1);
    assert_eq!(bp.quota.connections(&a, 1).await.unwrap(), 2);
    assert_eq!(bp.quota.connections(&a, -1).await.unwrap(), 1);
    assert_eq!(bp.quota.connections(&b, 1).await.unwrap(), 1);
}
