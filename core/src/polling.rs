//! What every poller shares, whatever the protocol: the cadence of a polled item
//! ([`next_due`]), exponential backoff between reconnects ([`Backoff`]) and cpppo's load
//! figures ([`Load`]). The Modbus poller ([`crate::modbus::poller`]) and the EtherNet/IP
//! poller ([`crate::enip::poller`]) both keep their clocks with these, so a change in how
//! cycles slip, back off or load is made once.
//!
//! Sans-IO like the engines: every function takes `now`.
//!
//! ```
//! use std::time::{Duration, Instant};
//! use cpppo_core::polling::{next_due, Backoff, Load};
//!
//! let t0 = Instant::now();
//! let rate = Duration::from_secs(1);
//! // Polled 2.5 s late: two cycles slipped, the next is due on the cadence at t0 + 3 s.
//! assert_eq!(next_due(t0, rate, t0 + Duration::from_millis(2500)), (t0 + 3 * rate, 2));
//!
//! let mut backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(4), 2.0);
//! let waits: Vec<u64> = (0..4).map(|_| backoff.next_wait().as_secs()).collect();
//! assert_eq!(waits, [1, 2, 4, 4]);
//! backoff.reset();
//! assert_eq!(backoff.next_wait(), Duration::from_secs(1));
//!
//! let mut load = Load::default();
//! load.sample(Duration::from_millis(250), rate); // a quarter of the period spent polling
//! assert_eq!(load.one, Some(0.25));
//! ```

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// The load's averaging windows, in minutes (cpppo's 1, 5 and 15-minute load).
pub const LOAD_MINUTES: [u32; 3] = [1, 5, 15];

/// Seconds in a minute, for the load's weights.
const SECONDS_PER_MINUTE: f64 = 60.0;

/// When an item polled every `rate`, due at `due` and polled at `now`, is next due, and
/// how many of its cycles were missed meanwhile (cpppo's "slipped"). The cadence is
/// kept: the next due time is `due` plus a whole number of `rate`s, after `now`.
pub fn next_due(due: Instant, rate: Duration, now: Instant) -> (Instant, u64) {
    let rate = rate.max(Duration::from_nanos(1));
    let late = now.saturating_duration_since(due);
    let slipped = late.as_nanos() / rate.as_nanos();
    let steps = u32::try_from(slipped.saturating_add(1)).unwrap_or(u32::MAX);
    let next = due
        .checked_add(rate.saturating_mul(steps))
        .unwrap_or_else(|| now.checked_add(rate).unwrap_or(now));
    (next, u64::try_from(slipped).unwrap_or(u64::MAX))
}

/// Exponential backoff between attempts: the first wait, then each one `multiplier`
/// times the last, up to `max`; [`reset`](Backoff::reset) after a success.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Backoff {
    first: Duration,
    max: Duration,
    multiplier: f64,
    current: Duration,
}

impl Backoff {
    /// Waits of `first`, growing by `multiplier` (at least 1) to at most `max` (at least
    /// `first`).
    pub fn new(first: Duration, max: Duration, multiplier: f64) -> Self {
        Backoff {
            first,
            max: max.max(first),
            multiplier: if multiplier.is_finite() {
                multiplier.max(1.0)
            } else {
                1.0
            },
            current: first,
        }
    }

    /// The wait to use now; the one after grows.
    pub fn next_wait(&mut self) -> Duration {
        let wait = self.current;
        let grown = Duration::try_from_secs_f64(self.current.as_secs_f64() * self.multiplier)
            .unwrap_or(self.max);
        self.current = grown.min(self.max).max(self.first);
        wait
    }

    /// An attempt succeeded: the next wait is the first again.
    pub fn reset(&mut self) {
        self.current = self.first;
    }

    /// The wait [`next_wait`](Backoff::next_wait) would give.
    pub fn peek(&self) -> Duration {
        self.current
    }
}

/// cpppo's `load`: the fraction of the poll period spent polling, averaged over about
/// the last 1, 5 and 15 minutes; `None` before the first cycle ends. Above 1.0, the
/// device cannot keep up with the rate.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Load {
    /// Over about a minute.
    pub one: Option<f64>,
    /// Over about 5 minutes.
    pub five: Option<f64>,
    /// Over about 15 minutes.
    pub fifteen: Option<f64>,
}

impl Load {
    /// A cycle of a poll `period` was busy for `busy`: cpppo's
    /// `exponential_moving_average(cur, busy / period, 1 / (minutes * 60 / period))`, the
    /// first sample taken as it is. A zero period counts no sample.
    pub fn sample(&mut self, busy: Duration, period: Duration) {
        let period = period.as_secs_f64();
        if period <= 0.0 {
            return;
        }
        let sample = busy.as_secs_f64() / period;
        for (minutes, slot) in
            LOAD_MINUTES
                .iter()
                .zip([&mut self.one, &mut self.five, &mut self.fifteen])
        {
            let weight = (period / (SECONDS_PER_MINUTE * f64::from(*minutes))).min(1.0);
            *slot = Some(match *slot {
                None => sample,
                Some(cur) => cur + weight * (sample - cur),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cadence_is_kept_and_slips_counted() {
        let t0 = Instant::now();
        let rate = Duration::from_millis(100);
        assert_eq!(next_due(t0, rate, t0), (t0 + rate, 0));
        assert_eq!(
            next_due(t0, rate, t0 + Duration::from_millis(99)),
            (t0 + rate, 0)
        );
        assert_eq!(next_due(t0, rate, t0 + rate), (t0 + 2 * rate, 1));
        // A zero rate is one nanosecond, not a division by zero.
        assert_eq!(next_due(t0, Duration::ZERO, t0).1, 0);
    }

    #[test]
    fn backoff_grows_by_its_multiplier_to_its_cap() {
        let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(10), 1.5);
        let waits: Vec<f64> = (0..8).map(|_| b.next_wait().as_secs_f64()).collect();
        assert_eq!(waits, [1.0, 1.5, 2.25, 3.375, 5.0625, 7.59375, 10.0, 10.0]);
        assert_eq!(b.peek(), Duration::from_secs(10));
        b.reset();
        assert_eq!(b.next_wait(), Duration::from_secs(1));
        // Nonsense multipliers do not shrink or blow up the wait.
        let mut b = Backoff::new(Duration::from_secs(2), Duration::from_secs(1), f64::NAN);
        assert_eq!(
            (b.next_wait(), b.next_wait()),
            (Duration::from_secs(2), Duration::from_secs(2))
        );
    }

    #[test]
    fn load_averages_with_cpppo_weights() {
        let mut load = Load::default();
        let period = Duration::from_secs(6); // weights 0.1, 0.02, 1/150
        load.sample(Duration::from_secs(3), period);
        assert_eq!(
            (load.one, load.five, load.fifteen),
            (Some(0.5), Some(0.5), Some(0.5))
        );
        load.sample(Duration::ZERO, period);
        assert!((load.one.unwrap() - 0.45).abs() < 1e-12);
        assert!((load.five.unwrap() - 0.49).abs() < 1e-12);
        assert!((load.fifteen.unwrap() - (0.5 - 0.5 / 150.0)).abs() < 1e-12);
        load.sample(Duration::from_secs(1), Duration::ZERO);
        assert!(
            (load.one.unwrap() - 0.45).abs() < 1e-12,
            "no sample for no period"
        );
    }
}
