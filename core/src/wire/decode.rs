//! Reading the original's two message kinds from a payload, borrowing from it.

use super::error::DecodeError;
use super::escape::JsonStr;
use super::number::Number;
use super::scan::Scanner;
use crate::config_error::{MAX_TTL, MIN_BATCH_INTERVAL};
use crate::strategy::Strategy;
use crate::time::Duration;

/// Limits a decode enforces.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Longest payload accepted, in bytes.
    pub max_bytes: usize,
    /// Most keys in one invalidation.
    pub max_keys: usize,
}

impl Limits {
    /// The limits of a validated configuration.
    pub fn from_config(config: &crate::Config) -> Self {
        Limits {
            max_bytes: config.max_message_bytes(),
            max_keys: config.max_message_keys(),
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits::from_config(&crate::Config::default())
    }
}

/// A decoded message. Fields the original does not read are optional here too.
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
pub enum Message<'a> {
    /// `"action": "invalidate"`.
    Invalidate(Invalidation<'a>),
    /// `"action": "strategy_update"`.
    StrategyUpdate(StrategyUpdate<'a>),
    /// `"action": "rate_report"`: an instance's own write rate, for the
    /// controller's fleet-wide sum (an extension; the Python original ignores it).
    RateReport(RateReport<'a>),
}

impl<'a> Message<'a> {
    /// The sending instance, when the message names one.
    pub fn source(&self) -> Option<JsonStr<'a>> {
        match self {
            Message::Invalidate(m) => m.source,
            Message::StrategyUpdate(m) => m.source,
            Message::RateReport(m) => Some(m.source),
        }
    }
}

/// An invalidation: drop these keys from the near cache.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Invalidation<'a> {
    /// The stored keys, as listed.
    pub keys: Keys<'a>,
    /// The sender's strategy when it sent this (`delete` sends `ttl` too).
    pub strategy: Option<Strategy>,
    /// Unix seconds at the sender (converted on demand: nothing here reads it).
    pub timestamp: Option<Number<'a>>,
    /// The sender's instance id.
    pub source: Option<JsonStr<'a>>,
}

/// A controller's decision.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StrategyUpdate<'a> {
    /// The strategy to apply.
    pub strategy: Strategy,
    /// The write rate the decision was made on.
    pub write_rate: Option<f64>,
    /// Unix seconds at the sender (converted on demand: nothing here reads it).
    pub timestamp: Option<Number<'a>>,
    /// The sender's instance id.
    pub source: Option<JsonStr<'a>>,
    /// The term of the controller lease the sender held (an extension: the
    /// Python original sends none, and ignores it). A positive integer.
    pub term: Option<u64>,
    /// The batch interval the fleet runs batched at, when an objective
    /// policy set it (an extension the original ignores): seconds on the
    /// wire, from the 10 ms floor to 100 years.
    pub batch_interval: Option<Duration>,
}

/// One instance's write rate, reported to the controller every interval.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RateReport<'a> {
    /// Writes per second over the sender's sliding window (finite, ≥ 0).
    pub write_rate: f64,
    /// Unix seconds at the sender (converted on demand: nothing here reads it).
    pub timestamp: Option<Number<'a>>,
    /// The sender's instance id (required: reports are summed per sender).
    pub source: JsonStr<'a>,
}

/// The `keys` array of an invalidation, validated, read lazily.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Keys<'a> {
    /// The array's text, brackets included.
    array: &'a str,
    len: usize,
}

impl<'a> Keys<'a> {
    /// The array `array` (brackets included), validated to hold `len` keys.
    pub(crate) fn new(array: &'a str, len: usize) -> Self {
        Keys { array, len }
    }
    /// The array's text, brackets included.
    pub(crate) fn array(&self) -> &'a str {
        self.array
    }
    /// Number of keys listed.
    pub fn len(&self) -> usize {
        self.len
    }
    /// Whether the list is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    /// The keys, in the order listed.
    pub fn iter(&self) -> KeysIter<'a> {
        let mut scanner = Scanner::new(self.array);
        // The array was validated when decoded; its opening bracket is there.
        let _ = scanner.expect(b'[');
        KeysIter {
            scanner,
            left: self.len,
        }
    }
}

