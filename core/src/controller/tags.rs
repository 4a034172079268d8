//! The tag database of the simulated Logix controller: tags with their types, array
//! dimensions, Symbol instance ids and values; structure (UDT) definitions with their
//! Template instance ids, handles and member layouts; resolution of a Read/Write Tag
//! request path to the bytes it names.
//!
//! Tags come from three sources:
//! - cpppo's command-line specs, `NAME=TYPE[n]` and `NAME@class/instance/attribute=TYPE[n]`
//!   ([`TagSpec`]), also `Program:X.NAME=TYPE` and multi-dimensional `TYPE[2,3]`;
//! - pycomm3's tag list JSON (`LogixDriver.tags`: a map of name to tag dict, or a list of
//!   them), deserialized into [`TagListEntry`] and loaded with
//!   [`TagDatabase::load_tag_list`];
//! - code: [`TagDatabase::define_structure`] and [`TagDatabase::add`].
//!
//! Storage: every element has a fixed size (a Logix STRING is its 88-byte structure; an
//! SSTRING element keeps a length byte and room for 255 characters, and is sent
//! variable-length on the wire), so element, member and fragment offsets are
//! arithmetic on one byte vector per tag.

use std::borrow::Cow;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use serde::{Deserialize, Serialize};

use crate::cip::data::{
    DataType, TagType, Text, Values, LOGIX_STRING_CAPACITY, LOGIX_STRING_HANDLE, LOGIX_STRING_SIZE,
};
use crate::cip::epath::{parse_number, Segment};
use crate::cip::logix::{SymbolType, TemplateDefinition, TemplateMember};
use crate::cip::message_router::class;
use crate::wire::Encode;

/// Template instance id of the Logix built-in STRING (its structure handle too).
pub const LOGIX_STRING_TEMPLATE: u16 = LOGIX_STRING_HANDLE;
/// The first Template instance id given to user-defined structures (CIP reserves
/// 0x100..=0xEFF for them; pycomm3 treats ids outside as predefined types).
pub const FIRST_USER_TEMPLATE: u16 = 0x0100;
/// The last Template instance id of a user-defined structure.
pub const LAST_USER_TEMPLATE: u16 = 0x0EFF;
/// Storage bytes of one SSTRING element: the length byte and 255 characters.
pub const SSTRING_STORAGE: usize = 256;
/// Bytes a Template definition size (attribute 4, in 32-bit words) counts beyond the
/// definition bytes, which are padded to a whole number of words. The built-in STRING
/// is 15 words for its 39 bytes (40 padded): pycomm3 reads `size * 4 - 21` bytes (39),
/// pylogix `size * 4 - 23` rounded up to a word (40), and both must find the end there.
pub const TEMPLATE_SIZE_OVERHEAD: usize = 20;
/// Prefix of the hidden SINT members that host a structure's BOOL members.
pub const HIDDEN_HOST_PREFIX: &str = "ZZZZZZZZZZ";
/// Symbol Type bit: a structure.
pub const SYMBOL_TYPE_STRUCT: u16 = 0x8000;
/// Symbol Type bit: a system tag (pycomm3 skips these).
pub const SYMBOL_TYPE_SYSTEM: u16 = 0x1000;
/// Symbol Type of a `Program:X` entry in the controller-scope symbol list.
pub const SYMBOL_TYPE_PROGRAM: u16 = 0x1068;
/// Symbol Type shift of the array dimension count (bits 13-14).
pub const SYMBOL_TYPE_DIMS_SHIFT: u16 = 13;
/// Most array dimensions a Logix tag has.
pub const MAX_DIMENSIONS: usize = 3;

/// The type of one element of a tag or structure member.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ElementType {
    /// An elementary type (BOOL..LREAL, DWORD, SSTRING).
    Atomic(DataType),
    /// A structure, by its Template instance id (the Logix STRING is
    /// [`LOGIX_STRING_TEMPLATE`]).
    Structure(u16),
}

impl ElementType {
    /// The Logix built-in STRING.
    pub const LOGIX_STRING: ElementType = ElementType::Structure(LOGIX_STRING_TEMPLATE);
}

/// Why a tag spec, a structure definition or a tag list entry was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TagError {
    /// The spec has no `=TYPE` part.
    #[error("tag spec {spec:?} has no '=TYPE'")]
    MissingType {
        /// The spec.
        spec: String,
    },
    /// An empty name, or one with characters Logix does not allow.
    #[error("invalid tag name {name:?}")]
    BadName {
        /// The name.
        name: String,
    },
    /// A type name that is neither elementary nor a defined structure.
    #[error("unknown data type {name:?}")]
    UnknownType {
        /// The type name.
        name: String,
    },
    /// A type that cannot be a tag (CIP STRING 0xD0: Logix's STRING is the structure).
    #[error("data type {name} cannot be a tag's type")]
    UnsupportedType {
        /// The type name.
        name: String,
    },
    /// A dimension that is not a positive number, or more than three of them.
    #[error("invalid array dimensions {text:?}")]
    BadDimensions {
        /// The text between the brackets.
        text: String,
    },
    /// A `@class/instance/attribute` address that does not parse.
    #[error("invalid CIP address {text:?} (expected @class/instance/attribute)")]
    BadAddress {
        /// The address text.
        text: String,
    },
    /// A tag of this name already exists in its scope.
    #[error("tag {name:?} is defined twice")]
    Duplicate {
        /// The name.
        name: String,
    },
    /// A structure member that does not fit the structure or names an unknown type.
    #[error("structure {structure:?}: {reason}")]
    BadStructure {
        /// The structure's name.
        structure: String,
        /// What is wrong.
        reason: String,
    },
    /// Values that cannot be stored in a tag.
    #[error("tag {name:?}: {reason}")]
    BadValue {
        /// The tag's name.
        name: String,
        /// Why.
        reason: String,
    },
    /// The tag would be larger than this simulator stores.
    #[error("tag {name:?} is too large ({bytes} bytes)")]
    TooLarge {
        /// The name.
        name: String,
        /// Its size.
        bytes: usize,
    },
}

/// The largest tag (in bytes) the database accepts.
pub const MAX_TAG_BYTES: usize = 64 * 1024 * 1024;

