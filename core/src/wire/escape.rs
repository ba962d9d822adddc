//! JSON strings as the Python original writes them (`json.dumps` with
//! `ensure_ascii=True`), and a view of a string read from a payload that
//! unescapes on demand instead of allocating.

use core::fmt;

use super::sink::{Overflow, Sink};

/// Length of `s` written as a JSON string the way `json.dumps` writes it:
/// quotes included, non-ASCII as `\uXXXX` (two of them past the BMP).
pub fn escaped_len(s: &str) -> usize {
    2 + s
        .as_bytes()
        .iter()
        .map(|&b| usize::from(ESCAPED_LEN[usize::from(b)]))
        .sum::<usize>()
}

/// Bytes each UTF-8 byte turns into when escaped: lead bytes carry the cost of
/// their character (a 2- or 3-byte sequence is one `\uXXXX`, a 4-byte one a
/// surrogate pair), continuation bytes add nothing.
const ESCAPED_LEN: [u8; 256] = {
    let mut table = [0u8; 256];
    let mut b = 0;
    while b < 256 {
        table[b] = match b as u8 {
            b'"' | b'\\' | b'\n' | b'\r' | b'\t' | 0x08 | 0x0c => 2,
            0x00..=0x1f => 6,
            0x20..=0x7f => 1,
            0x80..=0xbf => 0,
            0xc0..=0xef => 6,
            0xf0..=0xff => 12,
        };
        b += 1;
    }
    table
};

/// The most bytes one input byte can become when escaped (a control character).
pub(crate) const MAX_ESCAPE_PER_BYTE: usize = 6;

/// Writes `s` as a JSON string exactly as `json.dumps` does.
pub fn write_escaped<S: Sink + ?Sized>(out: &mut S, s: &str) -> Result<(), Overflow> {
    out.put(b"\"")?;
    write_escaped_body(out, s)?;
    out.put(b"\"")
}

/// Writes `s` escaped as [`write_escaped`] does, without the quotes.
pub(crate) fn write_escaped_body<S: Sink + ?Sized>(out: &mut S, s: &str) -> Result<(), Overflow> {
    let bytes = s.as_bytes();
    let mut plain_from = 0;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        // Runs of printable ASCII are copied whole.
        if ESCAPED_LEN[usize::from(b)] == 1 {
            i += 1;
            continue;
        }
        out.put(&bytes[plain_from..i])?;
        let used = match b {
            b'"' => out.put(b"\\\"").map(|()| 1)?,
            b'\\' => out.put(b"\\\\").map(|()| 1)?,
            b'\n' => out.put(b"\\n").map(|()| 1)?,
            b'\r' => out.put(b"\\r").map(|()| 1)?,
            b'\t' => out.put(b"\\t").map(|()| 1)?,
            0x08 => out.put(b"\\b").map(|()| 1)?,
            0x0c => out.put(b"\\f").map(|()| 1)?,
            0x00..=0x1f => put_u_escape(out, u16::from(b)).map(|()| 1)?,
            _ => {
                // A non-ASCII character starts here (`i` is on a char boundary).
                let c = s
                    .get(i..)
                    .and_then(|t| t.chars().next())
                    .unwrap_or('\u{fffd}');
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    put_u_escape(out, *unit)?;
                }
                c.len_utf8()
            }
        };
        i += used;
        plain_from = i;
    }
    out.put(&bytes[plain_from..])
}

fn put_u_escape<S: Sink + ?Sized>(out: &mut S, unit: u16) -> Result<(), Overflow> {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let digits = [
        b'\\',
        b'u',
        HEX[usize::from(unit >> 12)],
        HEX[usize::from((unit >> 8) & 0xf)],
        HEX[usize::from((unit >> 4) & 0xf)],
        HEX[usize::from(unit & 0xf)],
    ];
    out.put(&digits)
}

/// A string as it stands in a payload, between its quotes, already checked to
/// be well formed. Borrowed when it has no escapes; unescaped on demand otherwise.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct JsonStr<'a> {
    raw: &'a str,
    escaped: bool,
}

impl<'a> JsonStr<'a> {
    /// Wraps the text between the quotes. Callers must have validated the escapes.
    pub(crate) fn new(raw: &'a str, escaped: bool) -> Self {
        JsonStr { raw, escaped }
    }

    /// The string itself when it holds no escape sequence.
    pub fn as_borrowed(&self) -> Option<&'a str> {
        (!self.escaped).then_some(self.raw)
    }

    /// The text as written in the payload, escapes and all.
    pub fn raw(&self) -> &'a str {
        self.raw
    }

    /// The decoded characters.
    pub fn chars(&self) -> Unescape<'a> {
        Unescape {
            raw: self.raw,
            pos: 0,
        }
    }

    /// Length of the decoded string in UTF-8 bytes.
    pub fn decoded_len(&self) -> usize {
        if self.escaped {
            self.chars().map(char::len_utf8).sum()
        } else {
            self.raw.len()
        }
    }

    /// Whether the decoded string equals `s`.
    pub fn eq_str(&self, s: &str) -> bool {
        match self.as_borrowed() {
            Some(plain) => plain == s,
            None => self.chars().eq(s.chars()),
        }
    }

    /// Whether the decoded string starts with `prefix`.
    pub fn starts_with(&self, prefix: &str) -> bool {
        match self.as_borrowed() {
            Some(plain) => plain.starts_with(prefix),
            None => {
                let mut chars = self.chars();
                prefix.chars().all(|p| chars.next() == Some(p))
            }
        }
    }

    /// Appends the decoded string, UTF-8, to `out`.
    pub fn write_decoded<S: Sink + ?Sized>(&self, out: &mut S) -> Result<(), Overflow> {
        if let Some(plain) = self.as_borrowed() {
            return out.put(plain.as_bytes());
        }
        let mut buf = [0u8; 4];
        for c in self.chars() {
            out.put(c.encode_utf8(&mut buf).as_bytes())?;
        }
        Ok(())
    }
}

