//! Tag I/O history for cpppo-rs, after cpppo's `cpppo.history` and
//! `cpppo.server.enip.historize`:
//!
//! - [`time`]: time stamps at microsecond precision, shown and read in UTC or a named zone
//!   with its abbreviation (`2014-07-15 16:03:44.186 MDT`), hifitime instants with the
//!   IANA rules bundled;
//! - [`record`]: cpppo's history line format (`<time>\t<serial JSON>\t<data JSON>`, `#`
//!   comments), and the tag I/O records the simulator writes in it;
//! - [`reader`]: reading history files (plain or gzip), cpppo's own included;
//! - [`replay`]: when each recorded write is due when played back at a given speed.
//!
//! Nothing here opens sockets or reads the clock: times are passed in.
//!
//! ```
//! use cpppo_history::{Abbreviations, Line, Timestamp, Zone};
//!
//! let edmonton = Zone::named("America/Edmonton")?;
//! let t: Timestamp = "2014-07-15 22:03:44.186".parse()?; // UTC, as cpppo writes
//! assert_eq!(t.render(&edmonton, 3), "2014-07-15 16:03:44.186 MDT");
//! // Reading local times needs the zone's abbreviations (those around a time).
//! let table = Abbreviations::with_zone(&edmonton, t);
//! assert_eq!(Timestamp::parse("2014-07-15 16:03:44.186 MDT", &Zone::Utc, &table)?, t);
//!
//! let line = "2014-07-15 22:03:44.186\t[\"Tag_Name\", [0, 3]]\t{\"write\": [0, 1, 2, 3]}";
//! let Line::Record(record) = Line::parse(line, &Zone::Utc, &table)? else { unreachable!() };
//! let io = record.tag_io().expect("tag I/O");
//! assert_eq!((io.tag.as_str(), io.first, io.last), ("Tag_Name", 0, 3));
//! assert_eq!(record.render(&edmonton, 3), line.replace("22:03:44.186", "16:03:44.186 MDT"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![forbid(unsafe_code)]

pub mod reader;
pub mod record;
pub mod replay;
pub mod time;

pub use reader::{HistoryReader, ReadError};
pub use record::{Access, Line, Record, RecordError, TagIo};
pub use replay::{Schedule, Speed};
pub use time::{Abbreviations, TimeError, Timestamp, Zone};

#[cfg(test)]
mod tests;
