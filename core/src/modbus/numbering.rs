//! Modicon register numbering as cpppo uses it, and cpppo's register specs.
//!
//! The table is in the leading digit(s) and the one-based register in the rest; the
//! wire address is zero-based (`40001` is holding register address 0):
//!
//! | numbers | table |
//! |---|---|
//! | 1-9999 | coils |
//! | 10001-19999, 100001-165536 | discrete inputs |
//! | 30001-39999, 300001-365536 | input registers |
//! | 40001-99999, 400001-465536 | holding registers |
//!
//! A register spec, as given to cpppo's `modbus_sim.py` (`register_decode`), is
//! `<begin>[-<end>][=<value>[,<value>...]]`: numbers are decimal or `0x` hex; without
//! `-<end>` the range is as long as the values; values are repeated to fill the range,
//! or cut to it; without values every register is 0.
//!
//! ```
//! use cpppo_core::modbus::numbering::{RegisterSpec, Table};
//!
//! let s: RegisterSpec = "40001=1,2,3".parse().unwrap();
//! assert_eq!((s.table, s.address, s.values), (Table::HoldingRegisters, 0, vec![1, 2, 3]));
//! ```

use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The four Modbus data tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Table {
    /// Read/write bits (0xxxx).
    Coils,
    /// Read-only bits (1xxxx).
    DiscreteInputs,
    /// Read-only registers (3xxxx).
    InputRegisters,
    /// Read/write registers (4xxxx).
    HoldingRegisters,
}

/// The Modicon number ranges: (first, last, table), first numbering register 0.
pub const MODICON_RANGES: [(u32, u32, Table); 7] = [
    (1, 9_999, Table::Coils),
    (10_001, 19_999, Table::DiscreteInputs),
    (100_001, 165_536, Table::DiscreteInputs),
    (30_001, 39_999, Table::InputRegisters),
    (300_001, 365_536, Table::InputRegisters),
    (40_001, 99_999, Table::HoldingRegisters),
    (400_001, 465_536, Table::HoldingRegisters),
];

/// A register in one table, with its zero-based wire address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Address {
    /// The table.
    pub table: Table,
    /// Zero-based address on the wire.
    pub address: u16,
}

impl Address {
    /// The register a Modicon number names.
    pub fn from_modicon(number: u32) -> Result<Address, SpecError> {
        MODICON_RANGES
            .iter()
            .find(|(first, last, _)| (*first..=*last).contains(&number))
            .and_then(|(first, _, table)| {
                let address = u16::try_from(number - first).ok()?;
                Some(Address {
                    table: *table,
                    address,
                })
            })
            .ok_or(SpecError::NotARegister(number))
    }

    /// The Modicon number: 5 digits when the register fits them, 6 otherwise.
    pub fn modicon(&self) -> u32 {
        let (short, short_max, long) = match self.table {
            Table::Coils => (1, 9_999, 1),
            Table::DiscreteInputs => (10_001, 19_999, 100_001),
            Table::InputRegisters => (30_001, 39_999, 300_001),
            Table::HoldingRegisters => (40_001, 99_999, 400_001),
        };
        let a = u32::from(self.address);
        if short + a <= short_max {
            short + a
        } else {
            long + a
        }
    }
}

/// Why a register spec could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    /// Nothing to parse.
    #[error("empty register spec")]
    Empty,
    /// A number that does not parse (or overflows).
    #[error("bad number {text:?} at position {position}")]
    BadNumber {
        /// The text.
        text: String,
        /// Its byte position in the spec.
        position: usize,
    },
    /// Something other than what the grammar allows.
    #[error("unexpected {found:?} at position {position}: expected {expected}")]
    Unexpected {
        /// What was found (empty at the end).
        found: String,
        /// Its byte position in the spec.
        position: usize,
        /// What would have been right.
        expected: &'static str,
    },
    /// A number outside every Modicon range.
    #[error("{0} is not a Modbus register number")]
    NotARegister(u32),
    /// The range ends before it begins.
    #[error("range {begin}-{end} ends before it begins")]
    Reversed {
        /// First number.
        begin: u32,
        /// Last number.
        end: u32,
    },
    /// The range crosses from one table (or numbering) into another.
    #[error("range {begin}-{end} is not within one table")]
    MixedTables {
        /// First number.
        begin: u32,
        /// Last number.
        end: u32,
    },
    /// A value that does not fit a register.
    #[error("value {value} at position {position} does not fit 16 bits")]
    ValueOutOfRange {
        /// The value.
        value: u64,
        /// Its byte position in the spec.
        position: usize,
    },
}

/// A parsed register spec: a run of registers in one table and their initial values.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegisterSpec {
    /// The table.
    pub table: Table,
    /// Zero-based wire address of the first register.
    pub address: u16,
    /// One value per register (coils and discrete inputs: non-zero is on).
    pub values: Vec<u16>,
}

