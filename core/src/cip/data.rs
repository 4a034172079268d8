//! CIP elementary data types as Logix uses them, the tag type that Read/Write Tag
//! services carry (an elementary type code, or `0xA0 0x02` with a structure handle), and
//! [`Values`]: a typed array of tag data, decoded from and encoded to its wire bytes.
//!
//! All values are little-endian. Decisions:
//! - **BOOL** is one byte; any nonzero byte decodes as `true`; `true` encodes as `0xFF`, as
//!   Logix, pycomm3 and cpppo write it.
//! - **STRING** (`0xD0`) is a UINT length then that many bytes, with *no* pad byte (CIP
//!   Vol 1 C-6.1 and pycomm3; cpppo pads odd lengths to a word).
//! - **SSTRING** (`0xDA`) is a USINT length then the bytes.
//! - The Logix **STRING** structure (handle `0x0FCE`) is `LEN: DINT`, `DATA: SINT[82]`
//!   and 2 pad bytes: 88 bytes per element.
//! - String contents are bytes ([`Text`]), shown as Latin-1 text (each byte one
//!   character), so any byte string survives a round trip through JSON.
//! - Other structures are kept as raw bytes with their handle.

use serde::{Deserialize, Serialize};

use crate::wire::{DecodeError, DecodeResult, Encode, Reader};
use bytes::BufMut;

/// Type code that introduces a structure type in a Read/Write Tag service (followed by
/// the 16-bit structure handle; the whole tag type is then 4 bytes, `A0 02 hh hh`).
pub const STRUCTURE_TYPE: u8 = 0xA0;
/// The length byte after [`STRUCTURE_TYPE`]: a 2-byte structure handle follows.
pub const STRUCTURE_HANDLE_LEN: u8 = 0x02;
/// Structure handle of the Logix built-in `STRING` (`LEN: DINT`, `DATA: SINT[82]`).
pub const LOGIX_STRING_HANDLE: u16 = 0x0FCE;
/// Number of characters in a Logix built-in `STRING`'s `DATA` member.
pub const LOGIX_STRING_CAPACITY: usize = 82;
/// Encoded size of one Logix built-in `STRING`: `LEN` (4), `DATA` (82), pad (2).
pub const LOGIX_STRING_SIZE: usize = 88;

