//! Typed values (feature `serde`): what does not encode writes nothing, what
//! does not decode is an error naming its key, never a panic.
#![cfg(feature = "serde")]

use std::collections::HashMap;

use aci_cache::transports::{MemoryTransport, Transport};
use aci_cache::{AdaptiveCache, Error};

#[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
struct Order {
    id: u64,
    items: Vec<String>,
}

fn cache(redis: &MemoryTransport) -> AdaptiveCache<MemoryTransport> {
    AdaptiveCache::builder()
        .namespace("typed")
        .transport(redis.clone())
        .unwrap()
}

#[test]
fn values_round_trip_and_bad_ones_are_typed_errors() {
    let redis = MemoryTransport::new();
    let cache = cache(&redis);
    let order = Order {
        id: 7,
        items: vec!["tea".into(), "\u{1F375} cup".into()],
    };
    cache.set_json("order:7", &order).unwrap();
    assert_eq!(cache.get_json::<Order>("order:7").unwrap(), Some(order));
    assert_eq!(cache.get_json::<Order>("order:8").unwrap(), None);

    // Written by someone else, in another shape.
    for (key, raw) in [
        ("text", &b"plain text"[..]),
        ("shape", br#"{"id": "seven"}"#),
        ("binary", &[0xff, 0x00, 0xfe][..]),
        ("huge", b"18446744073709551616"),
    ] {
        cache.set(key, raw).unwrap();
        match cache.get_json::<Order>(key) {
            Err(Error::Decode { key: named, .. }) => assert_eq!(named, key),
            other => panic!("{key}: {other:?}"),
        }
    }

    // A map with non-string keys has no JSON form: nothing is written.
    let unencodable: HashMap<(u8, u8), u8> = HashMap::from([((1, 2), 3)]);
    match cache.set_json("pairs", &unencodable) {
        Err(Error::Encode { key, .. }) => assert_eq!(key, "pairs"),
        other => panic!("{other:?}"),
    }
    assert_eq!(redis.get("aci:typed:pairs").unwrap(), None);
    assert_eq!(
        cache.stats().total_writes,
        5,
        "the five raw and typed writes only"
    );
}