impl RegisterSpec {
    /// The registers this spec covers, as zero-based (address, value) pairs.
    pub fn iter(&self) -> impl Iterator<Item = (u16, u16)> + '_ {
        (self.address..=u16::MAX).zip(self.values.iter().copied())
    }
}

struct Lexer<'s> {
    text: &'s str,
    pos: usize,
}

impl<'s> Lexer<'s> {
    fn skip_space(&mut self) {
        let rest = self.text.get(self.pos..).unwrap_or("");
        self.pos += rest.len() - rest.trim_start().len();
    }

    fn number(&mut self) -> Result<(u64, usize), SpecError> {
        self.skip_space();
        let start = self.pos;
        let rest = self.text.get(start..).unwrap_or("");
        let len = rest
            .find(|c: char| !c.is_ascii_alphanumeric())
            .unwrap_or(rest.len());
        let word = rest.get(..len).unwrap_or("");
        if word.is_empty() {
            return Err(self.unexpected("a number"));
        }
        self.pos += len;
        let parsed = match word.strip_prefix("0x").or_else(|| word.strip_prefix("0X")) {
            Some(hex) => u64::from_str_radix(hex, 16),
            None => word.parse::<u64>(),
        };
        parsed
            .map(|v| (v, start))
            .map_err(|_| SpecError::BadNumber {
                text: word.to_string(),
                position: start,
            })
    }

    /// Consume `c` if it is next.
    fn eat(&mut self, c: char) -> bool {
        self.skip_space();
        if self.text.get(self.pos..).is_some_and(|r| r.starts_with(c)) {
            self.pos += c.len_utf8();
            true
        } else {
            false
        }
    }

    fn at_end(&mut self) -> bool {
        self.skip_space();
        self.pos >= self.text.len()
    }

    fn unexpected(&self, expected: &'static str) -> SpecError {
        let found = self
            .text
            .get(self.pos..)
            .and_then(|r| r.chars().next())
            .map(String::from)
            .unwrap_or_default();
        SpecError::Unexpected {
            found,
            position: self.pos,
            expected,
        }
    }
}

fn register_number(v: u64) -> Result<u32, SpecError> {
    u32::try_from(v).map_err(|_| SpecError::NotARegister(u32::MAX))
}

impl FromStr for RegisterSpec {
    type Err = SpecError;

    fn from_str(text: &str) -> Result<Self, SpecError> {
        let mut lx = Lexer { text, pos: 0 };
        if lx.at_end() {
            return Err(SpecError::Empty);
        }
        let begin = register_number(lx.number()?.0)?;
        let mut end = None;
        if lx.eat('-') {
            end = Some(register_number(lx.number()?.0)?);
        }
        let mut values = Vec::new();
        if lx.eat('=') {
            loop {
                let (v, at) = lx.number()?;
                let v = u16::try_from(v).map_err(|_| SpecError::ValueOutOfRange {
                    value: v,
                    position: at,
                })?;
                values.push(v);
                if !lx.eat(',') {
                    break;
                }
            }
        }
        if !lx.at_end() {
            return Err(lx.unexpected(if values.is_empty() && end.is_none() {
                "'-', '=' or the end"
            } else if values.is_empty() {
                "'=' or the end"
            } else {
                "',' or the end"
            }));
        }
        let first = Address::from_modicon(begin)?;
        let end = match end {
            Some(end) => end,
            None => {
                begin.saturating_add(u32::try_from(values.len().max(1) - 1).unwrap_or(u32::MAX))
            }
        };
        if end < begin {
            return Err(SpecError::Reversed { begin, end });
        }
        let last = Address::from_modicon(end).map_err(|_| SpecError::MixedTables { begin, end })?;
        // Same table and same numbering (5 or 6 digits): the addresses span the numbers.
        let span = u32::from(last.address).checked_sub(u32::from(first.address));
        if last.table != first.table || span != Some(end - begin) {
            return Err(SpecError::MixedTables { begin, end });
        }
        let count = usize::try_from(end - begin)
            .unwrap_or(usize::MAX)
            .saturating_add(1);
        if values.is_empty() {
            values.push(0);
        }
        let values = values.iter().copied().cycle().take(count).collect();
        Ok(RegisterSpec {
            table: first.table,
            address: first.address,
            values,
        })
    }
}

