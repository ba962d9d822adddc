//! The engine driven by an arbitrary script of inputs: never panics, and its
//! invariants hold after every step.
#![no_main]

use aci_core::batch::BATCH_KEYS;
use aci_core::script::{run_step, Step};
use aci_core::{Config, Effect, Engine, Instant, Role};
use libfuzzer_sys::fuzz_target;

#[derive(Debug, arbitrary::Arbitrary)]
struct Script<'a> {
    namespaced: bool,
    role: Role,
    termless: bool,
    max_keys: u16,
    steps: Vec<Step<'a>>,
}

fuzz_target!(|script: Script<'_>| {
    let config = Config::builder()
        .namespace(if script.namespaced { "ns" } else { "" })
        .role(script.role)
        .accept_termless_decisions(script.termless)
        .max_message_keys(usize::from(script.max_keys % 1024) + 1)
        .high_threshold(5.0)
        .low_threshold(1.0)
        .build()
        .unwrap();
    let max_bytes = config.max_message_bytes();
    let mut engine = Engine::new(config, "fuzz").unwrap();
    let mut now = Instant::ZERO;
    for step in script.steps.iter().take(2_000) {
        run_step(&mut engine, &mut now, step, |effect| {
            if let Effect::Publish(p) = effect {
                assert!(p.payload.len() <= max_bytes, "oversized publish");
                assert!(std::str::from_utf8(p.payload).is_ok());
            }
        });
        assert!(engine.buffered_keys() <= BATCH_KEYS);
        assert!(engine.lease_term().is_none() || engine.is_controller());
        assert!(engine.poll_timeout().is_none() || engine.is_running() || engine.buffered_keys() > 0);
    }
});
