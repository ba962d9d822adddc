//! Decodes one invalidation, as the simulator's instances receive it, and
//! walks its keys, N times (default 100,000). Timing on a shared machine is
//! noisy; counting is not:
//!
//! ```sh
//! cargo build --release -p aci-core --example decode_loop
//! valgrind --tool=cachegrind --cache-sim=no target/release/examples/decode_loop
//! ```
//!
//! divides the instructions counted by N (plus a few thousand for the process).
use std::hint::black_box;

use aci_core::wire::{decode, Limits, Message};

fn main() {
    let payload = br#"{"action": "invalidate", "keys": ["k1234"], "strategy": "eager", "timestamp": 1800000123.4567891, "source": "sim-17"}"#;
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(100_000);
    let limits = Limits::default();
    let mut key_bytes = 0;
    let start = std::time::Instant::now();
    for _ in 0..n {
        if let Ok(Message::Invalidate(invalidation)) = decode(black_box(payload), limits) {
            for key in invalidation.keys {
                key_bytes += key.raw().len();
            }
        }
    }
    let elapsed = start.elapsed();
    assert_eq!(key_bytes, 5 * n, "every decode yields the one key");
    println!(
        "{n} decodes, {:.1} ns each",
        elapsed.as_nanos() as f64 / n as f64
    );
}
