//! Single-flight never hands out a value an invalidation already retired,
//! and a leader that gives up does not fail its followers (issue 11,
//! findings 3 and 6). The instance layer is driven by hand: explicit
//! ordering, no threads, no sleeps.

use aci_cache::instance::{Instance, Lookup};
use aci_cache::Builder;
use aci_core::Instant;
use bytes::Bytes;

fn instance() -> Instance {
    let settings = Builder::new().is_controller(false).settings().unwrap();
    let instance = Instance::new(settings).unwrap();
    instance.start(Instant::ZERO, 0.0);
    instance.subscribed();
    instance
}

fn invalidation(key: &str) -> Vec<u8> {
    format!(
        r#"{{"action": "invalidate", "keys": ["{key}"], "strategy": "eager", "timestamp": 1.0, "source": "writer"}}"#
    )
    .into_bytes()
}

fn fill(lookup: Lookup) -> aci_cache::instance::Fill {
    match lookup {
        Lookup::Fill(fill) => fill,
        Lookup::Hit(_) => panic!("a hit, expected a read"),
        Lookup::Wait(_) => panic!("joined a read in flight, expected to lead one"),
    }
}

#[test]
fn a_read_that_starts_after_an_invalidation_never_joins_a_read_from_before_it() {
    let b = instance();
    let now = Instant::from_millis(1);
    // B's first reader asks Redis for k; the old value is on its way.
    let before = fill(b.lookup("k", now));
    // A's write is acknowledged; its invalidation reaches B.
    let _ = b.handle_message("aci:invalidation", &invalidation("k"), now);
    // A reader that starts now must not get the old read's answer.
    let after = fill(b.lookup("k", now));
    // The old read answers its own caller (it began first), and is not cached.
    let old = b
        .finish_fill(before, Ok(Some(Bytes::from_static(b"old"))), now)
        .unwrap();
    assert_eq!(old.as_deref(), Some(&b"old"[..]));
    let new = b
        .finish_fill(after, Ok(Some(Bytes::from_static(b"new"))), now)
        .unwrap();
    assert_eq!(new.as_deref(), Some(&b"new"[..]));
    match b.lookup("k", now) {
        Lookup::Hit(v) => assert_eq!(&v[..], b"new"),
        _ => panic!("the new value was not cached"),
    }
}

#[test]
fn a_read_that_starts_after_a_local_write_never_joins_a_read_from_before_it() {
    let b = instance();
    let now = Instant::from_millis(1);
    let before = fill(b.lookup("k", now));
    let write = b.prepare_write("k", None, now).unwrap();
    b.finish_write(write, "k", b"mine", Ok(()), now).unwrap();
    // Read your writes: a hit, not the old read.
    assert!(matches!(b.lookup("k", now), Lookup::Hit(v) if &v[..] == b"mine"));
    drop(before);
    // After a delete, a new reader leads its own read too.
    let before = fill(b.lookup("d", now));
    let invalidation = b.prepare_delete("d", now).unwrap();
    b.finish_delete("d", &invalidation, Ok(true)).unwrap();
    let _after = fill(b.lookup("d", now));
    drop(before);
}

#[test]
fn readers_with_nothing_in_between_share_one_read() {
    let b = instance();
    let now = Instant::from_millis(1);
    let lead = fill(b.lookup("k", now));
    let Lookup::Wait(wait) = b.lookup("k", now) else {
        panic!("a second reader should share the read");
    };
    b.finish_fill(lead, Ok(Some(Bytes::from_static(b"v"))), now)
        .unwrap();
    // The leader has finished: the outcome is there, no waiting needed.
    let shared = wait.outcome().expect("settled");
    assert!(matches!(shared, Some(Ok(Some(v))) if &v[..] == b"v"));
}

#[test]
fn a_follower_whose_leader_gave_up_reads_for_itself() {
    let b = instance();
    let now = Instant::from_millis(1);
    let lead = fill(b.lookup("k", now));
    let Lookup::Wait(wait) = b.lookup("k", now) else {
        panic!("a second reader should share the read");
    };
    // The leader's task is cancelled (its future, holding the fill, dropped).
    drop(lead);
    assert!(
        wait.outcome().expect("settled").is_none(),
        "the follower is told to look again, not failed"
    );
    let again = fill(b.lookup("k", now));
    let read = b
        .finish_fill(again, Ok(Some(Bytes::from_static(b"v"))), now)
        .unwrap();
    assert_eq!(read.as_deref(), Some(&b"v"[..]));
    assert_eq!(b.reads_in_flight(), 0);
}
