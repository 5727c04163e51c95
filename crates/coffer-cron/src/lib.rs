//! Schedule expressions of Coffer's backup rules.
//!
//! A backup rule says when it runs with an AWS Backup `ScheduleExpression` (EventBridge's
//! `cron(...)` dialect) and a `ScheduleExpressionTimezone` (an IANA name, `Etc/UTC` by default).
//! This crate validates both, with messages that tell the user what to fix, and computes the runs
//! the scheduler starts jobs at and that `GetBackupPlan`'s `ScheduledRunsPreview` shows.
//! `docs/schedules.md` describes the dialect and the decisions taken where AWS is silent.
//!
//! ```
//! use chrono::{TimeZone, Utc};
//! use coffer_cron::Schedule;
//!
//! let schedule = Schedule::parse("cron(0 5 ? * MON-FRI *)", "Europe/Paris").unwrap();
//! let after = Utc.with_ymd_and_hms(2025, 7, 4, 12, 0, 0).unwrap(); // a Friday
//! let next = schedule.next_after(after).unwrap();
//! assert_eq!(next, Utc.with_ymd_and_hms(2025, 7, 7, 3, 0, 0).unwrap()); // Monday 05:00 CEST
//! ```

mod error;
mod evaluate;
mod expression;

use chrono::{DateTime, Utc};
use jiff::Timestamp;
use jiff::tz::TimeZone;

pub use error::{CronField, Result, ScheduleError};
use expression::CronFields;

/// Runs of one backup rule must be at least this many minutes apart.
pub const MIN_INTERVAL_MINUTES: i64 = 60;

/// A validated schedule: a `cron(...)` expression evaluated in an IANA time zone.
#[derive(Debug, Clone)]
pub struct Schedule {
    expression: String,
    timezone_name: String,
    timezone: TimeZone,
    fields: CronFields,
}

impl Schedule {
    /// The expression AWS Backup uses when a rule has none: every day at 05:00.
    pub const DEFAULT_EXPRESSION: &'static str = "cron(0 5 ? * * *)";
    /// The time zone AWS Backup uses when a rule has none.
    pub const DEFAULT_TIMEZONE: &'static str = "Etc/UTC";

    /// Parses `expression` (for example `cron(0 5 ? * * *)`) to be evaluated in `timezone`
    /// (for example `Europe/Paris`). Does not check the minimum interval; see
    /// [`Schedule::parse_for_backup_rule`].
    pub fn parse(expression: &str, timezone: &str) -> Result<Schedule> {
        let fields = expression::parse(expression)?;
        let zone = TimeZone::get(timezone).map_err(|_| ScheduleError::UnknownTimezone {
            timezone: error::shown(timezone),
        })?;
        Ok(Schedule {
            expression: expression.to_owned(),
            timezone_name: timezone.to_owned(),
            timezone: zone,
            fields,
        })
    }

    /// Parses as [`Schedule::parse`] and refuses schedules whose runs could come closer than
    /// [`MIN_INTERVAL_MINUTES`] apart, as AWS Backup does for backup rules.
    pub fn parse_for_backup_rule(expression: &str, timezone: &str) -> Result<Schedule> {
        let schedule = Schedule::parse(expression, timezone)?;
        schedule.check_min_interval()?;
        Ok(schedule)
    }

    /// The expression as given.
    pub fn expression(&self) -> &str {
        &self.expression
    }

    /// The time zone name as given.
    pub fn timezone(&self) -> &str {
        &self.timezone_name
    }

    /// The first run strictly after `after`, or `None` if the schedule never runs again (the year
    /// field ends, or the days it selects never occur, like `cron(0 0 30 2 ? *)`).
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let after = to_timestamp(after)?;
        evaluate::next_after(&self.fields, &self.timezone, after).and_then(to_chrono)
    }

    /// Up to `n` runs after `after`, in order.
    pub fn upcoming(&self, after: DateTime<Utc>, n: usize) -> Vec<DateTime<Utc>> {
        let mut runs = Vec::with_capacity(n.min(1024));
        let mut cursor = after;
        while runs.len() < n {
            let Some(run) = self.next_after(cursor) else {
                break;
            };
            runs.push(run);
            cursor = run;
        }
        runs
    }

    /// Whether runs are at least [`MIN_INTERVAL_MINUTES`] apart on the local clock.
    ///
    /// Decided from the minutes field: two selected minutes are two runs within one hour, while a
    /// single minute gives runs at least an hour apart whatever the hours and days select.
    /// Daylight saving changes of a full hour keep that true; a change of less than an hour
    /// (Australia/Lord_Howe's 30 minutes) can bring two runs closer once, which is accepted as the
    /// user's local schedule is what they asked for. See `docs/schedules.md`.
    pub fn min_interval_ok(&self) -> bool {
        self.fields.minutes.len() == 1
    }

    /// [`Schedule::min_interval_ok`] as an error with AWS Backup's wording.
    pub fn check_min_interval(&self) -> Result<()> {
        if self.min_interval_ok() {
            Ok(())
        } else {
            Err(ScheduleError::IntervalTooShort {
                expression: error::shown(&self.expression),
            })
        }
    }

    /// The smallest gap between consecutive runs in `(from, until]`, measured in real time, or
    /// `None` with fewer than two runs. Costs one [`Schedule::next_after`] per run.
    pub fn shortest_gap(
        &self,
        from: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Option<chrono::Duration> {
        let mut previous = self.next_after(from).filter(|run| *run <= until)?;
        let mut shortest: Option<chrono::Duration> = None;
        while let Some(run) = self.next_after(previous).filter(|run| *run <= until) {
            let gap = run - previous;
            shortest = Some(shortest.map_or(gap, |s| s.min(gap)));
            previous = run;
        }
        shortest
    }
}

/// Instants before this cannot precede a run (the year field starts at 1970).
const EARLIEST_SECOND: i64 = -315_619_200; // 1960-01-01T00:00:00Z
/// Instants after this follow every run (the year field ends at 2199).
const LATEST_SECOND: i64 = 7_289_654_400; // 2201-01-01T00:00:00Z

fn to_timestamp(instant: DateTime<Utc>) -> Option<Timestamp> {
    let second = instant.timestamp();
    if second > LATEST_SECOND {
        return None;
    }
    if second < EARLIEST_SECOND {
        return Timestamp::new(EARLIEST_SECOND, 0).ok();
    }
    let nanosecond = i32::try_from(instant.timestamp_subsec_nanos()).ok()?;
    // chrono represents leap seconds with nanoseconds past 10^9; treat them as the second's end.
    Timestamp::new(second, nanosecond.min(999_999_999)).ok()
}

fn to_chrono(instant: Timestamp) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp(
        instant.as_second(),
        instant.subsec_nanosecond().try_into().ok()?,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedules_can_be_shared_between_threads() {
        fn shareable<T: Send + Sync + 'static>() {}
        shareable::<Schedule>();
        shareable::<ScheduleError>();
    }

    #[test]
    fn extreme_instants_do_not_panic() {
        let schedule = Schedule::parse("cron(0 0 1 1 ? *)", "Europe/Paris").unwrap();
        assert_eq!(
            schedule
                .next_after(DateTime::<Utc>::MIN_UTC)
                .map(|run| run.to_rfc3339())
                .as_deref(),
            Some("1969-12-31T23:00:00+00:00")
        );
        assert_eq!(schedule.next_after(DateTime::<Utc>::MAX_UTC), None);
    }
}
