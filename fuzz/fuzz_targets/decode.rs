//! Any payload: decoding returns a message or a typed error, never panics;
//! whatever decodes can be walked and re-encoded, and re-decodes the same.
#![no_main]

use aci_core::wire::{decode, encode_invalidation, encode_strategy_update, Limits, Message};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let limits = Limits { max_bytes: 1 << 16, max_keys: 1024 };
    let Ok(message) = decode(data, limits) else { return };
    let mut out = Vec::new();
    match message {
        Message::Invalidate(inv) => {
            let keys: Vec<String> = inv.keys.iter().map(|k| k.to_string()).collect();
            let source = inv.source.map(|s| s.to_string()).unwrap_or_default();
            let strategy = inv.strategy.unwrap_or_default();
            let ts = inv.timestamp.map_or(0.0, f64::from);
            encode_invalidation(&mut out, keys.iter().map(String::as_str), strategy, ts, &source).unwrap();
            let Ok(Message::Invalidate(again)) = decode(&out, Limits { max_bytes: usize::MAX, max_keys: 1024 }) else {
                panic!("re-encoded invalidation did not decode: {}", String::from_utf8_lossy(&out));
            };
            let again: Vec<String> = again.keys.iter().map(|k| k.to_string()).collect();
            assert_eq!(keys, again);
        }
        Message::StrategyUpdate(update) => {
            let source = update.source.map(|s| s.to_string()).unwrap_or_default();
            let rate = update.write_rate.unwrap_or(0.0);
            encode_strategy_update(&mut out, update.strategy, rate, update.timestamp.map_or(0.0, f64::from), &source, update.term, update.batch_interval.map(|b| b.as_secs_f64())).unwrap();
            let Ok(Message::StrategyUpdate(again)) = decode(&out, limits) else {
                panic!("re-encoded decision did not decode");
            };
            assert_eq!(again.strategy, update.strategy);
            assert_eq!(again.term, update.term);
        }
        Message::RateReport(report) => {
            assert!(report.write_rate.is_finite() && report.write_rate >= 0.0);
            let source = report.source.to_string();
            aci_core::wire::encode_rate_report(&mut out, report.write_rate, report.timestamp.map_or(0.0, f64::from), &source).unwrap();
            let Ok(Message::RateReport(again)) = decode(&out, limits) else {
                panic!("re-encoded report did not decode");
            };
            assert_eq!(again.write_rate, report.write_rate);
        }
        _ => {}
    }
});
