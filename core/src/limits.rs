//! Per-connection limits the server engines enforce against a hostile or broken peer,
//! with their defaults, the counter of how often each was hit, and the request-rate
//! limiter both engines share.
//!
//! Where each limit lives (protocol decisions here in core, socket-level ones in
//! [`crate::engine::ServeOptions`] and the runtimes):
//!
//! | limit | where | on hitting it |
//! |---|---|---|
//! | concurrent TCP connections | [`ServeOptions::max_connections`] | accepted and closed at once, [`ServeStats::refused`] |
//! | idle connection | [`ServeOptions::idle_timeout`] | closed, [`ServeStats::idle_closed`] |
//! | peer not reading its replies | [`ServeOptions::send_timeout`] | closed, [`ServeStats::send_timeouts`] |
//! | frame announced too long | [`crate::enip::server::ServerOptions::max_frame_len`] | EtherNet/IP: status 0x0065 (invalid length), then close; Modbus frames are bounded by the protocol (260 bytes) |
//! | frame started, never finished | [`ConnectionLimits::frame_timeout`] | close (after flushing replies) |
//! | replies held per connection | [`ConnectionLimits::max_pending_replies`] | the engine stops taking requests and the runtime stops reading until replies leave |
//! | requests per second per connection | [`ConnectionLimits::max_request_rate`] | requests wait (the runtime stops reading): backpressure, no error |
//! | sessions per TCP connection | the protocol: one | a second RegisterSession gets status 0x0001 |
//! | CIP connections per TCP connection, and in all | [`crate::enip::server::ServerOptions::max_connections_per_session`], [`crate::enip::server::ServerOptions::max_connections`] | Forward Open refused with 0x01 / 0x0113 (out of connections) |
//!
//! Every limit hit is counted in a [`LimitCounts`] (the EtherNet/IP `Server`'s and the
//! Modbus `Device`'s `limits_reached`) and reported as an event naming the [`Limit`].
//!
//! [`ServeOptions::max_connections`]: crate::engine::ServeOptions::max_connections
//! [`ServeOptions::idle_timeout`]: crate::engine::ServeOptions::idle_timeout
//! [`ServeOptions::send_timeout`]: crate::engine::ServeOptions::send_timeout
//! [`ServeStats::refused`]: crate::engine::ServeStats::refused
//! [`ServeStats::idle_closed`]: crate::engine::ServeStats::idle_closed
//! [`ServeStats::send_timeouts`]: crate::engine::ServeStats::send_timeouts

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// Replies held per connection (computed, not yet handed to the runtime) at which the
/// engine stops taking requests, by default.
pub const DEFAULT_MAX_PENDING_REPLIES: usize = 1024;

/// How long a frame may stay half-received by default: far longer than any real client
/// takes to send one, short enough that a peer which never finishes is soon gone.
pub const DEFAULT_FRAME_TIMEOUT: Duration = Duration::from_secs(10);

/// The limits one server engine applies to each of its connections.
///
/// ```
/// use cpppo_core::limits::ConnectionLimits;
/// use std::time::Duration;
///
/// let limits: ConnectionLimits = serde_json::from_str(r#"{"max_request_rate": 100}"#).unwrap();
/// assert_eq!(limits.max_request_rate, Some(100));
/// assert_eq!(limits.frame_timeout, Some(Duration::from_secs(10)));
/// assert_eq!(limits, ConnectionLimits { max_request_rate: Some(100), ..Default::default() });
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ConnectionLimits {
    /// Replies held at which the engine takes no more requests (they stay unread in the
    /// socket) until some have been handed out. At least 1 is used.
    pub max_pending_replies: usize,
    /// Close a connection that began a frame and did not finish it within this long
    /// (seconds in JSON); `None` waits forever.
    #[serde(with = "crate::engine::seconds")]
    pub frame_timeout: Option<Duration>,
    /// At most this many requests per second per connection (bursts of up to one
    /// second's worth); more wait their turn. `None` (or 0) for no limit.
    pub max_request_rate: Option<u32>,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits {
            max_pending_replies: DEFAULT_MAX_PENDING_REPLIES,
            frame_timeout: Some(DEFAULT_FRAME_TIMEOUT),
            max_request_rate: None,
        }
    }
}

/// Which limit was hit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Limit {
    /// A frame's header announced more than the largest frame accepted.
    FrameLength,
    /// A frame was begun and not finished within [`ConnectionLimits::frame_timeout`].
    FrameTimeout,
    /// [`ConnectionLimits::max_pending_replies`] replies were held: requests wait.
    PendingReplies,
    /// [`ConnectionLimits::max_request_rate`] was exceeded: requests wait.
    RequestRate,
    /// A Forward Open found this TCP connection's CIP connections at their limit.
    ConnectionsPerSession,
    /// A Forward Open found the server's CIP connections at their limit.
    Connections,
}

