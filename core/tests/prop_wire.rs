//! (d) Encode -> decode round trips for both message kinds, checked against
//! serde_json as an independent reader; and no input makes the decoder panic.

use aci_core::wire::{decode, encode_invalidation, encode_strategy_update, Limits, Message};
use aci_core::Strategy;
use proptest::prelude::*;
use proptest::strategy::Strategy as _;

fn strategy() -> impl proptest::strategy::Strategy<Value = Strategy> {
    prop::sample::select(Strategy::ALL.to_vec())
}

/// Keys of any Unicode, weighted towards the characters that need escaping.
fn key() -> impl proptest::strategy::Strategy<Value = String> {
    prop_oneof![
        3 => "[a-z0-9:_-]{0,24}",
        1 => "[\"\\\\\u{0}-\u{1f}\u{7f}é☃😀a]{0,12}",
        1 => any::<String>(),
    ]
}

fn finite() -> impl proptest::strategy::Strategy<Value = f64> {
    prop_oneof![
        0.0f64..1e4,
        1.6e9f64..2e9,
        any::<f64>().prop_filter("finite", |f| f.is_finite())
    ]
}

fn limits() -> Limits {
    Limits {
        max_bytes: 1 << 20,
        max_keys: 1024,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn invalidations_round_trip(
        keys in prop::collection::vec(key(), 0..20),
        strat in strategy(),
        timestamp in finite(),
        source in key(),
    ) {
        let mut out = Vec::new();
        let mut buf = heapless::Vec::<u8, 65536>::new();
        encode_invalidation(&mut buf, keys.iter().map(String::as_str), strat, timestamp, &source).unwrap();
        out.extend_from_slice(&buf);

        let reference: serde_json::Value = serde_json::from_slice(&out).unwrap();
        prop_assert!(out.is_ascii(), "ensure_ascii, as json.dumps");
        prop_assert_eq!(reference["keys"].as_array().unwrap().len(), keys.len());

        let Ok(Message::Invalidate(inv)) = decode(&out, limits()) else { panic!("did not decode") };
        let decoded: Vec<String> = inv.keys.iter().map(|k| k.to_string()).collect();
        prop_assert_eq!(&decoded, &keys);
        prop_assert_eq!(inv.strategy, Some(strat));
        prop_assert_eq!(inv.timestamp.map(f64::from), Some(timestamp));
        prop_assert_eq!(inv.source.unwrap().to_string(), source.clone());
        for (k, json) in inv.keys.iter().zip(reference["keys"].as_array().unwrap()) {
            prop_assert!(k.eq_str(json.as_str().unwrap()));
        }
    }

    #[test]
    fn strategy_updates_round_trip(
        strat in strategy(),
        rate in finite(),
        timestamp in finite(),
        source in key(),
        term in proptest::option::of(1..=aci_core::wire::MAX_TERM),
        interval_ms in proptest::option::of(10u64..86_400_000),
    ) {
        let mut buf = heapless::Vec::<u8, 4096>::new();
        let interval = interval_ms.map(|ms| ms as f64 / 1000.0);
        encode_strategy_update(&mut buf, strat, rate, timestamp, &source, term, interval).unwrap();
        let reference: serde_json::Value = serde_json::from_slice(&buf).unwrap();
        prop_assert_eq!(reference["write_rate"].as_f64(), Some(rate));
        prop_assert_eq!(reference["term"].as_u64(), term);
        let Ok(Message::StrategyUpdate(update)) = decode(&buf, limits()) else { panic!("did not decode") };
        prop_assert_eq!(update.strategy, strat);
        prop_assert_eq!(update.write_rate, Some(rate));
        prop_assert_eq!(update.timestamp.map(f64::from), Some(timestamp));
        prop_assert!(update.source.unwrap().eq_str(&source));
        prop_assert_eq!(update.term, term);
        // A whole number of milliseconds survives the trip exactly.
        prop_assert_eq!(update.batch_interval, interval_ms.map(aci_core::Duration::from_millis));
    }

    #[test]
    fn serde_json_output_decodes_too(keys in prop::collection::vec(key(), 0..10), extra in any::<i64>()) {
        // Another writer's formatting: compact, raw UTF-8, fields reordered, extras added.
        let value = serde_json::json!({"version": 2, "keys": keys, "seq": extra, "source": "py", "action": "invalidate"});
        let text = serde_json::to_string(&value).unwrap();
        let Ok(Message::Invalidate(inv)) = decode(text.as_bytes(), limits()) else { panic!("{text}") };
        let decoded: Vec<String> = inv.keys.iter().map(|k| k.to_string()).collect();
        prop_assert_eq!(decoded, keys);
    }

    #[test]
    fn spelling_and_order_do_not_matter(
        order in Just((0..6).collect::<Vec<usize>>()).prop_shuffle(),
        spacing in prop::collection::vec(0usize..4, 8),
        decoys in prop::collection::vec((0usize..8, any::<i64>()), 0..4),
        term in 1..=aci_core::wire::MAX_TERM,
    ) {
        // The decoder reads `"name": ` written as json.dumps writes it in one
        // step and anything else by the general path: every spelling, order
        // and unknown look-alike field must read the same.
        let colons = ["\": ", "\":", "\" : ", "\"\t:\n"];
        let fields = [
            ("action", "\"strategy_update\"".to_owned()),
            ("strategy", "\"batched\"".to_owned()),
            ("write_rate", "12.5".to_owned()),
            ("timestamp", "1795689266.4763556".to_owned()),
            ("source", "\"node-1\"".to_owned()),
            ("term", term.to_string()),
        ];
        let look_alikes = ["act", "actions", "keys2", "src", "t", "timestamps", "term_", "write"];
        let mut parts: Vec<String> = order
            .iter()
            .enumerate()
            .map(|(i, &f)| format!("\"{}{}{}", fields[f].0, colons[spacing[i]], fields[f].1))
            .collect();
        for (i, (name, value)) in decoys.iter().enumerate() {
            parts.insert(i % (parts.len() + 1), format!("\"{}{}{value}", look_alikes[*name], colons[spacing[6 + i % 2]]));
        }
        let text = format!("{{{}}}", parts.join(", "));
        let Ok(Message::StrategyUpdate(update)) = decode(text.as_bytes(), limits()) else { panic!("{text}") };
        prop_assert_eq!(update.strategy, Strategy::Batched);
        prop_assert_eq!(update.write_rate, Some(12.5));
        prop_assert_eq!(update.timestamp.map(|t| t.as_str()), Some("1795689266.4763556"));
        prop_assert!(update.source.is_some_and(|s| s.eq_str("node-1")));
        prop_assert_eq!(update.term, Some(term));
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = decode(&bytes, Limits::default());
    }

    #[test]
    fn mutated_messages_never_panic(cut in 0usize..140, flip in 0usize..140, byte in any::<u8>()) {
        let mut payload = br#"{"action": "invalidate", "keys": ["a\u00e9", "b\"c"], "strategy": "batched", "timestamp": 1.5e9, "source": "x"}"#.to_vec();
        let flip = flip % payload.len();
        payload[flip] = byte;
        payload.truncate(cut.max(1));
        if let Ok(Message::Invalidate(inv)) = decode(&payload, Limits::default()) {
            for k in inv.keys.iter() {
                let _ = k.to_string();
            }
        }
    }
}

#[test]
fn agreement_with_serde_json_on_acceptance() {
    // Valid JSON objects that are not messages are rejected, never accepted wrongly.
    for text in [
        r#"{}"#,
        r#"{"action": 1}"#,
        r#"{"action": "invalidate", "keys": {"a": 1}}"#,
        r#"{"action": "invalidate", "keys": ["a",]}"#,
        r#"{"action": "invalidate", "keys": ["a"]} x"#,
        r#"{"action": "invalidate", "keys": ["\ud800"]}"#,
        r#"{"action": "strategy_update", "strategy": "eager", "write_rate": "fast"}"#,
        r#"{"action": "strategy_update", "strategy": "eager", "write_rate": 01}"#,
        r#"{"action": "strategy_update", "strategy": "eager", "term": 1.0}"#,
        r#"{"action": "strategy_update", "strategy": "eager", "term": 0}"#,
        r#"{"action": "strategy_update", "strategy": "eager", "term": -3}"#,
        r#"{"action": "strategy_update", "strategy": "eager", "term": 1e3}"#,
        r#"{"action": "strategy_update", "strategy": "eager", "term": 99999999999999999999999}"#,
        r#"{"action": "strategy_update", "strategy": "eager", "term": 9007199254740992}"#,
        r#"{"action": "strategy_update", "strategy": "eager", "timestamp": 1.}"#,
    ] {
        assert!(
            decode(text.as_bytes(), Limits::default()).is_err(),
            "{text}"
        );
    }
    // Nulls and missing optional fields are accepted, as the original reads them.
    for text in [
        r#"{"action": "strategy_update", "strategy": "EAGER ", "write_rate": null}"#,
        r#"{"action": "invalidate", "keys": [], "strategy": null, "source": null}"#,
        r#"{"action": "strategy_update", "strategy": "ttl", "write_rate": NaN, "timestamp": Infinity}"#,
        " {\"keys\":[\"k\"],\"action\":\"invalidate\",\"nested\":{\"a\":[1,{\"b\":null}]}}\n",
    ] {
        assert!(decode(text.as_bytes(), Limits::default()).is_ok(), "{text}");
    }
}

/// Decoding once and handing the detached result to many engines gives each
/// what decoding would: `attach(detach(decode(p)))` is `decode(p)`.
fn detach_round_trip(text: &str) -> Result<(), TestCaseError> {
    let decoded = decode(text.as_bytes(), limits());
    if let Ok(message) = decoded {
        let detached = message.detach(text);
        prop_assert_eq!(detached.attach(text), Some(message));
        // A copy of the text, elsewhere in memory, reads the same.
        let copy = text.to_owned();
        prop_assert_eq!(
            detached.attach(&copy),
            decode(copy.as_bytes(), limits()).ok()
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn a_detached_message_attaches_to_what_decode_gives(
        keys in prop::collection::vec(key(), 0..8),
        strat in strategy(),
        rate in finite(),
        timestamp in finite(),
        source in key(),
        term in proptest::option::of(1..=aci_core::wire::MAX_TERM),
        interval_ms in proptest::option::of(10u64..86_400_000),
    ) {
        let mut buf = heapless::Vec::<u8, 32768>::new();
        encode_invalidation(&mut buf, keys.iter().map(String::as_str), strat, timestamp, &source).unwrap();
        detach_round_trip(std::str::from_utf8(&buf).unwrap())?;
        buf.clear();
        let interval = interval_ms.map(|ms| ms as f64 / 1000.0);
        encode_strategy_update(&mut buf, strat, rate, timestamp, &source, term, interval).unwrap();
        detach_round_trip(std::str::from_utf8(&buf).unwrap())?;
        buf.clear();
        aci_core::wire::encode_rate_report(&mut buf, rate.abs(), timestamp, &source).unwrap();
        detach_round_trip(std::str::from_utf8(&buf).unwrap())?;
    }

    #[test]
    fn any_text_detaches_and_attaches_as_it_decodes(text in ".{0,200}") {
        detach_round_trip(&text)?;
    }
}
