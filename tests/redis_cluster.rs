//! The cache on a real Redis Cluster that this binary starts: three masters
//! and three replicas on free loopback ports. Keys on every shard, every
//! strategy's promise to another instance, the election in the control
//! slot, bucketed invalidations across shards, and a control-slot master
//! killed under the fleet.
#![cfg(feature = "cluster")]

mod support;

use std::sync::OnceLock;
use std::time::Duration;

use aci_cache::transports::{RedisClusterTransport, Transport};
use aci_cache::{AdaptiveCache, Builder, Naming, Strategy};
use support::cluster::{slot_of, RedisCluster};
use support::{eventually, unique_namespace};

type Cache = AdaptiveCache<RedisClusterTransport>;

/// The cluster the tests share; fault tests start their own.
fn shared() -> &'static RedisCluster {
    static CLUSTER: OnceLock<RedisCluster> = OnceLock::new();
    CLUSTER.get_or_init(RedisCluster::start)
}

fn cache_on(cluster: &RedisCluster, ns: &str, tune: impl FnOnce(Builder) -> Builder) -> Cache {
    let cache = tune(Builder::new().namespace(ns).is_controller(false))
        .connect_cluster(cluster.urls())
        .expect("connect to the test cluster");
    assert!(cache.is_subscribed(), "subscribed within the timeout");
    cache
}

fn pinned(ns: &str, strategy: Strategy, tune: impl FnOnce(Builder) -> Builder) -> Cache {
    let cache = cache_on(shared(), ns, tune);
    cache.force_strategy(Some(strategy)).unwrap();
    cache
}

/// Keys whose slots fall on each of the three masters.
fn keys_on_every_master(cluster: &RedisCluster, ns: &str, per_master: usize) -> Vec<String> {
    let mut by_master: std::collections::BTreeMap<u16, Vec<String>> = Default::default();
    for i in 0.. {
        let key = format!("user:{i}");
        let master = cluster.master_of_slot(slot_of(&format!("aci:{ns}:{key}")));
        let keys = by_master.entry(master).or_default();
        if keys.len() < per_master {
            keys.push(key);
        }
        if by_master.len() == 3 && by_master.values().all(|k| k.len() == per_master) {
            break;
        }
    }
    by_master.into_values().flatten().collect()
}

#[test]
fn the_transport_reads_writes_and_publishes_on_every_shard() {
    let cluster = shared();
    let transport = RedisClusterTransport::open(cluster.urls()).unwrap();
    let ns = unique_namespace("transport");
    let keys = keys_on_every_master(cluster, &ns, 2);
    for key in &keys {
        transport
            .set(key, key.as_bytes(), Duration::from_secs(10), &[])
            .unwrap();
    }
    let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
    let many = transport.get_many_with_ttl(&refs).unwrap();
    for (key, got) in keys.iter().zip(&many) {
        let (value, left) = got.as_ref().expect("written");
        assert_eq!(value.as_ref(), key.as_bytes());
        assert!(left.is_some_and(|l| l <= Duration::from_secs(10)));
    }
    // Scanning visits every master.
    let (mut cursor, mut found) = (0, Vec::new());
    loop {
        let (next, batch) = transport.scan_prefix(cursor, "user:", 100).unwrap();
        found.extend(batch);
        if next == 0 {
            break;
        }
        cursor = next;
    }
    for key in &keys {
        assert!(found.contains(key), "{key} not scanned");
    }
    let removed = transport.unlink(&keys, &[]).unwrap();
    assert_eq!(removed, keys.len() as u64);
    assert_eq!(transport.get(&keys[0]).unwrap(), None);

    // Wrong seeds fail typed, within the timeout.
    let nowhere = RedisClusterTransport::open(["redis://127.0.0.1:1"])
        .unwrap()
        .with_timeout(Duration::from_millis(300));
    let err = nowhere.get("k").unwrap_err();
    assert!(err.is_unavailable(), "{err:?}");
    assert!(RedisClusterTransport::open(Vec::<String>::new()).is_err());
    assert!(RedisClusterTransport::open(["not a url"]).is_err());
}

#[test]
fn eager_another_instance_reads_the_new_value_on_every_shard() {
    let ns = unique_namespace("eager");
    let a = pinned(&ns, Strategy::Eager, |b| b);
    let b = pinned(&ns, Strategy::Eager, |b| b);
    let keys = keys_on_every_master(shared(), &ns, 3);
    for key in &keys {
        a.set(key, "v0").unwrap();
    }
    for key in &keys {
        assert!(eventually(Duration::from_secs(1), || {
            b.get_string(key).unwrap().as_deref() == Some("v0")
        })
        .is_some());
    }
    for round in 1..=5 {
        let value = format!("v{round}");
        for key in &keys {
            a.set(key, &value).unwrap();
        }
        for key in &keys {
            let fresh = eventually(Duration::from_millis(500), || {
                b.get_string(key).unwrap().as_deref() == Some(value.as_str())
            });
            assert!(fresh.is_some(), "round {round}: {key} stale on B");
        }
    }
    assert!(b.stats().messages_received >= keys.len() as u64 * 5);
}