/// Parse several specs (as cpppo's `register_definitions` takes them).
pub fn parse_specs<'s>(
    specs: impl IntoIterator<Item = &'s str>,
) -> Result<Vec<RegisterSpec>, SpecError> {
    specs.into_iter().map(str::parse).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn spec(s: &str) -> RegisterSpec {
        s.parse().unwrap()
    }

    #[test]
    fn modicon_numbers() {
        let a = |n| Address::from_modicon(n).unwrap();
        assert_eq!(
            a(1),
            Address {
                table: Table::Coils,
                address: 0
            }
        );
        assert_eq!(a(9_999).address, 9_998);
        assert_eq!(
            a(10_001),
            Address {
                table: Table::DiscreteInputs,
                address: 0
            }
        );
        assert_eq!(
            a(165_536),
            Address {
                table: Table::DiscreteInputs,
                address: 65_535
            }
        );
        assert_eq!(a(30_001).table, Table::InputRegisters);
        assert_eq!(a(365_536).address, 65_535);
        assert_eq!(
            a(40_001),
            Address {
                table: Table::HoldingRegisters,
                address: 0
            }
        );
        assert_eq!(a(99_999).address, 59_998);
        assert_eq!(a(465_536).address, 65_535);
        for bad in [
            0, 10_000, 20_000, 29_999, 40_000, 100_000, 165_537, 300_000, 465_537,
        ] {
            assert_eq!(
                Address::from_modicon(bad),
                Err(SpecError::NotARegister(bad))
            );
        }
        assert_eq!(a(40_001).modicon(), 40_001);
        assert_eq!(a(465_536).modicon(), 465_536);
        assert_eq!(a(400_001).modicon(), 40_001);
    }

    // cpppo bin/modbus_sim.py register_decode / register_definitions behaviour.
    #[test]
    fn cpppo_specs() {
        let s = spec("40001-40100=99");
        assert_eq!(
            (s.table, s.address, s.values.len()),
            (Table::HoldingRegisters, 0, 100)
        );
        assert!(s.values.iter().all(|v| *v == 99));
        assert_eq!(spec("40001=1,2,3").values, [1, 2, 3]);
        let s = spec("1-16=1");
        assert_eq!(
            (s.table, s.address, s.values),
            (Table::Coils, 0, vec![1; 16])
        );
        assert_eq!(spec("40010-40014=1,2").values, [1, 2, 1, 2, 1]);
        assert_eq!(spec("40010-40011=1,2,3").values, [1, 2]);
        assert_eq!(spec("30001").values, [0]);
        assert_eq!(spec("100001-100003").values, [0, 0, 0]);
        assert_eq!(spec(" 400010 = 0x10 , 0xFFFF ").values, [0x10, 0xFFFF]);
        assert_eq!(spec("400010=0x10").address, 9);
        assert_eq!(spec("40001=7").iter().collect::<Vec<_>>(), [(0, 7)]);
        assert_eq!(parse_specs(["1=1", "40001=2"]).unwrap().len(), 2);
    }

    #[test]
    fn malformed_specs() {
        let e = |s: &str| s.parse::<RegisterSpec>().unwrap_err();
        assert_eq!(e(""), SpecError::Empty);
        assert_eq!(
            e("40001=70000"),
            SpecError::ValueOutOfRange {
                value: 70_000,
                position: 6
            }
        );
        assert!(matches!(
            e("4000x"),
            SpecError::BadNumber { position: 0, .. }
        ));
        assert!(matches!(
            e("40001-"),
            SpecError::Unexpected {
                position: 6,
                expected: "a number",
                ..
            }
        ));
        assert!(matches!(e("40001=1,"), SpecError::Unexpected { .. }));
        assert!(matches!(
            e("40001+3"),
            SpecError::Unexpected { position: 5, .. }
        ));
        assert!(matches!(
            e("40001=1;2"),
            SpecError::Unexpected { position: 7, .. }
        ));
        assert_eq!(e("0=1"), SpecError::NotARegister(0));
        assert_eq!(
            e("40010-40001"),
            SpecError::Reversed {
                begin: 40_010,
                end: 40_001
            }
        );
        assert_eq!(
            e("39999-40001"),
            SpecError::MixedTables {
                begin: 39_999,
                end: 40_001
            }
        );
        assert_eq!(
            e("99999-400001"),
            SpecError::MixedTables {
                begin: 99_999,
                end: 400_001
            }
        );
        assert_eq!(
            e("99999=1,2"),
            SpecError::MixedTables {
                begin: 99_999,
                end: 100_000
            }
        );
    }

    proptest! {
        #[test]
        fn modicon_round_trip(n in 0u32..500_000) {
            if let Ok(a) = Address::from_modicon(n) {
                prop_assert_eq!(Address::from_modicon(a.modicon()), Ok(a));
            }
        }

        #[test]
        fn arbitrary_specs_never_panic(s in "[0-9x=,\\- ]{0,24}|\\PC{0,16}") {
            let _ = s.parse::<RegisterSpec>();
        }
    }
}
