//! Why a payload was rejected.

use core::fmt;

/// A Pub/Sub payload that is not a message we accept. Never a panic: every
/// malformed input maps to one of these, and the engine counts it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum DecodeError {
    /// The payload is longer than `max_message_bytes`.
    TooLarge {
        /// Payload length in bytes.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The payload is not UTF-8.
    InvalidUtf8,
    /// The payload is not well-formed JSON (byte offset of the fault).
    Syntax {
        /// Byte offset where reading failed.
        at: usize,
    },
    /// The JSON nests deeper than the decoder follows.
    TooDeep,
    /// The payload is JSON but not an object.
    NotAnObject,
    /// A required field is missing.
    MissingField(&'static str),
    /// A field has the wrong JSON type.
    WrongType(&'static str),
    /// `action` is neither `invalidate` nor `strategy_update`.
    UnknownAction,
    /// `strategy` is not `ttl`, `batched` or `eager`.
    UnknownStrategy,
    /// `keys` lists more keys than `max_message_keys`.
    TooManyKeys {
        /// The limit.
        max: usize,
    },
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            DecodeError::TooLarge { len, max } => {
                write!(f, "payload of {len} bytes exceeds the limit of {max}")
            }
            DecodeError::InvalidUtf8 => f.write_str("payload is not valid UTF-8"),
            DecodeError::Syntax { at } => write!(f, "payload is not valid JSON (byte {at})"),
            DecodeError::TooDeep => f.write_str("payload nests too deeply"),
            DecodeError::NotAnObject => f.write_str("payload is not a JSON object"),
            DecodeError::MissingField(field) => write!(f, "field `{field}` is missing"),
            DecodeError::WrongType(field) => write!(f, "field `{field}` has the wrong type"),
            DecodeError::UnknownAction => {
                f.write_str("`action` is neither \"invalidate\" nor \"strategy_update\"")
            }
            DecodeError::UnknownStrategy => {
                f.write_str("`strategy` is not \"ttl\", \"batched\" or \"eager\"")
            }
            DecodeError::TooManyKeys { max } => write!(f, "more than {max} keys"),
        }
    }
}

impl core::error::Error for DecodeError {}