impl core::fmt::Debug for Keys<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl<'a> IntoIterator for Keys<'a> {
    type Item = JsonStr<'a>;
    type IntoIter = KeysIter<'a>;
    fn into_iter(self) -> KeysIter<'a> {
        self.iter()
    }
}

/// Iterator over [`Keys`].
pub struct KeysIter<'a> {
    scanner: Scanner<'a>,
    left: usize,
}

impl<'a> Iterator for KeysIter<'a> {
    type Item = JsonStr<'a>;
    fn next(&mut self) -> Option<JsonStr<'a>> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        let key = self.scanner.string().ok()?;
        let _ = self.scanner.eat(b',');
        Some(key)
    }
    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left, Some(self.left))
    }
}

impl ExactSizeIterator for KeysIter<'_> {}

/// Decodes one payload, as received on either channel.
///
/// ```
/// use aci_core::wire::{decode, Limits, Message};
/// let payload = br#"{"action": "invalidate", "keys": ["caf\u00e9"], "strategy": "eager", "timestamp": 1.5, "source": "a1"}"#;
/// let Ok(Message::Invalidate(inv)) = decode(payload, Limits::default()) else { panic!() };
/// assert!(inv.keys.iter().next().unwrap().eq_str("café"));
/// assert!(decode(b"[1, 2]", Limits::default()).is_err());
/// ```
pub fn decode(payload: &[u8], limits: Limits) -> Result<Message<'_>, DecodeError> {
    if payload.len() > limits.max_bytes {
        return Err(DecodeError::TooLarge {
            len: payload.len(),
            max: limits.max_bytes,
        });
    }
    let text = core::str::from_utf8(payload).map_err(|_| DecodeError::InvalidUtf8)?;
    let mut s = Scanner::new(text);
    if s.peek() != Some(b'{') {
        // Valid JSON of another kind is "not an object"; anything else is a syntax error.
        s.skip_value()?;
        return Err(if s.at_end() {
            DecodeError::NotAnObject
        } else {
            DecodeError::Syntax { at: s.pos() }
        });
    }
    let fields = read_fields(&mut s, limits)?;
    if !s.at_end() {
        return Err(DecodeError::Syntax { at: s.pos() });
    }
    fields.into_message()
}

#[derive(Default)]
struct Fields<'a> {
    action: Option<JsonStr<'a>>,
    keys: Option<Keys<'a>>,
    strategy: Option<JsonStr<'a>>,
    timestamp: Option<Number<'a>>,
    write_rate: Option<f64>,
    source: Option<JsonStr<'a>>,
    term: Option<u64>,
    batch_interval: Option<Duration>,
}

fn read_fields<'a>(s: &mut Scanner<'a>, limits: Limits) -> Result<Fields<'a>, DecodeError> {
    let mut f = Fields::default();
    s.expect(b'{')?;
    if s.eat(b'}') {
        return Ok(f);
    }
    loop {
        let field = match known_field(s) {
            Some(field) => field,
            None => {
                let name = s.string()?;
                s.expect(b':')?;
                Field::named(name)
            }
        };
        match field {
            Field::Action => f.action = Some(string_field(s, "action")?),
            Field::Keys => f.keys = Some(keys_field(s, limits.max_keys)?),
            Field::Strategy => f.strategy = nullable(s, |s| string_field(s, "strategy"))?,
            Field::Timestamp => {
                f.timestamp = nullable(s, |s| number_text_field(s, "timestamp"))?;
            }
            Field::WriteRate => {
                f.write_rate = nullable(s, |s| number_field(s, "write_rate"))?;
            }
            Field::Source => f.source = nullable(s, |s| string_field(s, "source"))?,
            Field::Term => f.term = nullable(s, term_field)?,
            Field::BatchInterval => f.batch_interval = nullable(s, interval_field)?,
            Field::Other => s.skip_value()?,
        }
        if !s.eat(b',') {
            s.expect(b'}')?;
            return Ok(f);
        }
    }
}

