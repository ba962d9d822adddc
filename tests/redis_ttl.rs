//! A near-cache entry never outlives its value in Redis (issue 12, finding
//! 2: a 1 s one-time code was served by the writer and another instance at
//! 1.5, 5 and 9 s; a 3 s key first read at 2.5 s was served until ~12.5 s).
//! The checks run after the TTL has passed: a loaded machine only makes
//! them later, never wrong.

mod support;

use std::time::{Duration, Instant};

use aci_cache::Builder;
use support::{shared_url, unique_namespace};

#[test]
fn values_die_in_every_near_cache_when_their_ttl_says() {
    let ns = unique_namespace("ttl");
    let member = |id: &str| {
        Builder::new()
            .namespace(&ns)
            .instance_id(id)
            .is_controller(false)
            .default_ttl(Duration::from_secs(60)) // local_ttl too
            .connect(&shared_url())
            .unwrap()
    };
    let (writer, reader) = (member("w"), member("r"));
    let start = Instant::now();
    writer
        .set_with_ttl("otp", "123456", Duration::from_secs(2))
        .unwrap();
    writer
        .set_with_ttl("session", "s", Duration::from_secs(4))
        .unwrap();
    assert_eq!(reader.get_string("otp").unwrap().as_deref(), Some("123456"));
    assert_eq!(writer.get_string("otp").unwrap().as_deref(), Some("123456"));
    let hits = reader.stats().cache_hits;
    assert_eq!(reader.get_string("otp").unwrap().as_deref(), Some("123456"));
    assert_eq!(
        reader.stats().cache_hits,
        hits + 1,
        "served from memory meanwhile"
    );

    std::thread::sleep(Duration::from_millis(3_500).saturating_sub(start.elapsed()));
    // The session's first read by the reader, about 0.5 s before it expires
    // (on a stalled machine it may be gone already: nothing to check then).
    let first = reader.get_string("session").unwrap();
    println!("session first read at {:?}: {first:?}", start.elapsed());
    assert_eq!(
        writer.get_string("otp").unwrap(),
        None,
        "the writer kept the code"
    );
    assert_eq!(
        reader.get_string("otp").unwrap(),
        None,
        "the reader kept the code"
    );

    std::thread::sleep(Duration::from_millis(4_100).saturating_sub(start.elapsed()));
    assert_eq!(
        reader.get_string("session").unwrap(),
        None,
        "kept past its TTL"
    );
    assert_eq!(writer.get_string("session").unwrap(), None);
}
