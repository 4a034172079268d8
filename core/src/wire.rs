//! Byte-level plumbing shared by every codec layer: a bounds-checked [`Reader`] that
//! knows its absolute offset, the [`DecodeError`] every decoder returns, the [`Encode`]
//! trait every message implements, and a resumable [`StreamDecoder`] for length-framed
//! streams (EtherNet/IP encapsulation, Modbus/TCP MBAP).
//!
//! Rules every decoder in this crate keeps:
//! - no indexing or arithmetic that can panic on input: every read goes through [`Reader`];
//! - no allocation sized by a length field that has not been received in full;
//! - every error names the field (`layer.field`, e.g. `encapsulation.length`) and the
//!   absolute byte offset at which it was found.

use std::borrow::Cow;

use bytes::{BufMut, Bytes, BytesMut};

/// Why some bytes could not be decoded.
///
/// `Incomplete` is not a failure of the input, only of its length so far: feed more
/// bytes and try again. `Invalid` is final for that input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// More bytes are required before `field` (at `offset`) can be decoded.
    #[error("incomplete {field} at offset {offset}: {needed} more byte(s) needed")]
    Incomplete {
        /// The field being read, as `layer.field`.
        field: &'static str,
        /// Absolute offset of the first missing byte's field.
        offset: usize,
        /// How many more bytes are needed at least.
        needed: usize,
    },
    /// The bytes are present but their value is not acceptable.
    #[error("invalid {field} at offset {offset}: {reason}")]
    Invalid {
        /// The field that was wrong, as `layer.field`.
        field: &'static str,
        /// Absolute offset of the field.
        offset: usize,
        /// What was wrong with it.
        reason: Cow<'static, str>,
    },
}

impl DecodeError {
    /// An [`DecodeError::Invalid`] for `field` at `offset`.
    pub fn invalid(
        field: &'static str,
        offset: usize,
        reason: impl Into<Cow<'static, str>>,
    ) -> Self {
        DecodeError::Invalid {
            field,
            offset,
            reason: reason.into(),
        }
    }

    /// True when more input could make the decode succeed.
    pub fn is_incomplete(&self) -> bool {
        matches!(self, DecodeError::Incomplete { .. })
    }

    /// The name of the field that failed.
    pub fn field(&self) -> &'static str {
        match self {
            DecodeError::Incomplete { field, .. } | DecodeError::Invalid { field, .. } => field,
        }
    }

    /// The absolute offset at which decoding failed.
    pub fn offset(&self) -> usize {
        match self {
            DecodeError::Incomplete { offset, .. } | DecodeError::Invalid { offset, .. } => *offset,
        }
    }

    /// Shift the offset by `base`, for an error from a decoder that was handed a slice
    /// starting `base` bytes into the frame.
    pub fn at(self, base: usize) -> Self {
        match self {
            DecodeError::Incomplete {
                field,
                offset,
                needed,
            } => DecodeError::Incomplete {
                field,
                offset: offset.saturating_add(base),
                needed,
            },
            DecodeError::Invalid {
                field,
                offset,
                reason,
            } => DecodeError::Invalid {
                field,
                offset: offset.saturating_add(base),
                reason,
            },
        }
    }

    /// Turn an `Incomplete` into an `Invalid`: for a field inside a container whose
    /// length was already known, missing bytes mean the container lied.
    pub fn truncated(self) -> Self {
        match self {
            DecodeError::Incomplete {
                field,
                offset,
                needed,
            } => DecodeError::Invalid {
                field,
                offset,
                reason: format!("truncated: {needed} more byte(s) expected").into(),
            },
            other => other,
        }
    }
}

/// Result of a decode.
pub type DecodeResult<T> = Result<T, DecodeError>;

/// A bounds-checked little/big-endian cursor over a borrowed slice.
///
/// Offsets reported in errors are absolute: `base` plus the position in this slice.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    base: usize,
}

macro_rules! read_int {
    ($(#[$doc:meta] $name:ident, $ty:ty, $from:ident;)*) => {$(
        #[$doc]
        pub fn $name(&mut self, field: &'static str) -> DecodeResult<$ty> {
            let bytes = self.array::<{ std::mem::size_of::<$ty>() }>(field)?;
            Ok(<$ty>::$from(bytes))
        }
    )*};
}