/// A parsed tag spec: `[Program:X.]NAME[@class/instance/attribute]=TYPE[d1[,d2[,d3]]]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TagSpec {
    /// The tag's name (without the program prefix).
    pub name: String,
    /// The program scope (`X` of `Program:X.NAME`), if any.
    pub program: Option<String>,
    /// cpppo's numeric address, if given.
    pub address: Option<CipAddress>,
    /// The type name as written (upper-cased for elementary types).
    pub type_name: String,
    /// Array dimensions (empty for a scalar).
    pub dimensions: Vec<u32>,
}

/// A numeric class/instance/attribute address at which a tag is also reachable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct CipAddress {
    /// Class id.
    pub class: u16,
    /// Instance id.
    pub instance: u32,
    /// Attribute id.
    pub attribute: u16,
}

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

impl std::str::FromStr for TagSpec {
    type Err = TagError;

    fn from_str(spec: &str) -> Result<Self, TagError> {
        let (lhs, rhs) = spec.split_once('=').ok_or_else(|| TagError::MissingType {
            spec: spec.to_string(),
        })?;
        let lhs = lhs.trim();
        let (lhs, address) = match lhs.split_once('@') {
            Some((n, a)) => (n, Some(parse_address(a)?)),
            None => (lhs, None),
        };
        let (program, name) = match lhs.strip_prefix("Program:") {
            Some(rest) => match rest.split_once('.') {
                Some((p, n)) => (Some(p.to_string()), n),
                None => {
                    return Err(TagError::BadName {
                        name: lhs.to_string(),
                    })
                }
            },
            None => (None, lhs),
        };
        let bad = |n: &str| TagError::BadName {
            name: n.to_string(),
        };
        if !valid_name(name) {
            return Err(bad(name));
        }
        if let Some(p) = &program {
            if !valid_name(p) {
                return Err(bad(p));
            }
        }
        let rhs = rhs.trim();
        let (type_name, dimensions) = match rhs.split_once('[') {
            Some((t, dims)) => {
                let inner = dims
                    .strip_suffix(']')
                    .ok_or_else(|| TagError::BadDimensions {
                        text: dims.to_string(),
                    })?;
                (t.trim(), parse_dimensions(inner)?)
            }
            None => (rhs, Vec::new()),
        };
        if type_name.is_empty() {
            return Err(TagError::UnknownType {
                name: type_name.to_string(),
            });
        }
        let type_name = match type_name.parse::<DataType>() {
            Ok(dt) => dt.name().to_string(),
            Err(_) => type_name.to_string(),
        };
        Ok(TagSpec {
            name: name.to_string(),
            program,
            address,
            type_name,
            dimensions,
        })
    }
}

impl std::fmt::Display for TagSpec {
    /// The spec as cpppo writes it: `[Program:X.]NAME[@class/instance/attribute]=TYPE[dims]`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some(p) = &self.program {
            write!(f, "Program:{p}.")?;
        }
        f.write_str(&self.name)?;
        if let Some(a) = &self.address {
            write!(f, "@0x{:X}/{}/{}", a.class, a.instance, a.attribute)?;
        }
        write!(f, "={}", self.type_name)?;
        if !self.dimensions.is_empty() {
            let dims: Vec<String> = self.dimensions.iter().map(u32::to_string).collect();
            write!(f, "[{}]", dims.join(","))?;
        }
        Ok(())
    }
}

fn parse_dimensions(text: &str) -> Result<Vec<u32>, TagError> {
    let bad = || TagError::BadDimensions {
        text: text.to_string(),
    };
    let dims = text
        .split(',')
        .map(|d| {
            parse_number(d.trim())
                .and_then(|n| u32::try_from(n).ok())
                .filter(|n| *n > 0)
                .ok_or_else(bad)
        })
        .collect::<Result<Vec<u32>, _>>()?;
    if dims.len() > MAX_DIMENSIONS {
        return Err(bad());
    }
    Ok(dims)
}

fn parse_address(text: &str) -> Result<CipAddress, TagError> {
    let bad = || TagError::BadAddress {
        text: text.to_string(),
    };
    let parts: Vec<u64> = text
        .split('/')
        .map(|p| parse_number(p.trim()).ok_or_else(bad))
        .collect::<Result<_, _>>()?;
    match parts.as_slice() {
        [c, i, a] => Ok(CipAddress {
            class: u16::try_from(*c).map_err(|_| bad())?,
            instance: u32::try_from(*i).map_err(|_| bad())?,
            attribute: u16::try_from(*a).map_err(|_| bad())?,
        }),
        _ => Err(bad()),
    }
}

/// One member of a structure.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberDef {
    /// The member's name.
    pub name: String,
    /// Its element type.
    pub element: ElementType,
    /// Byte offset in a value of the structure (for a BOOL bit member, of its host).
    pub offset: u32,
    /// Array length, 0 for a scalar.
    pub array: u16,
    /// For a BOOL member packed into a host integer: the bit number.
    pub bit: Option<u8>,
}

impl MemberDef {
    /// True for members a client does not see (BOOL hosts, `__` names).
    pub fn is_hidden(&self) -> bool {
        self.name.starts_with(HIDDEN_HOST_PREFIX) || self.name.starts_with("__")
    }
}

/// A structure type (UDT or built-in) and the Template object instance that describes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StructureDef {
    /// The structure's name.
    pub name: String,
    /// Its Template instance id.
    pub template_instance: u16,
    /// Its structure handle (the CRC Read/Write Tag carry after `A0 02`).
    pub handle: u16,
    /// Bytes of one value.
    pub size: u32,
    /// The members, in definition order.
    pub members: Vec<MemberDef>,
    /// The name string as the template definition carries it (`ASCIISTRING82` for the
    /// built-in STRING; `Name;` for a UDT).
    pub template_name: String,
}

/// The name a UDT's template definition carries, as a Logix controller writes it: the
/// name, `;n`, then two characters per member (`my_UDT;nHAEA` for two members, from a
/// 1769-L24ER). pylogix reads the members' access rights from the second character of
/// each pair (the low two bits; 1 = read/write, 0 = hidden); pycomm3 keeps what precedes
/// the `;`.
fn udt_template_name(name: &str, members: usize) -> String {
    format!("{name};n{}", "EA".repeat(members))
}

