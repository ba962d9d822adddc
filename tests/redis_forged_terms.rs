//! Forged decisions against a real redis-server (issue 11, findings 1 and
//! 2): a client with PUBLISH rights can neither freeze the fleet's election
//! with a huge term nor steer an elected fleet with newer ones.

mod support;

use std::time::{Duration, Instant};

use aci_cache::transports::RedisTransport;
use aci_cache::{AdaptiveCache, Builder, RejectReason, Strategy};
use aci_core::MAX_TERM;
use redis::Commands;
use support::{eventually, raw, shared_url, unique_namespace};

type Cache = AdaptiveCache<RedisTransport>;

const INTERVAL: Duration = Duration::from_millis(300);

fn member(ns: &str, id: &str, follower: bool) -> Cache {
    let mut builder = Builder::new()
        .namespace(ns)
        .instance_id(id)
        .controller_interval(INTERVAL);
    if follower {
        builder = builder.is_controller(false);
    }
    builder.connect(&shared_url()).expect("connect")
}

fn forge(conn: &mut redis::Connection, ns: &str, strategy: &str, term: u64) {
    let payload = format!(
        r#"{{"action": "strategy_update", "strategy": "{strategy}", "write_rate": 0.0, "timestamp": 1.0, "source": "mallory", "term": {term}}}"#
    );
    let _: i64 = conn
        .publish(format!("aci:{ns}:strategy"), payload)
        .expect("publish");
}

fn controller<'a>(fleet: &[&'a Cache]) -> Option<&'a Cache> {
    let elected: Vec<&Cache> = fleet
        .iter()
        .copied()
        .filter(|c| c.stats().is_controller)
        .collect();
    (elected.len() == 1).then(|| elected[0])
}

#[test]
fn one_forged_largest_term_does_not_freeze_the_next_election() {
    let ns = unique_namespace("freeze");
    let mut conn = raw(&shared_url());
    // A term counter an older version left beyond the bound is repaired.
    let _: () = conn
        .set(format!("aci:{ns}:lease:term"), (MAX_TERM + 1).to_string())
        .unwrap();
    let a = member(&ns, "a", false);
    let b = member(&ns, "b", false);
    let follower = member(&ns, "f", true);
    let fleet = [&a, &b];
    assert!(
        eventually(Duration::from_secs(5), || controller(&fleet).is_some()).is_some(),
        "no controller elected"
    );
    let first = controller(&fleet).unwrap();
    assert!(first.stats().term <= MAX_TERM, "repaired counter");

    forge(&mut conn, &ns, "ttl", MAX_TERM);
    std::thread::sleep(INTERVAL);
    // An ordinary deploy: the controller stops; the other takes over.
    let rest: Vec<&Cache> = fleet
        .iter()
        .copied()
        .filter(|c| c.instance_id() != first.instance_id())
        .collect();
    first.stop();
    assert!(
        eventually(Duration::from_secs(5), || controller(&rest).is_some()).is_some(),
        "no takeover"
    );
    let heir = controller(&rest).unwrap();
    let term = heir.stats().term;
    assert!(
        term < 100,
        "the forged term raised the grant to {term} (issue 11, finding 1)"
    );
    // Its decisions propagate: the follower follows it into eager.
    heir.force_strategy(Some(Strategy::Eager)).unwrap();
    let followed = eventually(Duration::from_secs(5), || {
        follower.strategy() == Strategy::Eager
    });
    assert!(
        followed.is_some(),
        "the follower stayed in {} (term {}, rejected {:?})",
        follower.strategy(),
        follower.stats().term,
        follower.stats().rejected
    );
}

#[test]
fn forged_newer_terms_do_not_steer_an_elected_fleet() {
    let ns = unique_namespace("steer");
    let a = member(&ns, "a", false);
    let b = member(&ns, "b", false);
    let f = member(&ns, "f", true);
    let fleet = [&a, &b, &f];
    assert!(
        eventually(Duration::from_secs(5), || controller(&fleet).is_some()).is_some(),
        "no controller elected"
    );
    let boss = controller(&fleet).unwrap();
    boss.force_strategy(Some(Strategy::Eager)).unwrap();
    assert!(
        eventually(Duration::from_secs(5), || fleet
            .iter()
            .all(|c| c.strategy() == Strategy::Eager))
        .is_some(),
        "the fleet did not go eager"
    );

    // One forged "ttl" every 0.4 s with growing terms, for 4 s, while every
    // instance is checked every millisecond or so.
    let mut conn = raw(&shared_url());
    let start = Instant::now();
    let mut next_forgery = start;
    let mut term = 999;
    let mut out_of_eager = Duration::ZERO;
    let mut last = Instant::now();
    while start.elapsed() < Duration::from_secs(4) {
        if Instant::now() >= next_forgery {
            forge(&mut conn, &ns, "ttl", term);
            term += 1;
            next_forgery += Duration::from_millis(400);
        }
        std::thread::sleep(Duration::from_millis(1));
        let now = Instant::now();
        if fleet.iter().any(|c| c.strategy() != Strategy::Eager) {
            out_of_eager += now - last;
        }
        last = now;
    }
    assert_eq!(
        out_of_eager,
        Duration::ZERO,
        "forgeries took the fleet out of eager (issue 11, finding 2)"
    );
    assert!(boss.stats().is_controller, "the controller stepped down");
    assert_eq!(boss.stats().leases_lost, 0);
    let rejected: u64 = fleet
        .iter()
        .filter(|c| c.instance_id() != boss.instance_id())
        .map(|c| c.stats().rejected.get(RejectReason::UnconfirmedTerm))
        .sum();
    assert!(rejected > 0, "the forgeries were not counted");
    // At most one verification per instance per interval (plus the first).
    let bound = (start.elapsed().as_secs_f64() / INTERVAL.as_secs_f64()).ceil() as u64 + 2;
    for c in fleet {
        let asked = c.stats().verifications;
        println!(
            "{} asked the store {asked} times (bound {bound})",
            c.instance_id()
        );
        assert!(asked <= bound, "{} asked {asked} times", c.instance_id());
    }
}
