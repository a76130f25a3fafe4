//! Signed HTTP API publishing over a keep-alive HTTP/1.1 connection (hyper's client, so
//! chunked replies and servers that close between requests are handled; a closed connection is
//! reopened for the next request).

use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use bytes::Bytes;
use herald_protocol::Secret;
use herald_protocol::signature::{api_request_payload, body_md5, sign};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

pub struct Publisher {
    sender: Option<SendRequest<Full<Bytes>>>,
    host: String,
    port: u16,
    app_id: String,
    key: String,
    secret: Secret,
}

impl Publisher {
    pub async fn connect(
        host: &str,
        port: u16,
        app_id: &str,
        key: &str,
        secret: &str,
    ) -> anyhow::Result<Publisher> {
        let mut p = Publisher {
            sender: None,
            host: host.to_owned(),
            port,
            app_id: app_id.to_owned(),
            key: key.to_owned(),
            secret: Secret::new(secret),
        };
        p.sender().await?;
        Ok(p)
    }

    /// The open connection, or a new one when the server closed the last.
    async fn sender(&mut self) -> anyhow::Result<&mut SendRequest<Full<Bytes>>> {
        if self.sender.as_ref().is_none_or(|s| s.is_closed()) {
            let stream = TcpStream::connect((self.host.as_str(), self.port))
                .await
                .with_context(|| format!("connecting to {}:{}", self.host, self.port))?;
            stream.set_nodelay(true)?;
            let (sender, conn) =
                hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
            tokio::spawn(conn);
            self.sender = Some(sender);
        }
        let sender = self.sender.as_mut().expect("just set");
        sender.ready().await?;
        Ok(sender)
    }

    /// `POST /apps/{id}/events`; returns the HTTP status.
    pub async fn trigger(&mut self, channel: &str, event: &str, data: &str) -> anyhow::Result<u16> {
        let body =
            serde_json::json!({"name": event, "channels": [channel], "data": data}).to_string();
        Ok(self.request("POST", "events", &body).await?.0)
    }

    /// `POST /apps/{id}/batch_events`: one event per (channel, data); returns the HTTP status.
    pub async fn trigger_batch(
        &mut self,
        event: &str,
        events: &[(&str, String)],
    ) -> anyhow::Result<u16> {
        let batch: Vec<serde_json::Value> = events
            .iter()
            .map(|(channel, data)| serde_json::json!({"name": event, "channel": channel, "data": data}))
            .collect();
        let body = serde_json::json!({ "batch": batch }).to_string();
        Ok(self.request("POST", "batch_events", &body).await?.0)
    }

    /// A signed request to `/apps/{id}/{rest}` (no query parameters of its own); the status
    /// and the body.
    pub async fn request(
        &mut self,
        method: &str,
        rest: &str,
        body: &str,
    ) -> anyhow::Result<(u16, String)> {
        let path = format!("/apps/{}/{rest}", self.app_id);
        let ts = SystemTime::now()
            .duration_since(UNIX_EPOCH)?
            .as_secs()
            .to_string();
        let md5 = body_md5(body.as_bytes());
        let mut params = vec![
            ("auth_key", self.key.as_str()),
            ("auth_timestamp", &ts),
            ("auth_version", "1.0"),
        ];
        if !body.is_empty() {
            params.push(("body_md5", &md5));
        }
        let sig = sign(
            &self.secret,
            api_request_payload(method, &path, &params).as_bytes(),
        );
        let query: Vec<String> = params.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let uri = format!("{path}?{}&auth_signature={sig}", query.join("&"));
        let req = hyper::Request::builder()
            .method(method)
            .uri(uri)
            .header("host", format!("{}:{}", self.host, self.port))
            .header("content-type", "application/json")
            .body(Full::new(Bytes::copy_from_slice(body.as_bytes())))?;
        let res = match self.sender().await?.send_request(req).await {
            Ok(res) => res,
            Err(e) => {
                // The connection is unusable now; the next request opens a new one.
                self.sender = None;
                return Err(e.into());
            }
        };
        let status = res.status().as_u16();
        let body = res.into_body().collect().await?.to_bytes();
        Ok((status, String::from_utf8_lossy(&body).into_owned()))
    }
}