macro_rules! data_types {
    ($($(#[$doc:meta])* $name:ident = $code:literal, $size:expr;)*) => {
        /// A CIP elementary data type, by its type code (CIP Vol 1, C-6.1).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[allow(clippy::upper_case_acronyms)]
        pub enum DataType {
            $($(#[$doc])* $name,)*
        }

        impl DataType {
            /// Every elementary type this crate knows.
            pub const ALL: &'static [DataType] = &[$(DataType::$name,)*];

            /// The 16-bit type code.
            pub const fn code(self) -> u16 {
                match self { $(DataType::$name => $code,)* }
            }

            /// The type with this code, if it is one this crate knows.
            pub const fn from_code(code: u16) -> Option<DataType> {
                match code { $($code => Some(DataType::$name),)* _ => None }
            }

            /// The fixed encoded size of one element, `None` for variable-length strings.
            pub const fn size(self) -> Option<usize> {
                match self { $(DataType::$name => $size,)* }
            }

            /// The type's name as Logix and cpppo spell it (`"DINT"`).
            pub const fn name(self) -> &'static str {
                match self { $(DataType::$name => stringify!($name),)* }
            }
        }
    };
}

data_types! {
    /// Boolean, one byte (0 or 0xFF on the wire from Logix; nonzero is true).
    BOOL = 0x00C1, Some(1);
    /// Signed 8-bit integer.
    SINT = 0x00C2, Some(1);
    /// Signed 16-bit integer.
    INT = 0x00C3, Some(2);
    /// Signed 32-bit integer.
    DINT = 0x00C4, Some(4);
    /// Signed 64-bit integer.
    LINT = 0x00C5, Some(8);
    /// Unsigned 8-bit integer.
    USINT = 0x00C6, Some(1);
    /// Unsigned 16-bit integer.
    UINT = 0x00C7, Some(2);
    /// Unsigned 32-bit integer.
    UDINT = 0x00C8, Some(4);
    /// Unsigned 64-bit integer.
    ULINT = 0x00C9, Some(8);
    /// IEEE 754 single precision.
    REAL = 0x00CA, Some(4);
    /// IEEE 754 double precision.
    LREAL = 0x00CB, Some(8);
    /// CIP STRING: UINT length then that many bytes.
    STRING = 0x00D0, None;
    /// 32-bit bit string (Logix BOOL arrays are carried as DWORDs).
    DWORD = 0x00D3, Some(4);
    /// Short string: USINT length then that many bytes.
    SSTRING = 0x00DA, None;
}

impl std::fmt::Display for DataType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for DataType {
    type Err = String;

    /// Parse a type name as written on cpppo's command line (`INT`, case-insensitive).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        DataType::ALL
            .iter()
            .copied()
            .find(|t| t.name().eq_ignore_ascii_case(s))
            .ok_or_else(|| format!("unknown CIP data type {s:?}"))
    }
}

/// The type field of a Read/Write Tag service: an elementary type, or a structure
/// (`0xA0`, `0x02`, then the structure handle).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum TagType {
    /// An elementary type, carried as its 16-bit code. Codes this crate does not know
    /// are kept as they are, so a reply can pass through unchanged.
    Elementary(u16),
    /// A structure, identified by its template's structure handle (CRC).
    Structure(u16),
}

impl TagType {
    /// The elementary type, if this is one this crate knows.
    pub fn data_type(self) -> Option<DataType> {
        match self {
            TagType::Elementary(code) => DataType::from_code(code),
            TagType::Structure(_) => None,
        }
    }

    /// Decode a tag type (2 bytes, or 4 for a structure).
    pub fn decode(r: &mut Reader<'_>) -> DecodeResult<TagType> {
        let offset = r.offset();
        let first = r.peek_u8("tag_type")?;
        if first == STRUCTURE_TYPE {
            r.u8("tag_type")?;
            let len = r.u8("tag_type.length")?;
            if len != STRUCTURE_HANDLE_LEN {
                return Err(r.invalid_at(
                    "tag_type.length",
                    offset + 1,
                    format!("structure type length {len}, expected 2"),
                ));
            }
            Ok(TagType::Structure(r.u16_le("tag_type.handle")?))
        } else {
            Ok(TagType::Elementary(r.u16_le("tag_type")?))
        }
    }
}

impl From<DataType> for TagType {
    fn from(t: DataType) -> Self {
        TagType::Elementary(t.code())
    }
}

impl Encode for TagType {
    fn encoded_len(&self) -> usize {
        match self {
            TagType::Elementary(_) => 2,
            TagType::Structure(_) => 4,
        }
    }

    fn encode<B: BufMut>(&self, out: &mut B) {
        match *self {
            TagType::Elementary(code) => out.put_u16_le(code),
            TagType::Structure(handle) => {
                out.put_u8(STRUCTURE_TYPE);
                out.put_u8(STRUCTURE_HANDLE_LEN);
                out.put_u16_le(handle);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Values

/// String contents as bytes; serialized as text with one character per byte (Latin-1).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Text(pub Vec<u8>);

impl Text {
    /// Text from a `str` whose characters are all Latin-1 (U+0000..=U+00FF).
    pub fn from_latin1(s: &str) -> Option<Text> {
        s.chars()
            .map(|c| u8::try_from(u32::from(c)).ok())
            .collect::<Option<Vec<u8>>>()
            .map(Text)
    }

    /// The bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl std::fmt::Display for Text {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.iter().try_for_each(|&b| {
            use std::fmt::Write;
            f.write_char(char::from(b))
        })
    }
}

impl From<&str> for Text {
    /// The UTF-8 bytes of `s` (use [`Text::from_latin1`] for one byte per character).
    fn from(s: &str) -> Self {
        Text(s.as_bytes().to_vec())
    }
}

impl Serialize for Text {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Text {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = std::borrow::Cow::<'de, str>::deserialize(d)?;
        Text::from_latin1(&s)
            .ok_or_else(|| serde::de::Error::custom("string has characters beyond U+00FF"))
    }
}

/// How many elements to decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Count {
    /// Exactly this many elements.
    Elements(usize),
    /// Every element in the remaining bytes (which must hold a whole number of them).
    All,
}

/// Why values could not be built from cpppo-style literals.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ValueError {
    /// A number that does not fit the type (no wrapping).
    #[error("value #{index} ({value}) is out of range for {tag_type}")]
    OutOfRange {
        /// The type's name.
        tag_type: String,
        /// Zero-based index of the value.
        index: usize,
        /// The value, as written.
        value: String,
    },
    /// A fractional number for an integer type.
    #[error("value #{index} ({value}) is not an integer, as {tag_type} needs")]
    NotIntegral {
        /// The type's name.
        tag_type: String,
        /// Zero-based index of the value.
        index: usize,
        /// The value.
        value: f64,
    },
    /// Numbers for a string type, or strings for a numeric type.
    #[error("{tag_type} does not take {given}")]
    WrongKind {
        /// The type's name.
        tag_type: String,
        /// What was given ("numbers", "strings").
        given: &'static str,
    },
    /// A string longer than the type holds.
    #[error("string #{index} of {len} bytes is longer than {tag_type} holds ({max})")]
    TooLong {
        /// The type's name.
        tag_type: String,
        /// Zero-based index of the string.
        index: usize,
        /// Its length in bytes.
        len: usize,
        /// The most the type holds.
        max: usize,
    },
    /// A string with characters that are not one byte (beyond U+00FF).
    #[error("string #{index} has characters beyond U+00FF")]
    NotLatin1 {
        /// Zero-based index of the string.
        index: usize,
    },
    /// A type this crate cannot build values for.
    #[error("unsupported tag type {0:?}")]
    Unsupported(TagType),
}

