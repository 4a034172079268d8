//! Time stamps that say what they mean: microsecond instants (a hifitime [`Epoch`]) shown
//! and read as `YYYY-MM-DD HH:MM:SS[.ffffff] [ZONE]`, in UTC (no zone term, as cpppo's
//! history files are written) or in a named local zone with the abbreviation in effect
//! (`2014-07-15 16:03:44.186 MDT`).
//!
//! Time-zone rules come from the IANA database bundled into the binary (jiff's copy), so
//! the same text means the same instant on every machine, with or without
//! `/usr/share/zoneinfo`.
//!
//! Reading a zone term:
//! - none: the parser's default zone (UTC unless told otherwise);
//! - `UTC`, `GMT`, `Z`, or a numeric offset (`-0600`, `+05:30`): that fixed offset;
//! - an abbreviation (`MST`, `MDT`): the fixed offset it stands for in the zones the
//!   [`Abbreviations`] table was built from. `MDT` is UTC-6 even in the fall-back hour,
//!   which is how the two `01:30` of that night are told apart. An abbreviation the table
//!   does not know, or one that its zones use for different offsets (`CST` in
//!   `America/Chicago` and `America/Havana`), is an error that says so;
//! - an IANA name (`America/Edmonton`): local time there; a time in the spring-forward gap
//!   or the fall-back overlap is an error (use the abbreviation to say which was meant).

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::sync::OnceLock;

use hifitime::{Duration, Epoch};
use jiff::civil::DateTime;
use jiff::tz::{AmbiguousOffset, Offset, TimeZone, TimeZoneDatabase};
use serde::{Deserialize, Serialize};

/// Sub-second digits cpppo shows by default (milliseconds).
pub const DEFAULT_DIGITS: u8 = 3;
/// The most sub-second digits a time stamp carries (microseconds).
pub const MAX_DIGITS: u8 = 6;
/// Microseconds in a second.
const MICROS_PER_SECOND: i64 = 1_000_000;
/// Nanoseconds in a microsecond.
const NANOS_PER_MICRO: i128 = 1_000;
/// How far either side of the reference time [`Abbreviations::add_zone`] looks for the
/// abbreviations a zone uses (a year: both halves of its daylight-saving cycle).
pub const ABBREVIATION_REACH_SECONDS: i64 = 366 * 24 * 3600;

/// Why a time stamp or zone could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TimeError {
    /// The text is not `YYYY-MM-DD HH:MM:SS[.ffffff] [ZONE]`.
    #[error("bad time stamp {text:?}: {why} (expected YYYY-MM-DD HH:MM:SS[.ffffff] [ZONE])")]
    Format {
        /// The text given.
        text: String,
        /// What was wrong with it.
        why: String,
    },
    /// No zone of that IANA name.
    #[error("unknown time zone {0:?} (give an IANA name such as America/Edmonton)")]
    UnknownZone(String),
    /// An abbreviation none of the known zones uses.
    #[error("unknown time zone abbreviation {abbreviation:?} (known: {known})")]
    UnknownAbbreviation {
        /// The abbreviation given.
        abbreviation: String,
        /// The abbreviations that are known, comma separated.
        known: String,
    },
    /// An abbreviation that stands for different offsets in different zones.
    #[error("ambiguous time zone abbreviation {abbreviation:?}: {meanings}; give the offset or the zone's IANA name instead")]
    AmbiguousAbbreviation {
        /// The abbreviation given.
        abbreviation: String,
        /// Each meaning: `UTC-06:00 in America/Chicago`, comma separated.
        meanings: String,
    },
    /// A local time that happens twice in the zone (the fall-back hour).
    #[error("{time} is ambiguous in {zone} (it happens twice); give the abbreviation ({abbreviations}) to say which")]
    AmbiguousLocalTime {
        /// The local time.
        time: String,
        /// The zone.
        zone: String,
        /// The two abbreviations that tell them apart.
        abbreviations: String,
    },
    /// A local time that never happens in the zone (the spring-forward gap).
    #[error("{time} does not exist in {zone} (the clocks skip it)")]
    NonexistentLocalTime {
        /// The local time.
        time: String,
        /// The zone.
        zone: String,
    },
    /// A time outside what the calendar code supports (years -9999..=9999).
    #[error("time out of range: {0}")]
    OutOfRange(String),
}

/// The bundled IANA database: the same rules on every machine.
fn database() -> &'static TimeZoneDatabase {
    static DB: OnceLock<TimeZoneDatabase> = OnceLock::new();
    DB.get_or_init(TimeZoneDatabase::bundled)
}