impl<'a> Reader<'a> {
    /// A reader over `buf`, whose first byte is at absolute offset 0.
    pub fn new(buf: &'a [u8]) -> Self {
        Self::with_base(buf, 0)
    }

    /// A reader over `buf`, whose first byte is at absolute offset `base`.
    pub fn with_base(buf: &'a [u8], base: usize) -> Self {
        Reader { buf, pos: 0, base }
    }

    /// Absolute offset of the next byte.
    pub fn offset(&self) -> usize {
        self.base.saturating_add(self.pos)
    }

    /// Position of the next byte relative to the start of this reader.
    pub fn position(&self) -> usize {
        self.pos
    }

    /// Bytes not yet read.
    pub fn remaining(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }

    /// True when every byte has been read.
    pub fn is_empty(&self) -> bool {
        self.remaining() == 0
    }

    /// The unread bytes, without consuming them.
    pub fn peek_rest(&self) -> &'a [u8] {
        self.buf.get(self.pos..).unwrap_or_default()
    }

    /// Consume and return every unread byte.
    pub fn rest(&mut self) -> &'a [u8] {
        let rest = self.peek_rest();
        self.pos = self.buf.len();
        rest
    }

    /// An `Incomplete` error for `field` needing `needed` more bytes than remain.
    pub fn incomplete(&self, field: &'static str, needed: usize) -> DecodeError {
        DecodeError::Incomplete {
            field,
            offset: self.offset(),
            needed,
        }
    }

    /// An `Invalid` error for `field` at the current offset.
    pub fn invalid(
        &self,
        field: &'static str,
        reason: impl Into<Cow<'static, str>>,
    ) -> DecodeError {
        DecodeError::invalid(field, self.offset(), reason)
    }

    /// An `Invalid` error for `field` that started at absolute offset `offset`.
    pub fn invalid_at(
        &self,
        field: &'static str,
        offset: usize,
        reason: impl Into<Cow<'static, str>>,
    ) -> DecodeError {
        DecodeError::invalid(field, offset, reason)
    }

    /// Consume `n` bytes.
    pub fn take(&mut self, n: usize, field: &'static str) -> DecodeResult<&'a [u8]> {
        let remaining = self.remaining();
        if n > remaining {
            return Err(self.incomplete(field, n - remaining));
        }
        let start = self.pos;
        self.pos += n;
        Ok(self.buf.get(start..self.pos).unwrap_or_default())
    }

    /// Consume `n` bytes as a nested reader that keeps absolute offsets.
    pub fn sub(&mut self, n: usize, field: &'static str) -> DecodeResult<Reader<'a>> {
        let base = self.offset();
        let bytes = self.take(n, field)?;
        Ok(Reader::with_base(bytes, base))
    }

    /// Skip `n` bytes.
    pub fn skip(&mut self, n: usize, field: &'static str) -> DecodeResult<()> {
        self.take(n, field).map(|_| ())
    }

    /// Consume a fixed-size array.
    pub fn array<const N: usize>(&mut self, field: &'static str) -> DecodeResult<[u8; N]> {
        let bytes = self.take(N, field)?;
        let mut out = [0u8; N];
        out.copy_from_slice(bytes);
        Ok(out)
    }

    /// Look at the next byte without consuming it.
    pub fn peek_u8(&self, field: &'static str) -> DecodeResult<u8> {
        self.buf
            .get(self.pos)
            .copied()
            .ok_or_else(|| self.incomplete(field, 1))
    }

    read_int! {
        /// Consume one byte.
        u8, u8, from_le_bytes;
        /// Consume one signed byte.
        i8, i8, from_le_bytes;
        /// Consume a little-endian `u16` (CIP, EtherNet/IP).
        u16_le, u16, from_le_bytes;
        /// Consume a big-endian `u16` (Modbus, sockaddr).
        u16_be, u16, from_be_bytes;
        /// Consume a little-endian `i16`.
        i16_le, i16, from_le_bytes;
        /// Consume a big-endian `i16`.
        i16_be, i16, from_be_bytes;
        /// Consume a little-endian `u32`.
        u32_le, u32, from_le_bytes;
        /// Consume a big-endian `u32`.
        u32_be, u32, from_be_bytes;
        /// Consume a little-endian `i32`.
        i32_le, i32, from_le_bytes;
        /// Consume a little-endian `u64`.
        u64_le, u64, from_le_bytes;
        /// Consume a little-endian `i64`.
        i64_le, i64, from_le_bytes;
        /// Consume a little-endian IEEE 754 `f32`.
        f32_le, f32, from_le_bytes;
        /// Consume a little-endian IEEE 754 `f64`.
        f64_le, f64, from_le_bytes;
    }

    /// Fail with `Invalid` unless every byte has been read.
    pub fn expect_end(&self, field: &'static str) -> DecodeResult<()> {
        if self.is_empty() {
            Ok(())
        } else {
            Err(self.invalid(
                field,
                format!("{} unexpected trailing byte(s)", self.remaining()),
            ))
        }
    }
}

/// A message that can be written to the wire.
///
/// `encode` writes exactly `encoded_len()` bytes; containers use `encoded_len` to fill
/// in their length fields before writing their contents, so nothing is patched later
/// and any [`BufMut`] (a reused `Vec<u8>` or `BytesMut`) will do.
pub trait Encode {
    /// The number of bytes `encode` will write.
    fn encoded_len(&self) -> usize;

    /// Append the wire form to `out`.
    fn encode<B: BufMut>(&self, out: &mut B);

    /// The wire form as a new vector (convenient in tests and tools; allocates).
    fn to_vec(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.encoded_len());
        self.encode(&mut out);
        out
    }
}