/// A typed array of tag data, as Read Tag replies and Write Tag requests carry it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "values", rename_all = "snake_case")]
pub enum Values {
    /// BOOL.
    Bool(Vec<bool>),
    /// SINT.
    Sint(Vec<i8>),
    /// INT.
    Int(Vec<i16>),
    /// DINT.
    Dint(Vec<i32>),
    /// LINT.
    Lint(Vec<i64>),
    /// USINT.
    Usint(Vec<u8>),
    /// UINT.
    Uint(Vec<u16>),
    /// UDINT.
    Udint(Vec<u32>),
    /// ULINT.
    Ulint(Vec<u64>),
    /// REAL.
    Real(Vec<f32>),
    /// LREAL.
    Lreal(Vec<f64>),
    /// DWORD (32 bits; Logix BOOL arrays).
    Dword(Vec<u32>),
    /// SSTRING (up to 255 bytes each).
    Sstring(Vec<Text>),
    /// CIP STRING (up to 65535 bytes each).
    String(Vec<Text>),
    /// Logix built-in STRING structure (up to 82 bytes each).
    LogixString(Vec<Text>),
    /// Any other structure: its handle and raw bytes (all elements together).
    Structure {
        /// Structure handle (template CRC).
        handle: u16,
        /// The encoded structure bytes.
        data: Vec<u8>,
    },
}

/// Field name of decoded values in errors.
const F_VALUE: &str = "data.value";

/// Read elements with `read` until `count` is met (or the reader is empty for
/// [`Count::All`]), pushing as they are read.
fn read_n<'a, T>(
    r: &mut Reader<'a>,
    count: Count,
    size: Option<usize>,
    mut read: impl FnMut(&mut Reader<'a>) -> DecodeResult<T>,
) -> DecodeResult<Vec<T>> {
    let mut out = Vec::new();
    match count {
        Count::Elements(n) => {
            for _ in 0..n {
                out.push(read(r)?);
            }
        }
        Count::All => {
            if let Some(size) = size.filter(|s| *s > 0) {
                if r.remaining() % size != 0 {
                    return Err(r.invalid(
                        F_VALUE,
                        format!(
                            "{} bytes is not a whole number of {size}-byte elements",
                            r.remaining()
                        ),
                    ));
                }
                out.reserve(r.remaining() / size);
            }
            while !r.is_empty() {
                out.push(read(r)?);
            }
        }
    }
    Ok(out)
}

fn read_text<'a>(r: &mut Reader<'a>, len: usize) -> DecodeResult<Text> {
    Ok(Text(r.take(len, "data.string")?.to_vec()))
}

fn read_logix_string(r: &mut Reader<'_>) -> DecodeResult<Text> {
    let at = r.offset();
    let len = r.i32_le("data.logix_string.length")?;
    let data = r.take(LOGIX_STRING_CAPACITY, "data.logix_string.data")?;
    r.skip(2, "data.logix_string.pad")?;
    let len = usize::try_from(len)
        .ok()
        .filter(|l| *l <= LOGIX_STRING_CAPACITY)
        .ok_or_else(|| {
            DecodeError::invalid(
                "data.logix_string.length",
                at,
                format!("length {len} outside 0..=82"),
            )
        })?;
    Ok(Text(data.get(..len).unwrap_or_default().to_vec()))
}

