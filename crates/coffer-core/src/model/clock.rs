//! The one clock every time-driven part of Coffer reads.
//!
//! Production uses the system clock. Development mode uses a clock that starts at the system
//! time and can be set or advanced (never backwards), so that tests can run a month of
//! schedules in seconds. SigV4 never uses this clock: signatures are checked against wall time.

use std::sync::{Arc, Mutex};

use chrono::{DateTime, Duration, Utc};

#[derive(Clone)]
pub struct Clock {
    /// When set, the offset added to the system time (development mode only).
    offset: Option<Arc<Mutex<Duration>>>,
}

impl Clock {
    /// The system clock.
    pub fn system() -> Self {
        Clock { offset: None }
    }

    /// A clock that can be moved forward.
    pub fn movable() -> Self {
        Clock {
            offset: Some(Arc::new(Mutex::new(Duration::zero()))),
        }
    }

    pub fn is_movable(&self) -> bool {
        self.offset.is_some()
    }

    pub fn now(&self) -> DateTime<Utc> {
        let now = Utc::now();
        match &self.offset {
            Some(o) => now + *o.lock().unwrap_or_else(|e| e.into_inner()),
            None => now,
        }
    }

    /// Moves the clock forward by `by`. Refused for the system clock or a negative step.
    pub fn advance(&self, by: Duration) -> Result<DateTime<Utc>, String> {
        let Some(o) = &self.offset else {
            return Err("the clock can only be moved in development mode (--dev)".into());
        };
        if by < Duration::zero() {
            return Err("the clock never moves backwards".into());
        }
        let mut o = o.lock().unwrap_or_else(|e| e.into_inner());
        *o += by;
        Ok(Utc::now() + *o)
    }

    /// Sets the clock to `to`, which must not be earlier than now.
    pub fn set(&self, to: DateTime<Utc>) -> Result<DateTime<Utc>, String> {
        let now = self.now();
        if to < now {
            return Err(format!(
                "the clock never moves backwards: {to} is before now ({now})"
            ));
        }
        self.advance(to - now)
    }
}

/// How long background work waits after its `failures`-th failed attempt before the next:
/// one minute, doubling with each further failure, at most an hour (on this clock). Queued
/// recovery point removals and failed job runs both wait this long.
pub fn backoff(failures: u32) -> Duration {
    let doublings = failures.saturating_sub(1).min(16);
    Duration::seconds((60_i64 << doublings).min(3600))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_a_minute_to_an_hour() {
        let mins: Vec<i64> = (1..=10).map(|a| backoff(a).num_minutes()).collect();
        assert_eq!(mins, [1, 2, 4, 8, 16, 32, 60, 60, 60, 60]);
        assert_eq!(backoff(0).num_minutes(), 1);
        assert_eq!(backoff(u32::MAX).num_minutes(), 60);
    }

    #[test]
    fn movable_clock_only_goes_forward() {
        let c = Clock::movable();
        let t0 = c.now();
        let t1 = c.advance(Duration::days(30)).unwrap();
        assert!(t1 - t0 >= Duration::days(30));
        assert!(c.advance(Duration::seconds(-1)).is_err());
        assert!(c.set(t0).is_err());
        assert!(Clock::system().advance(Duration::seconds(1)).is_err());
    }
}
