//! A secured fleet on a real redis-server: a service user confined by ACL to
//! its own keys and channels (`~aci:ns:*`, `&aci:ns:*`) runs the whole cache
//! — reads, writes, invalidations, the election's scripts — with signed
//! messages; it cannot touch anything else, and messages published by a
//! client without the key are rejected.

mod support;

use std::time::Duration;

use aci_cache::{AdaptiveCache, Builder, RejectReason, Strategy};
use redis::Commands;
use support::{eventually, raw, RedisServer};

const KEY: &[u8] = b"a 32-byte secret from the vault!";

/// The rules the README gives for a service's user.
fn confine(admin: &mut redis::Connection, user: &str, password: &str, ns: &str) {
    let _: () = redis::cmd("ACL")
        .arg("SETUSER")
        .arg(user)
        .arg("reset")
        .arg("on")
        .arg(format!(">{password}"))
        .arg(format!("~aci:{ns}:*"))
        .arg(format!("&aci:{ns}:*"))
        .arg("+@read")
        .arg("+@write")
        .arg("+@pubsub")
        .arg("+@scripting")
        .arg("+@connection")
        .arg("-@dangerous")
        .query(admin)
        .unwrap();
}

fn member(url: &str, id: &str) -> AdaptiveCache<aci_cache::transports::RedisTransport> {
    Builder::new()
        .namespace("ns")
        .instance_id(id)
        .controller_interval(Duration::from_millis(300))
        .message_key(KEY)
        .connect(url)
        .expect("a confined user can run the cache")
}

#[test]
fn a_confined_signed_fleet_works_and_rejects_unsigned_messages() {
    if support::skip_without_own_servers(
        "a_confined_signed_fleet_works_and_rejects_unsigned_messages",
    ) {
        return;
    }
    let server = RedisServer::start();
    let mut admin = raw(&server.url());
    confine(&mut admin, "svc", "svc-pw", "ns");
    let port = server.url().rsplit(':').next().unwrap().to_owned();
    let url = format!("redis://svc:svc-pw@127.0.0.1:{port}");
    let _: () = admin.set("other-app:important", "keep").unwrap();

    let a = member(&url, "a");
    let b = member(&url, "b");
    assert!(a.is_subscribed() && b.is_subscribed());
    let fleet = [&a, &b];
    let elected = eventually(Duration::from_secs(5), || {
        fleet.iter().filter(|c| c.stats().is_controller).count() == 1
    });
    assert!(elected.is_some(), "the lease scripts run under the ACL");
    let boss = fleet.iter().find(|c| c.stats().is_controller).unwrap();
    boss.force_strategy(Some(Strategy::Eager)).unwrap();
    assert!(eventually(Duration::from_secs(5), || fleet
        .iter()
        .all(|c| c.strategy() == Strategy::Eager))
    .is_some());

    // Signed invalidations flow: b's near cache drops a's write.
    a.set("k", "1").unwrap();
    assert_eq!(b.get_string("k").unwrap().as_deref(), Some("1"));
    a.set("k", "2").unwrap();
    let seen = eventually(Duration::from_secs(5), || {
        b.get_string("k").unwrap().as_deref() == Some("2")
    });
    assert!(seen.is_some(), "b kept serving 1");
    assert_eq!(b.stats().rejected.get(RejectReason::BadSignature), 0);

    // The user is confined: nothing outside its namespace.
    let mut svc = raw(&url);
    let denied: redis::RedisResult<Option<String>> = svc.get("other-app:important");
    assert!(denied.is_err(), "read another app's key");
    let denied: redis::RedisResult<i64> = svc.publish("aci:other:invalidation", "x");
    assert!(denied.is_err(), "published on another namespace's channel");

    // Someone with publish rights but not the key cannot steer or
    // invalidate: rejected and counted.
    let forged = r#"{"action": "strategy_update", "strategy": "ttl", "write_rate": 0.0, "timestamp": 1.0, "source": "mallory"}"#;
    let _: i64 = admin.publish("aci:ns:strategy", forged).unwrap();
    let counted = eventually(Duration::from_secs(5), || {
        b.stats().rejected.get(RejectReason::Unsigned) >= 1
    });
    assert!(counted.is_some(), "the unsigned decision was not counted");
    assert!(fleet.iter().all(|c| c.strategy() == Strategy::Eager));
    // A confined user can flush its namespace, and only that.
    assert!(a.flush().unwrap() >= 1);
    let kept: String = admin.get("other-app:important").unwrap();
    assert_eq!(kept, "keep");
}
