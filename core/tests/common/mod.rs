//! Helpers shared by the integration tests: effects as owned data.
#![allow(dead_code, reason = "each test binary uses a different subset")]

use aci_core::{
    BucketDrop, DropReason, Duration, Effect, Engine, Instant, LeaseOp, SwitchRecord, WriteError,
};

/// An effect, copied out of the engine's buffers.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Owned {
    Publish { channel: String, payload: String },
    Switched(SwitchRecord),
    Invalidate(Vec<String>),
    InvalidateAll(DropReason),
    InvalidateBucket(BucketDrop),
    Lease { op: LeaseOp, ttl: Duration },
}

impl Owned {
    /// The payload parsed by serde_json: an independent reference decoder.
    pub(crate) fn json(&self) -> Option<serde_json::Value> {
        match self {
            Owned::Publish { payload, .. } => {
                Some(serde_json::from_str(payload).expect("our payloads are JSON"))
            }
            _ => None,
        }
    }

    /// The keys of a published invalidation, as serde_json reads them.
    pub(crate) fn published_keys(&self) -> Option<Vec<String>> {
        let json = self.json()?;
        if json["action"] != "invalidate" {
            return None;
        }
        Some(
            json["keys"]
                .as_array()
                .expect("keys is an array")
                .iter()
                .map(|k| k.as_str().expect("keys are strings").to_owned())
                .collect(),
        )
    }
}

/// Drains every effect.
pub(crate) fn drain(engine: &mut Engine) -> Vec<Owned> {
    let mut out = Vec::new();
    while let Some(effect) = engine.poll_effect() {
        out.push(own(&effect));
    }
    out
}

/// Copies one effect.
pub(crate) fn own(effect: &Effect<'_>) -> Owned {
    match effect {
        Effect::Publish(p) => Owned::Publish {
            channel: p.channel.to_owned(),
            payload: String::from_utf8(p.payload.to_vec()).expect("payloads are UTF-8"),
        },
        Effect::Switched(s) => Owned::Switched(*s),
        Effect::Invalidate(keys) => Owned::Invalidate(keys.iter().map(str::to_owned).collect()),
        Effect::InvalidateAll(why) => Owned::InvalidateAll(*why),
        Effect::InvalidateBucket(drop) => Owned::InvalidateBucket(*drop),
        Effect::Lease(request) => Owned::Lease {
            op: request.op,
            ttl: request.ttl,
        },
        other => panic!("unexpected effect {other:?}"),
    }
}

/// A write the store acknowledges: announced, then counted.
pub(crate) fn write(engine: &mut Engine, now: Instant, key: &str) -> Result<(), WriteError> {
    engine.handle_write(now, key)?;
    engine.handle_write_acknowledged(now);
    Ok(())
}
