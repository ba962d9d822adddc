//! Writing messages byte for byte as aci-cache 0.1.1 writes them
//! (`json.dumps` defaults: `", "` and `": "` separators, ASCII only).

use core::fmt::Write as _;

use super::escape::{escaped_len, write_escaped, write_escaped_body};
use super::sink::{FmtSink, Overflow, Sink};
use crate::strategy::Strategy;

/// Writes an invalidation of `keys`.
///
/// ```
/// use aci_core::{wire::encode_invalidation, Strategy};
/// let mut out = heapless::Vec::<u8, 256>::new();
/// encode_invalidation(&mut out, ["user:42"], Strategy::Eager, 1795689266.4763556, "d0a44428e335").unwrap();
/// assert_eq!(
///     core::str::from_utf8(&out).unwrap(),
///     r#"{"action": "invalidate", "keys": ["user:42"], "strategy": "eager", "timestamp": 1795689266.4763556, "source": "d0a44428e335"}"#
/// );
/// ```
pub fn encode_invalidation<'k, S, I>(
    out: &mut S,
    keys: I,
    strategy: Strategy,
    timestamp: f64,
    source: &str,
) -> Result<(), Overflow>
where
    S: Sink + ?Sized,
    I: IntoIterator<Item = &'k str>,
{
    encode_invalidation_prefixed(out, "", keys, strategy, timestamp, source)
}