/// How many times each [`Limit`] was hit, server-wide.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LimitCounts {
    /// [`Limit::FrameLength`].
    pub frame_length: u64,
    /// [`Limit::FrameTimeout`].
    pub frame_timeout: u64,
    /// [`Limit::PendingReplies`].
    pub pending_replies: u64,
    /// [`Limit::RequestRate`].
    pub request_rate: u64,
    /// [`Limit::ConnectionsPerSession`].
    pub connections_per_session: u64,
    /// [`Limit::Connections`].
    pub connections: u64,
}

impl LimitCounts {
    /// Count one hit of `limit`.
    pub fn count(&mut self, limit: Limit) {
        let counter = match limit {
            Limit::FrameLength => &mut self.frame_length,
            Limit::FrameTimeout => &mut self.frame_timeout,
            Limit::PendingReplies => &mut self.pending_replies,
            Limit::RequestRate => &mut self.request_rate,
            Limit::ConnectionsPerSession => &mut self.connections_per_session,
            Limit::Connections => &mut self.connections,
        };
        *counter = counter.saturating_add(1);
    }

    /// How many times `limit` was hit.
    pub fn get(&self, limit: Limit) -> u64 {
        match limit {
            Limit::FrameLength => self.frame_length,
            Limit::FrameTimeout => self.frame_timeout,
            Limit::PendingReplies => self.pending_replies,
            Limit::RequestRate => self.request_rate,
            Limit::ConnectionsPerSession => self.connections_per_session,
            Limit::Connections => self.connections,
        }
    }
}

/// A request-rate limiter (the generic cell rate algorithm: one instant of state): `rate`
/// requests per second on average, bursts of up to `rate` at once.
///
/// ```
/// use cpppo_core::limits::RateLimiter;
/// use std::time::{Duration, Instant};
///
/// let t0 = Instant::now();
/// let mut limiter = RateLimiter::new(2);
/// assert!(limiter.try_acquire(t0).is_ok());
/// assert!(limiter.try_acquire(t0).is_ok());
/// assert!(limiter.try_acquire(t0).is_ok()); // a second's burst
/// let next = limiter.try_acquire(t0).unwrap_err();
/// assert_eq!(next, t0 + Duration::from_millis(500));
/// assert!(limiter.try_acquire(next).is_ok());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimiter {
    rate: u32,
    interval: Duration,
    burst: Duration,
    /// When the next request would be on schedule (the "theoretical arrival time").
    next: Option<Instant>,
}

impl RateLimiter {
    /// At most `rate` requests per second (at least 1).
    pub fn new(rate: u32) -> Self {
        let rate = rate.max(1);
        RateLimiter {
            rate,
            interval: Duration::from_secs(1) / rate,
            burst: Duration::from_secs(1),
            next: None,
        }
    }

    /// The rate, per second.
    pub fn rate(&self) -> u32 {
        self.rate
    }

    /// Take the right to serve one request at `now`; `Err(at)` when none is left, `at`
    /// being when the next one will be.
    pub fn try_acquire(&mut self, now: Instant) -> Result<(), Instant> {
        let next = self.next.map_or(now, |next| next.max(now));
        let allowed_from = next.checked_sub(self.burst).unwrap_or(now);
        if allowed_from > now {
            return Err(allowed_from);
        }
        self.next = Some(next.checked_add(self.interval).unwrap_or(next));
        Ok(())
    }
}

/// One connection's state for its [`ConnectionLimits`], shared by the server engines:
/// whether whole requests may be served now (room for their replies, the request rate),
/// since when a frame has been half-received, and the deadlines these make.
///
/// An engine, each time it serves buffered requests: [`begin`](Self::begin), then
/// [`admit`](Self::admit) before each whole request (stop at the first `Err`), then
/// [`end`](Self::end), counting the limit it returns; its `poll_timeout` includes
/// [`deadline`](Self::deadline), its `handle_timeout` closes on
/// [`frame_expired`](Self::frame_expired) and serves again while
/// [`is_waiting`](Self::is_waiting).
#[derive(Debug, Clone, Default)]
pub(crate) struct ConnectionGate {
    limits: ConnectionLimits,
    limiter: Option<RateLimiter>,
    /// The limit that keeps whole requests waiting, if any.
    waiting: Option<Limit>,
    /// The limit met by the current pass of [`admit`](Self::admit).
    met: Option<Limit>,
    /// When the request rate allows the next request, while waiting for it.
    throttled_until: Option<Instant>,
    /// Since when a frame has been begun and not finished.
    partial_since: Option<Instant>,
    /// The latest time seen: the deadline that asks for a call at once.
    latest: Option<Instant>,
}

impl ConnectionGate {
    /// Replies held at which no more requests are taken (at least 1).
    pub(crate) fn max_pending(&self) -> usize {
        self.limits.max_pending_replies.max(1)
    }