impl StructureDef {
    /// The Template definition bytes a Template Read returns (padded with zeros to a
    /// whole number of 32-bit words).
    pub fn template_bytes(&self) -> Vec<u8> {
        let (name, suffix) = match self.template_name.split_once(';') {
            Some((n, s)) => (n, Some(s)),
            None => (self.template_name.as_str(), None),
        };
        let def = TemplateDefinition {
            name: name.into(),
            suffix: suffix.map(Into::into),
            members: self
                .members
                .iter()
                .map(|m| TemplateMember {
                    info: m.bit.map_or(m.array, u16::from),
                    type_code: member_type_code(m),
                    offset: m.offset,
                    name: m.name.as_str().into(),
                })
                .collect(),
        };
        let mut bytes = def.to_vec();
        bytes.resize(bytes.len().div_ceil(4) * 4, 0);
        bytes
    }

    /// Template attribute 4: the definition size in 32-bit words.
    pub fn definition_words(&self) -> u32 {
        let def = 8 * self.members.len()
            + self.template_name.len()
            + 1
            + self.members.iter().map(|m| m.name.len() + 1).sum::<usize>();
        u32::try_from(def.div_ceil(4) + TEMPLATE_SIZE_OVERHEAD / 4).unwrap_or(u32::MAX)
    }

    /// The member named `name` (case-insensitive), with its index.
    pub fn member(&self, name: &str) -> Option<&MemberDef> {
        self.members
            .iter()
            .find(|m| m.name.eq_ignore_ascii_case(name))
    }
}

fn member_type_code(m: &MemberDef) -> u16 {
    let array = if m.array > 0 { 0x2000 } else { 0 };
    match m.element {
        ElementType::Atomic(dt) if m.bit.is_some() => dt.code(),
        ElementType::Atomic(dt) => dt.code() | array,
        ElementType::Structure(t) => SYMBOL_TYPE_STRUCT | (t & 0x0FFF) | array,
    }
}

/// A value a test or a user forces a tag's replies to (fault injection): every access
/// is performed, then answered with this status, as cpppo's Attribute `error` does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ForcedError {
    /// General status.
    pub status: u8,
    /// Extended status words.
    pub extended: Vec<u16>,
}

/// One tag (serialized without its value bytes, for listings).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Tag {
    /// Its name, without program prefix.
    pub name: String,
    /// Its program scope, if not controller-scoped.
    pub program: Option<String>,
    /// Its Symbol object instance id.
    pub instance_id: u32,
    /// Its element type.
    pub element: ElementType,
    /// Array dimensions (empty for a scalar).
    pub dimensions: Vec<u32>,
    /// cpppo's numeric address, if any.
    pub address: Option<CipAddress>,
    /// A forced reply status, if any.
    pub error: Option<ForcedError>,
    /// The value bytes (every element, fixed-size storage).
    #[serde(skip)]
    pub(crate) data: Vec<u8>,
}

impl Tag {
    /// Number of elements (1 for a scalar).
    pub fn elements(&self) -> usize {
        self.dimensions
            .iter()
            .map(|d| *d as usize)
            .product::<usize>()
            .max(1)
    }

    /// The stored bytes.
    pub fn data(&self) -> &[u8] {
        &self.data
    }

    /// The name a client uses: `Program:X.NAME` or `NAME`.
    pub fn full_name(&self) -> String {
        match &self.program {
            Some(p) => format!("Program:{p}.{}", self.name),
            None => self.name.clone(),
        }
    }
}

/// A program (scope of program tags), also listed as a `Program:X` symbol.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Program {
    /// Its name.
    pub name: String,
    /// The instance id of its `Program:X` Symbol entry.
    pub instance_id: u32,
}

/// What a request path names: a run of elements inside one tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Target {
    /// Index of the tag in the database.
    pub tag: usize,
    /// Element type at the end of the path.
    pub element: ElementType,
    /// Byte offset (in the tag's storage) of element 0 of the array the path ends in.
    pub base: usize,
    /// Index of the first addressed element in that array.
    pub index: usize,
    /// Elements in that array (1 for a scalar).
    pub len: usize,
    /// For a BOOL bit member: the bit number counted from `base`.
    pub bit: Option<u8>,
}

impl Target {
    /// Elements available from `index` to the end of the array.
    pub fn available(&self) -> usize {
        self.len.saturating_sub(self.index)
    }
}

/// Why a request path names no tag data. The statuses are those a ControlLogix answers
/// (cpppo's captures of a 1756-L61: `SCADAX` gives 0x04 with extended status 0x0000,
/// `SCADA[10000]` of an `INT[1000]` gives 0x05 with none).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathError {
    /// A segment that cannot be decoded or is out of place (0x04, extended 0x0000).
    Segment,
    /// No tag, program or member of that name (0x04, extended 0x0000).
    UnknownSymbol,
    /// No tag at that Symbol instance or numeric address (0x05).
    Unknown,
    /// An element index beyond its array (0x05).
    IndexOutOfRange,
}

/// The tag and structure database.
#[derive(Debug, Clone, Default)]
pub struct TagDatabase {
    tags: Vec<Tag>,
    structures: Vec<StructureDef>,
    programs: Vec<Program>,
    next_instance: u32,
    by_name: HashMap<(Option<String>, String), usize>,
    /// Controller-scope tags by lowercase name: looked up with a `&str` on every
    /// symbolic request, without building a key.
    by_global_name: HashMap<String, usize, BuildHasherDefault<NameHasher>>,
    by_instance: HashMap<u32, usize>,
}

impl TagDatabase {
    /// An empty database knowing the built-in STRING structure.
    pub fn new() -> Self {
        let mut db = TagDatabase {
            next_instance: 1,
            ..TagDatabase::default()
        };
        db.structures.push(StructureDef {
            name: "STRING".into(),
            template_instance: LOGIX_STRING_TEMPLATE,
            handle: LOGIX_STRING_HANDLE,
            size: LOGIX_STRING_SIZE as u32,
            members: vec![
                MemberDef {
                    name: "LEN".into(),
                    element: ElementType::Atomic(DataType::DINT),
                    offset: 0,
                    array: 0,
                    bit: None,
                },
                MemberDef {
                    name: "DATA".into(),
                    element: ElementType::Atomic(DataType::SINT),
                    offset: 4,
                    array: LOGIX_STRING_CAPACITY as u16,
                    bit: None,
                },
            ],
            template_name: "ASCIISTRING82".into(),
        });
        db
    }

