//! cpppo's history line format, and the tag I/O records the simulator writes in it.
//!
//! A history file is lines of text:
//!
//! ```text
//! # 2014-07-15 22:03:35.945: Started recording Tag: Tag_Name
//! 2014-07-15 22:03:44.186<TAB>["Tag_Name", [0, 3]]<TAB>{"write": [0, 1, 2, 3]}
//! ```
//!
//! A record is a time stamp, a "serial" (JSON: for tag I/O, the tag's name and its first
//! and last element) and the data (JSON: `{"read": values}` or `{"write": values}`),
//! separated by tabs (`<TAB>` above); `#` lines are comments. JSON is written as Python's `json.dumps`
//! writes it (`", "` and `": "` separators, non-ASCII escaped), so a file reads the same
//! to cpppo's own reader.

use cpppo_core::cip::data::{Count, TagType, Values};
use cpppo_core::controller::TagAccess;
use cpppo_core::modbus::device::Write as ModbusWrite;
use cpppo_core::modbus::numbering::Address as ModbusAddress;
use cpppo_core::wire::Reader;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::time::{Abbreviations, TimeError, Timestamp, Zone};

/// The data key of a read.
pub const KEY_READ: &str = "read";
/// The data key of a write.
pub const KEY_WRITE: &str = "write";
/// The data key of a fragment's byte offset (only when not 0; not written by cpppo).
pub const KEY_OFFSET: &str = "offset";
/// The data key of a BOOL bit member's bit number (not written by cpppo).
pub const KEY_BIT: &str = "bit";
/// The data key of the byte offset of a structure member inside its tag (not written by
/// cpppo, which has no structures).
pub const KEY_MEMBER_AT: &str = "member_at";
/// The field separator of a record line.
pub const SEPARATOR: char = '\t';
/// What starts a comment line.
pub const COMMENT: char = '#';

/// Why a history line could not be read.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RecordError {
    /// The time stamp is bad.
    #[error(transparent)]
    Time(#[from] TimeError),
    /// No serial JSON after the time stamp.
    #[error("no serial after the time stamp (expected <time>\\t<serial JSON>\\t<data JSON>)")]
    NoSerial,
    /// The serial or data is not JSON.
    #[error("{field} is not JSON: {why}")]
    Json {
        /// `serial` or `data`.
        field: &'static str,
        /// serde_json's message.
        why: String,
    },
}

/// One record: when, what (the serial) and the data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// When it happened.
    pub when: Timestamp,
    /// What it is about: `["Tag_Name", [first, last]]` for tag I/O.
    pub serial: Value,
    /// The data: `{"read": values}` or `{"write": values}` for tag I/O.
    pub data: Value,
}

/// One line of a history file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Line {
    /// A record.
    Record(Record),
    /// A comment: the text after `#` (and one space).
    Comment(String),
    /// An empty line.
    Blank,
}

impl Line {
    /// Read one line (without its newline); times without a zone term are in `zone`.
    pub fn parse(
        text: &str,
        zone: &Zone,
        abbreviations: &Abbreviations,
    ) -> Result<Line, RecordError> {
        let text = text.trim();
        if text.is_empty() {
            return Ok(Line::Blank);
        }
        if let Some(comment) = text.strip_prefix(COMMENT) {
            return Ok(Line::Comment(
                comment.strip_prefix(' ').unwrap_or(comment).to_string(),
            ));
        }
        // cpppo separates the fields by tabs; accept spaces too (as the READMEs show
        // them): the serial starts at the first JSON opening after the time stamp.
        let (time, rest) = match text.split_once(SEPARATOR) {
            Some((time, rest)) => (time, rest),
            None => {
                let at = text.find(['[', '{', '"']).ok_or(RecordError::NoSerial)?;
                (
                    text.get(..at).unwrap_or_default(),
                    text.get(at..).unwrap_or_default(),
                )
            }
        };
        let when = Timestamp::parse(time.trim(), zone, abbreviations)?;
        let mut stream = serde_json::Deserializer::from_str(rest).into_iter::<Value>();
        let serial = match stream.next() {
            Some(Ok(v)) => v,
            Some(Err(e)) => {
                return Err(RecordError::Json {
                    field: "serial",
                    why: e.to_string(),
                })
            }
            None => return Err(RecordError::NoSerial),
        };
        let data_text = rest.get(stream.byte_offset()..).unwrap_or_default().trim();
        let data =
            if data_text.is_empty() {
                Value::Null
            } else {
                match serde_json::from_str(data_text) {
                    Ok(v) => v,
                    // Python's json writes NaN and Infinity, which JSON lacks: read them as null.
                    Err(e) => serde_json::from_str(&python_non_finite_as_null(data_text)).map_err(
                        |_| RecordError::Json {
                            field: "data",
                            why: e.to_string(),
                        },
                    )?,
                }
            };
        Ok(Line::Record(Record { when, serial, data }))
    }
}

