//! `get_many`, `set_many`, `delete_many` on a real redis-server: one round
//! trip each, one invalidation for a whole eager `set_many`, the fleet kept
//! consistent.

mod support;

use std::time::Duration;

use aci_cache::{AdaptiveCache, Strategy};
use redis::Commands;
use support::{eventually, raw, RedisServer};

fn eager(url: &str) -> AdaptiveCache<aci_cache::transports::RedisTransport> {
    let cache = AdaptiveCache::builder()
        .namespace("many")
        .is_controller(false)
        .connect(url)
        .unwrap();
    cache.force_strategy(Some(Strategy::Eager)).unwrap();
    cache
}

/// `calls` of `command` in `INFO commandstats`.
fn calls(admin: &mut redis::Connection, command: &str) -> u64 {
    let info: String = redis::cmd("INFO").arg("commandstats").query(admin).unwrap();
    info.lines()
        .find_map(|line| line.strip_prefix(&format!("cmdstat_{command}:calls=")))
        .and_then(|rest| rest.split(',').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

#[test]
fn batch_operations_take_one_round_trip_and_keep_the_fleet_consistent() {
    if support::skip_without_own_servers(
        "batch_operations_take_one_round_trip_and_keep_the_fleet_consistent",
    ) {
        return;
    }
    let server = RedisServer::start();
    let mut admin = raw(&server.url());
    let (a, b) = (eager(&server.url()), eager(&server.url()));

    let entries: Vec<(String, String)> = (0..50)
        .map(|i| (format!("k{i}"), format!("v{i}")))
        .collect();
    let pairs: Vec<(&str, &str)> = entries
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let keys: Vec<&str> = pairs.iter().map(|(k, _)| *k).collect();
    let sets_before = calls(&mut admin, "set");
    a.set_many(&pairs).unwrap();
    assert_eq!(calls(&mut admin, "set") - sets_before, 50);
    assert_eq!(
        a.stats().invalidations_sent,
        1,
        "one message names all 50 keys"
    );
    assert_eq!(a.stats().total_writes, 50);
    let ttl: i64 = admin.pttl("aci:many:k7").unwrap();
    assert!(ttl > 0 && ttl <= 10_000, "the default TTL ({ttl} ms)");

    // b reads them all with one MGET, then from its near cache.
    let mgets = calls(&mut admin, "mget");
    let values = b.get_many(&keys).unwrap();
    assert_eq!(calls(&mut admin, "mget") - mgets, 1);
    for (i, value) in values.iter().enumerate() {
        assert_eq!(value.as_deref(), Some(format!("v{i}").as_bytes()));
    }
    let gets = calls(&mut admin, "get");
    let again = b.get_many(&keys).unwrap();
    assert_eq!(again, values);
    assert_eq!(
        calls(&mut admin, "mget") - mgets,
        1,
        "all hits the second time"
    );
    assert_eq!(calls(&mut admin, "get"), gets);

    // a rewrites half: b's near cache drops those keys and reads the new values.
    let newer: Vec<(&str, &str)> = keys[..25].iter().map(|k| (*k, "new")).collect();
    a.set_many(&newer).unwrap();
    let fresh = eventually(Duration::from_secs(5), || {
        b.get_many(&keys[..25])
            .unwrap()
            .iter()
            .all(|v| v.as_deref() == Some(&b"new"[..]))
    });
    assert!(fresh.is_some(), "b kept serving the old values");
    assert_eq!(b.get_string("k30").unwrap().as_deref(), Some("v30"));

    // delete_many: gone from Redis and from every near cache.
    assert_eq!(a.delete_many(&keys[..10]).unwrap(), 10);
    assert_eq!(a.delete_many(&keys[..10]).unwrap(), 0);
    let gone = eventually(Duration::from_secs(5), || {
        b.get_many(&keys[..10]).unwrap().iter().all(Option::is_none)
    });
    assert!(gone.is_some());
    let left: i64 = redis::cmd("DBSIZE").query(&mut admin).unwrap();
    assert_eq!(left, 40);

    // Empty calls are no-ops; a key too long refuses the whole call.
    assert_eq!(a.get_many(&[]).unwrap(), Vec::<Option<bytes::Bytes>>::new());
    a.set_many::<&str>(&[]).unwrap();
    let long = "x".repeat(40_000);
    assert!(matches!(
        a.set_many(&[("fine", "1"), (long.as_str(), "2")]),
        Err(aci_cache::Error::KeyTooLong { .. })
    ));
    let fine: Option<String> = admin.get("aci:many:fine").unwrap();
    assert_eq!(fine, None, "nothing written");
}

#[cfg(feature = "tokio")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_async_batch_operations_do_the_same() {
    let url = support::shared_url();
    let ns = support::unique_namespace("many-async");
    let cache = aci_cache::AsyncAdaptiveCache::builder()
        .namespace(&ns)
        .is_controller(false)
        .connect(&url)
        .await
        .unwrap();
    cache.set_many(&[("a", "1"), ("b", "2")]).await.unwrap();
    let values = cache.get_many(&["a", "zz", "b"]).await.unwrap();
    assert_eq!(values[0].as_deref(), Some(&b"1"[..]));
    assert_eq!(values[1], None);
    assert_eq!(values[2].as_deref(), Some(&b"2"[..]));
    assert_eq!(cache.delete_many(&["a", "b"]).await.unwrap(), 2);
    assert_eq!(cache.get_many(&["a", "b"]).await.unwrap(), vec![None, None]);
    cache.stop().await;
}