    /// The tags, in instance order.
    pub fn tags(&self) -> &[Tag] {
        &self.tags
    }

    /// The structure definitions.
    pub fn structures(&self) -> &[StructureDef] {
        &self.structures
    }

    /// The programs.
    pub fn programs(&self) -> &[Program] {
        &self.programs
    }

    /// The structure with Template instance id `instance`.
    pub fn structure(&self, instance: u16) -> Option<&StructureDef> {
        self.structures
            .iter()
            .find(|s| s.template_instance == instance)
    }

    /// The structure named `name` (case-insensitive).
    pub fn structure_named(&self, name: &str) -> Option<&StructureDef> {
        self.structures
            .iter()
            .find(|s| s.name.eq_ignore_ascii_case(name))
    }

    /// Storage bytes of one element of `t`.
    pub fn element_size(&self, t: ElementType) -> usize {
        match t {
            ElementType::Atomic(DataType::SSTRING) => SSTRING_STORAGE,
            ElementType::Atomic(dt) => dt.size().unwrap_or(0),
            ElementType::Structure(i) => self.structure(i).map_or(0, |s| s.size as usize),
        }
    }

    /// The type field a Read/Write Tag carries for `t`.
    pub fn tag_type(&self, t: ElementType) -> TagType {
        match t {
            ElementType::Atomic(dt) => dt.into(),
            ElementType::Structure(i) => {
                TagType::Structure(self.structure(i).map_or(0, |s| s.handle))
            }
        }
    }

    /// The element type a type name means: elementary, `STRING` (Logix), or a
    /// defined structure.
    pub fn element_type(&self, name: &str) -> Result<ElementType, TagError> {
        if name.eq_ignore_ascii_case("STRING") {
            return Ok(ElementType::LOGIX_STRING);
        }
        if let Ok(dt) = name.parse::<DataType>() {
            return Ok(ElementType::Atomic(dt));
        }
        self.structure_named(name)
            .map(|s| ElementType::Structure(s.template_instance))
            .ok_or_else(|| TagError::UnknownType {
                name: name.to_string(),
            })
    }

    /// Look a tag up by name in a scope (names are case-insensitive, as in Logix).
    pub fn find(&self, program: Option<&str>, name: &str) -> Option<usize> {
        match program {
            Some(program) => self
                .by_name
                .get(&(
                    Some(program.to_ascii_lowercase()),
                    name.to_ascii_lowercase(),
                ))
                .copied(),
            None => with_ascii_lowercase(name, |lower| self.by_global_name.get(lower).copied()),
        }
    }

    /// The tag at `index`.
    pub fn tag(&self, index: usize) -> Option<&Tag> {
        self.tags.get(index)
    }

    /// The tag at `index`, mutably (to force an error, or change its value).
    pub fn tag_mut(&mut self, index: usize) -> Option<&mut Tag> {
        self.tags.get_mut(index)
    }

    /// Look a tag up by its full name (`NAME` or `Program:X.NAME`).
    pub fn find_full(&self, full: &str) -> Option<usize> {
        match full
            .strip_prefix("Program:")
            .and_then(|r| r.split_once('.'))
        {
            Some((p, n)) => self.find(Some(p), n),
            None => self.find(None, full),
        }
    }

    fn allocate_instance(&mut self) -> u32 {
        let id = self.next_instance.max(1);
        self.next_instance = id + 1;
        id
    }

    fn ensure_program(&mut self, name: &str) {
        if !self
            .programs
            .iter()
            .any(|p| p.name.eq_ignore_ascii_case(name))
        {
            let instance_id = self.allocate_instance();
            self.programs.push(Program {
                name: name.to_string(),
                instance_id,
            });
        }
    }

    /// Add the tag a spec describes; returns its index.
    pub fn add_spec(&mut self, spec: &TagSpec) -> Result<usize, TagError> {
        let element = self.element_type(&spec.type_name)?;
        if element == ElementType::Atomic(DataType::STRING) {
            return Err(TagError::UnsupportedType {
                name: spec.type_name.clone(),
            });
        }
        self.add(
            spec.program.as_deref(),
            &spec.name,
            element,
            &spec.dimensions,
            spec.address,
        )
    }

    /// Parse a tag spec and add it; returns its index.
    pub fn add_str(&mut self, spec: &str) -> Result<usize, TagError> {
        self.add_spec(&spec.parse()?)
    }

    /// Add a tag (value all zeros); returns its index.
    pub fn add(
        &mut self,
        program: Option<&str>,
        name: &str,
        element: ElementType,
        dimensions: &[u32],
        address: Option<CipAddress>,
    ) -> Result<usize, TagError> {
        self.add_with_id(program, name, element, dimensions, address, None)
    }