/// `text` with Python's `NaN`, `Infinity` and `-Infinity` (outside strings) as `null`.
fn python_non_finite_as_null(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut in_string = false;
    let mut escaped = false;
    let mut rest = text;
    while let Some(c) = rest.chars().next() {
        if in_string {
            in_string = escaped || c != '"';
            escaped = !escaped && c == '\\';
        } else if c == '"' {
            in_string = true;
        } else if let Some(token) = ["-Infinity", "Infinity", "NaN"]
            .iter()
            .find(|t| rest.starts_with(**t))
        {
            out.push_str("null");
            rest = rest.get(token.len()..).unwrap_or_default();
            continue;
        }
        out.push(c);
        rest = rest.get(c.len_utf8()..).unwrap_or_default();
    }
    out
}

impl Record {
    /// The line (without newline): the time in `zone` to `digits` sub-second digits, then
    /// the serial and data as Python's JSON, tab separated.
    pub fn render(&self, zone: &Zone, digits: u8) -> String {
        format!(
            "{}{SEPARATOR}{}{SEPARATOR}{}",
            self.when.render(zone, digits),
            python_json(&self.serial),
            python_json(&self.data)
        )
    }

    /// The tag I/O this record describes, if it is one (`["Tag", [first, last]]` with a
    /// `read` or `write`).
    pub fn tag_io(&self) -> Option<TagIo> {
        let serial = self.serial.as_array()?;
        let tag = serial.first()?.as_str()?.to_string();
        let range = serial.get(1)?.as_array()?;
        let first = range.first()?.as_u64()?;
        let last = range.get(1)?.as_u64()?;
        let data = self.data.as_object()?;
        let (access, values) = match (data.get(KEY_WRITE), data.get(KEY_READ)) {
            (Some(v), _) => (Access::Write, v.clone()),
            (None, Some(v)) => (Access::Read, v.clone()),
            (None, None) => return None,
        };
        let number = |key: &str| data.get(key).and_then(Value::as_u64);
        Some(TagIo {
            tag,
            first,
            last,
            access,
            values,
            offset: number(KEY_OFFSET).unwrap_or(0),
            bit: number(KEY_BIT).and_then(|b| u8::try_from(b).ok()),
            member_at: number(KEY_MEMBER_AT).unwrap_or(0),
        })
    }
}

/// A read or a write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Access {
    /// A read (Read Tag, Read Tag Fragmented).
    Read,
    /// A write (Write Tag, Write Tag Fragmented, Read-Modify-Write Tag).
    Write,
}

