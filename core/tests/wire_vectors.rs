//! Every payload captured from the Python aci-cache 0.1.1 decodes, and our
//! encoder reproduces each one byte for byte from its decoded fields.

use aci_core::wire::{decode, encode_invalidation, encode_strategy_update, Limits, Message};
use aci_core::{Config, Engine, Handled, Instant};

const VECTORS: &str = include_str!("data/aci-cache-0.1.1.json");

fn vectors() -> Vec<(String, String)> {
    let parsed: serde_json::Value = serde_json::from_str(VECTORS).unwrap();
    parsed
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            (
                v["channel"].as_str().unwrap().to_owned(),
                v["payload"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[test]
fn the_committed_copy_matches_shared() {
    // CI lays shared/ beside the clone; a developer checkout may not have it.
    let shared = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/wire-vectors/aci-cache-0.1.1.json"
    );
    if let Ok(original) = std::fs::read_to_string(shared) {
        assert_eq!(
            original, VECTORS,
            "core/tests/data is out of date with shared/wire-vectors"
        );
    }
}

#[test]
fn every_vector_decodes_and_reencodes_byte_for_byte() {
    let vectors = vectors();
    assert_eq!(vectors.len(), 7);
    for (channel, payload) in vectors {
        let message = decode(payload.as_bytes(), Limits::default())
            .unwrap_or_else(|e| panic!("{channel}: {payload}: {e}"));
        let mut out = heapless::Vec::<u8, 1024>::new();
        match message {
            Message::Invalidate(inv) => {
                assert!(channel.ends_with(":invalidation"));
                let keys: Vec<String> = inv.keys.iter().map(|k| k.to_string()).collect();
                let source = inv.source.unwrap().to_string();
                encode_invalidation(
                    &mut out,
                    keys.iter().map(String::as_str),
                    inv.strategy.unwrap(),
                    inv.timestamp.unwrap().value(),
                    &source,
                )
                .unwrap();
            }
            Message::StrategyUpdate(update) => {
                assert!(channel.ends_with(":strategy"));
                let source = update.source.unwrap().to_string();
                encode_strategy_update(
                    &mut out,
                    update.strategy,
                    update.write_rate.unwrap(),
                    update.timestamp.unwrap().value(),
                    &source,
                    update.term,
                    update.batch_interval.map(|b| b.as_secs_f64()),
                )
                .unwrap();
            }
            other => panic!("the original sends only invalidations and decisions: {other:?}"),
        }
        assert_eq!(std::str::from_utf8(&out).unwrap(), payload);
    }
}

#[test]
fn escaped_keys_decode_to_the_original_text() {
    let keys: Vec<String> = vectors()
        .iter()
        .filter_map(
            |(_, p)| match decode(p.as_bytes(), Limits::default()).unwrap() {
                Message::Invalidate(inv) => {
                    Some(inv.keys.iter().map(|k| k.to_string()).collect::<Vec<_>>())
                }
                _ => None,
            },
        )
        .flatten()
        .collect();
    assert!(keys.contains(&"caf\u{e9}:\u{2603}".to_owned()));
    assert!(keys.contains(&"quote\"and\\backslash".to_owned()));
    assert!(keys.contains(&"aci:user-service:profile:7".to_owned()));
}

#[test]
fn an_engine_accepts_every_vector_on_its_channel() {
    for (channel, payload) in vectors() {
        let namespace = if channel.starts_with("aci:user-service:") {
            "user-service"
        } else {
            ""
        };
        let config = Config::builder()
            .namespace(namespace)
            .is_controller(false)
            .build()
            .unwrap();
        let mut engine = Engine::new(config, "rust-follower").unwrap();
        engine.start(Instant::ZERO);
        let handled = engine
            .handle_message(Instant::from_secs(1), &channel, payload.as_bytes())
            .unwrap_or_else(|r| panic!("{channel}: {r}"));
        match handled {
            Handled::Invalidation { keys, foreign } => assert!(keys >= 1 && foreign == 0),
            Handled::DecisionApplied => {}
            other => panic!("{channel}: unexpected {other:?}"),
        }
        assert_eq!(engine.stats().rejected.total(), 0);
    }
}
