//! Where encoded bytes go, without requiring an allocator.

use core::fmt;

/// The output had no room for what was being written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Overflow;

impl fmt::Display for Overflow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("output buffer is full")
    }
}

impl core::error::Error for Overflow {}

/// A byte sink for the encoder: a fixed-capacity buffer, or (with `std`) a `Vec<u8>`.
pub trait Sink {
    /// Appends `bytes`, all or nothing.
    fn put(&mut self, bytes: &[u8]) -> Result<(), Overflow>;
}

impl<const N: usize> Sink for heapless::Vec<u8, N> {
    fn put(&mut self, bytes: &[u8]) -> Result<(), Overflow> {
        self.extend_from_slice(bytes).map_err(|_| Overflow)
    }
}

#[cfg(feature = "std")]
impl Sink for std::vec::Vec<u8> {
    fn put(&mut self, bytes: &[u8]) -> Result<(), Overflow> {
        self.extend_from_slice(bytes);
        Ok(())
    }
}

/// Adapts a [`Sink`] to `core::fmt::Write`, for formatting numbers.
pub(crate) struct FmtSink<'s, S: Sink + ?Sized> {
    pub(crate) sink: &'s mut S,
    pub(crate) overflowed: bool,
    /// Whether anything but digits and a sign was written (so a float needs no `.0`).
    pub(crate) saw_non_digit: bool,
}

impl<S: Sink + ?Sized> fmt::Write for FmtSink<'_, S> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        if s.bytes().any(|b| !(b.is_ascii_digit() || b == b'-')) {
            self.saw_non_digit = true;
        }
        self.sink.put(s.as_bytes()).map_err(|_| {
            self.overflowed = true;
            fmt::Error
        })
    }
}