impl Values {
    /// Decode `count` elements of `tag_type` from `r`. Missing bytes are `Incomplete`
    /// (inside a reply of known length, see [`DecodeError::truncated`]). A structure
    /// other than the Logix STRING takes every remaining byte, whatever `count` says
    /// (its element size is known only from its template).
    pub fn decode(tag_type: TagType, count: Count, r: &mut Reader<'_>) -> DecodeResult<Values> {
        let dt = match tag_type {
            TagType::Structure(LOGIX_STRING_HANDLE) => {
                return read_n(r, count, Some(LOGIX_STRING_SIZE), read_logix_string)
                    .map(Values::LogixString)
            }
            TagType::Structure(handle) => {
                return Ok(Values::Structure {
                    handle,
                    data: r.rest().to_vec(),
                })
            }
            TagType::Elementary(code) => DataType::from_code(code).ok_or_else(|| {
                r.invalid(
                    "data.tag_type",
                    format!("unsupported data type 0x{code:04X}"),
                )
            })?,
        };
        let size = dt.size();
        Ok(match dt {
            DataType::BOOL => Values::Bool(read_n(r, count, size, |r| Ok(r.u8(F_VALUE)? != 0))?),
            DataType::SINT => Values::Sint(read_n(r, count, size, |r| r.i8(F_VALUE))?),
            DataType::INT => Values::Int(read_n(r, count, size, |r| r.i16_le(F_VALUE))?),
            DataType::DINT => Values::Dint(read_n(r, count, size, |r| r.i32_le(F_VALUE))?),
            DataType::LINT => Values::Lint(read_n(r, count, size, |r| r.i64_le(F_VALUE))?),
            DataType::USINT => Values::Usint(read_n(r, count, size, |r| r.u8(F_VALUE))?),
            DataType::UINT => Values::Uint(read_n(r, count, size, |r| r.u16_le(F_VALUE))?),
            DataType::UDINT => Values::Udint(read_n(r, count, size, |r| r.u32_le(F_VALUE))?),
            DataType::ULINT => Values::Ulint(read_n(r, count, size, |r| r.u64_le(F_VALUE))?),
            DataType::REAL => Values::Real(read_n(r, count, size, |r| r.f32_le(F_VALUE))?),
            DataType::LREAL => Values::Lreal(read_n(r, count, size, |r| r.f64_le(F_VALUE))?),
            DataType::DWORD => Values::Dword(read_n(r, count, size, |r| r.u32_le(F_VALUE))?),
            DataType::SSTRING => Values::Sstring(read_n(r, count, None, |r| {
                let n = r.u8("data.string_length")?;
                read_text(r, usize::from(n))
            })?),
            DataType::STRING => Values::String(read_n(r, count, None, |r| {
                let n = r.u16_le("data.string_length")?;
                read_text(r, usize::from(n))
            })?),
        })
    }

    /// The tag type these values are sent with.
    pub fn tag_type(&self) -> TagType {
        let dt = match self {
            Values::Bool(_) => DataType::BOOL,
            Values::Sint(_) => DataType::SINT,
            Values::Int(_) => DataType::INT,
            Values::Dint(_) => DataType::DINT,
            Values::Lint(_) => DataType::LINT,
            Values::Usint(_) => DataType::USINT,
            Values::Uint(_) => DataType::UINT,
            Values::Udint(_) => DataType::UDINT,
            Values::Ulint(_) => DataType::ULINT,
            Values::Real(_) => DataType::REAL,
            Values::Lreal(_) => DataType::LREAL,
            Values::Dword(_) => DataType::DWORD,
            Values::Sstring(_) => DataType::SSTRING,
            Values::String(_) => DataType::STRING,
            Values::LogixString(_) => return TagType::Structure(LOGIX_STRING_HANDLE),
            Values::Structure { handle, .. } => return TagType::Structure(*handle),
        };
        dt.into()
    }

    /// Number of elements (for [`Values::Structure`], the number of bytes).
    pub fn len(&self) -> usize {
        match self {
            Values::Bool(v) => v.len(),
            Values::Sint(v) => v.len(),
            Values::Int(v) => v.len(),
            Values::Dint(v) => v.len(),
            Values::Lint(v) => v.len(),
            Values::Usint(v) => v.len(),
            Values::Uint(v) => v.len(),
            Values::Udint(v) => v.len(),
            Values::Ulint(v) => v.len(),
            Values::Real(v) => v.len(),
            Values::Lreal(v) => v.len(),
            Values::Dword(v) => v.len(),
            Values::Sstring(v) | Values::String(v) | Values::LogixString(v) => v.len(),
            Values::Structure { data, .. } => data.len(),
        }
    }

    /// True when there are no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Check that every string fits its type; [`Encode`] truncates those that do not.
    pub fn check(&self) -> Result<(), ValueError> {
        let (texts, max) = match self {
            Values::Sstring(v) => (v, 255),
            Values::String(v) => (v, 65535),
            Values::LogixString(v) => (v, LOGIX_STRING_CAPACITY),
            _ => return Ok(()),
        };
        match texts.iter().position(|t| t.0.len() > max) {
            Some(index) => Err(ValueError::TooLong {
                tag_type: type_name(self.tag_type()),
                index,
                len: texts.get(index).map_or(0, |t| t.0.len()),
                max,
            }),
            None => Ok(()),
        }
    }