/// [`encode_invalidation`] with `prefix` written before every key: the
/// engine buffers namespaced keys without their common prefix.
pub(crate) fn encode_invalidation_prefixed<'k, S, I>(
    out: &mut S,
    prefix: &str,
    keys: I,
    strategy: Strategy,
    timestamp: f64,
    source: &str,
) -> Result<(), Overflow>
where
    S: Sink + ?Sized,
    I: IntoIterator<Item = &'k str>,
{
    out.put(br#"{"action": "invalidate", "keys": ["#)?;
    for (i, key) in keys.into_iter().enumerate() {
        if i > 0 {
            out.put(b", ")?;
        }
        out.put(b"\"")?;
        write_escaped_body(out, prefix)?;
        write_escaped_body(out, key)?;
        out.put(b"\"")?;
    }
    out.put(br#"], "strategy": ""#)?;
    out.put(strategy.as_str().as_bytes())?;
    out.put(br#"", "timestamp": "#)?;
    write_float(out, timestamp)?;
    out.put(br#", "source": "#)?;
    write_escaped(out, source)?;
    out.put(b"}")
}

/// Writes a controller's decision.
///
/// ```
/// use aci_core::{wire::encode_strategy_update, Strategy};
/// let mut out = heapless::Vec::<u8, 256>::new();
/// encode_strategy_update(&mut out, Strategy::Eager, 20.0, 1795689266.6881335, "61d50dc5fe1b", None, None).unwrap();
/// assert_eq!(
///     core::str::from_utf8(&out).unwrap(),
///     r#"{"action": "strategy_update", "strategy": "eager", "write_rate": 20.0, "timestamp": 1795689266.6881335, "source": "61d50dc5fe1b"}"#
/// );
/// // An elected controller adds its lease's term, and an objective policy
/// // the batch interval in seconds; the original ignores both.
/// out.clear();
/// encode_strategy_update(&mut out, Strategy::Batched, 0.0, 1.5, "a", Some(7), Some(0.9)).unwrap();
/// assert!(out.ends_with(br#""source": "a", "term": 7, "batch_interval": 0.9}"#));
/// ```
pub fn encode_strategy_update<S: Sink + ?Sized>(
    out: &mut S,
    strategy: Strategy,
    write_rate: f64,
    timestamp: f64,
    source: &str,
    term: Option<u64>,
    batch_interval: Option<f64>,
) -> Result<(), Overflow> {
    out.put(br#"{"action": "strategy_update", "strategy": ""#)?;
    out.put(strategy.as_str().as_bytes())?;
    out.put(br#"", "write_rate": "#)?;
    write_float(out, write_rate)?;
    out.put(br#", "timestamp": "#)?;
    write_float(out, timestamp)?;
    out.put(br#", "source": "#)?;
    write_escaped(out, source)?;
    if let Some(term) = term {
        out.put(br#", "term": "#)?;
        write_u64(out, term)?;
    }
    if let Some(seconds) = batch_interval {
        out.put(br#", "batch_interval": "#)?;
        write_float(out, seconds)?;
    }
    out.put(b"}")
}

fn write_u64<S: Sink + ?Sized>(out: &mut S, mut n: u64) -> Result<(), Overflow> {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.put(&digits[at..])
}

/// Writes a rate report: `{"action": "rate_report", "write_rate": …, "timestamp": …, "source": …}`.
///
/// ```
/// use aci_core::wire::encode_rate_report;
/// let mut out = heapless::Vec::<u8, 256>::new();
/// encode_rate_report(&mut out, 12.5, 1795689266.5, "f1").unwrap();
/// assert_eq!(
///     core::str::from_utf8(&out).unwrap(),
///     r#"{"action": "rate_report", "write_rate": 12.5, "timestamp": 1795689266.5, "source": "f1"}"#
/// );
/// ```
pub fn encode_rate_report<S: Sink + ?Sized>(
    out: &mut S,
    write_rate: f64,
    timestamp: f64,
    source: &str,
) -> Result<(), Overflow> {
    out.put(br#"{"action": "rate_report", "write_rate": "#)?;
    write_float(out, write_rate)?;
    out.put(br#", "timestamp": "#)?;
    write_float(out, timestamp)?;
    out.put(br#", "source": "#)?;
    write_escaped(out, source)?;
    out.put(b"}")
}

/// The exact length [`encode_invalidation`] writes for these arguments,
/// given the keys' JSON length (`BatchBuffer::json_len` or `escaped_len`).
pub fn invalidation_len(
    keys_json_len: usize,
    strategy: Strategy,
    timestamp: f64,
    source: &str,
) -> usize {
    const FIXED: usize =
        r#"{"action": "invalidate", "keys": [], "strategy": "", "timestamp": , "source": }"#.len();
    FIXED + keys_json_len + strategy.as_str().len() + float_len(timestamp) + escaped_len(source)
}

/// An upper bound on [`invalidation_len`] for any strategy and timestamp.
pub fn invalidation_len_bound(keys_json_len: usize, source: &str) -> usize {
    const FIXED: usize =
        r#"{"action": "invalidate", "keys": [], "strategy": "", "timestamp": , "source": }"#.len();
    // "batched" is the longest name; a float is at most 24 characters.
    FIXED + keys_json_len + 7 + 24 + escaped_len(source)
}

/// Writes a float as Python's `repr` would for the values we send: the
/// shortest text that reads back exactly, with `.0` on integral values and
/// `NaN` / `Infinity` for the non-finite ones.
pub(crate) fn write_float<S: Sink + ?Sized>(out: &mut S, value: f64) -> Result<(), Overflow> {
    if value.is_nan() {
        return out.put(b"NaN");
    }
    if value.is_infinite() {
        return out.put(if value > 0.0 {
            b"Infinity"
        } else {
            b"-Infinity"
        });
    }
    // The shortest round-trip digits, from ryu (no_std): a tenth of what
    // `core::fmt` spends on a timestamp. ryu writes very large and very
    // small values with an exponent, where `core::fmt` (and the format sent
    // so far) writes every digit: those take the general path.
    let mut buffer = ryu::Buffer::new();
    let text = buffer.format_finite(value);
    if !text.contains('e') {
        return out.put(text.as_bytes());
    }
    let mut w = FmtSink {
        sink: out,
        overflowed: false,
        saw_non_digit: false,
    };
    if write!(w, "{value}").is_err() || w.overflowed {
        return Err(Overflow);
    }
    if !w.saw_non_digit {
        out.put(b".0")?;
    }
    Ok(())
}

fn float_len(value: f64) -> usize {
    struct Count(usize);
    impl Sink for Count {
        fn put(&mut self, bytes: &[u8]) -> Result<(), Overflow> {
            self.0 += bytes.len();
            Ok(())
        }
    }
    let mut count = Count(0);
    let _ = write_float(&mut count, value);
    count.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn float(v: f64) -> heapless::String<512> {
        let mut out = heapless::Vec::<u8, 512>::new();
        write_float(&mut out, v).unwrap();
        heapless::String::from_utf8(out).unwrap()
    }

    /// What `write_float` wrote before ryu: `core::fmt`, plus `.0` on
    /// integral values. Every finite value must still be written so.
    fn by_core_fmt(v: f64) -> std::string::String {
        let text = std::format!("{v}");
        if text.bytes().all(|b| b.is_ascii_digit() || b == b'-') {
            text + ".0"
        } else {
            text
        }
    }

    proptest::proptest! {
        #[test]
        fn ryu_writes_what_core_fmt_wrote_up_to_ties(bits in proptest::num::u64::ANY, t in 1.0e9f64..4.0e9) {
            for v in [f64::from_bits(bits), t, t.round(), 1.0 / t] {
                if v.is_finite() {
                    let (ours, before) = (float(v), by_core_fmt(v));
                    if ours != before.as_str() {
                        // A tie: the value lies halfway between two
                        // shortest decimals. Both read back as `v`; ryu
                        // takes the even digit, as Python's `repr` does,
                        // where `core::fmt` may take the other.
                        proptest::prop_assert_eq!(ours.len(), before.len());
                        proptest::prop_assert_eq!(ours.parse::<f64>().ok(), Some(v));
                        proptest::prop_assert_eq!(before.parse::<f64>().ok(), Some(v));
                    }
                }
            }
        }
    }

    #[test]
    fn floats_read_like_python_repr() {
        // Halfway between ...668.62 and ...668.63: Python writes the even
        // one (`repr(-202747266403668.625)`), `core::fmt` the odd one.
        let tie: f64 = "-202747266403668.625".parse().unwrap();
        assert_eq!(float(tie), "-202747266403668.62");
        assert_eq!(float(1e16), by_core_fmt(1e16).as_str(), "no exponent");
        assert_eq!(float(1e-7), "0.0000001");
        assert_eq!(float(20.0), "20.0");
        assert_eq!(float(0.0), "0.0");
        assert_eq!(float(-3.0), "-3.0");
        assert_eq!(float(1795689266.4763556), "1795689266.4763556");
        assert_eq!(float(2.5), "2.5");
        assert_eq!(float(f64::NAN), "NaN");
        assert_eq!(float(f64::NEG_INFINITY), "-Infinity");
    }

    #[test]
    fn predicted_length_is_exact() {
        let mut out = heapless::Vec::<u8, 512>::new();
        let keys = ["a", "caf\u{e9}", "q\"uote"];
        encode_invalidation(&mut out, keys, Strategy::Batched, 12.25, "src").unwrap();
        let json_len: usize = keys.iter().map(|k| escaped_len(k)).sum::<usize>() + 2 * 2;
        assert_eq!(
            out.len(),
            invalidation_len(json_len, Strategy::Batched, 12.25, "src")
        );
        assert!(out.len() <= invalidation_len_bound(json_len, "src"));
    }

    #[test]
    fn overflow_is_an_error_not_a_panic() {
        let mut out = heapless::Vec::<u8, 16>::new();
        assert_eq!(
            encode_strategy_update(&mut out, Strategy::Ttl, 0.0, 0.0, "x", None, None),
            Err(Overflow)
        );
    }
}
