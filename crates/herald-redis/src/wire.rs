//! What travels over Redis pub/sub: envelopes (a frame for one channel) and control messages.
//! Line-separated fields, the frame last and verbatim: no JSON work per message. Public only for
//! the fuzz targets: another node's bytes are outside input too.

use bytes::Bytes;

/// The cluster format this release speaks: the pub/sub wire below, the keys of `keys.rs`, the
/// scripts' effects. Version 1 is the format of commit `da0b2f5`, the first release that can
/// share a cluster with a later one.
///
/// **Policy:** release N reads and writes versions N−1 and N. Each node advertises its version
/// (`Keys::versions`); the cluster uses the lowest version a live node advertises (absent: 1),
/// so no node sends what a live peer cannot read. A change to the format raises `VERSION`,
/// keeps writing the old form while `cluster_version` is below it, and may drop the old form
/// one release later.
pub const VERSION: u32 = 1;

/// The oldest cluster format this release still reads and writes.
pub const OLDEST: u32 = 1;
use herald_core::backplane::{Control, Envelope};
use herald_protocol::{ChannelName, SocketId, UserId};

/// `{origin}\n{except}\n{version}\n{published_us}\n{frame}` (empty fields when absent).
pub fn encode_envelope(origin: &str, env: &Envelope) -> Vec<u8> {
    let except = env.except.as_ref().map_or("", |s| s.as_str());
    let version = env.version.map(|v| v.to_string()).unwrap_or_default();
    let published = env.published_us.to_string();
    let mut out = Vec::with_capacity(origin.len() + except.len() + env.frame.len() + 48);
    for field in [origin, except, &version, &published] {
        out.extend_from_slice(field.as_bytes());
        out.push(b'\n');
    }
    out.extend_from_slice(&env.frame);
    out
}

/// The origin node and the envelope; None for anything malformed.
pub fn decode_envelope(channel: &str, payload: &[u8]) -> Option<(String, Envelope)> {
    let mut parts = payload.splitn(5, |b| *b == b'\n');
    let origin = std::str::from_utf8(parts.next()?).ok()?.to_owned();
    let except = std::str::from_utf8(parts.next()?).ok()?;
    let version = std::str::from_utf8(parts.next()?).ok()?;
    let published_us = std::str::from_utf8(parts.next()?).ok()?.parse().ok()?;
    let frame = parts.next()?;
    std::str::from_utf8(frame).ok()?;
    let env = Envelope {
        channel: ChannelName::parse(channel, usize::MAX).ok()?,
        frame: Bytes::copy_from_slice(frame),
        except: if except.is_empty() {
            None
        } else {
            Some(SocketId::parse(except)?)
        },
        version: if version.is_empty() {
            None
        } else {
            Some(version.parse().ok()?)
        },
        published_us,
    };
    Some((origin, env))
}

/// `{origin}\n{kind}\n{payload}`: `T` + user (terminate), `P1`/`P0` + user (online / offline),
/// `W` (console watched), `L` + JSON line (console log), `S` + `{node} {connections}` (console
/// stats).
pub fn encode_control(origin: &str, control: &Control) -> String {
    match control {
        Control::TerminateUser(user) => format!("{origin}\nT\n{user}"),
        Control::Presence { user, online } => format!("{origin}\nP{}\n{user}", u8::from(*online)),
        Control::ConsoleWatch => format!("{origin}\nW\n"),
        Control::ConsoleLine(line) => format!("{origin}\nL\n{line}"),
        Control::ConsoleStats { node, connections } => {
            format!("{origin}\nS\n{node} {connections}")
        }
    }
}

pub fn decode_control(payload: &[u8]) -> Option<(String, Control)> {
    let text = std::str::from_utf8(payload).ok()?;
    let mut parts = text.splitn(3, '\n');
    let origin = parts.next()?.to_owned();
    let kind = parts.next()?;
    let rest = parts.next()?;
    let user = || UserId::parse(rest, usize::MAX);
    let control = match kind {
        "T" => Control::TerminateUser(user()?),
        "P1" => Control::Presence {
            user: user()?,
            online: true,
        },
        "P0" => Control::Presence {
            user: user()?,
            online: false,
        },
        "W" if rest.is_empty() => Control::ConsoleWatch,
        "L" => Control::ConsoleLine(rest.to_owned()),
        "S" => {
            let (node, connections) = rest.split_once(' ')?;
            if node.is_empty() || node.contains(['\n', ' ']) {
                return None;
            }
            Control::ConsoleStats {
                node: node.to_owned(),
                connections: connections.parse().ok()?,
            }
        }
        _ => return None,
    };
    Some((origin, control))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelopes_round_trip() {
        let env = Envelope::membership(
            ChannelName::parse("presence-x", 200).unwrap(),
            Bytes::from_static(b"{\"event\":\"e\",\"data\":\"a\\nb\"}"),
            SocketId::parse("1.2"),
            7,
        );
        let (origin, back) =
            decode_envelope("presence-x", &encode_envelope("node-1", &env)).unwrap();
        assert_eq!(origin, "node-1");
        assert_eq!(
            (back.frame, back.except, back.version, back.published_us),
            (env.frame, env.except, env.version, env.published_us)
        );
        assert!(decode_envelope("x", b"garbage").is_none());
    }

    #[test]
    fn controls_round_trip() {
        let u = UserId::parse("u 1", 128).unwrap();
        for c in [
            Control::TerminateUser(u.clone()),
            Control::Presence {
                user: u.clone(),
                online: true,
            },
            Control::Presence {
                user: u,
                online: false,
            },
            Control::ConsoleWatch,
            Control::ConsoleLine("{\"type\":\"x\",\"data\":\"a\\nb\"}".to_owned()),
            Control::ConsoleStats {
                node: "0123abcd".to_owned(),
                connections: 42,
            },
        ] {
            assert_eq!(
                decode_control(encode_control("n", &c).as_bytes()),
                Some(("n".to_owned(), c))
            );
        }
    }
}
