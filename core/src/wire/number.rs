//! A number read from a payload, converted only when asked.

use core::fmt;

/// A JSON number as a payload writes it (Python's `NaN`, `Infinity` and
/// `-Infinity` included): its syntax is checked when the message is decoded,
/// its value computed by [`Number::value`].
///
/// Converting a 17-digit float is about a fifth of the cost of decoding a
/// whole invalidation, and the engine reads no message's `timestamp`: a
/// receiver that wants it pays for it.
///
/// ```
/// use aci_core::wire::{decode, Limits, Message};
/// let payload = br#"{"action": "invalidate", "keys": [], "timestamp": 1795689266.4763556}"#;
/// let Ok(Message::Invalidate(inv)) = decode(payload, Limits::default()) else { panic!() };
/// let timestamp = inv.timestamp.unwrap();
/// assert_eq!(timestamp.as_str(), "1795689266.4763556");
/// assert_eq!(timestamp.value(), 1795689266.4763556);
/// ```
#[derive(Clone, Copy)]
pub struct Number<'a> {
    text: &'a str,
}

impl<'a> Number<'a> {
    /// `text` has been checked to be a JSON number or one of Python's words.
    pub(crate) fn new(text: &'a str) -> Self {
        Number { text }
    }

    /// The value; a number too large for an `f64` is infinite, as in Python.
    pub fn value(&self) -> f64 {
        match self.text {
            "NaN" => f64::NAN,
            "Infinity" => f64::INFINITY,
            "-Infinity" => f64::NEG_INFINITY,
            // The decoder checked the syntax, which Rust's parser accepts.
            text => text.parse().unwrap_or(f64::NAN),
        }
    }

    /// The number as written.
    pub fn as_str(&self) -> &'a str {
        self.text
    }
}

/// Numbers compare by value, as `f64`s do (`1.0 == 1.00`, `NaN != NaN`).
impl PartialEq for Number<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.value() == other.value()
    }
}

impl PartialEq<f64> for Number<'_> {
    fn eq(&self, other: &f64) -> bool {
        self.value() == *other
    }
}

impl fmt::Debug for Number<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.value(), f)
    }
}

impl fmt::Display for Number<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.text)
    }
}

impl From<Number<'_>> for f64 {
    fn from(number: Number<'_>) -> f64 {
        number.value()
    }
}
