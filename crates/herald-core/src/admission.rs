//! Admission: whether a WebSocket handshake may proceed (the app, the protocol version, TLS,
//! draining, the node's capacity), and the node's connection slots, taken atomically so a
//! storm of handshakes cannot overshoot `max_connections`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use herald_protocol::{ErrorCode, ProtocolError};

use crate::{App, Apps};

/// Query parameters of a WebSocket handshake, as received.
#[derive(Clone, Copy, Debug, Default)]
pub struct Handshake<'a> {
    pub protocol: Option<&'a str>,
    pub version: Option<&'a str>,
    /// The connection arrived over TLS (directly or per `X-Forwarded-Proto`).
    pub secure: bool,
}

/// The node's door.
pub struct Admission {
    apps: Apps,
    /// Refuse connections without `protocol` (4008) and with a malformed `version` (4006).
    strict_protocol: bool,
    /// Most connections this node holds (4100 beyond it).
    max_connections: Option<usize>,
    /// Connections open (or being opened) on this node.
    connections: AtomicUsize,
    draining: AtomicBool,
}

impl Admission {
    pub fn new(apps: Apps, strict_protocol: bool, max_connections: Option<usize>) -> Admission {
        Admission {
            apps,
            strict_protocol,
            max_connections,
            connections: AtomicUsize::new(0),
            draining: AtomicBool::new(false),
        }
    }

    /// Connections open on this node.
    pub fn count(&self) -> usize {
        self.connections.load(Ordering::Relaxed)
    }

    /// From now on every handshake gets 4200 (shutdown).
    pub fn drain(&self) {
        self.draining.store(true, Ordering::SeqCst);
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst)
    }

    /// Decides whether a WebSocket handshake for `/app/{key}` may proceed (§1.1, §1.6).
    pub fn admit(&self, key: &str, hs: Handshake<'_>) -> Result<Arc<App>, ProtocolError> {
        let app = self
            .apps
            .by_key(key)
            .ok_or(ProtocolError::fatal(ErrorCode::AppNotFound))?;
        if !app.enabled {
            return Err(ProtocolError::fatal(ErrorCode::AppDisabled));
        }
        match hs.protocol {
            Some(p) => match p.parse::<u32>() {
                Ok(4..=7) => {}
                _ => return Err(ProtocolError::fatal(ErrorCode::UnsupportedProtocol)),
            },
            None if self.strict_protocol => {
                return Err(ProtocolError::fatal(ErrorCode::NoProtocol));
            }
            None => {}
        }
        if self.strict_protocol {
            let well_formed = |v: &str| {
                !v.is_empty()
                    && v.split('.').all(|p| {
                        !p.is_empty() && p.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                    })
            };
            if !hs.version.is_some_and(well_formed) {
                return Err(ProtocolError::fatal(ErrorCode::InvalidVersion));
            }
        }
        if app.features.tls_only && !hs.secure {
            return Err(ProtocolError::fatal(ErrorCode::TlsOnly));
        }
        if self.is_draining() {
            return Err(ProtocolError::fatal(ErrorCode::ReconnectNow));
        }
        if let Some(max) = self.max_connections
            && self.count() >= max
        {
            return Err(ProtocolError::fatal(ErrorCode::OverCapacity));
        }
        Ok(app.clone())
    }

    /// Takes one of the node's connection slots; false when `max_node_connections` are in use.
    /// Atomic, so a storm of handshakes cannot overshoot the cap (`admit` only pre-checks).
    pub fn reserve(&self) -> bool {
        let max = self.max_connections.unwrap_or(usize::MAX);
        self.connections
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .is_ok()
    }

    /// Gives back a slot taken by `reserve` for a connection that never opened.
    pub fn release(&self) {
        self.connections.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests;
