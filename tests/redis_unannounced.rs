//! A write that lands but whose invalidation Redis refuses says exactly
//! that, on a real redis-server: an ACL user that may subscribe but not
//! `PUBLISH` (`+@all -publish`) stores the value, and the call returns
//! `Error::Unannounced` with what took effect, never a plain "failed".

mod support;

use std::time::Duration;

use aci_cache::{AdaptiveCache, Builder, Done, Error, Strategy};
use redis::Commands;
use support::{eventually, raw, RedisServer};

/// A user that can do everything but publish.
fn mute_user(admin: &mut redis::Connection) {
    let _: () = redis::cmd("ACL")
        .arg("SETUSER")
        .arg("mute")
        .arg("reset")
        .arg("on")
        .arg(">mute-pw")
        .arg("~*")
        .arg("&*")
        .arg("+@all")
        .arg("-publish")
        .query(admin)
        .unwrap();
}

fn mute_url(server: &RedisServer) -> String {
    format!("redis://mute:mute-pw@127.0.0.1:{}", server.port)
}

fn controller(url: &str) -> AdaptiveCache<aci_cache::transports::RedisTransport> {
    let cache = Builder::new()
        .namespace("mute")
        .controller_interval(Duration::from_millis(200))
        .connect(url)
        .expect("subscribing is allowed");
    let elected = eventually(Duration::from_secs(5), || cache.stats().is_controller);
    assert!(elected.is_some(), "a lone instance takes the lease");
    cache
}

#[test]
fn a_write_whose_invalidation_is_refused_says_it_landed() {
    if support::skip_without_own_servers("a_write_whose_invalidation_is_refused_says_it_landed") {
        return;
    }
    let server = RedisServer::start();
    let mut admin = raw(&server.url());
    mute_user(&mut admin);
    let cache = controller(&mute_url(&server));

    // Pinning eager: the pin holds, the error says the fleet was not told.
    let pinned = cache.force_strategy(Some(Strategy::Eager));
    match &pinned {
        Err(Error::Unannounced {
            done: Done::Pinned {
                strategy: Strategy::Eager,
            },
            source,
        }) => assert!(source.is_denied(), "{source}"),
        other => panic!("pinning answered {other:?}"),
    }
    let error = pinned.unwrap_err();
    assert!(error.is_denied() && !error.is_unavailable(), "{error}");
    assert!(
        error.to_string().contains("pinned to eager here"),
        "{error}"
    );
    assert_eq!(cache.strategy(), Strategy::Eager);

    // An eager write: SET lands, its PUBLISH is refused.
    let written = cache.set("k", "new");
    match &written {
        Err(Error::Unannounced {
            done: Done::Stored { key },
            source,
        }) => {
            assert_eq!(key, "k");
            assert!(source.is_denied(), "{source}");
        }
        other => panic!("the write answered {other:?}"),
    }
    let stored: String = admin.get("aci:mute:k").unwrap();
    assert_eq!(stored, "new", "the value is in Redis");
    // This instance's near cache holds the value it wrote, not a stale one.
    assert_eq!(cache.get_string("k").unwrap().as_deref(), Some("new"));
    assert_eq!(cache.stats().cache_hits, 1, "served from the near cache");
    assert_eq!(cache.stats().invalidations_sent, 0, "nothing was sent");

    // A delete likewise.
    match cache.delete("k") {
        Err(Error::Unannounced {
            done: Done::Deleted { key },
            ..
        }) => assert_eq!(key, "k"),
        other => panic!("the delete answered {other:?}"),
    }
    let gone: Option<String> = admin.get("aci:mute:k").unwrap();
    assert_eq!(gone, None);
    assert_eq!(cache.get_string("k").unwrap(), None);

    // A write that Redis refuses outright is a plain, denied error: nothing
    // is stored and nothing claims it was.
    let _: () = redis::cmd("ACL")
        .arg("SETUSER")
        .arg("mute")
        .arg("-set")
        .query(&mut admin)
        .unwrap();
    match cache.set("k2", "v") {
        Err(Error::Transport(e)) => assert!(e.is_denied(), "{e}"),
        other => panic!("a refused SET answered {other:?}"),
    }
    let absent: Option<String> = admin.get("aci:mute:k2").unwrap();
    assert_eq!(absent, None);
}