    fn add_with_id(
        &mut self,
        program: Option<&str>,
        name: &str,
        element: ElementType,
        dimensions: &[u32],
        address: Option<CipAddress>,
        instance_id: Option<u32>,
    ) -> Result<usize, TagError> {
        if !valid_name(name) {
            return Err(TagError::BadName {
                name: name.to_string(),
            });
        }
        if dimensions.len() > MAX_DIMENSIONS || dimensions.contains(&0) {
            return Err(TagError::BadDimensions {
                text: format!("{dimensions:?}"),
            });
        }
        if let ElementType::Structure(i) = element {
            if self.structure(i).is_none() {
                return Err(TagError::UnknownType {
                    name: format!("template 0x{i:04X}"),
                });
            }
        }
        let key = (
            program.map(str::to_ascii_lowercase),
            name.to_ascii_lowercase(),
        );
        if self.by_name.contains_key(&key) {
            return Err(TagError::Duplicate {
                name: name.to_string(),
            });
        }
        let elements = dimensions
            .iter()
            .try_fold(1usize, |acc, d| acc.checked_mul(*d as usize));
        let bytes = elements.and_then(|e| e.checked_mul(self.element_size(element)));
        let bytes = match bytes {
            Some(b) if b <= MAX_TAG_BYTES => b,
            other => {
                return Err(TagError::TooLarge {
                    name: name.to_string(),
                    bytes: other.unwrap_or(usize::MAX),
                })
            }
        };
        if let Some(p) = program {
            self.ensure_program(p);
        }
        let instance_id = match instance_id {
            Some(id)
                if !self.by_instance.contains_key(&id)
                    && !self.programs.iter().any(|p| p.instance_id == id) =>
            {
                self.next_instance = self.next_instance.max(id.saturating_add(1));
                id
            }
            _ => self.allocate_instance(),
        };
        let index = self.tags.len();
        self.tags.push(Tag {
            name: name.to_string(),
            program: program.map(str::to_string),
            instance_id,
            element,
            dimensions: dimensions.to_vec(),
            address,
            error: None,
            data: vec![0; bytes],
        });
        if key.0.is_none() {
            self.by_global_name.insert(key.1.clone(), index);
        }
        self.by_name.insert(key, index);
        self.by_instance.insert(instance_id, index);
        Ok(index)
    }

    /// Define a structure from `(name, type name, array length)` members, laid out as
    /// Logix lays out a UDT: each member aligned to its size (structures to 4 bytes),
    /// consecutive BOOLs packed into hidden SINT hosts, the total rounded up to 4 bytes.
    /// Returns its Template instance id.
    pub fn define_structure(
        &mut self,
        name: &str,
        members: &[(&str, &str, u16)],
    ) -> Result<u16, TagError> {
        let bad = |reason: String| TagError::BadStructure {
            structure: name.to_string(),
            reason,
        };
        if !valid_name(name) || self.structure_named(name).is_some() {
            return Err(bad("invalid or duplicate name".into()));
        }
        let mut out = Vec::new();
        let mut offset = 0u32;
        let mut host: Option<(u32, u8)> = None;
        for (i, (mname, tname, array)) in members.iter().enumerate() {
            if !valid_name(mname) {
                return Err(bad(format!("invalid member name {mname:?}")));
            }
            let element = self.element_type(tname)?;
            if element == ElementType::Atomic(DataType::BOOL) && *array == 0 {
                let (at, bit) = match host {
                    Some((at, bit)) if bit < 7 => (at, bit + 1),
                    _ => {
                        let at = offset;
                        out.push(MemberDef {
                            name: format!("{HIDDEN_HOST_PREFIX}{name}{i}"),
                            element: ElementType::Atomic(DataType::SINT),
                            offset: at,
                            array: 0,
                            bit: None,
                        });
                        offset += 1;
                        (at, 0)
                    }
                };
                host = Some((at, bit));
                out.push(MemberDef {
                    name: (*mname).to_string(),
                    element,
                    offset: at,
                    array: 0,
                    bit: Some(bit),
                });
                continue;
            }
            host = None;
            let size = u32::try_from(self.element_size(element)).unwrap_or(u32::MAX);
            let align = match element {
                ElementType::Structure(_) | ElementType::Atomic(DataType::SSTRING) => 4,
                ElementType::Atomic(_) => size.clamp(1, 8),
            };
            offset = offset.div_ceil(align) * align;
            out.push(MemberDef {
                name: (*mname).to_string(),
                element,
                offset,
                array: *array,
                bit: None,
            });
            offset = size
                .checked_mul(u32::from((*array).max(1)))
                .and_then(|b| offset.checked_add(b))
                .ok_or_else(|| bad("too large".into()))?;
        }
        let size = offset.div_ceil(4) * 4;
        let template_instance = self.next_template()?;
        let handle = self.unique_handle(name);
        self.structures.push(StructureDef {
            name: name.to_string(),
            template_instance,
            handle,
            size,
            template_name: udt_template_name(name, out.len()),
            members: out,
        });
        Ok(template_instance)
    }

    fn next_template(&self) -> Result<u16, TagError> {
        (FIRST_USER_TEMPLATE..=LAST_USER_TEMPLATE)
            .find(|i| self.structure(*i).is_none())
            .ok_or_else(|| TagError::BadStructure {
                structure: String::new(),
                reason: "no Template instance ids left".into(),
            })
    }

    fn unique_handle(&self, name: &str) -> u16 {
        // A stable 16-bit hash of the name, as Logix's handle is a CRC of the definition.
        let mut h: u32 = 0x811C_9DC5;
        for b in name.bytes() {
            h = (h ^ u32::from(b.to_ascii_uppercase())).wrapping_mul(0x0100_0193);
        }
        let mut handle = ((h >> 16) ^ h) as u16;
        while handle == 0 || self.structures.iter().any(|s| s.handle == handle) {
            handle = handle.wrapping_add(1);
        }
        handle
    }

    /// The Symbol Type word (attribute 2) of a tag.
    pub fn symbol_type(&self, tag: &Tag) -> SymbolType {
        let dims = (tag.dimensions.len() as u16) << SYMBOL_TYPE_DIMS_SHIFT;
        SymbolType(match tag.element {
            ElementType::Atomic(dt) => (dt.code() & 0xFF) | dims,
            ElementType::Structure(i) => SYMBOL_TYPE_STRUCT | (i & 0x0FFF) | dims,
        })
    }

    // -----------------------------------------------------------------------------------
    // pycomm3 tag list JSON

    /// Load pycomm3's tag list (the `LogixDriver.tags` dict, or a list of its values):
    /// structures are defined from their `data_type` dicts (members at the offsets
    /// given), tags keep their `instance_id` where one is given and free.
    pub fn load_tag_list(&mut self, list: &TagList) -> Result<(), TagError> {
        let entries: Vec<&TagListEntry> = match list {
            TagList::Map(m) => m.iter().map(|(_, e)| e).collect(),
            TagList::List(l) => l.iter().collect(),
        };
        for e in entries {
            let element = self.declared_type(&e.data_type, e.template_instance_id)?;
            let dims: Vec<u32> = e
                .dimensions
                .iter()
                .copied()
                .take(usize::from(e.dim).min(MAX_DIMENSIONS))
                .collect();
            let (program, name) = match e
                .tag_name
                .strip_prefix("Program:")
                .and_then(|r| r.split_once('.'))
            {
                Some((p, n)) => (Some(p), n),
                None => (None, e.tag_name.as_str()),
            };
            self.add_with_id(program, name, element, &dims, None, e.instance_id)?;
        }
        Ok(())
    }