/// The fields a message is read for.
#[derive(Clone, Copy)]
enum Field {
    Action,
    Keys,
    Strategy,
    Timestamp,
    WriteRate,
    Source,
    Term,
    BatchInterval,
    /// Skipped (an escaped name counts as unknown too).
    Other,
}

impl Field {
    fn named(name: JsonStr<'_>) -> Field {
        match name.as_borrowed().unwrap_or("") {
            "action" => Field::Action,
            "keys" => Field::Keys,
            "strategy" => Field::Strategy,
            "timestamp" => Field::Timestamp,
            "write_rate" => Field::WriteRate,
            "source" => Field::Source,
            "term" => Field::Term,
            "batch_interval" => Field::BatchInterval,
            _ => Field::Other,
        }
    }
}

/// A known field's name and colon, when written as `json.dumps` writes them
/// (`"name": `), read as one literal: scanning each name as a string, then
/// comparing it, cost about a fifth of a decode. Any other spelling (blanks,
/// escapes, unknown names) is left for the general path, which reads the
/// same field.
fn known_field(s: &mut Scanner<'_>) -> Option<Field> {
    s.skip_ws();
    let (literal, field): (&[u8], Field) = match (s.byte_at(1)?, s.byte_at(2)?) {
        (b'a', _) => (b"\"action\": ", Field::Action),
        (b'b', _) => (b"\"batch_interval\": ", Field::BatchInterval),
        (b'k', _) => (b"\"keys\": ", Field::Keys),
        (b's', b't') => (b"\"strategy\": ", Field::Strategy),
        (b's', _) => (b"\"source\": ", Field::Source),
        (b't', b'i') => (b"\"timestamp\": ", Field::Timestamp),
        (b't', _) => (b"\"term\": ", Field::Term),
        (b'w', _) => (b"\"write_rate\": ", Field::WriteRate),
        _ => return None,
    };
    s.eat_literal(literal).then_some(field)
}

impl<'a> Fields<'a> {
    fn into_message(self) -> Result<Message<'a>, DecodeError> {
        let action = self.action.ok_or(DecodeError::MissingField("action"))?;
        let strategy = match self.strategy {
            Some(name) => Some(parse_strategy(name)?),
            None => None,
        };
        if action.eq_str("invalidate") {
            Ok(Message::Invalidate(Invalidation {
                keys: self.keys.ok_or(DecodeError::MissingField("keys"))?,
                strategy,
                timestamp: self.timestamp,
                source: self.source,
            }))
        } else if action.eq_str("strategy_update") {
            Ok(Message::StrategyUpdate(StrategyUpdate {
                strategy: strategy.ok_or(DecodeError::MissingField("strategy"))?,
                write_rate: self.write_rate,
                timestamp: self.timestamp,
                source: self.source,
                term: self.term,
                batch_interval: self.batch_interval,
            }))
        } else if action.eq_str("rate_report") {
            let write_rate = self
                .write_rate
                .ok_or(DecodeError::MissingField("write_rate"))?;
            if !(write_rate.is_finite() && write_rate >= 0.0) {
                return Err(DecodeError::WrongType("write_rate"));
            }
            Ok(Message::RateReport(RateReport {
                write_rate,
                timestamp: self.timestamp,
                source: self.source.ok_or(DecodeError::MissingField("source"))?,
            }))
        } else {
            Err(DecodeError::UnknownAction)
        }
    }
}