impl fmt::Debug for JsonStr<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&Displayed(*self), f)
    }
}

impl fmt::Display for JsonStr<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&Displayed(*self), f)
    }
}

struct Displayed<'a>(JsonStr<'a>);

impl fmt::Display for Displayed<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use fmt::Write;
        self.0.chars().try_for_each(|c| f.write_char(c))
    }
}

impl fmt::Debug for Displayed<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use fmt::Write;
        f.write_char('"')?;
        for c in self.0.chars() {
            for e in c.escape_debug() {
                f.write_char(e)?;
            }
        }
        f.write_char('"')
    }
}

/// Iterator over the decoded characters of a [`JsonStr`].
#[derive(Clone, Debug)]
pub struct Unescape<'a> {
    raw: &'a str,
    pos: usize,
}

impl Iterator for Unescape<'_> {
    type Item = char;

    fn next(&mut self) -> Option<char> {
        let tail = self.raw.get(self.pos..)?;
        let c = tail.chars().next()?;
        if c != '\\' {
            self.pos += c.len_utf8();
            return Some(c);
        }
        let (decoded, used) = decode_escape(&tail.as_bytes()[1..]).unwrap_or(('\u{fffd}', 1));
        self.pos += 1 + used;
        Some(decoded)
    }
}

/// Decodes the escape after a backslash: the character and the bytes used.
/// `None` when malformed (a lone surrogate, a bad hex digit, an unknown letter).
pub(crate) fn decode_escape(after: &[u8]) -> Option<(char, usize)> {
    let simple = match *after.first()? {
        b'"' => '"',
        b'\\' => '\\',
        b'/' => '/',
        b'b' => '\u{8}',
        b'f' => '\u{c}',
        b'n' => '\n',
        b'r' => '\r',
        b't' => '\t',
        b'u' => {
            let high = hex4(after.get(1..5)?)?;
            if !(0xd800..0xe000).contains(&high) {
                return Some((char::from_u32(u32::from(high))?, 5));
            }
            if high >= 0xdc00 || after.get(5..7)? != b"\\u" {
                return None;
            }
            let low = hex4(after.get(7..11)?)?;
            if !(0xdc00..0xe000).contains(&low) {
                return None;
            }
            let code = 0x10000 + ((u32::from(high) - 0xd800) << 10) + (u32::from(low) - 0xdc00);
            return Some((char::from_u32(code)?, 11));
        }
        _ => return None,
    };
    Some((simple, 1))
}

fn hex4(digits: &[u8]) -> Option<u16> {
    digits.iter().try_fold(0u16, |acc, &d| {
        let v = (d as char).to_digit(16)?;
        Some(acc << 4 | v as u16)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn escaped(s: &str) -> heapless::Vec<u8, 256> {
        let mut out = heapless::Vec::new();
        write_escaped(&mut out, s).unwrap();
        assert_eq!(out.len(), escaped_len(s), "escaped_len({s:?})");
        out
    }

    #[test]
    fn writes_like_json_dumps() {
        assert_eq!(&escaped("user:42")[..], br#""user:42""#);
        assert_eq!(&escaped("caf\u{e9}:\u{2603}")[..], br#""caf\u00e9:\u2603""#);
        assert_eq!(
            &escaped("quote\"and\\backslash")[..],
            br#""quote\"and\\backslash""#
        );
        assert_eq!(&escaped("\u{1F600}")[..], br#""\ud83d\ude00""#);
        assert_eq!(&escaped("a\u{1}\n\u{7f}")[..], b"\"a\\u0001\\n\x7f\"");
    }

    #[test]
    fn decodes_escapes() {
        let s = JsonStr::new(r"caf\u00e9 \ud83d\ude00 \n\/", true);
        let mut out = heapless::Vec::<u8, 64>::new();
        s.write_decoded(&mut out).unwrap();
        assert_eq!(
            core::str::from_utf8(&out).unwrap(),
            "caf\u{e9} \u{1F600} \n/"
        );
        assert!(s.eq_str("caf\u{e9} \u{1F600} \n/"));
        assert!(s.starts_with("caf\u{e9}"));
        assert_eq!(s.decoded_len(), "caf\u{e9} \u{1F600} \n/".len());
    }

    #[test]
    fn rejects_bad_escapes() {
        assert_eq!(decode_escape(b"x"), None);
        assert_eq!(decode_escape(b"ud800"), None, "lone high surrogate");
        assert_eq!(decode_escape(b"udc00"), None, "lone low surrogate");
        assert_eq!(decode_escape(b"u12g4"), None);
        assert_eq!(decode_escape(b"u00"), None);
    }
}
