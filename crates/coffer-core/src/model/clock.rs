//! The one clock every time-driven part of Coffer reads.
//!
//! Production uses the system clock. Development mode uses a clock that starts at the system
//! time and can be set or advanced (never backwards), so that tests can run a month of
//! schedules in seconds. While the clock endpoint steps through the time it skips (see
//! `background::time_travel`), the clock is *held*: it stands still at each simulated time,
//! so everything that happens at one step (a firing, the jobs it starts, their events) carries
//! that time, and it follows the wall clock again from the target once released. SigV4 never
//! uses this clock: signatures are checked against wall time.

use std::sync::{Arc, Mutex};

use chrono::{DateTime, Duration, Utc};

#[derive(Clone)]
pub struct Clock {
    /// Development mode only: how the clock differs from the system time.
    movable: Option<Arc<Mutex<Movable>>>,
}

/// A development clock: the system time plus an offset, or a time it is held at.
#[derive(Default)]
struct Movable {
    offset: Duration,
    held: Option<DateTime<Utc>>,
}

impl Movable {
    fn now(&self) -> DateTime<Utc> {
        self.held.unwrap_or_else(|| Utc::now() + self.offset)
    }
}

impl Clock {
    /// The system clock.
    pub fn system() -> Self {
        Clock { movable: None }
    }

    /// A clock that can be moved forward.
    pub fn movable() -> Self {
        Clock {
            movable: Some(Arc::default()),
        }
    }

    pub fn is_movable(&self) -> bool {
        self.movable.is_some()
    }

    fn state(&self) -> Result<std::sync::MutexGuard<'_, Movable>, String> {
        match &self.movable {
            Some(m) => Ok(m.lock().unwrap_or_else(|e| e.into_inner())),
            None => Err("the clock can only be moved in development mode (--dev)".into()),
        }
    }

    pub fn now(&self) -> DateTime<Utc> {
        match &self.movable {
            Some(m) => m.lock().unwrap_or_else(|e| e.into_inner()).now(),
            None => Utc::now(),
        }
    }

    /// Moves the clock forward by `by`. Refused for the system clock or a negative step.
    pub fn advance(&self, by: Duration) -> Result<DateTime<Utc>, String> {
        let mut m = self.state()?;
        if by < Duration::zero() {
            return Err("the clock never moves backwards".into());
        }
        match &mut m.held {
            Some(h) => *h += by,
            None => m.offset += by,
        }
        Ok(m.now())
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

    /// Holds the clock where it is: it stands still until [`Clock::release`] (moving it with
    /// `set` or `advance` still works). Returns the time it holds.
    pub fn hold(&self) -> Result<DateTime<Utc>, String> {
        let mut m = self.state()?;
        let now = m.now();
        m.held = Some(now);
        Ok(now)
    }

    /// Lets a held clock run again with the system time, from the time it was held at.
    pub fn release(&self) {
        if let Ok(mut m) = self.state()
            && let Some(h) = m.held.take()
        {
            m.offset = h - Utc::now();
        }
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

    #[test]
    fn a_held_clock_stands_still_and_runs_on_from_where_it_was_released() {
        let c = Clock::movable();
        let t0 = c.hold().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(5));
        assert_eq!(c.now(), t0, "held");
        let t1 = c.advance(Duration::hours(5)).unwrap();
        assert_eq!(t1, t0 + Duration::hours(5));
        assert_eq!(c.now(), t1);
        assert!(c.set(t0).is_err(), "never backwards while held");
        c.release();
        let after = c.now();
        assert!(
            after >= t1 && after - t1 < Duration::seconds(5),
            "{after} vs {t1}"
        );
        assert!(Clock::system().hold().is_err());
    }
}
