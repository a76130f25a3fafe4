//! Every HMAC in the product: channel authorization, user sign-in, HTTP API request signing and
//! webhook signing. This is the only file that imports `hmac`. Signatures are lowercase hex
//! HMAC-SHA256 keyed by the app secret, and are checked in constant time by `Mac::verify_slice`.

use hmac::{Hmac, KeyInit, Mac};
use md5::{Digest, Md5};
use sha2::Sha256;
use std::fmt;

use crate::{ChannelName, SocketId};

/// An app secret. Its `Debug` form never shows the value, so it cannot leak into logs.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Secret {
        Secret(s.into())
    }

    /// Whether `given` is this secret, compared in constant time (bearer tokens: the console's
    /// and the admin API's). Both sides are hashed with HMAC first, so neither the length nor
    /// a common prefix shows in the timing.
    pub fn matches(&self, given: &str) -> bool {
        const PROBE: &[u8] = b"herald-token";
        verify(self, PROBE, &sign(&Secret::new(given), PROBE))
    }

    fn mac(&self) -> Hmac<Sha256> {
        // HMAC accepts keys of any length, so this cannot fail.
        Hmac::<Sha256>::new_from_slice(self.0.as_bytes()).expect("HMAC takes keys of any length")
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// Lowercase hex HMAC-SHA256 of `payload`.
pub fn sign(secret: &Secret, payload: &[u8]) -> String {
    let mut mac = secret.mac();
    mac.update(payload);
    hex::encode(mac.finalize().into_bytes())
}

/// Checks a hex signature in constant time. Malformed hex is simply a wrong signature.
pub fn verify(secret: &Secret, payload: &[u8], hex_sig: &str) -> bool {
    let Ok(given) = hex::decode(hex_sig) else {
        return false;
    };
    let mut mac = secret.mac();
    mac.update(payload);
    mac.verify_slice(&given).is_ok()
}

/// Checks an `auth` value `{app_key}:{hex}` against `payload`. The key part must be this app's
/// key, even when the HMAC part would match (§2.11).
pub fn verify_auth(app_key: &str, secret: &Secret, auth: &str, payload: &str) -> bool {
    match auth.split_once(':') {
        Some((key, sig)) => key == app_key && verify(secret, payload.as_bytes(), sig),
        None => false,
    }
}

/// The `auth` value a server SDK produces for `payload`.
pub fn auth_token(app_key: &str, secret: &Secret, payload: &str) -> String {
    format!("{app_key}:{}", sign(secret, payload.as_bytes()))
}

/// `{socket_id}:{channel}` or `{socket_id}:{channel}:{channel_data}` (§3.1).
pub fn channel_auth_payload(
    socket: &SocketId,
    channel: &ChannelName,
    data: Option<&str>,
) -> String {
    match data {
        Some(d) => format!("{socket}:{channel}:{d}"),
        None => format!("{socket}:{channel}"),
    }
}

/// `{socket_id}::user::{user_data}` (§3.1).
pub fn signin_payload(socket: &SocketId, user_data: &str) -> String {
    format!("{socket}::user::{user_data}")
}

/// `METHOD\npath\ncanonical_query` for HTTP API request signing (§6.1). `params` must already
/// exclude `auth_signature`; keys are lower-cased and sorted here, values are not escaped.
pub fn api_request_payload(method: &str, path: &str, params: &[(&str, &str)]) -> String {
    let mut pairs: Vec<(String, &str)> = params
        .iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), *v))
        .collect();
    pairs.sort();
    let query: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}={v}")).collect();
    format!(
        "{}\n{}\n{}",
        method.to_ascii_uppercase(),
        path,
        query.join("&")
    )
}

/// Lowercase hex MD5 of a request body (`body_md5`).
pub fn body_md5(body: &[u8]) -> String {
    hex::encode(Md5::digest(body))
}

#[cfg(test)]
mod tests;
