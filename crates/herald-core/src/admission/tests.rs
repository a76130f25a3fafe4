//! Handshake decisions and connection slots, without sockets.

#![allow(clippy::unwrap_used)]

use herald_protocol::ErrorCode;

use super::{Admission, Handshake};
use crate::{App, Apps};

fn apps() -> Apps {
    let mut off = App::new("off", "off-key", "s");
    off.enabled = false;
    let mut tls = App::new("tls", "tls-key", "s");
    tls.features.tls_only = true;
    Apps::new(vec![App::new("a", "key", "s"), off, tls]).unwrap()
}

fn hs(protocol: Option<&'static str>, version: Option<&'static str>) -> Handshake<'static> {
    Handshake {
        protocol,
        version,
        secure: false,
    }
}

/// The close code of a refused handshake.
fn refused(a: &Admission, key: &str, h: Handshake<'_>) -> Option<ErrorCode> {
    a.admit(key, h).err().and_then(|e| e.close_code())
}

#[test]
fn handshakes_are_refused_with_the_code_pusher_js_expects() {
    let a = Admission::new(apps(), false, None);
    let ok = hs(Some("7"), Some("8.4.0"));
    assert_eq!(a.admit("key", ok).unwrap().id, "a");
    assert_eq!(refused(&a, "nope", ok), Some(ErrorCode::AppNotFound));
    assert_eq!(refused(&a, "off-key", ok), Some(ErrorCode::AppDisabled));
    assert_eq!(
        refused(&a, "key", hs(Some("3"), None)),
        Some(ErrorCode::UnsupportedProtocol)
    );
    assert_eq!(
        refused(&a, "key", hs(Some("x"), None)),
        Some(ErrorCode::UnsupportedProtocol)
    );
    assert!(a.admit("key", hs(None, None)).is_ok(), "lenient by default");
    assert_eq!(refused(&a, "tls-key", ok), Some(ErrorCode::TlsOnly));
    let secure = Handshake { secure: true, ..ok };
    assert!(a.admit("tls-key", secure).is_ok());
}

#[test]
fn strict_protocol_needs_a_protocol_and_a_well_formed_version() {
    let a = Admission::new(apps(), true, None);
    assert_eq!(
        refused(&a, "key", hs(None, Some("8.4.0"))),
        Some(ErrorCode::NoProtocol)
    );
    for bad in [None, Some(""), Some("8..0"), Some("8.4 beta")] {
        assert_eq!(
            refused(&a, "key", hs(Some("7"), bad)),
            Some(ErrorCode::InvalidVersion),
            "{bad:?}"
        );
    }
    assert!(a.admit("key", hs(Some("7"), Some("8.4.0-rc1"))).is_ok());
}

#[test]
fn slots_never_exceed_the_cap_and_draining_refuses_everyone() {
    let a = Admission::new(apps(), false, Some(2));
    let ok = hs(Some("7"), None);
    assert!(a.reserve() && a.reserve());
    assert!(!a.reserve(), "the third slot does not exist");
    assert_eq!(a.count(), 2);
    assert_eq!(refused(&a, "key", ok), Some(ErrorCode::OverCapacity));
    a.release();
    assert!(a.admit("key", ok).is_ok());
    assert!(a.reserve());
    a.drain();
    assert!(a.is_draining());
    assert_eq!(refused(&a, "key", ok), Some(ErrorCode::ReconnectNow));
}
