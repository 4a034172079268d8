//! When each recorded event is due in a replay: the recorded times, relative to the
//! first, divided by the speed (or all at once at `max`).

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::time::Timestamp;

/// How fast a history is played back.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Speed {
    /// This many times the recorded pace (1: as recorded).
    Factor(f64),
    /// As fast as possible: no waiting between events.
    Max,
}

/// A `--speed` that is not `max` or a positive number.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad speed {0:?}: give a positive factor (1, 10, 0.5, 10x) or max")]
pub struct SpeedError(pub String);

impl FromStr for Speed {
    type Err = SpeedError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let text = s.trim();
        if text.eq_ignore_ascii_case("max") {
            return Ok(Speed::Max);
        }
        let number = text.strip_suffix(['x', 'X']).unwrap_or(text);
        match number.parse::<f64>() {
            Ok(f) if f.is_finite() && f > 0.0 => Ok(Speed::Factor(f)),
            _ => Err(SpeedError(s.to_string())),
        }
    }
}

impl fmt::Display for Speed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Speed::Factor(x) => write!(f, "{x}x"),
            Speed::Max => f.write_str("max"),
        }
    }
}

/// The replay clock: when each event is due, after the replay's start.
#[derive(Debug, Clone)]
pub struct Schedule {
    speed: Speed,
    first: Option<Timestamp>,
    last_due: Duration,
}

impl Schedule {
    /// A schedule at `speed`; the first event given to [`Schedule::due`] is due at once.
    pub fn new(speed: Speed) -> Self {
        Schedule {
            speed,
            first: None,
            last_due: Duration::ZERO,
        }
    }

    /// A schedule whose start is the recorded time `start`: events recorded before it are
    /// due at once (they bring the tags to their state at `start`), later ones at pace.
    pub fn starting_at(speed: Speed, start: Timestamp) -> Self {
        Schedule {
            first: Some(start),
            ..Schedule::new(speed)
        }
    }

    /// When the event recorded at `when` is due, after the replay's start. Events are
    /// taken in file order: one recorded earlier than the one before it (a clock set
    /// back) is due with it, never before.
    pub fn due(&mut self, when: Timestamp) -> Duration {
        let first = *self.first.get_or_insert(when);
        let due = match self.speed {
            Speed::Max => Duration::ZERO,
            Speed::Factor(factor) => {
                let seconds = when.since(first).to_seconds() / factor;
                Duration::try_from_secs_f64(seconds.max(0.0)).unwrap_or(Duration::MAX)
            }
        };
        self.last_due = self.last_due.max(due);
        self.last_due
    }
}
