//! Native TLS on the public listener, and `tls_only` apps (4000 on plain connections).

use std::sync::Arc;

use futures_util::StreamExt;
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::rustls::{ClientConfig, RootCertStore, crypto};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::support::*;

struct Tls {
    server: TestServer,
    cert_der: Vec<u8>,
    _dir: TempDir,
}

struct TempDir(std::path::PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

async fn tls_server(apps: &str) -> Tls {
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let dir = std::env::temp_dir().join(format!(
        "herald-tls-{}-{}",
        std::process::id(),
        rand_suffix()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let (cert_path, key_path) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert_path, cert.cert.pem()).unwrap();
    std::fs::write(&key_path, cert.signing_key.serialize_pem()).unwrap();
    let toml = format!(
        "tls_cert = {:?}\ntls_key = {:?}\n{apps}",
        cert_path.display().to_string(),
        key_path.display().to_string()
    );
    let server = TestServer::with_config(&toml).await;
    Tls {
        server,
        cert_der: cert.cert.der().to_vec(),
        _dir: TempDir(dir),
    }
}

fn rand_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

/// Opens a wss:// connection trusting only the test certificate; returns the first frame.
async fn first_frame_over_tls(t: &Tls, key: &str) -> serde_json::Value {
    let mut roots = RootCertStore::empty();
    roots.add(CertificateDer::from(t.cert_der.clone())).unwrap();
    let config = ClientConfig::builder_with_provider(Arc::new(crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let tcp = TcpStream::connect(t.server.addr).await.unwrap();
    let tls = TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .expect("TLS handshake");
    let url = format!(
        "wss://localhost:{}/app/{key}?protocol=7",
        t.server.addr.port()
    );
    let (mut ws, _) = tokio_tungstenite::client_async(url, tls)
        .await
        .expect("WebSocket over TLS");
    match ws.next().await {
        Some(Ok(Message::Text(t))) => serde_json::from_str(t.as_str()).unwrap(),
        other => panic!("expected a frame, got {other:?}"),
    }
}

#[tokio::test]
async fn wss_connections_work_with_native_tls() {
    let t = tls_server(DEFAULT_TOML).await;
    let v = first_frame_over_tls(&t, KEY).await;
    assert_eq!(v["event"], "pusher:connection_established");
}

const TLS_ONLY: &str =
    "[[apps]]\nid=\"app-1\"\nkey=\"app-key\"\nsecret=\"app-secret\"\ntls_only = true";

/// The first frame of a plain connection that claims `X-Forwarded-Proto: https`.
async fn first_frame_forwarded_https(server: &TestServer) -> Value {
    let mut req = server.ws_url(KEY).into_client_request().unwrap();
    req.headers_mut()
        .insert("X-Forwarded-Proto", "https".parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::connect_async(req).await.unwrap();
    match ws.next().await {
        Some(Ok(Message::Text(t))) => serde_json::from_str(t.as_str()).unwrap(),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn tls_only_apps_refuse_plain_connections_with_4000() {
    let server = TestServer::with_config(TLS_ONLY).await;
    let mut c = Client::connect_raw(&server.ws_url(KEY)).await;
    assert_eq!(c.recv().await["data"]["code"], 4000);
    assert_eq!(c.ended().await, Ended::Closed(4000));
    // A client's own claim to have come over TLS is not believed.
    let v = first_frame_forwarded_https(&server).await;
    assert_eq!(
        (&v["event"], &v["data"]["code"]),
        (&json!("pusher:error"), &json!(4000)),
        "{v}"
    );
}

#[tokio::test]
async fn tls_only_apps_believe_the_forwarded_protocol_from_trusted_proxies_only() {
    // The test's connections come from 127.0.0.1: the proxy in front of the node.
    let toml = format!("trusted_proxies = [\"10.0.0.0/8\", \"127.0.0.1\"]\n{TLS_ONLY}");
    let server = TestServer::with_config(&toml).await;
    let v = first_frame_forwarded_https(&server).await;
    assert_eq!(v["event"], "pusher:connection_established", "{v}");
    // Without the header a trusted proxy's connection is still plain.
    let mut c = Client::connect_raw(&server.ws_url(KEY)).await;
    assert_eq!(c.recv().await["data"]["code"], 4000);
    // A range that does not hold the peer trusts nobody here.
    let toml = format!("trusted_proxies = \"10.0.0.0/8, fd00::/8\"\n{TLS_ONLY}");
    let server = TestServer::with_config(&toml).await;
    let v = first_frame_forwarded_https(&server).await;
    assert_eq!(v["data"]["code"], 4000, "{v}");
}

#[tokio::test]
async fn trusted_proxies_must_be_addresses_or_ranges() {
    let err = herald_server::config::Config::load(herald_server::config::Sources {
        toml: Some("trusted_proxies = [\"10.0.0.0/33\"]"),
        ..Default::default()
    })
    .expect_err("a bad range must fail start-up");
    assert!(err.to_string().starts_with("trusted_proxies:"), "{err}");
}

#[tokio::test]
async fn tls_only_apps_accept_native_tls() {
    let t = tls_server(TLS_ONLY).await;
    assert_eq!(
        first_frame_over_tls(&t, KEY).await["event"],
        "pusher:connection_established"
    );
}

#[tokio::test]
async fn unreadable_certificates_fail_start_up_naming_the_key() {
    let config = herald_server::config::Config::load(herald_server::config::Sources {
        toml: Some("tls_cert = \"/nonexistent/cert.pem\"\ntls_key = \"/nonexistent/key.pem\""),
        ..Default::default()
    })
    .unwrap();
    let err = herald_server::build_state(config)
        .err()
        .expect("start-up must fail");
    assert!(err.to_string().starts_with("tls_cert:"), "{err}");
}