    fn declared_type(
        &mut self,
        t: &DataTypeDecl,
        template_instance: Option<u16>,
    ) -> Result<ElementType, TagError> {
        match t {
            DataTypeDecl::Name(n) => self.element_type(n),
            DataTypeDecl::Structure(s) => {
                if let Some(existing) = self.structure_named(&s.name) {
                    return Ok(ElementType::Structure(existing.template_instance));
                }
                let bad = |reason: String| TagError::BadStructure {
                    structure: s.name.clone(),
                    reason,
                };
                let mut members = Vec::new();
                for (name, m) in &s.internal_tags.0 {
                    let element = self.declared_type(&m.data_type, None)?;
                    let (array, bit) = match (element, m.bit) {
                        (ElementType::Atomic(DataType::BOOL), Some(b)) => (0, Some(b)),
                        _ => (
                            u16::try_from(m.array).map_err(|_| bad("array".into()))?,
                            None,
                        ),
                    };
                    members.push(MemberDef {
                        name: name.clone(),
                        element,
                        offset: m.offset,
                        array,
                        bit,
                    });
                }
                let computed = members
                    .iter()
                    .map(|m| {
                        let sz = self.element_size(m.element) as u64;
                        u64::from(m.offset) + sz * u64::from(m.array.max(1))
                    })
                    .max()
                    .unwrap_or(0);
                let size = match &s.template {
                    Some(t) => t.structure_size,
                    None => u32::try_from(computed.div_ceil(4) * 4)
                        .map_err(|_| bad("too large".into()))?,
                };
                if computed > u64::from(size) {
                    return Err(bad(format!(
                        "members end at byte {computed}, beyond its size {size}"
                    )));
                }
                let template_instance =
                    match template_instance.filter(|i| *i != 0 && self.structure(*i).is_none()) {
                        Some(i) => i,
                        None => self.next_template()?,
                    };
                let handle = match s.template.as_ref().map(|t| t.structure_handle) {
                    Some(h) if !self.structures.iter().any(|x| x.handle == h) => h,
                    _ => self.unique_handle(&s.name),
                };
                self.structures.push(StructureDef {
                    name: s.name.clone(),
                    template_instance,
                    handle,
                    size,
                    template_name: udt_template_name(&s.name, members.len()),
                    members,
                });
                Ok(ElementType::Structure(template_instance))
            }
        }
    }

    // -----------------------------------------------------------------------------------
    // Path resolution

