//! `Relay`: to every other node, in order per channel, never back to the sender.

use std::time::Duration;

use bytes::Bytes;

use super::*;

const QUIET: Duration = Duration::from_millis(300);
const WAIT: Duration = Duration::from_secs(5);

/// The next envelope or control from `rx` (reaping notices are not the relay's).
async fn next(rx: &mut mpsc::Receiver<Inbound>, within: Duration) -> Option<Inbound> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(Inbound::Reaped { .. })) => continue,
            Ok(Some(msg)) => return Some(msg),
            Ok(None) | Err(_) => return None,
        }
    }
}

/// `a` and, on a cluster, `b` (another node of the same cluster). On a single node the relay
/// has nobody to reach: publishing succeeds and nothing comes back.
pub async fn reaches_other_nodes_in_order_and_never_the_sender(a: &mut Node, b: Option<&mut Node>) {
    let (app_a, c) = (app("a"), ch("relayed"));
    let envelope = |i: u32| {
        let mut e = Envelope::new(c.clone(), Bytes::from(format!("frame {i}")), None);
        if i.is_multiple_of(3) {
            e.except = Some(sock(i));
        }
        if i.is_multiple_of(5) {
            e.version = Some(u64::from(i));
        }
        e
    };
    let terminate = Control::TerminateUser(user("u"));
    a.backplane
        .channels
        .subscribe(&app_a, &c, &sock(100))
        .await
        .unwrap();
    if let Some(b) = &b {
        b.backplane
            .channels
            .subscribe(&app_a, &c, &sock(200))
            .await
            .unwrap();
    }
    for i in 0..50 {
        a.backplane
            .relay
            .publish(&app_a, &envelope(i))
            .await
            .unwrap();
    }
    a.backplane.relay.control(&app_a, &terminate).await.unwrap();
    let Some(b) = b else {
        // A single node: nobody to reach, and nothing comes back.
        if let Some(rx) = &mut a.inbound {
            assert!(
                next(rx, QUIET).await.is_none(),
                "a node got its own message"
            );
        }
        return;
    };
    b.backplane
        .relay
        .publish(&app_a, &envelope(1000))
        .await
        .unwrap();

    let rx = b
        .inbound
        .as_mut()
        .expect("a cluster node has an inbound receiver");
    let mut envelopes = Vec::new();
    let mut controls = Vec::new();
    while envelopes.len() < 50 || controls.is_empty() {
        match next(rx, WAIT).await {
            Some(Inbound::Envelope { app, envelope }) => {
                assert_eq!(app, app_a);
                envelopes.push(envelope);
            }
            Some(Inbound::Control { app, control }) => {
                assert_eq!(app, app_a);
                controls.push(control);
            }
            _ => panic!(
                "node b got {} of 50 envelopes and {} of 1 controls",
                envelopes.len(),
                controls.len()
            ),
        }
    }
    for (i, got) in envelopes.iter().enumerate() {
        let want = envelope(i as u32);
        assert_eq!(
            (&got.channel, &got.frame, &got.except, got.version),
            (&want.channel, &want.frame, &want.except, want.version),
            "envelope {i} arrived out of order or changed"
        );
    }
    assert_eq!(controls, [terminate]);
    assert!(
        next(rx, QUIET).await.is_none(),
        "node b got its own envelope"
    );

    let rx = a
        .inbound
        .as_mut()
        .expect("a cluster node has an inbound receiver");
    match next(rx, WAIT).await {
        Some(Inbound::Envelope { envelope, .. }) => {
            assert_eq!(
                envelope.frame,
                Bytes::from("frame 1000"),
                "node a got its own envelope"
            );
        }
        other => panic!("node a expected b's envelope, got {other:?}"),
    }
    assert!(
        next(rx, QUIET).await.is_none(),
        "node a got its own messages"
    );
}