    /// Build values of `tag_type` from integers, as cpppo's `Tag=(DINT)1,2,3` gives
    /// them: a value outside the type's range is an error, not a wrap. REAL and LREAL
    /// take integers too (rounded to the nearest float).
    pub fn from_i64s(tag_type: impl Into<TagType>, values: &[i64]) -> Result<Values, ValueError> {
        let tag_type = tag_type.into();
        let dt = numeric_type(tag_type, "numbers")?;
        let range = |index: usize, v: &i64| ValueError::OutOfRange {
            tag_type: dt.name().to_string(),
            index,
            value: v.to_string(),
        };
        macro_rules! ints {
            ($variant:ident, $ty:ty) => {
                Values::$variant(
                    values
                        .iter()
                        .enumerate()
                        .map(|(i, v)| <$ty>::try_from(*v).map_err(|_| range(i, v)))
                        .collect::<Result<_, _>>()?,
                )
            };
        }
        Ok(match dt {
            DataType::BOOL => Values::Bool(
                values
                    .iter()
                    .enumerate()
                    .map(|(i, v)| match v {
                        0 => Ok(false),
                        1 => Ok(true),
                        _ => Err(range(i, v)),
                    })
                    .collect::<Result<_, _>>()?,
            ),
            DataType::SINT => ints!(Sint, i8),
            DataType::INT => ints!(Int, i16),
            DataType::DINT => ints!(Dint, i32),
            DataType::LINT => ints!(Lint, i64),
            DataType::USINT => ints!(Usint, u8),
            DataType::UINT => ints!(Uint, u16),
            DataType::UDINT => ints!(Udint, u32),
            DataType::ULINT => ints!(Ulint, u64),
            DataType::DWORD => ints!(Dword, u32),
            #[allow(clippy::cast_precision_loss)]
            DataType::REAL => Values::Real(values.iter().map(|v| *v as f32).collect()),
            #[allow(clippy::cast_precision_loss)]
            DataType::LREAL => Values::Lreal(values.iter().map(|v| *v as f64).collect()),
            DataType::SSTRING | DataType::STRING => {
                return Err(ValueError::WrongKind {
                    tag_type: dt.name().to_string(),
                    given: "numbers",
                })
            }
        })
    }

    /// Build values of `tag_type` from floats. REAL and LREAL take any value (a finite
    /// value beyond REAL's range is an error); integer types take only whole numbers in
    /// range.
    pub fn from_f64s(tag_type: impl Into<TagType>, values: &[f64]) -> Result<Values, ValueError> {
        let tag_type = tag_type.into();
        let dt = numeric_type(tag_type, "numbers")?;
        match dt {
            DataType::LREAL => Ok(Values::Lreal(values.to_vec())),
            DataType::REAL => values
                .iter()
                .enumerate()
                .map(|(index, v)| {
                    #[allow(clippy::cast_possible_truncation)]
                    let f = *v as f32;
                    if f.is_infinite() && v.is_finite() {
                        Err(ValueError::OutOfRange {
                            tag_type: dt.name().to_string(),
                            index,
                            value: v.to_string(),
                        })
                    } else {
                        Ok(f)
                    }
                })
                .collect::<Result<_, _>>()
                .map(Values::Real),
            _ => {
                let mut ints = Vec::with_capacity(values.len());
                for (index, v) in values.iter().enumerate() {
                    if v.fract() != 0.0 || !v.is_finite() {
                        return Err(ValueError::NotIntegral {
                            tag_type: dt.name().to_string(),
                            index,
                            value: *v,
                        });
                    }
                    // ULINT values above i64::MAX are beyond this path; 2^63 saturates
                    // and is then rejected as out of range for every narrower type.
                    if *v >= 2f64.powi(63) || *v < -(2f64.powi(63)) {
                        return Err(ValueError::OutOfRange {
                            tag_type: dt.name().to_string(),
                            index,
                            value: v.to_string(),
                        });
                    }
                    #[allow(clippy::cast_possible_truncation)]
                    ints.push(*v as i64);
                }
                Values::from_i64s(dt, &ints)
            }
        }
    }

    /// Build string values of `tag_type` (SSTRING, STRING or the Logix STRING
    /// structure). Each character must be one byte (U+0000..=U+00FF) and the string must
    /// fit the type.
    pub fn from_strs(tag_type: impl Into<TagType>, values: &[&str]) -> Result<Values, ValueError> {
        let tag_type = tag_type.into();
        let texts = values
            .iter()
            .enumerate()
            .map(|(index, s)| Text::from_latin1(s).ok_or(ValueError::NotLatin1 { index }))
            .collect::<Result<Vec<_>, _>>()?;
        let v = match tag_type {
            TagType::Structure(LOGIX_STRING_HANDLE) => Values::LogixString(texts),
            TagType::Elementary(c) if c == DataType::SSTRING.code() => Values::Sstring(texts),
            TagType::Elementary(c) if c == DataType::STRING.code() => Values::String(texts),
            other => {
                return Err(ValueError::WrongKind {
                    tag_type: type_name(other),
                    given: "strings",
                })
            }
        };
        v.check()?;
        Ok(v)
    }
}

fn type_name(t: TagType) -> String {
    match t {
        TagType::Structure(LOGIX_STRING_HANDLE) => "STRING (Logix)".to_string(),
        TagType::Structure(h) => format!("structure 0x{h:04X}"),
        TagType::Elementary(c) => DataType::from_code(c)
            .map_or_else(|| format!("type 0x{c:04X}"), |d| d.name().to_string()),
    }
}

