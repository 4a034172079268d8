//! Client operations in cpppo's command-line syntax: what to read, write or get, parsed
//! into a typed [`Operation`] that the client engine ([`crate::enip::client`]) turns into
//! Message Router requests.
//!
//! | text | operation |
//! |---|---|
//! | `SCADA`, `SCADA[3]` | read one element |
//! | `SCADA[1-10]`, `SCADA[1]*10` | read elements 1 to 10 |
//! | `SCADA[0-9]+16` | read 10 elements starting at byte offset 16 (Read Tag Fragmented) |
//! | `SCADA[1-3]=4,5,6` | write INTs (REAL if any value has a `.`) |
//! | `SCADA[1]=(DINT)99` | write with a cast: SINT, INT, DINT, LINT, USINT, UINT, UDINT, ULINT, REAL, LREAL, BOOL, DWORD, SSTRING, STRING |
//! | `TEXT[1]=(SSTRING)"Hello, world!"` | strings, quoted (`"` and `\` escaped with `\`) or bare |
//! | `Program:Main.Tag.member[3]` | symbolic paths, one segment per `.` name |
//! | `@0x1FF/01/0x1A`, `@4/5/{"connection":100}` | numeric addresses ([`crate::cip::epath`] notation) |
//!
//! [`parse_operation`] gives Read/Write Tag operations, as cpppo's `enip_client` does for
//! every path (a numeric address too); [`parse_attribute_operation`] gives cpppo's
//! `getattr` forms: `@class/instance` is Get Attributes All, `@class/instance/attribute`
//! Get Attribute Single, and `...=(USINT)1,2` Set Attribute Single with those bytes.
//!
//! ```
//! use cpppo_core::cip::data::Values;
//! use cpppo_core::cip::operation::{parse_operation, Method};
//!
//! let op = parse_operation("A_Tag[1-2]=(REAL)111,222").unwrap();
//! assert_eq!(op.method, Method::Write);
//! assert_eq!(op.elements, 2);
//! assert_eq!(op.values, Some(Values::Real(vec![111.0, 222.0])));
//! assert_eq!(op.path.to_string(), "A_Tag[1]");
//!
//! let op = parse_operation("SCADA[0-9]+16").unwrap();
//! assert_eq!((op.method, op.elements, op.offset), (Method::Read, 10, Some(16)));
//! ```

use serde::{Deserialize, Serialize};

use crate::cip::data::{DataType, TagType, ValueError, Values};
use crate::cip::epath::{parse_path_with_count, Epath, PathParseError, Segment};

/// What an operation does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    /// Read Tag (0x4C), or Read Tag Fragmented (0x52) when the data does not fit one
    /// reply or an offset is given.
    Read,
    /// Write Tag (0x4D), or Write Tag Fragmented (0x53) when the data does not fit one
    /// request or an offset is given.
    Write,
    /// Get Attribute Single (0x0E).
    GetAttributeSingle,
    /// Set Attribute Single (0x10), with the encoded values as its data.
    SetAttributeSingle,
    /// Get Attributes All (0x01).
    GetAttributesAll,
    /// The tag list: Get Instance Attribute List (0x55) to the Symbol object (0x6B) of
    /// the controller or of the program the path names, page after page (each reply with
    /// status 0x06 continues from the last instance + 1).
    ListTags,
    /// A structure's definition: Get Attribute List (0x03) of the Template object (0x6C)
    /// instance, then Template Read (0x4C) page by page.
    ReadTemplate,
}

/// One client operation, as cpppo's `parse_operations` yields it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Operation {
    /// What to do.
    pub method: Method,
    /// The request path (tag name and first element, or a numeric address).
    pub path: Epath<'static>,
    /// Elements to read or write (1 unless a range, a `*count` or several values say
    /// otherwise); unused by the attribute services.
    pub elements: u16,
    /// A byte offset into the tag's data: forces the Fragmented services from there.
    pub offset: Option<u32>,
    /// The values to write or set.
    pub values: Option<Values>,
}

impl Operation {
    /// Read `elements` elements at `path`.
    pub fn read(path: Epath<'static>, elements: u16) -> Self {
        Operation {
            method: Method::Read,
            path,
            elements,
            offset: None,
            values: None,
        }
    }

    /// Write `values` at `path` (as many elements as there are values).
    pub fn write(path: Epath<'static>, values: Values) -> Self {
        Operation {
            method: Method::Write,
            path,
            elements: u16::try_from(values.len()).unwrap_or(u16::MAX),
            offset: None,
            values: Some(values),
        }
    }

