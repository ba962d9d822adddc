//! The Pub/Sub wire format of aci-cache 0.1.1, read and written without allocation.
//!
//! Two JSON messages travel on two channels (`{prefix}:invalidation`,
//! `{prefix}:strategy`):
//!
//! ```text
//! {"action": "invalidate", "keys": [...], "strategy": "eager", "timestamp": 1795689266.47, "source": "d0a44428e335"}
//! {"action": "strategy_update", "strategy": "eager", "write_rate": 20.0, "timestamp": 1795689266.68, "source": "61d50dc5fe1b"}
//! ```
//!
//! [`decode`] borrows from the payload: a key without escapes is a plain `&str`,
//! a key with `\uXXXX` escapes is a [`JsonStr`] decoded on demand. Unknown
//! fields are skipped, so later versions can add some. The encoders write
//! exactly what Python's `json.dumps` writes, so mixed fleets see one format.

mod decode;
mod detached;
mod echo;
mod encode;
mod error;
mod escape;
mod number;
mod scan;
pub mod sign;
mod sink;

pub use decode::{
    decode, Invalidation, Keys, KeysIter, Limits, Message, RateReport, StrategyUpdate, MAX_TERM,
};
pub use detached::Detached;
pub use echo::names_source;
pub(crate) use encode::encode_invalidation_prefixed;
pub use encode::{
    encode_invalidation, encode_rate_report, encode_strategy_update, invalidation_len,
    invalidation_len_bound,
};
pub use error::DecodeError;
pub(crate) use escape::MAX_ESCAPE_PER_BYTE;
pub use escape::{escaped_len, write_escaped, JsonStr, Unescape};
pub use number::Number;
pub use sign::{MessageKey, SignatureError, Signer, MAX_MESSAGE_KEYS, SIGNATURE_BYTES};
pub use sink::{Overflow, Sink};