/// One tag read or write, as a history record describes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TagIo {
    /// The tag's full name (`NAME` or `Program:X.NAME`).
    pub tag: String,
    /// The first element.
    pub first: u64,
    /// The last element (inclusive, as cpppo records it).
    pub last: u64,
    /// Read or write.
    pub access: Access,
    /// The values as JSON (a list; a structure is `{"handle": h, "data": [bytes]}`).
    pub values: Value,
    /// Byte offset of a fragment inside the transfer (0 for whole transfers).
    pub offset: u64,
    /// The bit of a BOOL bit member.
    pub bit: Option<u8>,
    /// The byte offset of the structure member accessed inside the tag (0: the tag itself).
    pub member_at: u64,
}

impl TagIo {
    /// What a controller hook was told, as tag I/O: element range from the target (and
    /// the fragment's offset), values decoded from the bytes.
    pub fn from_access(access: Access, a: &TagAccess<'_>) -> TagIo {
        let index = a.target.index as u64;
        let size = a
            .tag_type
            .data_type()
            .and_then(|d| d.size())
            .filter(|s| *s > 0 && a.target.bit.is_none());
        // A fragment (or a partial read) of atomic elements names the elements it
        // carries; other fragments keep their byte offset.
        let (first, n, count, offset) = match size {
            Some(size) if a.offset > 0 || a.data.len() < a.elements * size => {
                let n = a.data.len() / size;
                (index + (a.offset / size) as u64, n, Count::Elements(n), 0)
            }
            None if a.offset > 0 => (index, a.elements, Count::All, a.offset as u64),
            _ => (index, a.elements, Count::Elements(a.elements), 0),
        };
        let last = first + n.max(1) as u64 - 1;
        TagIo {
            tag: a.tag.to_string(),
            first,
            last,
            access,
            values: values_json(a.tag_type, count, a.data),
            offset,
            bit: a.target.bit,
            member_at: a.target.base as u64,
        }
    }

    /// The record of this I/O at `when`.
    pub fn record(&self, when: Timestamp) -> Record {
        let key = match self.access {
            Access::Read => KEY_READ,
            Access::Write => KEY_WRITE,
        };
        let mut data = serde_json::Map::new();
        data.insert(key.to_string(), self.values.clone());
        if self.offset > 0 {
            data.insert(KEY_OFFSET.to_string(), self.offset.into());
        }
        if let Some(bit) = self.bit {
            data.insert(KEY_BIT.to_string(), bit.into());
        }
        if self.member_at > 0 {
            data.insert(KEY_MEMBER_AT.to_string(), self.member_at.into());
        }
        Record {
            when,
            serial: Value::Array(vec![
                Value::String(self.tag.clone()),
                Value::Array(vec![self.first.into(), self.last.into()]),
            ]),
            data: Value::Object(data),
        }
    }
}

/// The record of a Modbus write at `when`: `[unit, [first, last]]` in Modicon numbers
/// (`[1, [40001, 40003]]`) and `{"write": [values]}`. The serial's number (not a tag
/// name) keeps it apart from tag I/O.
pub fn modbus_write_record(when: Timestamp, write: &ModbusWrite) -> Record {
    let first = ModbusAddress {
        table: write.table,
        address: write.address,
    };
    let count = u16::try_from(write.values.len()).unwrap_or(u16::MAX);
    let last = ModbusAddress {
        address: write.address.saturating_add(count.saturating_sub(1)),
        ..first
    };
    let values: Vec<Value> = write.values.iter().map(|v| Value::from(*v)).collect();
    let mut data = serde_json::Map::new();
    data.insert(KEY_WRITE.to_string(), Value::Array(values));
    Record {
        when,
        serial: Value::Array(vec![
            write.unit.into(),
            Value::Array(vec![first.modicon().into(), last.modicon().into()]),
        ]),
        data: Value::Object(data),
    }
}

/// The values in `data` as JSON: a list of numbers, booleans or strings; a structure's
/// handle and bytes; the bytes themselves if they do not decode.
pub fn values_json(tag_type: TagType, count: Count, data: &[u8]) -> Value {
    let decoded = Values::decode(tag_type, count, &mut Reader::new(data))
        .ok()
        .and_then(|v| serde_json::to_value(v).ok())
        .and_then(|v| v.get("values").cloned());
    decoded.unwrap_or_else(|| Value::Array(data.iter().map(|b| Value::from(*b)).collect()))
}