/// An instant, to the microsecond.
///
/// `Display` is cpppo's `str(timestamp)`: UTC to the millisecond, no zone term
/// (`2014-07-15 22:03:44.186`); [`Timestamp::render`] shows it elsewhere.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp {
    /// Microseconds since 1970-01-01 00:00:00 UTC (Unix time, no leap seconds).
    micros: i64,
}

impl Timestamp {
    /// The instant `micros` microseconds after 1970-01-01 00:00:00 UTC.
    pub fn from_unix_micros(micros: i64) -> Timestamp {
        Timestamp { micros }
    }

    /// Microseconds since 1970-01-01 00:00:00 UTC.
    pub fn unix_micros(&self) -> i64 {
        self.micros
    }

    /// The instant a hifitime epoch names, to the nearest microsecond.
    pub fn from_epoch(epoch: Epoch) -> Timestamp {
        let nanos = epoch.to_unix_duration().total_nanoseconds();
        let micros = div_round(nanos, NANOS_PER_MICRO);
        Timestamp {
            micros: i64::try_from(micros).unwrap_or(if micros < 0 { i64::MIN } else { i64::MAX }),
        }
    }

    /// The instant as a hifitime epoch (UTC time scale).
    pub fn epoch(&self) -> Epoch {
        Epoch::from_unix_duration(Duration::from_total_nanoseconds(
            i128::from(self.micros) * NANOS_PER_MICRO,
        ))
    }

    /// The time from `earlier` to this instant (negative if `earlier` is later).
    pub fn since(&self, earlier: Timestamp) -> Duration {
        Duration::from_total_nanoseconds(
            (i128::from(self.micros) - i128::from(earlier.micros)) * NANOS_PER_MICRO,
        )
    }

    /// This instant shown in `zone` with `digits` (0..=6, more are taken as 6) sub-second
    /// digits, rounded as cpppo does (to the digits shown, carrying into the seconds): UTC
    /// without a zone term, a named zone with its abbreviation then in effect.
    pub fn render(&self, zone: &Zone, digits: u8) -> String {
        let digits = digits.min(MAX_DIGITS);
        let unit = 10_i64.pow(u32::from(MAX_DIGITS - digits));
        let rounded = i64::try_from(div_round(i128::from(self.micros), i128::from(unit)))
            .unwrap_or_default()
            .saturating_mul(unit);
        let ts = match jiff::Timestamp::from_microsecond(rounded) {
            Ok(ts) => ts,
            Err(_) => return format!("<out of range: {} us>", self.micros),
        };
        let (offset, abbreviation) = match zone {
            Zone::Utc => (Offset::UTC, None),
            Zone::Fixed(offset) => (*offset, Some(offset.to_string())),
            Zone::Named(named) => {
                let info = named.tz.to_offset_info(ts);
                (info.offset(), Some(info.abbreviation().to_string()))
            }
        };
        let dt = offset.to_datetime(ts);
        let mut text = format!(
            "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
            dt.year(),
            dt.month(),
            dt.day(),
            dt.hour(),
            dt.minute(),
            dt.second()
        );
        if digits > 0 {
            let fraction = rounded.rem_euclid(MICROS_PER_SECOND) / unit;
            text.push_str(&format!(".{fraction:0width$}", width = usize::from(digits)));
        }
        if let Some(abbreviation) = abbreviation {
            text.push(' ');
            text.push_str(&abbreviation);
        }
        text
    }

    /// Read `text` (`YYYY-MM-DD HH:MM:SS[.ffffff] [ZONE]`); a time without a zone term is
    /// in `default`; abbreviations are looked up in `abbreviations`.
    pub fn parse(
        text: &str,
        default: &Zone,
        abbreviations: &Abbreviations,
    ) -> Result<Timestamp, TimeError> {
        let bad = |why: &str| TimeError::Format {
            text: text.to_string(),
            why: why.to_string(),
        };
        let mut words = text.split_whitespace();
        let (Some(date), Some(time)) = (words.next(), words.next()) else {
            return Err(bad("needs a date and a time"));
        };
        let zone_term = words.next();
        if words.next().is_some() {
            return Err(bad("text after the zone"));
        }
        let dt = civil(date, time).map_err(|why| bad(&why))?;
        let shown = format!("{date} {time}");
        let offset = match zone_term {
            None => default.offset_of(&dt, &shown)?,
            Some(term) => match fixed_offset(term) {
                Some(offset) => offset,
                None if term.contains('/') => Zone::named(term)?.offset_of(&dt, &shown)?,
                // An abbreviation; else an IANA name without a `/` (`Japan`, `EST5EDT`).
                None => match abbreviations.offset(term) {
                    Err(unknown @ TimeError::UnknownAbbreviation { .. }) => match Zone::named(term)
                    {
                        Ok(zone) => zone.offset_of(&dt, &shown)?,
                        Err(_) => return Err(unknown),
                    },
                    other => other?,
                },
            },
        };
        let ts = offset
            .to_timestamp(dt)
            .map_err(|e| TimeError::OutOfRange(e.to_string()))?;
        Ok(Timestamp {
            micros: ts.as_microsecond(),
        })
    }
}

