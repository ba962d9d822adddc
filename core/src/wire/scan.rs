//! A minimal, allocation-free JSON scanner: just enough to read the two message
//! kinds and to skip any other value with bounded nesting.

use super::error::DecodeError;
use super::escape::{decode_escape, JsonStr};

/// Deepest nesting skipped inside an unknown field before giving up.
const MAX_SKIP_DEPTH: usize = 16;

/// How many bytes at the start of `bytes` can sit in a string as they are:
/// the index of the first `"`, `\\` or control byte (or the length).
///
/// Eight bytes at a time: a byte of `word ^ splat(c)` is zero where the
/// byte equals `c`, and `(x - splat(n)) & !x & splat(0x80)` flags the bytes
/// of `x` below `n`. The lowest flag is always exact (a borrow only runs
/// upwards), and only the lowest one is used.
fn plain_run(bytes: &[u8]) -> usize {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGHS: u64 = u64::from_ne_bytes([0x80; 8]);
    let below = |x: u64, n: u8| x.wrapping_sub(ONES * u64::from(n)) & !x & HIGHS;
    let mut chunks = bytes.chunks_exact(8);
    let mut done = 0;
    for chunk in chunks.by_ref() {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let word = u64::from_le_bytes(word);
        let stops = below(word ^ (ONES * u64::from(b'"')), 1)
            | below(word ^ (ONES * u64::from(b'\\')), 1)
            | below(word, 0x20);
        if stops != 0 {
            return done + (stops.trailing_zeros() / 8) as usize;
        }
        done += 8;
    }
    let rest = chunks.remainder();
    done + rest
        .iter()
        .position(|&b| b == b'"' || b == b'\\' || b < 0x20)
        .unwrap_or(rest.len())
}

pub(crate) struct Scanner<'a> {
    src: &'a str,
    pos: usize,
}

impl<'a> Scanner<'a> {
    pub(crate) fn new(src: &'a str) -> Self {
        Scanner { src, pos: 0 }
    }

