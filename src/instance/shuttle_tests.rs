//! Model check of single-flight and the fill tokens, on the shipped code
//! with Shuttle's primitives swapped in (see `crate::sync`):
//!
//! ```sh
//! RUSTFLAGS="--cfg aci_shuttle" CARGO_TARGET_DIR=target/shuttle cargo test -p aci-cache --lib shuttle
//! ```
//!
//! The property: no read returns a value from a `GET` that began before an
//! invalidation the reader had already seen. "Redis" is an atomic version
//! number; a writer stores version 2, then (as the Pub/Sub delivery would,
//! after the `SET`) the instance applies the invalidation and the writer
//! raises a flag. Readers race each other, the writer and the invalidation;
//! every reader that saw the flag before it began must read version 2.

use bytes::Bytes;
use shuttle::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use shuttle::sync::Arc;

use super::{Instance, Lookup};
use crate::settings::Builder;
use aci_core::Instant;

const NOW: Instant = Instant::from_secs(1);

fn instance() -> Instance {
    let settings = Builder::new()
        .is_controller(false)
        .settings()
        .expect("valid settings");
    let instance = Instance::new(settings).expect("instance");
    instance.start(Instant::ZERO, 0.0);
    instance.subscribed();
    instance
}

/// One `get`, as the caches run it, with Redis's `GET` reading `version`
/// and a follower polling (Shuttle schedules around the poll) instead of
/// parking on its listener.
fn get(instance: &Instance, version: &AtomicU64) -> u64 {
    loop {
        match instance.lookup("k", NOW) {
            Lookup::Hit(value) => return decode(&value),
            Lookup::Fill(fill) => {
                let read = version.load(Ordering::SeqCst);
                let value = Bytes::from(read.to_le_bytes().to_vec());
                let got = instance.finish_fill(fill, Ok(Some(value)), NOW);
                return decode(&got.expect("read").expect("value"));
            }
            Lookup::Wait(wait) => loop {
                match wait.flight.settled() {
                    Some(super::Settled::Read(Ok(Some(v)))) => return decode(&v),
                    Some(super::Settled::Abandoned) => break,
                    Some(other) => panic!("unexpected outcome {other:?}"),
                    None => shuttle::thread::yield_now(),
                }
            },
        }
    }
}

fn decode(value: &[u8]) -> u64 {
    u64::from_le_bytes(value.try_into().expect("8 bytes"))
}

fn invalidation() -> Vec<u8> {
    br#"{"action": "invalidate", "keys": ["k"], "strategy": "eager", "timestamp": 1.0, "source": "writer"}"#.to_vec()
}

fn scenario() {
    let instance = Arc::new(instance());
    let version = Arc::new(AtomicU64::new(1));
    let applied = Arc::new(AtomicBool::new(false));
    let mut readers = Vec::new();
    for _ in 0..2 {
        let (instance, version, applied) = (
            Arc::clone(&instance),
            Arc::clone(&version),
            Arc::clone(&applied),
        );
        readers.push(shuttle::thread::spawn(move || {
            // Read before, during or after the write; then once more.
            let _ = get(&instance, &version);
            let saw = applied.load(Ordering::SeqCst);
            let got = get(&instance, &version);
            if saw {
                assert_eq!(
                    got, 2,
                    "a read begun after the invalidation got the old value"
                );
            }
        }));
    }
    {
        let (instance, version, applied) = (
            Arc::clone(&instance),
            Arc::clone(&version),
            Arc::clone(&applied),
        );
        readers.push(shuttle::thread::spawn(move || {
            version.store(2, Ordering::SeqCst);
            let _ = instance.handle_message("aci:invalidation", &invalidation(), NOW);
            applied.store(true, Ordering::SeqCst);
        }));
    }
    for r in readers {
        r.join().expect("thread");
    }
    // Once everything settled, the near cache holds nothing older than 2.
    assert_eq!(get(&instance, &version), 2);
}

/// Shuttle's threads run on small stacks; an instance's engine is built
/// on the stack before it is boxed (~100 KB).
fn config() -> shuttle::Config {
    let mut config = shuttle::Config::new();
    config.stack_size = 4 << 20;
    config
}

fn random(iterations: usize, f: impl Fn() + Send + Sync + 'static) {
    let scheduler = shuttle::scheduler::RandomScheduler::new(iterations);
    shuttle::Runner::new(scheduler, config()).run(f);
}

#[test]
fn shuttle_reads_never_return_a_value_an_invalidation_retired() {
    random(3_000, scenario);
}

#[test]
fn shuttle_reads_never_return_a_value_an_invalidation_retired_pct() {
    // PCT: schedules that preempt at up to 3 chosen points, which finds
    // ordering bugs of small depth with known probability.
    let scheduler = shuttle::scheduler::PctScheduler::new(3, 3_000);
    shuttle::Runner::new(scheduler, config()).run(scenario);
}

/// A leader that gives up: its followers read for themselves.
#[test]
fn shuttle_an_abandoned_read_is_taken_over() {
    random(3_000, || {
        let instance = Arc::new(instance());
        let version = Arc::new(AtomicU64::new(7));
        let quitter = {
            let instance = Arc::clone(&instance);
            shuttle::thread::spawn(move || {
                if let Lookup::Fill(fill) = instance.lookup("k", NOW) {
                    drop(fill); // cancelled
                }
            })
        };
        let reader = {
            let (instance, version) = (Arc::clone(&instance), Arc::clone(&version));
            shuttle::thread::spawn(move || get(&instance, &version))
        };
        quitter.join().expect("thread");
        assert_eq!(reader.join().expect("thread"), 7);
        assert_eq!(instance.reads_in_flight(), 0);
    });
}
