//! Quick start: two caches on one Redis, as two instances of a service would be.
//!
//! ```sh
//! REDIS_URL=redis://127.0.0.1:6379 cargo run --example quickstart
//! ```
//!
//! Writes on one instance reach the other's near cache through Redis Pub/Sub;
//! reads after the first are answered from memory.

use std::time::{Duration, Instant};

use aci_cache::{AdaptiveCache, Strategy};

fn main() -> Result<(), aci_cache::Error> {
    let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned());

    // Instance A decides the strategy for the fleet; instance B follows.
    let a = AdaptiveCache::builder()
        .namespace("quickstart")
        .connect(&url)?;
    let b = AdaptiveCache::builder()
        .namespace("quickstart")
        .is_controller(false)
        .connect(&url)?;
    a.on_switch(|from, to| println!("fleet switched {from} -> {to}"));
    println!(
        "A = {}, B = {}, strategy {}",
        a.instance_id(),
        b.instance_id(),
        a.strategy()
    );

    a.set("user:42", r#"{"name": "Alice"}"#)?;
    println!("B reads {:?}", b.get_string("user:42")?);
    let start = Instant::now();
    let again = b.get_string("user:42")?;
    println!(
        "B again {again:?}, from its near cache in {:?}",
        start.elapsed()
    );

    // Pin eager to see an invalidation travel (the controller would choose it
    // by itself above `high_threshold` writes/s).
    a.force_strategy(Some(Strategy::Eager))?;
    std::thread::sleep(Duration::from_millis(50));
    a.set("user:42", r#"{"name": "Alice Liddell"}"#)?;
    std::thread::sleep(Duration::from_millis(20));
    println!("B after A's write: {:?}", b.get_string("user:42")?);

    let stats = b.stats();
    println!(
        "B: {} reads, {} hits, {} messages received, strategy {}",
        stats.total_reads,
        stats.cache_hits,
        stats.messages_received,
        b.strategy()
    );
    a.delete("user:42")?;
    Ok(())
}