    /// Whether whole requests wait for a limit.
    pub(crate) fn is_waiting(&self) -> bool {
        self.waiting.is_some()
    }

    /// A pass over the buffered requests begins at `now`, under `limits`.
    pub(crate) fn begin(&mut self, now: Instant, limits: &ConnectionLimits) {
        self.latest = Some(self.latest.map_or(now, |latest| latest.max(now)));
        self.limits = *limits;
        sync_limiter(&mut self.limiter, limits);
        self.throttled_until = None;
        self.met = None;
    }

    /// May one more whole request be served now, with `pending` replies held?
    pub(crate) fn admit(&mut self, now: Instant, pending: usize) -> Result<(), Limit> {
        let met = if pending >= self.max_pending() {
            Some(Limit::PendingReplies)
        } else {
            match self.limiter.as_mut().map(|l| l.try_acquire(now)) {
                Some(Err(at)) => {
                    self.throttled_until = Some(at);
                    Some(Limit::RequestRate)
                }
                _ => None,
            }
        };
        self.met = met;
        met.map_or(Ok(()), Err)
    }

    /// The pass ends: `partial` when a frame is half-received, `framed` when a request
    /// was served in the pass. Returns the limit newly met (to count and report).
    pub(crate) fn end(&mut self, now: Instant, partial: bool, framed: bool) -> Option<Limit> {
        let newly = self.met.filter(|limit| self.waiting != Some(*limit));
        self.waiting = self.met;
        // A frame's deadline runs from when it began (or when the one before it ended).
        if partial {
            if framed || self.partial_since.is_none() {
                self.partial_since = Some(now);
            }
        } else {
            self.partial_since = None;
        }
        newly
    }

    /// When a frame begun has waited too long for the rest of it.
    fn frame_deadline(&self) -> Option<Instant> {
        let since = self.partial_since?;
        self.limits
            .frame_timeout
            .map(|timeout| since.checked_add(timeout).unwrap_or(since))
    }

    /// Whether a frame begun has waited too long at `now` (the connection should close).
    pub(crate) fn frame_expired(&self, now: Instant) -> bool {
        self.frame_deadline().is_some_and(|at| at <= now)
    }

    /// Forget the half-received frame (its bytes were dropped).
    pub(crate) fn clear_partial(&mut self) {
        self.partial_since = None;
    }

    /// The next deadline, with `pending` replies held: the frame timeout, and the
    /// moment waiting requests may go on (at once once there is room for their replies,
    /// or when the request rate allows).
    pub(crate) fn deadline(&self, pending: usize) -> Option<Instant> {
        let resume = match self.waiting {
            Some(Limit::PendingReplies) if pending < self.max_pending() => self.latest,
            Some(Limit::RequestRate) => self.throttled_until,
            _ => None,
        };
        [self.frame_deadline(), resume].into_iter().flatten().min()
    }
}

/// The limiter `limits` asks for, kept across calls while the rate stays the same (so a
/// change of options applies from the next request on).
pub(crate) fn sync_limiter(limiter: &mut Option<RateLimiter>, limits: &ConnectionLimits) {
    match limits.max_request_rate.filter(|rate| *rate > 0) {
        Some(rate) if limiter.is_some_and(|l| l.rate() == rate) => {}
        Some(rate) => *limiter = Some(RateLimiter::new(rate)),
        None => *limiter = None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rate_holds_on_average_over_time() {
        let t0 = Instant::now();
        let mut limiter = RateLimiter::new(10);
        let mut served = 0;
        // Offered 1000 per second for 10 seconds: 10 per second plus one burst pass.
        for ms in 0..10_000u64 {
            let now = t0 + Duration::from_millis(ms);
            if limiter.try_acquire(now).is_ok() {
                served += 1;
            }
        }
        assert_eq!(served, 10 * 10 + 10);
    }

    #[test]
    fn counts_by_limit_and_options_sync() {
        let mut counts = LimitCounts::default();
        counts.count(Limit::RequestRate);
        counts.count(Limit::RequestRate);
        counts.count(Limit::Connections);
        assert_eq!(counts.get(Limit::RequestRate), 2);
        assert_eq!(counts.get(Limit::Connections), 1);
        assert_eq!(counts.get(Limit::FrameLength), 0);

        let mut limiter = None;
        let mut limits = ConnectionLimits::default();
        sync_limiter(&mut limiter, &limits);
        assert!(limiter.is_none());
        limits.max_request_rate = Some(5);
        sync_limiter(&mut limiter, &limits);
        assert_eq!(limiter.map(|l| l.rate()), Some(5));
        limits.max_request_rate = Some(0);
        sync_limiter(&mut limiter, &limits);
        assert!(limiter.is_none());
    }
}