    /// Resolve the segments of a Read/Write Tag path: `[Program:X] NAME [elements]
    /// (.member [elements])*`, Symbol class 0x6B + instance N in place of the name, or
    /// a cpppo `@class/instance/attribute` address with an optional element.
    pub fn resolve(&self, segments: &[Segment<'_>]) -> Result<Target, PathError> {
        let mut it = segments.iter().peekable();
        let tag_index = match it.next() {
            Some(Segment::Symbolic(first)) => {
                if let Some(program) = first.strip_prefix("Program:") {
                    match it.next() {
                        Some(Segment::Symbolic(name)) => self
                            .find(Some(program), name)
                            .ok_or(PathError::UnknownSymbol)?,
                        Some(Segment::Class(_)) | None => return Err(PathError::UnknownSymbol),
                        Some(_) => return Err(PathError::Segment),
                    }
                } else {
                    self.find(None, first).ok_or(PathError::UnknownSymbol)?
                }
            }
            Some(Segment::Class(c)) => {
                let instance = match it.next() {
                    Some(Segment::Instance(i)) => *i,
                    _ => return Err(PathError::Segment),
                };
                let attribute = match it.peek() {
                    Some(Segment::Attribute(a)) => {
                        let a = *a;
                        it.next();
                        Some(a)
                    }
                    _ => None,
                };
                let by_address = attribute.and_then(|a| {
                    self.tags.iter().position(|t| {
                        t.address.is_some_and(|ad| {
                            u32::from(ad.class) == *c
                                && ad.instance == instance
                                && u32::from(ad.attribute) == a
                        })
                    })
                });
                match by_address {
                    Some(i) => i,
                    None if *c == u32::from(class::SYMBOL) && attribute.is_none() => self
                        .by_instance
                        .get(&instance)
                        .copied()
                        .ok_or(PathError::Unknown)?,
                    None => return Err(PathError::Unknown),
                }
            }
            _ => return Err(PathError::Segment),
        };
        let tag = self.tags.get(tag_index).ok_or(PathError::Unknown)?;
        let mut element = tag.element;
        let mut base = 0usize;
        // Borrowed from the tag (a member's single dimension is the rare owned case):
        // resolving a path allocates nothing.
        let mut dims: Cow<'_, [u32]> = Cow::Borrowed(&tag.dimensions);
        let mut bit = None;
        loop {
            // Element segments index the current array (one per dimension).
            let given = it
                .clone()
                .take_while(|s| matches!(s, Segment::Element(_)))
                .count();
            let len = dims.iter().map(|d| *d as usize).product::<usize>().max(1);
            // One index per dimension; a scalar takes `[0]` (cpppo clients send it).
            if given > dims.len().max(1) {
                return Err(PathError::Segment);
            }
            let mut index = 0usize;
            let mut k = 0usize;
            while let Some(Segment::Element(i)) = it.peek() {
                let d = dims.get(k).copied().unwrap_or(1);
                if *i >= d {
                    return Err(PathError::IndexOutOfRange);
                }
                index = index * d as usize + *i as usize;
                k += 1;
                it.next();
            }
            // Indices not given for trailing dimensions count from 0.
            for d in dims.iter().skip(given) {
                index *= *d as usize;
            }
            match it.next() {
                None => {
                    return Ok(Target {
                        tag: tag_index,
                        element,
                        base,
                        index,
                        len,
                        bit,
                    })
                }
                Some(Segment::Symbolic(member)) => {
                    if bit.is_some() {
                        return Err(PathError::UnknownSymbol);
                    }
                    let ElementType::Structure(t) = element else {
                        return Err(PathError::UnknownSymbol);
                    };
                    let s = self.structure(t).ok_or(PathError::Unknown)?;
                    let m = s.member(member).ok_or(PathError::UnknownSymbol)?;
                    base += index * s.size as usize + m.offset as usize;
                    element = m.element;
                    dims = if m.array > 0 {
                        Cow::Owned(vec![u32::from(m.array)])
                    } else {
                        Cow::Borrowed(&[])
                    };
                    bit = m.bit;
                }
                Some(_) => return Err(PathError::Segment),
            }
        }
    }

    /// The whole target of a tag (every element of it, from element 0).
    pub fn whole(&self, index: usize) -> Option<Target> {
        let tag = self.tags.get(index)?;
        Some(Target {
            tag: index,
            element: tag.element,
            base: 0,
            index: 0,
            len: tag.elements(),
            bit: None,
        })
    }

    /// Every value of the tag named `full_name` (`NAME` or `Program:X.NAME`), as a
    /// client would read them (structures other than STRING as raw bytes).
    pub fn values(&self, full_name: &str) -> Option<Values> {
        let target = self.whole(self.find_full(full_name)?)?;
        let bytes = self.read_bytes(&target, target.len);
        let mut r = crate::wire::Reader::new(&bytes);
        Values::decode(
            self.tag_type(target.element),
            crate::cip::data::Count::Elements(target.len),
            &mut r,
        )
        .ok()
    }

    /// Store `values` into the tag named `full_name` from element `first` (as a Write
    /// Tag would, but without type coercion: the values must be of the tag's type).
    pub fn set_values(
        &mut self,
        full_name: &str,
        first: usize,
        values: &Values,
    ) -> Result<(), TagError> {
        let bad = |reason: &str| TagError::BadValue {
            name: full_name.to_string(),
            reason: reason.to_string(),
        };
        let index = self
            .find_full(full_name)
            .ok_or_else(|| bad("no such tag"))?;
        let mut target = self.whole(index).ok_or_else(|| bad("no such tag"))?;
        if values.tag_type() != self.tag_type(target.element) {
            return Err(bad("values of another type"));
        }
        let size = self.element_size(target.element).max(1);
        let count = match values {
            Values::Structure { data, .. } => data.len() / size,
            other => other.len(),
        };
        if first
            .checked_add(count)
            .map_or(true, |end| end > target.len)
        {
            return Err(bad("beyond the end of the tag"));
        }
        target.index = first;
        if self.write_bytes(&target, count, 0, &values.to_vec()) {
            Ok(())
        } else {
            Err(bad("values that do not encode"))
        }
    }

    /// At most `max` wire bytes of `count` elements of `target`, from byte `offset` of
    /// them, and how many bytes remain from `offset` in all; `None` when `offset` is
    /// beyond them. Fixed-size elements are sliced from storage without encoding the
    /// rest, so reading a large array in fragments costs each fragment only its size.
    pub fn read_window(
        &self,
        target: &Target,
        count: usize,
        offset: usize,
        max: usize,
    ) -> Option<(Cow<'_, [u8]>, usize)> {
        let variable =
            target.bit.is_some() || target.element == ElementType::Atomic(DataType::SSTRING);
        if variable {
            let all = self.read_bytes(target, count);
            let rest = all.get(offset..)?;
            let window = rest.get(..rest.len().min(max)).unwrap_or_default();
            return Some((Cow::Owned(window.to_vec()), rest.len()));
        }
        let tag = self.tags.get(target.tag)?;
        let size = self.element_size(target.element);
        let total = count.checked_mul(size)?;
        let rest = total.checked_sub(offset)?;
        let start = target.base + target.index * size + offset;
        // Fixed-size elements are lent straight from the tag's bytes.
        let window = tag.data.get(start..start + rest.min(max))?;
        Some((Cow::Borrowed(window), rest))
    }

    /// The wire bytes of `count` elements of `target` from its index: fixed-size
    /// elements as stored, SSTRINGs as length + characters, a BOOL bit as 0x00/0xFF.
    pub fn read_bytes(&self, target: &Target, count: usize) -> Vec<u8> {
        let Some(tag) = self.tags.get(target.tag) else {
            return Vec::new();
        };
        if let Some(bit) = target.bit {
            let byte = tag.data.get(target.base + usize::from(bit / 8)).copied();
            let set = byte.is_some_and(|b| b & (1 << (bit % 8)) != 0);
            return vec![if set { 0xFF } else { 0x00 }];
        }
        let size = self.element_size(target.element);
        let start = target.base + target.index * size;
        let raw = tag
            .data
            .get(start..start + count * size)
            .unwrap_or_default();
        if target.element == ElementType::Atomic(DataType::SSTRING) {
            let mut out = Vec::new();
            for slot in raw.chunks(SSTRING_STORAGE) {
                let len = usize::from(slot.first().copied().unwrap_or(0));
                out.push(len as u8);
                out.extend_from_slice(slot.get(1..1 + len).unwrap_or_default());
            }
            return out;
        }
        raw.to_vec()
    }

    /// Store wire bytes for `count` elements of `target` from its index, starting
    /// `offset` bytes into them (fragmented writes). Returns false when the bytes do
    /// not decode for the type (SSTRING only).
    pub fn write_bytes(
        &mut self,
        target: &Target,
        count: usize,
        offset: usize,
        data: &[u8],
    ) -> bool {
        let size = self.element_size(target.element);
        let Some(tag) = self.tags.get_mut(target.tag) else {
            return false;
        };
        if let Some(bit) = target.bit {
            if let Some(b) = tag.data.get_mut(target.base + usize::from(bit / 8)) {
                let mask = 1u8 << (bit % 8);
                if data.first().copied().unwrap_or(0) != 0 {
                    *b |= mask;
                } else {
                    *b &= !mask;
                }
            }
            return true;
        }
        let start = target.base + target.index * size;
        if target.element == ElementType::Atomic(DataType::SSTRING) {
            let mut r = crate::wire::Reader::new(data);
            let Ok(Values::Sstring(texts)) = Values::decode(
                DataType::SSTRING.into(),
                crate::cip::data::Count::Elements(count),
                &mut r,
            ) else {
                return false;
            };
            for (k, Text(t)) in texts.iter().enumerate() {
                let at = start + k * SSTRING_STORAGE;
                if let Some(slot) = tag.data.get_mut(at..at + SSTRING_STORAGE) {
                    slot.fill(0);
                    if let Some(first) = slot.first_mut() {
                        *first = t.len() as u8;
                    }
                    if let Some(chars) = slot.get_mut(1..1 + t.len()) {
                        chars.copy_from_slice(t);
                    }
                }
            }
            return true;
        }
        let at = start + offset;
        match tag.data.get_mut(at..at + data.len()) {
            Some(dst) => {
                dst.copy_from_slice(data);
                true
            }
            None => false,
        }
    }
}

// ---------------------------------------------------------------------------------------
// pycomm3 tag list JSON shapes

/// pycomm3's tag list: `LogixDriver.tags` (name -> tag dict) or a list of tag dicts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum TagList {
    /// A map of tag name to tag dict, in document order.
    Map(OrderedMap<TagListEntry>),
    /// A list of tag dicts.
    List(Vec<TagListEntry>),
}

