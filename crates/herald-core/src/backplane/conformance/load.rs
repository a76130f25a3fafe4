//! `Load`: each node's connection count, as the other nodes see it.

use super::*;

/// Reports reach the other node (with their latest figures, once per node) and never come back
/// to their sender; a single node has nobody to hear from.
pub async fn reports_reach_the_other_nodes(a: &Backplane, b: Option<&Backplane>) {
    let Some(b) = b else {
        assert!(
            a.load.report(7, true).await.unwrap().is_empty(),
            "a single node sees nobody"
        );
        return;
    };
    assert!(
        a.load
            .report(5, true)
            .await
            .unwrap()
            .iter()
            .all(|l| l.connections != 5),
        "a node never sees its own report"
    );
    let seen = b.load.report(7, false).await.unwrap();
    assert_eq!(seen.len(), 1, "b sees a once: {seen:?}");
    assert_eq!((seen[0].connections, seen[0].accepting), (5, true));
    a.load.report(9, false).await.unwrap();
    let seen = b.load.report(7, false).await.unwrap();
    assert_eq!(
        (seen.len(), seen[0].connections, seen[0].accepting),
        (1, 9, false),
        "the latest figures"
    );
    let seen = a.load.report(9, false).await.unwrap();
    assert_eq!(
        (seen.len(), seen[0].connections, seen[0].accepting),
        (1, 7, false)
    );
}
