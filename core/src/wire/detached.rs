//! A decoded message kept apart from its payload: positions instead of
//! borrows, so that one decode can be stored beside the payload and handed
//! to many engines (a simulator fanning one message out to a fleet).

use core::ops::Range;

use super::decode::{Invalidation, Keys, Message, RateReport, StrategyUpdate};
use super::escape::JsonStr;
use super::number::Number;
use crate::strategy::Strategy;
use crate::time::Duration;

/// A [`Message`] with every borrowed string replaced by its position in the
/// payload's text. [`Message::detach`] makes one; [`Detached::attach`] gives
/// the same message back from the same text, without scanning it again.
///
/// ```
/// use aci_core::wire::{decode, Limits};
/// let text = r#"{"action": "invalidate", "keys": ["a", "b"], "strategy": "eager", "timestamp": 1.5, "source": "x"}"#;
/// let message = decode(text.as_bytes(), Limits::default())?;
/// let detached = message.detach(text);
/// assert_eq!(detached.attach(text), Some(message));
/// # Ok::<(), aci_core::wire::DecodeError>(())
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct Detached(Kind);

#[derive(Clone, Debug, PartialEq)]
enum Kind {
    Invalidate {
        keys: Span,
        len: usize,
        strategy: Option<Strategy>,
        timestamp: Option<Span>,
        source: Option<StrSpan>,
    },
    StrategyUpdate {
        strategy: Strategy,
        write_rate: Option<f64>,
        timestamp: Option<Span>,
        source: Option<StrSpan>,
        term: Option<u64>,
        batch_interval: Option<Duration>,
    },
    RateReport {
        write_rate: f64,
        timestamp: Option<Span>,
        source: StrSpan,
    },
}

type Span = Range<usize>;

/// A string's position and whether it holds escapes.
#[derive(Clone, Debug, PartialEq)]
struct StrSpan {
    span: Span,
    escaped: bool,
}

impl<'a> Message<'a> {
    /// This message with its strings as positions in `text`, the payload it
    /// was decoded from (a message decoded from other bytes gives positions
    /// that [`Detached::attach`] refuses or misreads).
    pub fn detach(&self, text: &'a str) -> Detached {
        let span = |s: &str| {
            let start = (s.as_ptr() as usize).wrapping_sub(text.as_ptr() as usize);
            start..start.wrapping_add(s.len())
        };
        let str_span = |s: JsonStr<'_>| StrSpan {
            span: span(s.raw()),
            escaped: s.as_borrowed().is_none(),
        };
        Detached(match *self {
            Message::Invalidate(m) => Kind::Invalidate {
                keys: span(m.keys.array()),
                len: m.keys.len(),
                strategy: m.strategy,
                timestamp: m.timestamp.map(|n| span(n.as_str())),
                source: m.source.map(str_span),
            },
            Message::StrategyUpdate(m) => Kind::StrategyUpdate {
                strategy: m.strategy,
                write_rate: m.write_rate,
                timestamp: m.timestamp.map(|n| span(n.as_str())),
                source: m.source.map(str_span),
                term: m.term,
                batch_interval: m.batch_interval,
            },
            Message::RateReport(m) => Kind::RateReport {
                write_rate: m.write_rate,
                timestamp: m.timestamp.map(|n| span(n.as_str())),
                source: str_span(m.source),
            },
        })
    }
}

impl Detached {
    /// The message again, borrowing from `text`: the payload it was
    /// detached from. `None` if a position falls outside `text` or inside
    /// a character (another text).
    pub fn attach<'a>(&self, text: &'a str) -> Option<Message<'a>> {
        let at = |span: &Span| text.get(span.clone());
        let string = |s: &StrSpan| Some(JsonStr::new(at(&s.span)?, s.escaped));
        let number = |span: &Option<Span>| match span {
            Some(span) => Some(Some(Number::new(at(span)?))),
            None => Some(None),
        };
        let optional_string = |s: &Option<StrSpan>| match s {
            Some(s) => Some(Some(string(s)?)),
            None => Some(None),
        };
        Some(match &self.0 {
            Kind::Invalidate {
                keys,
                len,
                strategy,
                timestamp,
                source,
            } => Message::Invalidate(Invalidation {
                keys: Keys::new(at(keys)?, *len),
                strategy: *strategy,
                timestamp: number(timestamp)?,
                source: optional_string(source)?,
            }),
            Kind::StrategyUpdate {
                strategy,
                write_rate,
                timestamp,
                source,
                term,
                batch_interval,
            } => Message::StrategyUpdate(StrategyUpdate {
                strategy: *strategy,
                write_rate: *write_rate,
                timestamp: number(timestamp)?,
                source: optional_string(source)?,
                term: *term,
                batch_interval: *batch_interval,
            }),
            Kind::RateReport {
                write_rate,
                timestamp,
                source,
            } => Message::RateReport(RateReport {
                write_rate: *write_rate,
                timestamp: number(timestamp)?,
                source: string(source)?,
            }),
        })
    }
}
