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
