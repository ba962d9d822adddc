//! One published payload, decoded once for every subscriber.
//!
//! Decoding is a pure function of the bytes and the limits, which the whole
//! simulated fleet shares: decoding a message once where Redis fans it out,
//! and handing each subscriber's real engine the result
//! ([`Instance::handle_decoded`](aci_cache::instance::Instance::handle_decoded)),
//! gives every engine what it would have decoded itself (debug builds check
//! it on every delivery) for one decode instead of one per subscriber.

use aci_core::wire::{decode, DecodeError, Detached, Limits, Message};

pub(super) struct Published {
    /// The payload: its text when it is UTF-8, its bytes otherwise.
    payload: Result<Box<str>, Box<[u8]>>,
    decoded: Result<Detached, DecodeError>,
}

impl Published {
    pub(super) fn new(payload: &[u8], limits: Limits) -> Self {
        match core::str::from_utf8(payload) {
            Ok(text) => {
                let text: Box<str> = text.into();
                let decoded = decode(text.as_bytes(), limits).map(|m| m.detach(&text));
                Published {
                    payload: Ok(text),
                    decoded,
                }
            }
            // Not UTF-8: `decode` refuses it (too large, or not UTF-8).
            Err(_) => Published {
                decoded: Err(decode(payload, limits)
                    .err()
                    .unwrap_or(DecodeError::InvalidUtf8)),
                payload: Err(payload.into()),
            },
        }
    }

    pub(super) fn bytes(&self) -> &[u8] {
        match &self.payload {
            Ok(text) => text.as_bytes(),
            Err(bytes) => bytes,
        }
    }

    /// The message, as `decode` gives it for these bytes. (Attaching to
    /// the text it was detached from cannot fail; the engine's debug check
    /// would catch the error these arms stand in for if it did.)
    pub(super) fn message(&self) -> Result<Message<'_>, DecodeError> {
        match (&self.decoded, &self.payload) {
            (Ok(detached), Ok(text)) => detached.attach(text).ok_or(DecodeError::InvalidUtf8),
            (Err(e), _) => Err(*e),
            (Ok(_), Err(_)) => Err(DecodeError::InvalidUtf8),
        }
    }
}
