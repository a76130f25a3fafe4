//! Hot paths of the hub on the in-memory backplane: one publish fanned out to 10 000 local
//! subscribers (encoded once, queued to each), and a presence join plus leave.
//! `cargo bench -p herald-core`; results in BENCHMARKS.md.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use herald_core::backplane::{Envelope, Member};
use herald_core::hub::HubConfig;
use herald_core::{App, AppId, Apps, Backplane, Hub, MemoryWebhookQueue, Session};
use herald_protocol::{ChannelName, SocketId, UserId};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

fn fan_out(c: &mut Criterion) {
    let rt = runtime();
    let app = App::new("app-1", "app-key", "app-secret");
    let apps = Apps::new(vec![app]).expect("one app");
    let app = apps.by_id("app-1").expect("app").clone();
    let hub = Hub::new(
        apps,
        Backplane::memory(),
        Arc::new(MemoryWebhookQueue::default()),
        HubConfig::default(),
    );
    let mut outboxes = Vec::new();
    let mut sessions = Vec::new();
    rt.block_on(async {
        for _ in 0..10_000 {
            let (mut session, outbox) = Session::open(&hub, app.clone()).await.expect("open");
            session
                .handle_text(r#"{"event":"pusher:subscribe","data":{"channel":"news"}}"#)
                .await;
            sessions.push(session);
            outboxes.push(outbox);
        }
    });
    let drain = |outboxes: &mut Vec<herald_core::Outbox>| {
        for o in outboxes.iter_mut() {
            while o.try_next().is_some() {}
        }
    };
    drain(&mut outboxes);
    let channel = ChannelName::parse("news", 200).expect("name");
    let app_id = AppId::new("app-1");
    let frame = Bytes::from(format!(
        r#"{{"event":"update","channel":"news","data":"{}"}}"#,
        "x".repeat(100)
    ));
    c.bench_function("publish_to_10k_local_subscribers", |b| {
        b.iter_custom(|iters| {
            let mut took = Duration::ZERO;
            for _ in 0..iters {
                let env = Envelope::new(channel.clone(), frame.clone(), None);
                let start = Instant::now();
                rt.block_on(hub.publish(&app_id, black_box(env)))
                    .expect("publish");
                took += start.elapsed();
                drain(&mut outboxes);
            }
            took
        })
    });
    drop(sessions);
}

fn presence(c: &mut Criterion) {
    let rt = runtime();
    let bp = Backplane::memory();
    let app = AppId::new("app-1");
    let channel = ChannelName::parse("presence-room", 200).expect("name");
    rt.block_on(async {
        for i in 0..99u32 {
            let member = Member {
                user_id: UserId::parse(&format!("user-{i}"), 128).expect("id"),
                user_info: Some(Arc::from(r#"{"name":"someone"}"#)),
            };
            let socket = SocketId::from_parts(i, i);
            bp.presence
                .join(&app, &channel, &socket, &member, 100)
                .await
                .expect("join");
        }
    });
    let member = Member {
        user_id: UserId::parse("newcomer", 128).expect("id"),
        user_info: Some(Arc::from(r#"{"name":"New"}"#)),
    };
    let socket = SocketId::from_parts(7, 7);
    c.bench_function("presence_join_leave_100_members", |b| {
        b.iter(|| {
            rt.block_on(async {
                bp.presence
                    .join(&app, &channel, &socket, &member, 100)
                    .await
                    .expect("join");
                bp.presence
                    .leave(&app, &channel, &socket, None)
                    .await
                    .expect("leave")
            })
        })
    });
}

criterion_group!(benches, fan_out, presence);
criterion_main!(benches);