#[test]
fn batched_and_ttl_keep_their_bounds_on_the_cluster() {
    let ns = unique_namespace("bounds");
    let interval = Duration::from_millis(300);
    let a = pinned(&ns, Strategy::Batched, |b| b.batch_interval(interval));
    let b = pinned(&ns, Strategy::Batched, |b| b.batch_interval(interval));
    let keys = keys_on_every_master(shared(), &ns, 2);
    for key in &keys {
        a.set(key, "old").unwrap();
        assert_eq!(b.get_string(key).unwrap().as_deref(), Some("old"));
    }
    for key in &keys {
        a.set(key, "new").unwrap();
    }
    for key in &keys {
        let fresh = eventually(interval * 4, || {
            b.get_string(key).unwrap().as_deref() == Some("new")
        });
        assert!(
            fresh.is_some(),
            "{key} stale past the batch interval: A {:?}, B {:?}",
            a.stats(),
            b.stats()
        );
    }

    let local_ttl = Duration::from_millis(400);
    let ns = unique_namespace("ttl");
    let a = pinned(&ns, Strategy::Ttl, |b| b.local_ttl(local_ttl));
    let b = pinned(&ns, Strategy::Ttl, |b| b.local_ttl(local_ttl));
    let keys = keys_on_every_master(shared(), &ns, 1);
    for key in &keys {
        a.set(key, "old").unwrap();
        assert_eq!(b.get_string(key).unwrap().as_deref(), Some("old"));
        a.set(key, "new").unwrap();
    }
    for key in &keys {
        let fresh = eventually(local_ttl * 3, || {
            b.get_string(key).unwrap().as_deref() == Some("new")
        });
        assert!(fresh.is_some(), "{key} stale past local_ttl");
    }
}

#[test]
fn bucketed_invalidations_travel_on_several_shards() {
    let ns = unique_namespace("buckets");
    let sharded = |b: Builder| b.naming(Naming::Sharded { buckets: 8 });
    let a = pinned(&ns, Strategy::Eager, sharded);
    let b = pinned(&ns, Strategy::Eager, sharded);
    let config = a.instance().settings().core().clone();
    let masters: std::collections::BTreeSet<u16> = config
        .invalidation_channels()
        .map(|c| shared().master_of_slot(slot_of(&c)))
        .collect();
    assert!(masters.len() > 1, "8 bucket channels span several masters");
    let keys: Vec<String> = (0..32).map(|i| format!("k{i}")).collect();
    for key in &keys {
        a.set(key, "old").unwrap();
    }
    for key in &keys {
        assert!(eventually(Duration::from_secs(1), || {
            b.get_string(key).unwrap().as_deref() == Some("old")
        })
        .is_some());
    }
    for key in &keys {
        a.set(key, "new").unwrap();
    }
    for key in &keys {
        let fresh = eventually(Duration::from_millis(500), || {
            b.get_string(key).unwrap().as_deref() == Some("new")
        });
        assert!(
            fresh.is_some(),
            "{key} (bucket {}) stale",
            config.bucket_of(key)
        );
    }
}

#[test]
fn the_fleet_elects_one_controller_in_the_control_slot() {
    let ns = unique_namespace("election");
    let fleet: Vec<Cache> = (0..3)
        .map(|_| {
            cache_on(shared(), &ns, |b| {
                b.role(aci_cache::Role::Auto)
                    .controller_interval(Duration::from_millis(200))
            })
        })
        .collect();
    let one = eventually(Duration::from_secs(5), || {
        fleet.iter().filter(|c| c.stats().is_controller).count() == 1
    });
    assert!(one.is_some(), "exactly one controller");
    let lease = fleet[0].instance().settings().core().lease_key().to_owned();
    assert_eq!(lease, format!("aci:{{{ns}}}:lease"));
    // Followers learn the term from the controller's decisions.
    let heard = eventually(Duration::from_secs(2), || {
        fleet.iter().all(|c| c.stats().term >= 1)
    });
    let terms: Vec<u64> = fleet.iter().map(|c| c.stats().term).collect();
    assert!(heard.is_some(), "terms {terms:?}");
}

#[test]
fn the_subscriber_hears_channels_of_one_slot_and_of_many() {
    use aci_cache::transports::{Outgoing, Subscription};
    let transport = RedisClusterTransport::open(shared().urls()).unwrap();
    let ns = unique_namespace("pubsub");
    let channels = [
        format!("aci:{{{ns}}}:invalidation"),
        format!("aci:{{{ns}}}:strategy"),
        format!("aci:{{{ns}/1}}:invalidation"),
        format!("aci:{{{ns}/2}}:invalidation"),
    ];
    let refs: Vec<&str> = channels.iter().map(String::as_str).collect();
    let mut subscription = transport.subscribe(&refs).unwrap();
    // Published after the readers have polled a while.
    std::thread::sleep(Duration::from_millis(300));
    for channel in &channels {
        transport
            .publish(&[Outgoing {
                channel,
                payload: channel.as_bytes(),
            }])
            .unwrap();
    }
    let mut heard = Vec::new();
    while heard.len() < channels.len() {
        match subscription.recv(Duration::from_secs(2)).unwrap() {
            Some(message) => heard.push(message.channel),
            None => break,
        }
    }
    heard.sort();
    let mut expected = channels.to_vec();
    expected.sort();
    assert_eq!(heard, expected);
}