fn numeric_type(t: TagType, given: &'static str) -> Result<DataType, ValueError> {
    let wrong = || ValueError::WrongKind {
        tag_type: type_name(t),
        given,
    };
    match t.data_type() {
        Some(DataType::SSTRING | DataType::STRING) => Err(wrong()),
        Some(dt) => Ok(dt),
        None if t == TagType::Structure(LOGIX_STRING_HANDLE) => Err(wrong()),
        None => Err(ValueError::Unsupported(t)),
    }
}

/// The bytes of a string, cut to `max`.
fn capped(t: &Text, max: usize) -> &[u8] {
    t.0.get(..t.0.len().min(max)).unwrap_or_default()
}

impl Encode for Values {
    fn encoded_len(&self) -> usize {
        match self {
            Values::Bool(v) => v.len(),
            Values::Sint(v) => v.len(),
            Values::Usint(v) => v.len(),
            Values::Int(v) => v.len() * 2,
            Values::Uint(v) => v.len() * 2,
            Values::Dint(v) => v.len() * 4,
            Values::Udint(v) | Values::Dword(v) => v.len() * 4,
            Values::Real(v) => v.len() * 4,
            Values::Lint(v) => v.len() * 8,
            Values::Ulint(v) => v.len() * 8,
            Values::Lreal(v) => v.len() * 8,
            Values::Sstring(v) => v.iter().map(|t| 1 + capped(t, 255).len()).sum(),
            Values::String(v) => v.iter().map(|t| 2 + capped(t, 65535).len()).sum(),
            Values::LogixString(v) => v.len() * LOGIX_STRING_SIZE,
            Values::Structure { data, .. } => data.len(),
        }
    }

