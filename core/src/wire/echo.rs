//! Recognising a message by its sender without decoding it.
//!
//! Every instance receives its own messages back from Redis (one per eager
//! write). They carry nothing new, yet verifying and decoding one costs more
//! than the write that sent it. The field `"source": "<id>"` is found in the
//! raw payload instead: both encoders (this one and Python's `json.dumps`)
//! write it with that exact spacing, and inside a JSON string every `"` is
//! escaped, so the bytes `"source": "` can only be a field name followed by
//! its value. A payload spelled otherwise is simply not recognised here and
//! is decoded as usual, where the same check runs on the parsed message.

const FIELD: &[u8] = br#""source": ""#;

/// Whether `payload` names `source` as its sender, read off the raw bytes.
/// `false` also when it cannot tell cheaply (an id that JSON escapes, a
/// field spelled with other spacing): the decoder then decides.
///
/// ```
/// use aci_core::wire::names_source;
/// let payload = br#"{"action": "invalidate", "keys": ["k"], "strategy": "eager", "timestamp": 1.5, "source": "a1"}"#;
/// assert!(names_source(payload, "a1"));
/// assert!(!names_source(payload, "a"));
/// assert!(!names_source(payload, "a12"));
/// ```
pub fn names_source(payload: &[u8], source: &str) -> bool {
    let id = source.as_bytes();
    if id
        .iter()
        .any(|&b| b == b'"' || b == b'\\' || b < 0x20 || b == 0x7f)
    {
        return false;
    }
    // The sender comes last or nearly (before the term, the interval or the
    // signature): search from the end.
    let Some(at) = payload.windows(FIELD.len()).rposition(|w| w == FIELD) else {
        return false;
    };
    let value = &payload[at + FIELD.len()..];
    value.len() > id.len() && value.starts_with(id) && value[id.len()] == b'"'
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_sender_of_every_kind_and_nothing_else() {
        let signed = br#"{"action": "invalidate", "keys": ["k"], "strategy": "eager", "timestamp": 1.5, "source": "me", "sig": "v1:abc"}"#;
        assert!(names_source(signed, "me"));
        let decision = br#"{"action": "strategy_update", "strategy": "eager", "write_rate": 20.0, "timestamp": 1.5, "source": "me", "term": 7}"#;
        assert!(names_source(decision, "me"));
        // A key that spells the field is escaped, so it never matches.
        let sly = br#"{"action": "invalidate", "keys": ["\"source\": \"me\""], "strategy": "eager", "timestamp": 1.5, "source": "you"}"#;
        assert!(!names_source(sly, "me"));
        assert!(
            !names_source(br#"{"source":"me"}"#, "me"),
            "other spacing: decode decides"
        );
        assert!(!names_source(br#"{"source": "me"#, "me"), "cut short");
        assert!(
            !names_source(br#"{"source": "m\"e"}"#, "m\"e"),
            "escaped ids: decode decides"
        );
        assert!(!names_source(b"", "me"));
    }
}
