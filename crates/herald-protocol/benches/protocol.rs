//! Hot paths of the wire: decoding and validating client frames, verifying HTTP API requests.
//! `cargo bench -p herald-protocol`; results in BENCHMARKS.md.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use herald_protocol::api::{SignedRequest, parse_trigger, verify_request};
use herald_protocol::event::ClientEvent;
use herald_protocol::signature::{api_request_payload, body_md5, sign};
use herald_protocol::{Limits, Secret};

fn frames(c: &mut Criterion) {
    let limits = Limits::default();
    let mut g = c.benchmark_group("decode_frame");
    let cases = [
        ("ping", r#"{"event":"pusher:ping","data":{}}"#.to_owned()),
        (
            "subscribe_private",
            r#"{"event":"pusher:subscribe","data":{"channel":"private-orders.42","auth":"app-key:5f1e9c0d4a4b8e2b2a8f4a1c9d0e7f6a5b4c3d2e1f0a9b8c7d6e5f4a3b2c1d0e"}}"#.to_owned(),
        ),
        (
            "client_event_1k",
            format!(
                r#"{{"event":"client-typing","channel":"private-chat.7","data":{{"text":"{}"}}}}"#,
                "x".repeat(1000)
            ),
        ),
    ];
    for (name, frame) in &cases {
        g.bench_function(*name, |b| {
            b.iter(|| ClientEvent::decode(black_box(frame), &limits).is_ok())
        });
    }
    g.finish();
}

fn api(c: &mut Criterion) {
    let secret = Secret::new("app-secret");
    let body = br#"{"name":"order-shipped","channels":["orders"],"data":"{\"id\":42,\"state\":\"shipped\"}"}"#;
    let md5 = body_md5(body);
    let ts = "1700000000";
    let params = [
        ("auth_key", "app-key"),
        ("auth_timestamp", ts),
        ("auth_version", "1.0"),
        ("body_md5", md5.as_str()),
    ];
    let path = "/apps/app-1/events";
    let sig = sign(
        &secret,
        api_request_payload("POST", path, &params).as_bytes(),
    );
    let query = format!(
        "auth_key=app-key&auth_timestamp={ts}&auth_version=1.0&body_md5={md5}&auth_signature={sig}"
    );
    let req = SignedRequest {
        method: "POST",
        path,
        query: &query,
        body,
    };
    c.bench_function("verify_api_request", |b| {
        b.iter(|| verify_request(black_box(&req), "app-key", &secret, 1_700_000_000, 600).is_ok())
    });
    let limits = Limits::default();
    c.bench_function("parse_trigger", |b| {
        b.iter(|| parse_trigger(black_box(body), &limits).is_ok())
    });
}

criterion_group!(benches, frames, api);
criterion_main!(benches);