/// How a length-framed protocol finds the end of its next frame.
pub trait Framing {
    /// The total length of the frame at the start of `buf`, from its header alone.
    ///
    /// Returns `Incomplete` while the header itself is not all there, and `Invalid` when
    /// the header can never start a valid frame (the stream is then unusable).
    fn frame_len(&self, buf: &[u8]) -> DecodeResult<usize>;
}

/// A resumable decoder for a length-framed byte stream.
///
/// Feed bytes as they arrive, split anywhere, with [`StreamDecoder::handle_input`]; take
/// whole frames with [`StreamDecoder::next_frame`]. The buffer grows only with bytes
/// actually received, and a header announcing a frame longer than `max_frame` is an
/// error before any of its body is awaited. Errors are sticky: after one, the stream
/// is out of step and every later call returns the same error.
#[derive(Debug)]
pub struct StreamDecoder<F> {
    framing: F,
    buf: BytesMut,
    max_frame: usize,
    error: Option<DecodeError>,
}

impl<F: Framing> StreamDecoder<F> {
    /// A decoder that refuses frames longer than `max_frame` bytes.
    pub fn new(framing: F, max_frame: usize) -> Self {
        StreamDecoder {
            framing,
            buf: BytesMut::new(),
            max_frame,
            error: None,
        }
    }

    /// The framing rules in use.
    pub fn framing(&self) -> &F {
        &self.framing
    }

    /// Append received bytes.
    pub fn handle_input(&mut self, data: &[u8]) {
        if self.error.is_none() {
            self.buf.extend_from_slice(data);
        }
    }

    /// Bytes received but not yet returned as frames.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// The bytes received but not yet returned as frames (a frame's header can be read
    /// here before its body has arrived).
    pub fn pending(&self) -> &[u8] {
        &self.buf
    }

    /// Drop every byte buffered (the stream is being abandoned).
    pub fn clear(&mut self) {
        self.buf = BytesMut::new();
    }