/// `n / d` rounded half away from zero (`d` > 0).
fn div_round(n: i128, d: i128) -> i128 {
    let half = d / 2;
    if n >= 0 {
        (n + half) / d
    } else {
        (n - half) / d
    }
}

/// A date (`YYYY-MM-DD`) and time (`HH:MM:SS[.ffffff]`) as a civil date-time.
fn civil(date: &str, time: &str) -> Result<DateTime, String> {
    let number = |s: &str, what: &str| -> Result<i64, String> {
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!("{what} {s:?} is not a number"));
        }
        s.parse::<i64>()
            .map_err(|_| format!("{what} {s:?} is too large"))
    };
    let mut d = date.split('-');
    let (Some(y), Some(mo), Some(day), None) = (d.next(), d.next(), d.next(), d.next()) else {
        return Err(format!("date {date:?} is not YYYY-MM-DD"));
    };
    let (hms, fraction) = match time.split_once('.') {
        Some((hms, f)) => (hms, Some(f)),
        None => (time, None),
    };
    let mut t = hms.split(':');
    let (Some(h), Some(mi), Some(s), None) = (t.next(), t.next(), t.next(), t.next()) else {
        return Err(format!("time {time:?} is not HH:MM:SS"));
    };
    let nanos = match fraction {
        None => 0,
        Some(f) if f.len() > usize::from(MAX_DIGITS) => {
            return Err(format!(
                "{} sub-second digits (at most {MAX_DIGITS}: microseconds)",
                f.len()
            ))
        }
        Some(f) => {
            let digits = u32::try_from(f.len()).unwrap_or(0);
            number(f, "fraction")? * 10_i64.pow(9 - digits)
        }
    };
    let field = |v: i64, what: &str| -> Result<i8, String> {
        i8::try_from(v).map_err(|_| format!("{what} {v} out of range"))
    };
    let year = i16::try_from(number(y, "year")?).map_err(|_| format!("year {y} out of range"))?;
    DateTime::new(
        year,
        field(number(mo, "month")?, "month")?,
        field(number(day, "day")?, "day")?,
        field(number(h, "hour")?, "hour")?,
        field(number(mi, "minute")?, "minute")?,
        field(number(s, "second")?, "second")?,
        i32::try_from(nanos).map_err(|_| "fraction out of range".to_string())?,
    )
    .map_err(|e| e.to_string())
}

/// `UTC`/`GMT`/`Z` or a numeric offset (`-0600`, `+05:30`, `-06`).
fn fixed_offset(term: &str) -> Option<Offset> {
    if matches!(term.to_ascii_uppercase().as_str(), "UTC" | "GMT" | "Z") {
        return Some(Offset::UTC);
    }
    let (sign, rest) = match term.as_bytes().first()? {
        b'+' => (1, term.get(1..)?),
        b'-' => (-1, term.get(1..)?),
        _ => return None,
    };
    let digits: String = rest.chars().filter(|c| *c != ':').collect();
    if !digits.bytes().all(|b| b.is_ascii_digit()) || !matches!(digits.len(), 2 | 4) {
        return None;
    }
    let hours: i32 = digits.get(..2)?.parse().ok()?;
    let minutes: i32 = digits
        .get(2..)
        .filter(|m| !m.is_empty())
        .map_or(Some(0), |m| m.parse().ok())?;
    if hours > 25 || minutes > 59 {
        return None;
    }
    Offset::from_seconds(sign * (hours * 3600 + minutes * 60)).ok()
}

/// A named IANA zone.
#[derive(Debug, Clone, PartialEq)]
pub struct NamedZone {
    name: String,
    tz: TimeZone,
}

