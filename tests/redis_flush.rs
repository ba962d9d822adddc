//! `flush` deletes this cache's keys and nothing else (issue 12, finding 1:
//! a namespaced cache's `flush` ran FLUSHDB and deleted another
//! application's keys), tells the fleet, keeps the election's lease, and
//! refuses without a namespace.

mod support;

use std::time::Duration;

use aci_cache::{Builder, Error, Strategy};
use redis::Commands;
use support::{eventually, raw, shared_url, unique_namespace};

#[test]
fn flush_deletes_only_the_namespace_and_the_fleet_forgets_it() {
    let ns = unique_namespace("flush");
    let mut conn = raw(&shared_url());
    let other = format!("other-app:{ns}:important");
    let _: () = conn.set(&other, "keep").unwrap();
    // A neighbour whose namespace starts like ours, and one with glob characters.
    let neighbour = format!("aci:{ns}x:k");
    let _: () = conn.set(&neighbour, "keep").unwrap();

    let a = Builder::new()
        .namespace(&ns)
        .instance_id("a")
        .controller_interval(Duration::from_millis(300))
        .connect(&shared_url())
        .unwrap();
    let b = Builder::new()
        .namespace(&ns)
        .instance_id("b")
        .controller_interval(Duration::from_millis(300))
        .connect(&shared_url())
        .unwrap();
    for c in [&a, &b] {
        c.force_strategy(Some(Strategy::Ttl)).unwrap();
    }
    // More keys than one SCAN batch, and values held in b's near cache.
    for i in 0..1_200 {
        a.set(&format!("k{i}"), "v").unwrap();
    }
    for i in 0..50 {
        assert_eq!(
            b.get_string(&format!("k{i}")).unwrap().as_deref(),
            Some("v")
        );
    }
    let elected = eventually(Duration::from_secs(5), || {
        a.stats().is_controller || b.stats().is_controller
    });
    assert!(elected.is_some());

    let removed = a.flush().unwrap();
    assert_eq!(removed, 1_200);
    let kept: Option<String> = conn.get(&other).unwrap();
    assert_eq!(
        kept.as_deref(),
        Some("keep"),
        "another application's key was deleted"
    );
    let kept: Option<String> = conn.get(&neighbour).unwrap();
    assert_eq!(
        kept.as_deref(),
        Some("keep"),
        "a neighbouring namespace's key was deleted"
    );
    let lease: Option<String> = conn.get(format!("aci:{ns}:lease")).unwrap();
    assert!(lease.is_some(), "the election's lease was deleted");
    // Even in ttl, b's near cache lets go of every flushed key.
    let forgot = eventually(Duration::from_secs(5), || {
        (0..50).all(|i| b.get_string(&format!("k{i}")).unwrap().is_none())
    });
    assert!(forgot.is_some(), "b still serves flushed values");
    assert_eq!(a.flush().unwrap(), 0, "nothing left");
}

#[test]
fn flush_without_a_namespace_refuses_and_flush_database_is_explicit() {
    let cache = Builder::new()
        .is_controller(false)
        .connect(&shared_url())
        .unwrap();
    let mut conn = raw(&shared_url());
    let key = unique_namespace("survivor");
    let _: () = conn.set(&key, "keep").unwrap();
    let err = cache.flush().unwrap_err();
    assert!(matches!(err, Error::FlushWithoutNamespace), "{err}");
    let kept: Option<String> = conn.get(&key).unwrap();
    assert_eq!(kept.as_deref(), Some("keep"));
    let _: () = conn.del(&key).unwrap();
}

#[cfg(feature = "tokio")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_async_flush_deletes_only_the_namespace() {
    let ns = unique_namespace("flush-async");
    let mut conn = raw(&shared_url());
    let other = format!("other-app:{ns}");
    let _: () = conn.set(&other, "keep").unwrap();
    let cache = Builder::new()
        .namespace(&ns)
        .is_controller(false)
        .into_async()
        .connect(&shared_url())
        .await
        .unwrap();
    for i in 0..700 {
        cache.set(&format!("k{i}"), "v").await.unwrap();
    }
    assert_eq!(cache.flush().await.unwrap(), 700);
    assert_eq!(cache.get("k1").await.unwrap(), None);
    let kept: Option<String> = conn.get(&other).unwrap();
    assert_eq!(kept.as_deref(), Some("keep"));
}

#[test]
fn glob_characters_in_a_namespace_match_only_themselves() {
    let base = unique_namespace("glob");
    let ns = format!("{base}*");
    let mut conn = raw(&shared_url());
    // `aci:{base}*:*` unescaped would match this sibling's key.
    let sibling = format!("aci:{base}ZZZ:k");
    let _: () = conn.set(&sibling, "keep").unwrap();
    let cache = Builder::new()
        .namespace(&ns)
        .is_controller(false)
        .connect(&shared_url())
        .unwrap();
    cache.set("k", "v").unwrap();
    assert_eq!(cache.flush().unwrap(), 1);
    let kept: Option<String> = conn.get(&sibling).unwrap();
    assert_eq!(kept.as_deref(), Some("keep"));
    let _: () = conn.del(&sibling).unwrap();
}