    /// Get Attribute Single at `path` (`@class/instance/attribute`).
    pub fn get_attribute_single(path: Epath<'static>) -> Self {
        Operation {
            method: Method::GetAttributeSingle,
            path,
            elements: 1,
            offset: None,
            values: None,
        }
    }

    /// The tag list of the controller (`program` `None`) or of `Program:X`: names, types
    /// and dimensions of every Symbol instance.
    pub fn list_tags(program: Option<&str>) -> Result<Self, OperationError> {
        let path = match program {
            Some(p) => Epath::from_segments(&[Segment::symbolic(p.to_string())])?,
            None => Epath::EMPTY,
        };
        Ok(Operation {
            method: Method::ListTags,
            ..Operation::get_attribute_single(path)
        })
    }

    /// The definition of the structure whose Template instance is `instance` (a tag's
    /// symbol type gives it: [`crate::cip::logix::SymbolType::template_instance`]).
    pub fn read_template(instance: u16) -> Self {
        let path = Epath::from_segments(&[
            Segment::Class(u32::from(crate::cip::message_router::class::TEMPLATE)),
            Segment::Instance(u32::from(instance)),
        ])
        .unwrap_or(Epath::EMPTY);
        Operation {
            method: Method::ReadTemplate,
            ..Operation::get_attribute_single(path)
        }
    }

    /// Get Attributes All at `path` (`@class/instance`).
    pub fn get_attributes_all(path: Epath<'static>) -> Self {
        Operation {
            method: Method::GetAttributesAll,
            ..Operation::get_attribute_single(path)
        }
    }
}

impl Operation {
    /// The path as cpppo's client reports it (its `format_path`): the tag (symbolic names
    /// joined by `.`, or `@0x%04X/instance/attribute` for a numeric address) and the
    /// trailing element index, if any. cpppo prints `"%20s[%3d-%-3d]+%3d"` from these,
    /// the element count and the offset.
    ///
    /// ```
    /// use cpppo_core::cip::operation::parse_operation;
    ///
    /// let op = parse_operation("Program:Main.Tag[3]").unwrap();
    /// assert_eq!(op.tag_and_element(), ("Program:Main.Tag".to_string(), Some(3)));
    /// let op = parse_operation("@0x1FF/1/0x1A").unwrap();
    /// assert_eq!(op.tag_and_element(), ("@0x01FF/1/26".to_string(), None));
    /// ```
    pub fn tag_and_element(&self) -> (String, Option<u32>) {
        let Ok(mut segs) = self.path.to_segments() else {
            return (self.path.to_string(), None);
        };
        let element = match segs.last() {
            Some(Segment::Element(e)) => Some(*e),
            _ => None,
        };
        if element.is_some() {
            segs.pop();
        }
        let names: Option<Vec<&str>> = segs
            .iter()
            .map(|s| match s {
                Segment::Symbolic(name) => Some(name.as_ref()),
                _ => None,
            })
            .collect();
        let tag = match (names, segs.as_slice()) {
            (Some(names), _) if !names.is_empty() => names.join("."),
            (_, [Segment::Class(c), rest @ ..])
                if rest.len() <= 2
                    && rest.iter().enumerate().all(|(i, s)| {
                        matches!(
                            (i, s),
                            (0, Segment::Instance(_)) | (1, Segment::Attribute(_))
                        )
                    }) =>
            {
                let mut t = format!("@0x{c:04X}");
                for s in rest {
                    if let Segment::Instance(n) | Segment::Attribute(n) = s {
                        t.push_str(&format!("/{n}"));
                    }
                }
                t
            }
            _ => crate::cip::epath::DisplaySegments(&segs).to_string(),
        };
        (tag, element)
    }
}