impl NamedZone {
    /// The zone's IANA name, as the database spells it.
    pub fn name(&self) -> &str {
        &self.name
    }
}

/// Where a time is shown, or read when the text names no zone.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Zone {
    /// UTC (no zone term when shown).
    #[default]
    Utc,
    /// A fixed offset from UTC (shown as `-06:00`).
    Fixed(Offset),
    /// A named IANA zone (shown with its abbreviation: `MST`, `MDT`).
    Named(NamedZone),
}

impl Zone {
    /// The IANA zone `name` (`America/Edmonton`), or UTC for `UTC`.
    pub fn named(name: &str) -> Result<Zone, TimeError> {
        if let Some(offset) = fixed_offset(name) {
            return Ok(if offset == Offset::UTC {
                Zone::Utc
            } else {
                Zone::Fixed(offset)
            });
        }
        let tz = database()
            .get(name)
            .map_err(|_| TimeError::UnknownZone(name.to_string()))?;
        let name = tz.iana_name().unwrap_or(name).to_string();
        Ok(Zone::Named(NamedZone { name, tz }))
    }

    /// The offset of local time `dt` (shown as `shown` in errors) in this zone.
    fn offset_of(&self, dt: &DateTime, shown: &str) -> Result<Offset, TimeError> {
        match self {
            Zone::Utc => Ok(Offset::UTC),
            Zone::Fixed(offset) => Ok(*offset),
            Zone::Named(named) => match named.tz.to_ambiguous_timestamp(*dt).offset() {
                AmbiguousOffset::Unambiguous { offset } => Ok(offset),
                AmbiguousOffset::Gap { .. } => Err(TimeError::NonexistentLocalTime {
                    time: shown.to_string(),
                    zone: named.name.clone(),
                }),
                AmbiguousOffset::Fold { before, after } => {
                    let abbreviation = |offset: Offset| {
                        offset
                            .to_timestamp(*dt)
                            .map(|ts| named.tz.to_offset_info(ts).abbreviation().to_string())
                            .unwrap_or_else(|_| offset.to_string())
                    };
                    Err(TimeError::AmbiguousLocalTime {
                        time: shown.to_string(),
                        zone: named.name.clone(),
                        abbreviations: format!(
                            "{} or {}",
                            abbreviation(before),
                            abbreviation(after)
                        ),
                    })
                }
            },
        }
    }

    /// The zone's IANA name, `UTC`, or the fixed offset.
    pub fn name(&self) -> String {
        match self {
            Zone::Utc => "UTC".to_string(),
            Zone::Fixed(offset) => offset.to_string(),
            Zone::Named(named) => named.name.clone(),
        }
    }
}

/// One meaning of an abbreviation: its offset, and a zone that uses it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AbbreviationMeaning {
    /// Seconds east of UTC.
    pub offset_seconds: i32,
    /// Whether it is a daylight-saving abbreviation.
    pub dst: bool,
    /// The zones that use it with this offset.
    pub zones: Vec<String>,
}

/// The time-zone abbreviations a parser understands (cpppo's
/// `timestamp.support_abbreviations`), each with the offset it stands for.
///
/// An abbreviation used by several of the zones added with the same offset is fine
/// (`MST` in `America/Edmonton` and `America/Denver`); one used with different offsets
/// is kept, and reading it is an [`TimeError::AmbiguousAbbreviation`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Abbreviations {
    table: BTreeMap<String, Vec<AbbreviationMeaning>>,
}

impl Abbreviations {
    /// No abbreviations (`UTC`, `GMT`, `Z` and numeric offsets are always understood).
    pub fn new() -> Abbreviations {
        Abbreviations::default()
    }

    /// The abbreviations of `zone` in use within a year either side of `at`. A zone that
    /// is not a named IANA zone adds nothing.
    pub fn with_zone(zone: &Zone, at: Timestamp) -> Abbreviations {
        let mut table = Abbreviations::new();
        if let Zone::Named(named) = zone {
            table.add_named(named, at);
        }
        table
    }

    /// Add the abbreviations IANA zone `name` uses within a year either side of `at`
    /// (both halves of its daylight-saving cycle); returns them.
    pub fn add_zone(&mut self, name: &str, at: Timestamp) -> Result<Vec<String>, TimeError> {
        match Zone::named(name)? {
            Zone::Named(named) => Ok(self.add_named(&named, at)),
            _ => Ok(Vec::new()),
        }
    }