    /// The next complete frame, `Ok(None)` when more input is needed.
    pub fn next_frame(&mut self) -> DecodeResult<Option<Bytes>> {
        match self.next_frame_len() {
            Ok(Some(len)) => Ok(Some(self.buf.split_to(len).freeze())),
            Ok(None) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// How many more bytes are needed before [`StreamDecoder::next_frame`] can return a
    /// frame (0 when one is ready); at least 1 when the header is not yet complete.
    pub fn needed(&self) -> usize {
        if self.error.is_some() {
            return 0;
        }
        match self.framing.frame_len(&self.buf) {
            Ok(len) => len.saturating_sub(self.buf.len()),
            Err(DecodeError::Incomplete { needed, .. }) => needed.max(1),
            Err(_) => 0,
        }
    }

    fn next_frame_len(&mut self) -> DecodeResult<Option<usize>> {
        if let Some(e) = &self.error {
            return Err(e.clone());
        }
        if self.buf.is_empty() {
            return Ok(None);
        }
        let len = match self.framing.frame_len(&self.buf) {
            Ok(len) => len,
            Err(e) if e.is_incomplete() => return Ok(None),
            Err(e) => return Err(self.fail(e)),
        };
        if len > self.max_frame {
            let e = DecodeError::invalid(
                "frame.length",
                0,
                format!(
                    "frame of {len} bytes exceeds the limit of {}",
                    self.max_frame
                ),
            );
            return Err(self.fail(e));
        }
        if self.buf.len() < len {
            return Ok(None);
        }
        Ok(Some(len))
    }

    fn fail(&mut self, e: DecodeError) -> DecodeError {
        self.buf.clear();
        self.error = Some(e.clone());
        e
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reader_reads_both_endians_and_reports_absolute_offsets() {
        let bytes = [0x01, 0x02, 0x03, 0x04, 0x05];
        let mut r = Reader::with_base(&bytes, 10);
        assert_eq!(r.u16_le("t.a").unwrap(), 0x0201);
        assert_eq!(r.u16_be("t.b").unwrap(), 0x0304);
        assert_eq!(r.offset(), 14);
        let err = r.u32_le("t.c").unwrap_err();
        assert_eq!(
            err,
            DecodeError::Incomplete {
                field: "t.c",
                offset: 14,
                needed: 3
            }
        );
        assert_eq!(r.u8("t.d").unwrap(), 5);
        r.expect_end("t.end").unwrap();
    }

    #[test]
    fn sub_reader_keeps_offsets_and_trailing_bytes_are_reported() {
        let bytes = [0u8; 8];
        let mut r = Reader::new(&bytes);
        r.skip(2, "t.skip").unwrap();
        let mut s = r.sub(4, "t.sub").unwrap();
        assert_eq!(s.offset(), 2);
        s.u8("t.x").unwrap();
        let err = s.expect_end("t.sub").unwrap_err();
        assert_eq!(err.offset(), 3);
        assert_eq!(r.remaining(), 2);
    }

    /// A 2-byte big-endian length prefix counting the bytes after it.
    struct Prefixed;
    impl Framing for Prefixed {
        fn frame_len(&self, buf: &[u8]) -> DecodeResult<usize> {
            let mut r = Reader::new(buf);
            let len = r.u16_be("test.length")?;
            if len == 0xFFFF {
                return Err(DecodeError::invalid("test.length", 0, "reserved"));
            }
            Ok(2 + usize::from(len))
        }
    }

    #[test]
    fn stream_decoder_yields_the_same_frames_for_any_split() {
        let stream = [0, 2, 0xAA, 0xBB, 0, 0, 0, 1, 0xCC];
        let expect: Vec<Vec<u8>> = vec![vec![0, 2, 0xAA, 0xBB], vec![0, 0], vec![0, 1, 0xCC]];
        for chunk in 1..=stream.len() {
            let mut d = StreamDecoder::new(Prefixed, 64);
            let mut got = Vec::new();
            for piece in stream.chunks(chunk) {
                d.handle_input(piece);
                while let Some(f) = d.next_frame().unwrap() {
                    got.push(f.to_vec());
                }
            }
            assert_eq!(got, expect, "chunk size {chunk}");
            assert_eq!(d.buffered(), 0);
        }
    }

    #[test]
    fn stream_decoder_says_what_it_needs_and_refuses_huge_frames() {
        let mut d = StreamDecoder::new(Prefixed, 8);
        d.handle_input(&[0]);
        assert_eq!(d.needed(), 1);
        d.handle_input(&[3, 1]);
        assert_eq!(d.needed(), 2);
        assert_eq!(d.next_frame().unwrap(), None);

        let mut d = StreamDecoder::new(Prefixed, 8);
        d.handle_input(&[0x10, 0x00]);
        let err = d.next_frame().unwrap_err();
        assert_eq!(err.field(), "frame.length");
        // Sticky: the stream is out of step for good.
        d.handle_input(&[0, 0]);
        assert_eq!(d.next_frame().unwrap_err(), err);

        let mut d = StreamDecoder::new(Prefixed, 8);
        d.handle_input(&[0xFF, 0xFF]);
        assert_eq!(d.next_frame().unwrap_err().field(), "test.length");
    }
}
