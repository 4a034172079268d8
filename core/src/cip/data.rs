//! CIP elementary data types as Logix uses them, and the tag type that Read/Write Tag
//! services carry (an elementary type code, or `0xA0 0x02` with a structure handle).

use serde::{Deserialize, Serialize};

use crate::wire::{DecodeResult, Encode, Reader};
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