    /// Add every zone whose IANA name starts with `prefix` (`America/`, `Europe/`); returns
    /// the abbreviations added.
    pub fn add_region(&mut self, prefix: &str, at: Timestamp) -> Vec<String> {
        let names: Vec<String> = database()
            .available()
            .map(|n| n.as_str().to_string())
            .filter(|n| n.starts_with(prefix))
            .collect();
        let mut added = Vec::new();
        for name in names {
            if let Ok(Zone::Named(named)) = Zone::named(&name) {
                added.extend(self.add_named(&named, at));
            }
        }
        added.sort();
        added.dedup();
        added
    }

    fn add_named(&mut self, named: &NamedZone, at: Timestamp) -> Vec<String> {
        let reach = ABBREVIATION_REACH_SECONDS * MICROS_PER_SECOND;
        let from = jiff::Timestamp::from_microsecond(at.micros.saturating_sub(reach))
            .unwrap_or(jiff::Timestamp::UNIX_EPOCH);
        let until = jiff::Timestamp::from_microsecond(at.micros.saturating_add(reach))
            .unwrap_or(jiff::Timestamp::MAX);
        let mut seen = Vec::new();
        let first = named.tz.to_offset_info(from);
        seen.push((
            first.abbreviation().to_string(),
            first.offset(),
            first.dst().is_dst(),
        ));
        for transition in named.tz.following(from) {
            if transition.timestamp() > until {
                break;
            }
            seen.push((
                transition.abbreviation().to_string(),
                transition.offset(),
                transition.dst().is_dst(),
            ));
        }
        let mut added = Vec::new();
        for (abbreviation, offset, dst) in seen {
            // Numeric "abbreviations" (`-03`) are offsets already.
            if fixed_offset(&abbreviation).is_some() {
                continue;
            }
            let meanings = self.table.entry(abbreviation.clone()).or_default();
            let seconds = offset.seconds();
            match meanings.iter_mut().find(|m| m.offset_seconds == seconds) {
                Some(m) => {
                    if !m.zones.contains(&named.name) {
                        m.zones.push(named.name.clone());
                    }
                }
                None => meanings.push(AbbreviationMeaning {
                    offset_seconds: seconds,
                    dst,
                    zones: vec![named.name.clone()],
                }),
            }
            if !added.contains(&abbreviation) {
                added.push(abbreviation);
            }
        }
        added
    }

    /// The abbreviations known, sorted.
    pub fn known(&self) -> Vec<&str> {
        self.table.keys().map(String::as_str).collect()
    }

    /// The offset `abbreviation` stands for.
    pub fn offset(&self, abbreviation: &str) -> Result<Offset, TimeError> {
        let meanings = self
            .table
            .get(abbreviation)
            .map(Vec::as_slice)
            .unwrap_or(&[]);
        match meanings {
            [] => Err(TimeError::UnknownAbbreviation {
                abbreviation: abbreviation.to_string(),
                known: if self.table.is_empty() {
                    "none; name a zone (e.g. --tz America/Edmonton) to read its abbreviations"
                        .to_string()
                } else {
                    self.known().join(", ")
                },
            }),
            [one] => Offset::from_seconds(one.offset_seconds)
                .map_err(|e| TimeError::OutOfRange(e.to_string())),
            many => Err(TimeError::AmbiguousAbbreviation {
                abbreviation: abbreviation.to_string(),
                meanings: many
                    .iter()
                    .map(|m| {
                        let offset = Offset::from_seconds(m.offset_seconds)
                            .map_or_else(|_| m.offset_seconds.to_string(), |o| o.to_string());
                        format!("UTC{offset} in {}", m.zones.join(" and "))
                    })
                    .collect::<Vec<_>>()
                    .join(", "),
            }),
        }
    }
}

impl Serialize for Zone {
    /// Its name: `UTC`, `America/Edmonton`, `-06:00`.
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.name())
    }
}

impl<'de> Deserialize<'de> for Zone {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = std::borrow::Cow::<'de, str>::deserialize(d)?;
        Zone::named(&s).map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.render(&Zone::Utc, DEFAULT_DIGITS))
    }
}

impl FromStr for Timestamp {
    type Err = TimeError;

    /// UTC unless the text names a zone (IANA name or numeric offset).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Timestamp::parse(s, &Zone::Utc, &Abbreviations::new())
    }
}

impl Serialize for Timestamp {
    /// UTC to the microsecond: `2014-07-15 22:03:44.186000`.
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.render(&Zone::Utc, MAX_DIGITS))
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = std::borrow::Cow::<'de, str>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}