    fn bytes(&self) -> &'a [u8] {
        self.src.as_bytes()
    }

    fn syntax(&self) -> DecodeError {
        DecodeError::Syntax { at: self.pos }
    }

    pub(crate) fn skip_ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.bytes().get(self.pos) {
            self.pos += 1;
        }
    }

    /// The next non-blank byte, not consumed.
    pub(crate) fn peek(&mut self) -> Option<u8> {
        self.skip_ws();
        self.bytes().get(self.pos).copied()
    }

    /// Consumes `byte` (after blanks) or fails.
    pub(crate) fn expect(&mut self, byte: u8) -> Result<(), DecodeError> {
        if self.peek() == Some(byte) {
            self.pos += 1;
            Ok(())
        } else {
            Err(self.syntax())
        }
    }

    /// Consumes `text` if the input continues with it exactly (no blanks skipped).
    pub(crate) fn eat_literal(&mut self, text: &[u8]) -> bool {
        let found = self
            .bytes()
            .get(self.pos..)
            .is_some_and(|rest| rest.starts_with(text));
        if found {
            self.pos += text.len();
        }
        found
    }

    /// The byte `ahead` positions past the next unread one (no blanks skipped).
    pub(crate) fn byte_at(&self, ahead: usize) -> Option<u8> {
        self.bytes().get(self.pos + ahead).copied()
    }

    /// Consumes `byte` if it is next.
    pub(crate) fn eat(&mut self, byte: u8) -> bool {
        let found = self.peek() == Some(byte);
        if found {
            self.pos += 1;
        }
        found
    }

    /// Whether only blanks remain.
    pub(crate) fn at_end(&mut self) -> bool {
        self.peek().is_none()
    }

    /// Reads a string, checking its escapes.
    pub(crate) fn string(&mut self) -> Result<JsonStr<'a>, DecodeError> {
        self.expect(b'"')?;
        let start = self.pos;
        let mut escaped = false;
        loop {
            self.pos += plain_run(self.bytes().get(self.pos..).unwrap_or_default());
            match self.bytes().get(self.pos) {
                Some(b'"') => break,
                Some(b'\\') => {
                    let (_, used) = decode_escape(&self.bytes()[self.pos + 1..])
                        .ok_or_else(|| self.syntax())?;
                    self.pos += 1 + used;
                    escaped = true;
                }
                // The end of the input, or a control byte.
                _ => return Err(self.syntax()),
            }
        }
        // Both ends sit on ASCII bytes, so the slice is on char boundaries.
        let raw = self.src.get(start..self.pos).ok_or_else(|| self.syntax())?;
        self.pos += 1;
        Ok(JsonStr::new(raw, escaped))
    }

    /// Reads a number's text, checking its syntax; also Python's `NaN`,
    /// `Infinity` and `-Infinity`.
    pub(crate) fn number_text(&mut self) -> Result<&'a str, DecodeError> {
        self.skip_ws();
        let start = self.pos;
        if let Some(b'N' | b'I' | b'-') = self.bytes().get(start) {
            for word in ["NaN", "Infinity", "-Infinity"] {
                if self.src[start..].starts_with(word) {
                    self.pos += word.len();
                    return Ok(word);
                }
            }
        }
        let b = self.bytes();
        let digits = |mut p: usize| {
            let from = p;
            while b.get(p).is_some_and(u8::is_ascii_digit) {
                p += 1;
            }
            (p, p > from)
        };
        let mut p = start;
        if b.get(p) == Some(&b'-') {
            p += 1;
        }
        let (after_int, any) = digits(p);
        if !any || (b[p] == b'0' && after_int > p + 1) {
            return Err(self.syntax());
        }
        p = after_int;
        if b.get(p) == Some(&b'.') {
            let (after_frac, any) = digits(p + 1);
            if !any {
                return Err(self.syntax());
            }
            p = after_frac;
        }
        if matches!(b.get(p), Some(b'e' | b'E')) {
            p += 1;
            if matches!(b.get(p), Some(b'+' | b'-')) {
                p += 1;
            }
            let (after_exp, any) = digits(p);
            if !any {
                return Err(self.syntax());
            }
            p = after_exp;
        }
        self.pos = p;
        // Both ends sit on ASCII bytes.
        self.src
            .get(start..p)
            .ok_or(DecodeError::Syntax { at: start })
    }

    /// Consumes `word` (`true`, `false`, `null`) if it is next.
    pub(crate) fn eat_word(&mut self, word: &str) -> bool {
        self.skip_ws();
        let found = self.src[self.pos..].starts_with(word);
        if found {
            self.pos += word.len();
        }
        found
    }

    /// Skips one value of any kind.
    pub(crate) fn skip_value(&mut self) -> Result<(), DecodeError> {
        self.skip_nested(0)
    }

    fn skip_nested(&mut self, depth: usize) -> Result<(), DecodeError> {
        if depth > MAX_SKIP_DEPTH {
            return Err(DecodeError::TooDeep);
        }
        match self.peek() {
            Some(b'"') => self.string().map(drop),
            Some(b'{') => {
                self.pos += 1;
                if self.eat(b'}') {
                    return Ok(());
                }
                loop {
                    self.string()?;
                    self.expect(b':')?;
                    self.skip_nested(depth + 1)?;
                    if !self.eat(b',') {
                        return self.expect(b'}');
                    }
                }
            }
            Some(b'[') => {
                self.pos += 1;
                if self.eat(b']') {
                    return Ok(());
                }
                loop {
                    self.skip_nested(depth + 1)?;
                    if !self.eat(b',') {
                        return self.expect(b']');
                    }
                }
            }
            Some(b't') if self.eat_word("true") => Ok(()),
            Some(b'f') if self.eat_word("false") => Ok(()),
            Some(b'n') if self.eat_word("null") => Ok(()),
            Some(_) => self.number_text().map(drop),
            None => Err(self.syntax()),
        }
    }

    /// Byte offset of the next unread byte.
    pub(crate) fn pos(&self) -> usize {
        self.pos
    }

    /// The source between two offsets.
    pub(crate) fn slice(&self, from: usize, to: usize) -> &'a str {
        self.src.get(from..to).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::plain_run;
    use proptest::prelude::*;

    fn naive(bytes: &[u8]) -> usize {
        bytes
            .iter()
            .position(|&b| b == b'"' || b == b'\\' || b < 0x20)
            .unwrap_or(bytes.len())
    }

    #[test]
    fn every_stop_byte_at_every_offset() {
        for stop in (0u8..0x20).chain([b'"', b'\\']) {
            for len in 0..20 {
                for at in 0..len {
                    // Bytes that sit next to stops in the masks' arithmetic.
                    for fill in [b'a', 0x21, b'#', b']', 0x7f, 0x80, 0xff] {
                        let mut bytes = [fill; 20];
                        let bytes = &mut bytes[..len];
                        bytes[at] = stop;
                        assert_eq!(plain_run(bytes), at, "{stop:#x} at {at} in {len}");
                        assert_eq!(plain_run(&bytes[..at]), at);
                    }
                }
            }
        }
    }

    proptest! {
        #[test]
        fn agrees_with_the_byte_loop(bytes in proptest::collection::vec(any::<u8>(), 0..40)) {
            prop_assert_eq!(plain_run(&bytes), naive(&bytes));
        }
    }
}