/// One tag dict of pycomm3's tag list (other keys are ignored).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TagListEntry {
    /// `NAME` or `Program:X.NAME`.
    pub tag_name: String,
    /// Number of array dimensions in use.
    #[serde(default)]
    pub dim: u8,
    /// The Symbol instance id.
    #[serde(default)]
    pub instance_id: Option<u32>,
    /// The three array dimensions.
    #[serde(default)]
    pub dimensions: Vec<u32>,
    /// `"atomic"` or `"struct"`.
    #[serde(default)]
    pub tag_type: Option<String>,
    /// The Template instance id of a structure tag.
    #[serde(default)]
    pub template_instance_id: Option<u16>,
    /// A type name, or a structure dict.
    pub data_type: DataTypeDecl,
}

/// A pycomm3 `data_type`: an elementary type's name or a structure dict.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum DataTypeDecl {
    /// `"DINT"`.
    Name(String),
    /// A structure.
    Structure(Box<StructureDecl>),
}

/// pycomm3's structure dict.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StructureDecl {
    /// The structure's name.
    pub name: String,
    /// Every member (hidden ones too), in definition order.
    pub internal_tags: OrderedMap<MemberDecl>,
    /// The visible member names.
    #[serde(default)]
    pub attributes: Vec<String>,
    /// The Template attributes read from the controller.
    #[serde(default)]
    pub template: Option<TemplateDecl>,
}

/// pycomm3's member dict.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MemberDecl {
    /// Byte offset.
    pub offset: u32,
    /// A type name or a structure dict.
    pub data_type: DataTypeDecl,
    /// Array length (0 for a scalar).
    #[serde(default)]
    pub array: u32,
    /// Bit number of a BOOL member.
    #[serde(default)]
    pub bit: Option<u8>,
}

/// pycomm3's `template` dict (Template attributes 4, 5, 2 and 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TemplateDecl {
    /// Attribute 4, in 32-bit words.
    #[serde(default)]
    pub object_definition_size: u32,
    /// Attribute 5, bytes of a value.
    pub structure_size: u32,
    /// Attribute 2.
    #[serde(default)]
    pub member_count: u16,
    /// Attribute 1.
    pub structure_handle: u16,
}

/// A JSON object kept as `(key, value)` pairs in document order (member order matters
/// for a structure definition).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct OrderedMap<T>(pub Vec<(String, T)>);

impl<T> OrderedMap<T> {
    /// The pairs.
    pub fn iter(&self) -> impl Iterator<Item = &(String, T)> {
        self.0.iter()
    }
}

impl<T: Serialize> Serialize for OrderedMap<T> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            m.serialize_entry(k, v)?;
        }
        m.end()
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for OrderedMap<T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>> serde::de::Visitor<'de> for V<T> {
            type Value = OrderedMap<T>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a map")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut a: A,
            ) -> Result<Self::Value, A::Error> {
                let mut out = Vec::new();
                while let Some((k, v)) = a.next_entry::<String, T>()? {
                    out.push((k, v));
                }
                Ok(OrderedMap(out))
            }
        }
        d.deserialize_map(V(std::marker::PhantomData))
    }
}

/// Longest name lowercased on the stack by [`with_ascii_lowercase`] (a symbolic segment's
/// length is one byte); longer ones are lowercased into a `String`.
const LOWERCASE_ON_STACK: usize = 255;

/// Call `f` with `text` ASCII-lowercased, without allocating for names up to
/// [`LOWERCASE_ON_STACK`] bytes (or already lowercase).
fn with_ascii_lowercase<R>(text: &str, f: impl FnOnce(&str) -> R) -> R {
    if !text.bytes().any(|b| b.is_ascii_uppercase()) {
        return f(text);
    }
    let mut buf = [0u8; LOWERCASE_ON_STACK];
    if let Some(lower) = buf.get_mut(..text.len()) {
        lower.copy_from_slice(text.as_bytes());
        lower.make_ascii_lowercase();
        // ASCII case changes keep UTF-8 valid; the fallback is never taken.
        if let Ok(lower) = std::str::from_utf8(lower) {
            return f(lower);
        }
    }
    f(&text.to_ascii_lowercase())
}

/// FNV-1a over a tag name's bytes: names are short and come from the configuration (a
/// request only looks them up), so the flooding resistance of the default SipHash buys
/// nothing here and its cost was a third of the lookup on every symbolic request.
#[derive(Debug, Clone, Copy)]
pub(crate) struct NameHasher(u64);

/// FNV-1a's 64-bit offset basis.
const FNV_OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
/// FNV-1a's 64-bit prime.
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

impl Default for NameHasher {
    fn default() -> Self {
        NameHasher(FNV_OFFSET_BASIS)
    }
}

impl Hasher for NameHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(FNV_PRIME);
        }
    }
}
