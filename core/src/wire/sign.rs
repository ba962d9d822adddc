//! Optional message authentication: an HMAC-SHA256 tag as every message's
//! last field.
//!
//! With keys configured ([`ConfigBuilder::message_key`](crate::ConfigBuilder::message_key)),
//! the engine signs what it publishes and accepts only what carries a valid
//! tag. A signed message is the message as the original writes it, with its
//! closing `}` replaced by
//!
//! ```text
//! , "sig": "<64 lowercase hex digits>"}
//! ```
//!
//! where the tag is HMAC-SHA256 over every byte before `, "sig"`. Readers
//! that do not check (the Python original, an unsigned Rust instance) see
//! one more string field and ignore it. The first key signs; every key
//! verifies, so a key is rotated by adding the new one second, then first,
//! then removing the old one, one deploy at a time.
//!
//! A tag proves who wrote a message, not when: a recorded message can be
//! replayed. Replayed invalidations only drop entries; a replayed decision
//! is subject to the term checks (see [`engine::lease`](crate::engine::lease))
//! and is overridden by the controller's next broadcast, within one interval.

use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::Overflow;

type HmacSha256 = Hmac<Sha256>;

/// Most keys configured at once (for rotation).
pub const MAX_MESSAGE_KEYS: usize = 4;
/// Shortest key accepted, in bytes.
pub const MESSAGE_KEY_MIN_BYTES: usize = 16;
/// Longest key accepted, in bytes (SHA-256's block: longer keys would be hashed first).
pub const MESSAGE_KEY_MAX_BYTES: usize = 64;

/// The field that ends a signed message, up to the tag's digits.
const TAG_FIELD: &[u8] = br#", "sig": ""#;
/// Bytes a signature adds to a message: the field, 64 hex digits, `"`
/// (the `}` it ends with replaces the message's own).
pub const SIGNATURE_BYTES: usize = TAG_FIELD.len() + 64 + 1;
/// The signed message's tail: field, digits, `"}`.
const TAIL: usize = SIGNATURE_BYTES + 1;

/// One shared secret. Its `Debug` never prints it.
#[derive(Clone, PartialEq, Eq)]
pub struct MessageKey(heapless::Vec<u8, MESSAGE_KEY_MAX_BYTES>);

impl MessageKey {
    /// A key of 16 to 64 bytes, or `None`.
    pub fn new(bytes: &[u8]) -> Option<Self> {
        if bytes.len() < MESSAGE_KEY_MIN_BYTES {
            return None;
        }
        heapless::Vec::from_slice(bytes).ok().map(MessageKey)
    }
}

impl core::fmt::Debug for MessageKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "MessageKey({} bytes, redacted)", self.0.len())
    }
}

/// The keys of a configuration, ready to sign and verify (each key's inner
/// and outer hash state computed once).
#[derive(Clone)]
pub struct Signer {
    macs: heapless::Vec<HmacSha256, MAX_MESSAGE_KEYS>,
}

impl core::fmt::Debug for Signer {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "Signer({} keys)", self.macs.len())
    }
}

/// Why a message's signature was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SignatureError {
    /// The message does not end with a `"sig"` field of 64 lowercase hex digits.
    Missing,
    /// The tag matches no key.
    Invalid,
}

impl Signer {
    /// A signer for `keys`, the first of which signs; `None` without keys.
    pub fn new(keys: &[MessageKey]) -> Option<Self> {
        let mut macs = heapless::Vec::new();
        for key in keys.iter().take(MAX_MESSAGE_KEYS) {
            // HMAC takes a key of any length: this cannot fail.
            let mac = HmacSha256::new_from_slice(&key.0).ok()?;
            let _ = macs.push(mac);
        }
        (!macs.is_empty()).then_some(Signer { macs })
    }

    /// Signs the message at `out[start..]` (a JSON object as the encoders
    /// write it): its closing `}` becomes `, "sig": "<tag>"}`.
    pub fn seal<const N: usize>(
        &self,
        out: &mut heapless::Vec<u8, N>,
        start: usize,
    ) -> Result<(), Overflow> {
        if out.last() != Some(&b'}') || out.len() <= start {
            return Err(Overflow);
        }
        out.truncate(out.len() - 1);
        let mut mac = self.macs[0].clone();
        mac.update(&out[start..]);
        let tag = mac.finalize().into_bytes();
        out.extend_from_slice(TAG_FIELD).map_err(|_| Overflow)?;
        for byte in tag {
            out.extend_from_slice(&hex_pair(byte))
                .map_err(|_| Overflow)?;
        }
        out.extend_from_slice(b"\"}").map_err(|_| Overflow)
    }

