//! Signed HTTP API publishing over one keep-alive HTTP/1.1 connection.

use std::time::{SystemTime, UNIX_EPOCH};

use herald_protocol::Secret;
use herald_protocol::signature::{api_request_payload, body_md5, sign};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

pub struct Publisher {
    stream: BufReader<TcpStream>,
    host: String,
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
        let stream = TcpStream::connect((host, port)).await?;
        stream.set_nodelay(true)?;
        Ok(Publisher {
            stream: BufReader::new(stream),
            host: format!("{host}:{port}"),
            app_id: app_id.to_owned(),
            key: key.to_owned(),
            secret: Secret::new(secret),
        })
    }

    /// `POST /apps/{id}/events`; returns the HTTP status.
    pub async fn trigger(&mut self, channel: &str, event: &str, data: &str) -> anyhow::Result<u16> {
        let body =
            serde_json::json!({"name": event, "channels": [channel], "data": data}).to_string();
        Ok(self.request("POST", "events", &body).await?.0)
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
        let req = format!(
            "{method} {path}?{}&auth_signature={sig} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            query.join("&"),
            self.host,
            body.len()
        );
        self.stream.get_mut().write_all(req.as_bytes()).await?;
        let mut status_line = String::new();
        self.stream.read_line(&mut status_line).await?;
        let status: u16 = status_line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let mut length = 0usize;
        loop {
            let mut line = String::new();
            self.stream.read_line(&mut line).await?;
            if line == "\r\n" || line.is_empty() {
                break;
            }
            if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                length = v.trim().parse().unwrap_or(0);
            }
        }
        let mut rest = vec![0; length];
        self.stream.read_exact(&mut rest).await?;
        Ok((status, String::from_utf8_lossy(&rest).into_owned()))
    }
}