/// Why an operation's text was not accepted. `at` is a byte offset into the text.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum OperationError {
    /// Nothing to do.
    #[error("empty operation")]
    Empty,
    /// The path part is not cpppo path notation.
    #[error("path: {0}")]
    Path(#[from] PathParseError),
    /// `+offset` that is not a number.
    #[error("at {at}: invalid byte offset {text:?}")]
    BadOffset {
        /// Byte offset in the text.
        at: usize,
        /// The offset's text.
        text: String,
    },
    /// A `(TYPE)` cast naming no supported type.
    #[error("at {at}: unknown type {name:?} in cast")]
    UnknownType {
        /// Byte offset in the text.
        at: usize,
        /// The name given.
        name: String,
    },
    /// A value that is not a number (for a numeric type).
    #[error("at {at}: invalid number {text:?}")]
    BadValue {
        /// Byte offset in the text.
        at: usize,
        /// The value's text.
        text: String,
    },
    /// A quoted string without its closing quote.
    #[error("at {at}: unterminated string")]
    UnterminatedString {
        /// Byte offset of the opening quote.
        at: usize,
    },
    /// `=` with no values after it.
    #[error("at {at}: no values to write")]
    NoValues {
        /// Byte offset in the text.
        at: usize,
    },
    /// A range or count that does not match the number of values (cpppo requires them
    /// equal).
    #[error("{elements} element(s) addressed but {values} value(s) given")]
    CountMismatch {
        /// Elements in the range or count.
        elements: u32,
        /// Values given.
        values: usize,
    },
    /// More elements than a request can carry.
    #[error("{0} elements is more than 65535")]
    TooManyElements(u64),
    /// The values do not fit the type.
    #[error("values: {0}")]
    Values(#[from] ValueError),
    /// An attribute operation whose path is not `@class/instance[/attribute]`.
    #[error("an attribute operation needs @class/instance or @class/instance/attribute")]
    NotAnAttribute,
}

/// Find `want` at nesting level 0 (outside `{}`/`[]` and quoted strings), the first or
/// the last occurrence.
fn find_top(text: &str, want: u8, last: bool) -> Option<usize> {
    let mut depth = 0i32;
    let mut quoted = false;
    let mut escaped = false;
    let mut found = None;
    for (i, c) in text.bytes().enumerate() {
        if quoted {
            match c {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => quoted = false,
                _ => {}
            }
            continue;
        }
        match c {
            b'"' => quoted = true,
            b'{' | b'[' => depth += 1,
            b'}' | b']' => depth -= 1,
            _ if c == want && depth == 0 => {
                found = Some(i);
                if !last {
                    return found;
                }
            }
            _ => {}
        }
    }
    found
}

/// A path's segments, the element count it gives (`[a-b]` or `*n`) and its `+offset`.
type Target = (Vec<Segment<'static>>, Option<u32>, Option<u32>);

/// The path, the element count it gives (`[a-b]` or `*n`) and the `+offset`.
fn parse_target(text: &str) -> Result<Target, OperationError> {
    let (path, offset) = match find_top(text, b'+', true) {
        Some(plus) => {
            let digits = text.get(plus + 1..).unwrap_or_default().trim();
            let offset = crate::cip::epath::parse_number(digits)
                .and_then(|n| u32::try_from(n).ok())
                .ok_or_else(|| OperationError::BadOffset {
                    at: plus + 1,
                    text: digits.to_string(),
                })?;
            (text.get(..plus).unwrap_or_default(), Some(offset))
        }
        None => (text, None),
    };
    let path = path.trim();
    if path.is_empty() {
        return Err(OperationError::Empty);
    }
    let (segs, count) = parse_path_with_count(path)?;
    Ok((segs, count, offset))
}

/// One value's text and where it starts; `quoted` when it was a `"..."` string.
struct Literal {
    text: String,
    at: usize,
    quoted: bool,
}

/// Split `a,"b,c",d` into literals (quotes removed, `\"` and `\\` unescaped).
fn split_values(text: &str, base: usize) -> Result<Vec<Literal>, OperationError> {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    loop {
        while bytes.get(i).is_some_and(u8::is_ascii_whitespace) {
            i += 1;
        }
        let at = base + i;
        if bytes.get(i) == Some(&b'"') {
            let mut s = String::new();
            let mut chars = text.get(i + 1..).unwrap_or_default().char_indices();
            let mut end = None;
            while let Some((j, c)) = chars.next() {
                match c {
                    '\\' => {
                        if let Some((_, next)) = chars.next() {
                            s.push(next);
                        }
                    }
                    '"' => {
                        end = Some(i + 1 + j + 1);
                        break;
                    }
                    c => s.push(c),
                }
            }
            let end = end.ok_or(OperationError::UnterminatedString { at })?;
            out.push(Literal {
                text: s,
                at,
                quoted: true,
            });
            i = end;
            while bytes.get(i).is_some_and(u8::is_ascii_whitespace) {
                i += 1;
            }
        } else {
            let end = text
                .get(i..)
                .and_then(|rest| rest.find(','))
                .map_or(text.len(), |n| i + n);
            out.push(Literal {
                text: text.get(i..end).unwrap_or_default().trim().to_string(),
                at,
                quoted: false,
            });
            i = end;
        }
        match bytes.get(i) {
            None => return Ok(out),
            Some(b',') => i += 1,
            Some(_) => {
                return Err(OperationError::BadValue {
                    at: base + i,
                    text: text.get(i..).unwrap_or_default().to_string(),
                })
            }
        }
    }
}

/// Parse the values after `=`: an optional `(TYPE)` cast, then comma-separated values.
fn parse_values(text: &str, base: usize) -> Result<Values, OperationError> {
    let trimmed = text.trim_start();
    let mut base = base + (text.len() - trimmed.len());
    let mut body = trimmed;
    let mut cast = None;
    if let Some(rest) = trimmed.strip_prefix('(') {
        let close = rest.find(')').ok_or(OperationError::UnknownType {
            at: base,
            name: rest.to_string(),
        })?;
        let name = rest.get(..close).unwrap_or_default().trim();
        let dt: DataType = name.parse().map_err(|_| OperationError::UnknownType {
            at: base + 1,
            name: name.to_string(),
        })?;
        cast = Some(dt);
        body = rest.get(close + 1..).unwrap_or_default();
        base += close + 2;
    }
    if body.trim().is_empty() {
        return Err(OperationError::NoValues { at: base });
    }
    let literals = split_values(body, base)?;
    let is_text = matches!(cast, Some(DataType::SSTRING | DataType::STRING))
        || (cast.is_none() && literals.iter().any(|l| l.quoted));
    if is_text {
        let dt = cast.unwrap_or(DataType::SSTRING);
        let strs: Vec<&str> = literals.iter().map(|l| l.text.as_str()).collect();
        return Ok(Values::from_strs(TagType::from(dt), &strs)?);
    }
    if let Some(bad) = literals.iter().find(|l| l.quoted) {
        return Err(OperationError::BadValue {
            at: bad.at,
            text: bad.text.clone(),
        });
    }
    let real = match cast {
        Some(DataType::REAL | DataType::LREAL) => true,
        Some(_) => false,
        None => literals.iter().any(|l| l.text.contains('.')),
    };
    let dt = cast.unwrap_or(if real { DataType::REAL } else { DataType::INT });
    if real {
        let floats = literals
            .iter()
            .map(|l| {
                l.text.parse::<f64>().map_err(|_| OperationError::BadValue {
                    at: l.at,
                    text: l.text.clone(),
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        return Ok(Values::from_f64s(TagType::from(dt), &floats)?);
    }
    let ints = literals
        .iter()
        .map(|l| {
            parse_int(&l.text, dt).ok_or_else(|| OperationError::BadValue {
                at: l.at,
                text: l.text.clone(),
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Values::from_i64s(TagType::from(dt), &ints)?)
}

/// An integer literal: decimal with an optional sign, `0x`/`0o`/`0b`, or (for BOOL)
/// `true`/`false`.
fn parse_int(text: &str, dt: DataType) -> Option<i64> {
    if dt == DataType::BOOL {
        match text.to_ascii_lowercase().as_str() {
            "true" => return Some(1),
            "false" => return Some(0),
            _ => {}
        }
    }
    if let Some(neg) = text.strip_prefix('-') {
        return crate::cip::epath::parse_number(neg)
            .and_then(|n| i64::try_from(n).ok())
            .map(|n| -n);
    }
    let text = text.strip_prefix('+').unwrap_or(text);
    crate::cip::epath::parse_number(text).and_then(|n| i64::try_from(n).ok())
}

fn elements_u16(n: u64) -> Result<u16, OperationError> {
    u16::try_from(n).map_err(|_| OperationError::TooManyElements(n))
}

/// Parse one operation in cpppo's `enip_client` syntax: a read, or a write when the text
/// has `=values` (see the module documentation).
pub fn parse_operation(text: &str) -> Result<Operation, OperationError> {
    let (target, values) = match find_top(text, b'=', false) {
        Some(eq) => (
            text.get(..eq).unwrap_or_default(),
            Some(parse_values(
                text.get(eq + 1..).unwrap_or_default(),
                eq + 1,
            )?),
        ),
        None => (text, None),
    };
    let (segs, count, offset) = parse_target(target)?;
    let path = Epath::from_segments(&segs)?;
    match values {
        None => Ok(Operation {
            method: Method::Read,
            path,
            elements: elements_u16(u64::from(count.unwrap_or(1)))?,
            offset,
            values: None,
        }),
        Some(values) => {
            if let Some(n) = count {
                if usize::try_from(n).ok() != Some(values.len()) {
                    return Err(OperationError::CountMismatch {
                        elements: n,
                        values: values.len(),
                    });
                }
            }
            Ok(Operation {
                method: Method::Write,
                path,
                elements: elements_u16(values.len() as u64)?,
                offset,
                values: Some(values),
            })
        }
    }
}

/// Parse one operation in cpppo's `getattr` syntax: `@class/instance` is Get Attributes
/// All, `@class/instance/attribute` Get Attribute Single, and with `=values` Set
/// Attribute Single (the values encoded as its data, e.g. `=(USINT)1,2`).
pub fn parse_attribute_operation(text: &str) -> Result<Operation, OperationError> {
    let op = parse_operation(text)?;
    let segs = op
        .path
        .to_segments()
        .map_err(|_| OperationError::NotAnAttribute)?;
    let logical = segs
        .iter()
        .filter(|s| !matches!(s, Segment::Port { .. }))
        .collect::<Vec<_>>();
    let method = match (logical.as_slice(), &op.values) {
        ([Segment::Class(_), Segment::Instance(_)], None) => Method::GetAttributesAll,
        ([Segment::Class(_), Segment::Instance(_), Segment::Attribute(_)], None) => {
            Method::GetAttributeSingle
        }
        ([Segment::Class(_), Segment::Instance(_), Segment::Attribute(_)], Some(_)) => {
            Method::SetAttributeSingle
        }
        _ => return Err(OperationError::NotAnAttribute),
    };
    Ok(Operation { method, ..op })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cip::data::Text;

    fn segs(op: &Operation) -> Vec<Segment<'static>> {
        op.path
            .to_segments()
            .unwrap()
            .into_iter()
            .map(Segment::into_owned)
            .collect()
    }

    #[test]
    fn reads() {
        let op = parse_operation("SCADA").unwrap();
        assert_eq!(op, Operation::read("SCADA".parse().unwrap(), 1));
        let op = parse_operation("SCADA[3]").unwrap();
        assert_eq!(
            segs(&op),
            vec![Segment::symbolic("SCADA"), Segment::Element(3)]
        );
        assert_eq!(op.elements, 1);
        let op = parse_operation("SCADA[1-10]").unwrap();
        assert_eq!((op.elements, op.offset), (10, None));
        assert_eq!(segs(&op)[1], Segment::Element(1));
        let op = parse_operation("SCADA[2]*5").unwrap();
        assert_eq!(
            (op.elements, segs(&op)[1].clone()),
            (5, Segment::Element(2))
        );
        let op = parse_operation("Tag[0-9]+16").unwrap();
        assert_eq!((op.elements, op.offset), (10, Some(16)));
        let op = parse_operation("Program:Main.Tag.member[3]").unwrap();
        assert_eq!(
            segs(&op),
            vec![
                Segment::symbolic("Program:Main"),
                Segment::symbolic("Tag"),
                Segment::symbolic("member"),
                Segment::Element(3)
            ]
        );
        let op = parse_operation("@0x1FF/01/0x1A").unwrap();
        assert_eq!(
            segs(&op),
            vec![
                Segment::Class(0x1FF),
                Segment::Instance(1),
                Segment::Attribute(0x1A)
            ]
        );
        let op = parse_operation(r#"@4/5/{"connection":100}"#).unwrap();
        assert_eq!(
            segs(&op),
            vec![
                Segment::Class(4),
                Segment::Instance(5),
                Segment::ConnectionPoint(100)
            ]
        );
        let op = parse_operation(r#"@{"port":1,"link":0}/2/1"#).unwrap();
        assert_eq!(
            segs(&op),
            vec![Segment::port(1, 0), Segment::Class(2), Segment::Instance(1)]
        );
    }

    #[test]
    fn writes_and_casts() {
        let op = parse_operation("SCADA[1-3]=4,5,6").unwrap();
        assert_eq!(op.method, Method::Write);
        assert_eq!(op.values, Some(Values::Int(vec![4, 5, 6])));
        assert_eq!(op.elements, 3);
        let op = parse_operation("SCADA[1-2]=9.9,10").unwrap();
        assert_eq!(op.values, Some(Values::Real(vec![9.9, 10.0])));
        let op = parse_operation("SCADA=1").unwrap();
        assert_eq!(op.values, Some(Values::Int(vec![1])));
        let op = parse_operation("Tag[0-5]+16=(DINT)4,5,6,7,8,-9").unwrap();
        assert_eq!(op.values, Some(Values::Dint(vec![4, 5, 6, 7, 8, -9])));
        assert_eq!(op.offset, Some(16));
        for (cast, expect) in [
            ("SINT", Values::Sint(vec![1, 2])),
            ("INT", Values::Int(vec![1, 2])),
            ("DINT", Values::Dint(vec![1, 2])),
            ("LINT", Values::Lint(vec![1, 2])),
            ("REAL", Values::Real(vec![1.0, 2.0])),
            ("LREAL", Values::Lreal(vec![1.0, 2.0])),
            ("BOOL", Values::Bool(vec![true, false])),
        ] {
            let text = if cast == "BOOL" {
                format!("T[0-1]=({cast})1,false")
            } else {
                format!("T[0-1]=({cast})1,2")
            };
            assert_eq!(
                parse_operation(&text).unwrap().values,
                Some(expect),
                "{text}"
            );
        }
        let op = parse_operation(r#"TEXT[1]=(SSTRING)"Hello, world!""#).unwrap();
        assert_eq!(
            op.values,
            Some(Values::Sstring(vec![Text::from("Hello, world!")]))
        );
        assert_eq!(op.elements, 1);
        let op = parse_operation(r#"TEXT[0-1]=(STRING)a,"b\"c""#).unwrap();
        assert_eq!(
            op.values,
            Some(Values::String(vec![Text::from("a"), Text::from("b\"c")]))
        );
        // An '=' inside a JSON segment or a quoted string is not the assignment.
        let op = parse_operation(r#"@{"symbolic":"a"}=(SSTRING)"x=y""#).unwrap();
        assert_eq!(op.values, Some(Values::Sstring(vec![Text::from("x=y")])));
    }

    #[test]
    fn errors_are_typed() {
        assert_eq!(parse_operation(""), Err(OperationError::Empty));
        assert!(matches!(
            parse_operation("Tag[1"),
            Err(OperationError::Path(_))
        ));
        assert!(matches!(
            parse_operation("Tag+x"),
            Err(OperationError::BadOffset { at: 4, .. })
        ));
        assert!(matches!(
            parse_operation("Tag=(FOO)1"),
            Err(OperationError::UnknownType { at: 5, .. })
        ));
        assert!(matches!(
            parse_operation("Tag=1,x"),
            Err(OperationError::BadValue { at: 6, .. })
        ));
        assert_eq!(
            parse_operation("Tag[0-2]=1,2"),
            Err(OperationError::CountMismatch {
                elements: 3,
                values: 2
            })
        );
        assert!(matches!(
            parse_operation("Tag=(SINT)300"),
            Err(OperationError::Values(_))
        ));
        assert!(matches!(
            parse_operation(r#"Tag=(SSTRING)"abc"#),
            Err(OperationError::UnterminatedString { at: 13 })
        ));
        assert!(matches!(
            parse_operation("Tag="),
            Err(OperationError::NoValues { .. })
        ));
        assert!(matches!(
            parse_operation("Tag[0-70000]"),
            Err(OperationError::TooManyElements(70001))
        ));
    }

    #[test]
    fn attribute_forms() {
        let op = parse_attribute_operation("@1/1").unwrap();
        assert_eq!(op.method, Method::GetAttributesAll);
        let op = parse_attribute_operation("@1/1/7").unwrap();
        assert_eq!(op.method, Method::GetAttributeSingle);
        let op = parse_attribute_operation("@0x8B/1/6=(ULINT)5").unwrap();
        assert_eq!(op.method, Method::SetAttributeSingle);
        assert_eq!(op.values, Some(Values::Ulint(vec![5])));
        assert_eq!(
            parse_attribute_operation("SCADA"),
            Err(OperationError::NotAnAttribute)
        );
    }

    #[test]
    fn serde_round_trip() {
        let op = parse_operation("SCADA[1-3]=4,5,6").unwrap();
        let json = serde_json::to_string(&op).unwrap();
        assert_eq!(serde_json::from_str::<Operation>(&json).unwrap(), op);
    }
}
