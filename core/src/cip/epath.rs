//! EPATH: the padded segment path that addresses a CIP object, attribute, element,
//! connection point, symbolic tag name or route.
//!
//! An [`Epath`] holds the encoded segments exactly as they stand on the wire (always a
//! whole number of 16-bit words), borrowed from the decoded frame where possible, so a
//! request passes through without copying.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

/// An encoded, padded EPATH (a whole number of 16-bit words).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub struct Epath<'a> {
    bytes: Cow<'a, [u8]>,
}

impl<'a> Epath<'a> {
    /// The empty path.
    pub const EMPTY: Epath<'static> = Epath {
        bytes: Cow::Borrowed(&[]),
    };

    /// A path over encoded segment bytes, as taken from a path-size field (`2 * words`
    /// bytes). The segments are not checked here: a device answers a bad segment with a
    /// CIP status (path segment error), so they are checked as they are read.
    pub fn from_wire(bytes: &'a [u8]) -> Self {
        Epath {
            bytes: Cow::Borrowed(bytes),
        }
    }

    /// A path that owns already-encoded segment bytes.
    pub fn from_vec(bytes: Vec<u8>) -> Epath<'static> {
        Epath {
            bytes: Cow::Owned(bytes),
        }
    }

    /// The encoded bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Length in 16-bit words, as carried in a path-size field.
    pub fn word_len(&self) -> usize {
        self.bytes.len() / 2
    }

    /// A copy that owns its bytes.
    pub fn into_owned(self) -> Epath<'static> {
        Epath {
            bytes: Cow::Owned(self.bytes.into_owned()),
        }
    }
}