#[cfg(feature = "tokio")]
#[test]
fn the_async_cache_says_the_same() {
    if support::skip_without_own_servers("the_async_cache_says_the_same") {
        return;
    }
    let server = RedisServer::start();
    let mut admin = raw(&server.url());
    mute_user(&mut admin);
    let url = mute_url(&server);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let cache = Builder::new()
            .namespace("mute")
            .is_controller(false)
            .into_async()
            .connect(&url)
            .await
            .expect("subscribing is allowed");
        // A follower's pin is its own: nothing to announce.
        cache.force_strategy(Some(Strategy::Eager)).await.unwrap();
        match cache.set("k", "new").await {
            Err(Error::Unannounced {
                done: Done::Stored { key },
                source,
            }) => {
                assert_eq!(key, "k");
                assert!(source.is_denied(), "{source}");
            }
            other => panic!("the write answered {other:?}"),
        }
        assert_eq!(cache.get_string("k").await.unwrap().as_deref(), Some("new"));
        match cache.delete("k").await {
            Err(Error::Unannounced {
                done: Done::Deleted { .. },
                ..
            }) => {}
            other => panic!("the delete answered {other:?}"),
        }
    });
    let gone: Option<String> = admin.get("aci:mute:k").unwrap();
    assert_eq!(gone, None);
}

/// A user that may read, subscribe and publish, but not `SET`.
fn read_only_writer(admin: &mut redis::Connection) -> String {
    mute_user(admin);
    let _: () = redis::cmd("ACL")
        .arg("SETUSER")
        .arg("mute")
        .arg("+publish")
        .arg("-set")
        .query(admin)
        .unwrap();
    "mute".to_owned()
}

/// With nothing to publish (ttl and batched), a write goes as one `SET`, not
/// a pipeline: Redis refusing it is still a plain, denied error, nothing is
/// stored, and the near cache does not claim the value.
#[test]
fn a_refused_write_with_nothing_to_announce_is_a_denied_error() {
    if support::skip_without_own_servers(
        "a_refused_write_with_nothing_to_announce_is_a_denied_error",
    ) {
        return;
    }
    let server = RedisServer::start();
    let mut admin = raw(&server.url());
    read_only_writer(&mut admin);
    let cache = Builder::new()
        .namespace("mute")
        .is_controller(false)
        .connect(&mute_url(&server))
        .expect("subscribing is allowed");
    for strategy in [Strategy::Ttl, Strategy::Batched] {
        cache.force_strategy(Some(strategy)).unwrap();
        match cache.set("k", "v") {
            Err(Error::Transport(e)) => assert!(e.is_denied(), "{strategy}: {e}"),
            other => panic!("{strategy}: a refused SET answered {other:?}"),
        }
        let absent: Option<String> = admin.get("aci:mute:k").unwrap();
        assert_eq!(absent, None, "{strategy}");
        assert_eq!(cache.get_string("k").unwrap(), None, "{strategy}");
        // A cache-aside load stores with `SET … NX`, alone too: refused the
        // same way, and the next load is not left waiting on this one.
        for _ in 0..2 {
            match cache.get_or_load("loaded", || "v") {
                Err(Error::Transport(e)) => assert!(e.is_denied(), "{strategy}: {e}"),
                other => panic!("{strategy}: a refused SET NX answered {other:?}"),
            }
        }
        let absent: Option<String> = admin.get("aci:mute:loaded").unwrap();
        assert_eq!(absent, None, "{strategy}");
    }
}

#[cfg(feature = "tokio")]
#[test]
fn the_async_cache_refuses_the_same() {
    if support::skip_without_own_servers("the_async_cache_refuses_the_same") {
        return;
    }
    let server = RedisServer::start();
    let mut admin = raw(&server.url());
    read_only_writer(&mut admin);
    let url = mute_url(&server);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let cache = Builder::new()
            .namespace("mute")
            .is_controller(false)
            .into_async()
            .connect(&url)
            .await
            .expect("subscribing is allowed");
        for strategy in [Strategy::Ttl, Strategy::Batched] {
            cache.force_strategy(Some(strategy)).await.unwrap();
            match cache.set("k", "v").await {
                Err(Error::Transport(e)) => assert!(e.is_denied(), "{strategy}: {e}"),
                other => panic!("{strategy}: a refused SET answered {other:?}"),
            }
            assert_eq!(cache.get_string("k").await.unwrap(), None, "{strategy}");
            for _ in 0..2 {
                match cache.get_or_load("loaded", || async { "v" }).await {
                    Err(Error::Transport(e)) => assert!(e.is_denied(), "{strategy}: {e}"),
                    other => panic!("{strategy}: a refused SET NX answered {other:?}"),
                }
            }
        }
    });
    for key in ["aci:mute:k", "aci:mute:loaded"] {
        let absent: Option<String> = admin.get(key).unwrap();
        assert_eq!(absent, None, "{key}");
    }
}