    /// Checks that `payload` ends with a tag of one of the keys over the
    /// bytes before it. Constant time in the tag's value.
    pub fn verify(&self, payload: &[u8]) -> Result<(), SignatureError> {
        let Some(signed_len) = payload.len().checked_sub(TAIL) else {
            return Err(SignatureError::Missing);
        };
        let (signed, tail) = payload.split_at(signed_len);
        let Some(digits) = tail
            .strip_prefix(TAG_FIELD)
            .and_then(|rest| rest.strip_suffix(b"\"}"))
        else {
            return Err(SignatureError::Missing);
        };
        let mut tag = [0u8; 32];
        for (byte, pair) in tag.iter_mut().zip(digits.chunks_exact(2)) {
            *byte = match (nibble(pair[0]), nibble(pair[1])) {
                (Some(hi), Some(lo)) => hi << 4 | lo,
                _ => return Err(SignatureError::Missing),
            };
        }
        for mac in &self.macs {
            let mut mac = mac.clone();
            mac.update(signed);
            if mac.verify_slice(&tag).is_ok() {
                return Ok(());
            }
        }
        Err(SignatureError::Invalid)
    }
}

fn hex_pair(byte: u8) -> [u8; 2] {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    [HEX[usize::from(byte >> 4)], HEX[usize::from(byte & 15)]]
}

fn nibble(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signer(keys: &[&[u8]]) -> Signer {
        let keys: heapless::Vec<MessageKey, 4> =
            keys.iter().map(|k| MessageKey::new(k).unwrap()).collect();
        Signer::new(&keys).unwrap()
    }

    const MSG: &[u8] = br#"{"action": "invalidate", "keys": ["k"], "strategy": "eager", "timestamp": 1.5, "source": "a"}"#;

    fn sealed(s: &Signer) -> heapless::Vec<u8, 512> {
        let mut out = heapless::Vec::<u8, 512>::from_slice(MSG).unwrap();
        s.seal(&mut out, 0).unwrap();
        out
    }

    #[test]
    fn a_sealed_message_verifies_and_stays_json_the_original_reads() {
        let s = signer(&[b"0123456789abcdef"]);
        let out = sealed(&s);
        assert_eq!(out.len(), MSG.len() + SIGNATURE_BYTES);
        assert!(out.starts_with(&MSG[..MSG.len() - 1]));
        assert!(out.ends_with(b"\"}"));
        assert_eq!(s.verify(&out), Ok(()));
        let json: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(json["sig"].as_str().unwrap().len(), 64);
    }

    #[test]
    fn a_known_tag() {
        // RFC 4231-style check against an independent HMAC: the tag of the
        // message above under this key, computed with Python's hmac module.
        let s = signer(&[b"0123456789abcdef"]);
        let out = sealed(&s);
        let tag = &out[out.len() - 66..out.len() - 2];
        assert_eq!(core::str::from_utf8(tag).unwrap(), KNOWN_TAG,);
    }

    const KNOWN_TAG: &str = "8d474238c741b66a1cf59347e43319baf2e44a9f502f9c839266f91c49d33b08";

    #[test]
    fn anything_else_is_refused() {
        let s = signer(&[b"0123456789abcdef"]);
        let out = sealed(&s);
        assert_eq!(s.verify(MSG), Err(SignatureError::Missing));
        let other = signer(&[b"fedcba9876543210"]);
        assert_eq!(other.verify(&out), Err(SignatureError::Invalid));
        // One flipped byte anywhere, tag or message.
        for i in 0..out.len() {
            let mut bad = out.clone();
            bad[i] ^= 1;
            assert!(s.verify(&bad).is_err(), "byte {i}");
        }
        // Upper-case hex is not the format.
        let mut upper = out.clone();
        let n = upper.len();
        upper[n - 66..n - 2].make_ascii_uppercase();
        if upper != out {
            assert!(s.verify(&upper).is_err());
        }
    }

    #[test]
    fn every_configured_key_verifies_and_the_first_signs() {
        let old: &[u8] = b"old-key-old-key-";
        let new: &[u8] = b"new-key-new-key-";
        let by_old = sealed(&signer(&[old]));
        let rotating = signer(&[new, old]);
        assert_eq!(rotating.verify(&by_old), Ok(()));
        assert_eq!(signer(&[new]).verify(&sealed(&rotating)), Ok(()));
    }

    #[test]
    fn short_keys_are_refused_and_keys_never_print() {
        assert!(MessageKey::new(b"short").is_none());
        assert!(MessageKey::new(&[7u8; 65]).is_none());
        let key = MessageKey::new(b"0123456789abcdef").unwrap();
        let shown = std::format!("{key:?}");
        assert!(!shown.contains("0123"), "{shown}");
    }
}