    fn encode<B: BufMut>(&self, out: &mut B) {
        match self {
            Values::Bool(v) => v.iter().for_each(|b| out.put_u8(if *b { 0xFF } else { 0 })),
            Values::Sint(v) => v.iter().for_each(|x| out.put_i8(*x)),
            Values::Usint(v) => out.put_slice(v),
            Values::Int(v) => v.iter().for_each(|x| out.put_i16_le(*x)),
            Values::Uint(v) => v.iter().for_each(|x| out.put_u16_le(*x)),
            Values::Dint(v) => v.iter().for_each(|x| out.put_i32_le(*x)),
            Values::Udint(v) | Values::Dword(v) => v.iter().for_each(|x| out.put_u32_le(*x)),
            Values::Real(v) => v.iter().for_each(|x| out.put_f32_le(*x)),
            Values::Lint(v) => v.iter().for_each(|x| out.put_i64_le(*x)),
            Values::Ulint(v) => v.iter().for_each(|x| out.put_u64_le(*x)),
            Values::Lreal(v) => v.iter().for_each(|x| out.put_f64_le(*x)),
            Values::Sstring(v) => v.iter().for_each(|t| {
                let b = capped(t, 255);
                out.put_u8(u8::try_from(b.len()).unwrap_or(u8::MAX));
                out.put_slice(b);
            }),
            Values::String(v) => v.iter().for_each(|t| {
                let b = capped(t, 65535);
                out.put_u16_le(u16::try_from(b.len()).unwrap_or(u16::MAX));
                out.put_slice(b);
            }),
            Values::LogixString(v) => v.iter().for_each(|t| {
                let b = capped(t, LOGIX_STRING_CAPACITY);
                out.put_i32_le(i32::try_from(b.len()).unwrap_or(0));
                out.put_slice(b);
                out.put_bytes(0, LOGIX_STRING_SIZE - 4 - b.len());
            }),
            Values::Structure { data, .. } => out.put_slice(data),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn codes_round_trip_and_names_parse() {
        for &t in DataType::ALL {
            assert_eq!(DataType::from_code(t.code()), Some(t));
            assert_eq!(t.name().to_lowercase().parse::<DataType>(), Ok(t));
        }
        assert_eq!(DataType::REAL.code(), 0xCA);
        assert_eq!(DataType::LINT.size(), Some(8));
        assert!("FLOAT".parse::<DataType>().is_err());
    }

    #[test]
    fn tag_type_wire_forms() {
        let mut r = Reader::new(&[0xC3, 0x00]);
        assert_eq!(TagType::decode(&mut r).unwrap(), DataType::INT.into());
        let mut r = Reader::new(&[0xA0, 0x02, 0xCE, 0x0F]);
        let t = TagType::decode(&mut r).unwrap();
        assert_eq!(t, TagType::Structure(LOGIX_STRING_HANDLE));
        assert_eq!(t.to_vec(), vec![0xA0, 0x02, 0xCE, 0x0F]);
        let mut r = Reader::new(&[0xA0, 0x03, 0xCE, 0x0F]);
        assert_eq!(
            TagType::decode(&mut r).unwrap_err().field(),
            "tag_type.length"
        );
    }

    #[test]
    fn values_from_real_bytes() {
        // BOOL: any nonzero byte is true; true is written as 0xFF.
        let mut r = Reader::new(&[0x00, 0x01, 0xFF]);
        let v = Values::decode(DataType::BOOL.into(), Count::All, &mut r).unwrap();
        assert_eq!(v, Values::Bool(vec![false, true, true]));
        assert_eq!(v.to_vec(), vec![0x00, 0xFF, 0xFF]);

        // DINT 1 and -2, little-endian.
        let bytes = [0x01, 0x00, 0x00, 0x00, 0xFE, 0xFF, 0xFF, 0xFF];
        let v = Values::decode(
            DataType::DINT.into(),
            Count::Elements(2),
            &mut Reader::new(&bytes),
        )
        .unwrap();
        assert_eq!(v, Values::Dint(vec![1, -2]));
        assert_eq!(v.to_vec(), bytes);
        assert_eq!(v.tag_type(), TagType::Elementary(0xC4));

        // REAL 1.0 = 0x3F800000.
        let v = Values::decode(
            DataType::REAL.into(),
            Count::All,
            &mut Reader::new(&[0, 0, 0x80, 0x3F]),
        )
        .unwrap();
        assert_eq!(v, Values::Real(vec![1.0]));

        // SSTRING and CIP STRING (no pad after an odd length).
        let v = Values::decode(
            DataType::SSTRING.into(),
            Count::All,
            &mut Reader::new(b"\x03abc\x00"),
        )
        .unwrap();
        assert_eq!(
            v,
            Values::Sstring(vec![Text(b"abc".to_vec()), Text(vec![])])
        );
        let v = Values::decode(
            DataType::STRING.into(),
            Count::All,
            &mut Reader::new(b"\x03\x00abc"),
        )
        .unwrap();
        assert_eq!(v.to_vec(), b"\x03\x00abc");
    }

    #[test]
    fn logix_string_is_88_bytes() {
        let v = Values::from_strs(TagType::Structure(LOGIX_STRING_HANDLE), &["Hello", ""]).unwrap();
        let bytes = v.to_vec();
        assert_eq!(bytes.len(), 176);
        assert_eq!(&bytes[..9], b"\x05\x00\x00\x00Hello");
        assert!(bytes[9..88].iter().all(|b| *b == 0));
        let mut r = Reader::new(&bytes);
        let back = Values::decode(v.tag_type(), Count::All, &mut r).unwrap();
        assert_eq!(back, v);
        let mut bad = bytes.clone();
        bad[0] = 83;
        let e = Values::decode(v.tag_type(), Count::All, &mut Reader::new(&bad)).unwrap_err();
        assert_eq!((e.field(), e.offset()), ("data.logix_string.length", 0));
        assert!(matches!(
            Values::from_strs(TagType::Structure(LOGIX_STRING_HANDLE), &[&"x".repeat(83)]),
            Err(ValueError::TooLong { max: 82, .. })
        ));
    }

    #[test]
    fn decode_errors() {
        let e = Values::decode(
            DataType::INT.into(),
            Count::All,
            &mut Reader::new(&[1, 2, 3]),
        )
        .unwrap_err();
        assert_eq!(e.field(), "data.value");
        let e = Values::decode(
            DataType::INT.into(),
            Count::Elements(2),
            &mut Reader::new(&[1, 2, 3]),
        )
        .unwrap_err();
        assert!(e.is_incomplete());
        // A huge count allocates nothing up front; it fails at the first missing element.
        let e = Values::decode(
            DataType::DINT.into(),
            Count::Elements(usize::MAX),
            &mut Reader::new(&[]),
        )
        .unwrap_err();
        assert!(e.is_incomplete());
        let e = Values::decode(TagType::Elementary(0xFF), Count::All, &mut Reader::new(&[]))
            .unwrap_err();
        assert_eq!(e.field(), "data.tag_type");
        let v = Values::decode(
            TagType::Structure(0x1234),
            Count::Elements(1),
            &mut Reader::new(&[1, 2]),
        )
        .unwrap();
        assert_eq!(
            v,
            Values::Structure {
                handle: 0x1234,
                data: vec![1, 2]
            }
        );
    }

    #[test]
    fn conversions_are_range_checked() {
        assert_eq!(
            Values::from_i64s(DataType::SINT, &[-128, 127]).unwrap(),
            Values::Sint(vec![-128, 127])
        );
        assert!(matches!(
            Values::from_i64s(DataType::SINT, &[1, 128]),
            Err(ValueError::OutOfRange { index: 1, .. })
        ));
        assert!(Values::from_i64s(DataType::UINT, &[-1]).is_err());
        assert!(Values::from_i64s(DataType::BOOL, &[2]).is_err());
        assert_eq!(
            Values::from_i64s(DataType::BOOL, &[0, 1]).unwrap(),
            Values::Bool(vec![false, true])
        );
        assert!(matches!(
            Values::from_i64s(DataType::STRING, &[1]),
            Err(ValueError::WrongKind { .. })
        ));
        assert_eq!(
            Values::from_f64s(DataType::INT, &[3.0]).unwrap(),
            Values::Int(vec![3])
        );
        assert!(matches!(
            Values::from_f64s(DataType::INT, &[3.5]),
            Err(ValueError::NotIntegral { .. })
        ));
        assert!(Values::from_f64s(DataType::DINT, &[1e12]).is_err());
        assert!(Values::from_f64s(DataType::LINT, &[1e19]).is_err());
        assert!(Values::from_f64s(DataType::REAL, &[1e39]).is_err());
        assert_eq!(
            Values::from_f64s(DataType::REAL, &[1.5]).unwrap(),
            Values::Real(vec![1.5])
        );
        assert!(matches!(
            Values::from_strs(DataType::SSTRING, &["é€"]),
            Err(ValueError::NotLatin1 { index: 0 })
        ));
        assert!(Values::from_strs(DataType::DINT, &["x"]).is_err());
        let v = Values::from_strs(DataType::SSTRING, &["café"]).unwrap();
        assert_eq!(v.to_vec(), b"\x04caf\xE9");
        let json = serde_json::to_string(&v).unwrap();
        assert_eq!(json, r#"{"type":"sstring","values":["café"]}"#);
        assert_eq!(serde_json::from_str::<Values>(&json).unwrap(), v);
    }

    fn arb_values() -> impl Strategy<Value = Values> {
        use proptest::collection::vec;
        let text = || vec(any::<u8>(), 0..30).prop_map(Text);
        prop_oneof![
            vec(any::<bool>(), 0..5).prop_map(Values::Bool),
            vec(any::<i8>(), 0..5).prop_map(Values::Sint),
            vec(any::<i16>(), 0..5).prop_map(Values::Int),
            vec(any::<i32>(), 0..5).prop_map(Values::Dint),
            vec(any::<i64>(), 0..5).prop_map(Values::Lint),
            vec(any::<u8>(), 0..5).prop_map(Values::Usint),
            vec(any::<u16>(), 0..5).prop_map(Values::Uint),
            vec(any::<u32>(), 0..5).prop_map(Values::Udint),
            vec(any::<u64>(), 0..5).prop_map(Values::Ulint),
            vec(any::<u32>(), 0..5).prop_map(Values::Dword),
            vec(-1e30f32..1e30, 0..5).prop_map(Values::Real),
            vec(-1e300f64..1e300, 0..5).prop_map(Values::Lreal),
            vec(text(), 0..4).prop_map(Values::Sstring),
            vec(text(), 0..4).prop_map(Values::String),
            vec(text(), 0..4).prop_map(Values::LogixString),
            (
                any::<u16>().prop_filter("not STRING", |h| *h != LOGIX_STRING_HANDLE),
                vec(any::<u8>(), 0..20)
            )
                .prop_map(|(handle, data)| Values::Structure { handle, data }),
        ]
    }

    proptest! {
        #[test]
        fn values_round_trip(v in arb_values()) {
            let bytes = v.to_vec();
            prop_assert_eq!(bytes.len(), v.encoded_len());
            let count = if matches!(v, Values::Structure { .. }) { Count::All } else { Count::Elements(v.len()) };
            let mut r = Reader::new(&bytes);
            prop_assert_eq!(&Values::decode(v.tag_type(), count, &mut r).unwrap(), &v);
            prop_assert!(r.is_empty());
            let mut r = Reader::new(&bytes);
            prop_assert_eq!(&Values::decode(v.tag_type(), Count::All, &mut r).unwrap(), &v);
            // serde_json's default float parsing is not exact; floats are checked on the wire.
            if !matches!(v, Values::Real(_) | Values::Lreal(_)) {
                let json = serde_json::to_string(&v).unwrap();
                prop_assert_eq!(serde_json::from_str::<Values>(&json).unwrap(), v);
            }
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200), n in 0usize..10) {
            let mut types: Vec<TagType> = DataType::ALL.iter().map(|d| (*d).into()).collect();
            types.push(TagType::Structure(LOGIX_STRING_HANDLE));
            types.push(TagType::Structure(1));
            types.push(TagType::Elementary(0x1234));
            for t in types {
                for count in [Count::All, Count::Elements(n)] {
                    let _ = Values::decode(t, count, &mut Reader::new(&bytes));
                }
            }
        }
    }
}