/// The recorded `values` (JSON) as [`Values`] of the type of `like` (what a read of the
/// tag answered): cpppo's records carry no type, the tag has one.
pub fn values_like(like: &Values, values: &Value) -> Result<Values, String> {
    // Floats that are not numbers are recorded as `null` (JSON has no NaN).
    if matches!(like, Values::Real(_) | Values::Lreal(_)) {
        if let Some(items) = values.as_array() {
            let floats: Option<Vec<f64>> = items
                .iter()
                .map(|v| {
                    if v.is_null() {
                        Some(f64::NAN)
                    } else {
                        v.as_f64()
                    }
                })
                .collect();
            if let Some(floats) = floats {
                return Values::from_f64s(like.tag_type(), &floats).map_err(|e| e.to_string());
            }
        }
    }
    let mut typed = serde_json::to_value(like).map_err(|e| e.to_string())?;
    let kind = typed
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("?")
        .to_string();
    match typed.as_object_mut() {
        Some(object) => {
            object.insert("values".to_string(), values.clone());
        }
        None => return Err("the tag's type has no JSON form".to_string()),
    }
    serde_json::from_value(typed)
        .map_err(|e| format!("{} is not {kind} values: {e}", python_json(values)))
}

/// cpppo's per-tag header comment (without the `# `); `when` is the time as shown.
pub fn started_recording(when: &str, tag: &str) -> String {
    format!("{when}: Started recording Tag: {tag}")
}

/// A comment line's text (with the `# `, without newline); line breaks in `text` become
/// spaces so one comment stays one line.
pub fn comment_line(text: &str) -> String {
    let one: String = text
        .chars()
        .map(|c| if c == '\n' || c == '\r' { ' ' } else { c })
        .collect();
    format!("{COMMENT} {one}")
}

/// JSON as Python's `json.dumps` writes it by default: `", "` and `": "` separators, every
/// non-ASCII character escaped.
pub fn python_json(value: &Value) -> String {
    let mut out = Vec::new();
    let mut ser = serde_json::Serializer::with_formatter(&mut out, PythonFormatter);
    // Serializing a Value into memory cannot fail.
    if value.serialize(&mut ser).is_err() {
        return value.to_string();
    }
    String::from_utf8(out).unwrap_or_else(|_| value.to_string())
}

/// Python's item separator, before every item but the first.
fn python_separator<W: ?Sized + std::io::Write>(
    writer: &mut W,
    first: bool,
) -> std::io::Result<()> {
    if first {
        Ok(())
    } else {
        writer.write_all(b", ")
    }
}

/// serde_json formatting in Python's default style.
struct PythonFormatter;

impl serde_json::ser::Formatter for PythonFormatter {
    fn begin_array_value<W: ?Sized + std::io::Write>(
        &mut self,
        writer: &mut W,
        first: bool,
    ) -> std::io::Result<()> {
        python_separator(writer, first)
    }

    fn begin_object_key<W: ?Sized + std::io::Write>(
        &mut self,
        writer: &mut W,
        first: bool,
    ) -> std::io::Result<()> {
        python_separator(writer, first)
    }

    fn begin_object_value<W: ?Sized + std::io::Write>(
        &mut self,
        writer: &mut W,
    ) -> std::io::Result<()> {
        writer.write_all(b": ")
    }

    fn write_string_fragment<W: ?Sized + std::io::Write>(
        &mut self,
        writer: &mut W,
        fragment: &str,
    ) -> std::io::Result<()> {
        for c in fragment.chars() {
            if c.is_ascii() {
                writer.write_all(&[c as u8])?;
            } else {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    write!(writer, "\\u{unit:04x}")?;
                }
            }
        }
        Ok(())
    }
}