fn parse_strategy(name: JsonStr<'_>) -> Result<Strategy, DecodeError> {
    if let Some(plain) = name.as_borrowed() {
        return Strategy::parse(plain).ok_or(DecodeError::UnknownStrategy);
    }
    let mut buf = heapless::String::<16>::new();
    for c in name.chars() {
        buf.push(c).map_err(|_| DecodeError::UnknownStrategy)?;
    }
    Strategy::parse(&buf).ok_or(DecodeError::UnknownStrategy)
}

fn nullable<'a, T>(
    s: &mut Scanner<'a>,
    read: impl FnOnce(&mut Scanner<'a>) -> Result<T, DecodeError>,
) -> Result<Option<T>, DecodeError> {
    if s.peek() == Some(b'n') && s.eat_word("null") {
        Ok(None)
    } else {
        read(s).map(Some)
    }
}

fn string_field<'a>(s: &mut Scanner<'a>, field: &'static str) -> Result<JsonStr<'a>, DecodeError> {
    if s.peek() != Some(b'"') {
        return wrong_type(s, field);
    }
    s.string()
}

fn number_text_field<'a>(
    s: &mut Scanner<'a>,
    field: &'static str,
) -> Result<Number<'a>, DecodeError> {
    match s.peek() {
        Some(b'-' | b'0'..=b'9' | b'N' | b'I') => s.number_text().map(Number::new),
        _ => wrong_type(s, field),
    }
}

fn number_field(s: &mut Scanner<'_>, field: &'static str) -> Result<f64, DecodeError> {
    number_text_field(s, field).map(|n| n.value())
}

/// Largest term accepted: every integer up to it is exact in an `f64`, so
/// any JSON reader agrees on its value.
pub const MAX_TERM: u64 = (1 << 53) - 1;

/// A batch interval in seconds, within what a configuration accepts.
fn interval_field(s: &mut Scanner<'_>) -> Result<Duration, DecodeError> {
    let seconds = number_field(s, "batch_interval")?;
    let (floor, ceiling) = (MIN_BATCH_INTERVAL.as_secs_f64(), MAX_TTL.as_secs_f64());
    if seconds.is_finite() && (floor..=ceiling).contains(&seconds) {
        // To the nearest nanosecond: `0.9` is 900 ms, not a hair under.
        Ok(Duration::from_nanos(libm::round(seconds * 1e9) as u64))
    } else {
        Err(DecodeError::WrongType("batch_interval"))
    }
}

/// A lease term: an integer in `1..=MAX_TERM`, written without fraction or exponent.
fn term_field(s: &mut Scanner<'_>) -> Result<u64, DecodeError> {
    let text = number_text_field(s, "term")?.as_str();
    // Digits only (no sign, fraction or exponent); too many overflow.
    text.parse::<u64>()
        .ok()
        .filter(|term| text.bytes().all(|b| b.is_ascii_digit()) && (1..=MAX_TERM).contains(term))
        .ok_or(DecodeError::WrongType("term"))
}

/// Reports a wrong type, unless the value is not even valid JSON.
fn wrong_type<T>(s: &mut Scanner<'_>, field: &'static str) -> Result<T, DecodeError> {
    s.skip_value()?;
    Err(DecodeError::WrongType(field))
}

fn keys_field<'a>(s: &mut Scanner<'a>, max_keys: usize) -> Result<Keys<'a>, DecodeError> {
    if s.peek() != Some(b'[') {
        return wrong_type(s, "keys");
    }
    let start = s.pos();
    s.expect(b'[')?;
    let mut len = 0;
    if !s.eat(b']') {
        loop {
            if s.peek() != Some(b'"') {
                return wrong_type(s, "keys");
            }
            s.string()?;
            len += 1;
            if len > max_keys {
                return Err(DecodeError::TooManyKeys { max: max_keys });
            }
            if !s.eat(b',') {
                s.expect(b']')?;
                break;
            }
        }
    }
    Ok(Keys {
        array: s.slice(start, s.pos()),
        len,
    })
}
