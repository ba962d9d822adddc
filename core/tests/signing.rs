//! Message authentication between engines: what a signed fleet accepts,
//! what it rejects, and that signing keeps every message within its limits.

mod common;

use aci_core::{Config, Engine, Handled, Instant, RejectReason, Role, Strategy};
use common::{drain, write, Owned};

const KEY: &[u8] = b"0123456789abcdef0123456789abcdef";
const OTHER: &[u8] = b"fedcba9876543210fedcba9876543210";

fn engine(id: &str, keys: &[&[u8]], strategy: Strategy) -> Engine {
    let mut b = Config::builder()
        .role(Role::Follower)
        .max_message_bytes(2048);
    for k in keys {
        b = b.message_key(k);
    }
    let mut e = Engine::new(b.build().unwrap(), id).unwrap();
    e.start(Instant::ZERO);
    e.force_strategy(Instant::ZERO, Some(strategy));
    drain(&mut e);
    e
}

fn published(e: &mut Engine) -> Vec<(String, Vec<u8>)> {
    drain(e)
        .into_iter()
        .filter_map(|o| match o {
            Owned::Publish { channel, payload } => Some((channel, payload.into_bytes())),
            _ => None,
        })
        .collect()
}

#[test]
fn a_signed_fleet_accepts_its_own_and_rejects_the_rest() {
    let mut a = engine("a", &[KEY], Strategy::Eager);
    let mut b = engine("b", &[KEY], Strategy::Eager);
    let mut stranger = engine("s", &[OTHER], Strategy::Eager);
    let mut unsigned = engine("u", &[], Strategy::Eager);
    write(&mut a, Instant::from_millis(1), "k").unwrap();
    let (channel, payload) = published(&mut a).remove(0);
    assert!(payload.ends_with(b"\"}"));
    assert!(std::str::from_utf8(&payload)
        .unwrap()
        .contains(r#", "sig": ""#));
    let at = Instant::from_millis(2);
    assert_eq!(
        b.handle_message(at, &channel, &payload).unwrap(),
        Handled::Invalidation {
            keys: 1,
            foreign: 0
        }
    );
    let r = stranger.handle_message(at, &channel, &payload).unwrap_err();
    assert_eq!(r.reason, RejectReason::BadSignature);
    assert!(!r.dropped_all, "a bad tag empties nobody's near cache");
    // An unsigned instance reads a signed message (it ignores the field)...
    assert!(unsigned.handle_message(at, &channel, &payload).is_ok());
    // ...but a signed one refuses an unsigned message.
    write(&mut unsigned, Instant::from_millis(3), "k").unwrap();
    let (channel, plain) = published(&mut unsigned).remove(0);
    let r = b.handle_message(at, &channel, &plain).unwrap_err();
    assert_eq!(r.reason, RejectReason::Unsigned);
    // A tampered message: its key changed after signing.
    let forged = String::from_utf8(payload.clone())
        .unwrap()
        .replace("\"k\"", "\"x\"");
    let r = b
        .handle_message(at, &channel, forged.as_bytes())
        .unwrap_err();
    assert_eq!(r.reason, RejectReason::BadSignature);
    assert_eq!(b.stats().rejected.get(RejectReason::Unsigned), 1);
    assert_eq!(b.stats().rejected.get(RejectReason::BadSignature), 1);
}

#[test]
fn decisions_and_reports_are_signed_too() {
    let config = Config::builder()
        .role(Role::Controller)
        .message_key(KEY)
        .build()
        .unwrap();
    let mut controller = Engine::new(config, "boss").unwrap();
    controller.start(Instant::ZERO);
    controller.force_strategy(Instant::ZERO, Some(Strategy::Batched));
    let (channel, decision) = published(&mut controller).remove(0);
    let mut follower = engine("f", &[KEY], Strategy::Ttl);
    follower.force_strategy(Instant::ZERO, None);
    assert!(follower
        .handle_message(Instant::ZERO, &channel, &decision)
        .is_ok());
    assert_eq!(follower.strategy(), Strategy::Batched);
}

#[test]
fn a_full_signed_batch_stays_within_max_message_bytes() {
    let mut a = engine("a", &[KEY], Strategy::Batched);
    for i in 0..2_000 {
        write(&mut a, Instant::from_millis(1), &format!("key:{i:06}")).unwrap();
    }
    a.handle_timeout(Instant::from_secs(3));
    let sent = published(&mut a);
    assert!(sent.len() > 10, "{} batches", sent.len());
    let mut b = engine("b", &[KEY], Strategy::Batched);
    for (channel, payload) in &sent {
        assert!(payload.len() <= 2048, "{} bytes", payload.len());
        assert!(b
            .handle_message(Instant::from_secs(3), channel, payload)
            .is_ok());
    }
}

#[test]
fn keys_rotate_without_a_gap() {
    // [old] → [old, new] → [new, old] → [new], one deploy at a time: two
    // instances one step apart always read each other's messages.
    let old: &[u8] = b"old-key-old-key-old-key-";
    let new: &[u8] = b"new-key-new-key-new-key-";
    let steps: [&[&[u8]]; 4] = [&[old], &[old, new], &[new, old], &[new]];
    for pair in steps.windows(2) {
        for (a, b) in [(pair[0], pair[1]), (pair[1], pair[0])] {
            let mut from = engine("from", a, Strategy::Eager);
            let mut to = engine("to", b, Strategy::Eager);
            write(&mut from, Instant::from_millis(1), "k").unwrap();
            let (c, p) = published(&mut from).remove(0);
            assert!(
                to.handle_message(Instant::from_millis(1), &c, &p).is_ok(),
                "{} keys -> {} keys",
                a.len(),
                b.len()
            );
        }
    }
}
