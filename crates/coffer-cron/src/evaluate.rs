//! Finding the next run of a parsed schedule in its time zone.
//!
//! The walk goes over local calendar days (skipping whole years and months the expression
//! excludes), tries each selected local time of a matching day in order, and maps it to an
//! instant with the time zone rules Coffer shares with EventBridge Scheduler:
//!
//! - a local time that does not exist (skipped by a spring-forward change) does not run that day;
//! - a local time that occurs twice (repeated by a fall-back change) runs once, at its first
//!   occurrence.
//!
//! With these rules the local-time order of candidates is also their instant order, so the first
//! candidate whose instant lies after the starting point is the next run.

use jiff::Timestamp;
use jiff::civil::{Date, DateTime};
use jiff::tz::{AmbiguousOffset, TimeZone};

use crate::expression::{CronFields, DayRule, FIRST_YEAR, LAST_YEAR, MonthDays, WeekDays};

/// The first run strictly after `after`, or `None` when the expression never runs again.
pub(crate) fn next_after(
    fields: &CronFields,
    tz: &TimeZone,
    after: Timestamp,
) -> Option<Timestamp> {
    let local = tz.to_datetime(after);
    let mut year = local.year();
    let mut month = local.month();
    let mut day = local.day();
    if year < FIRST_YEAR {
        (year, month, day) = (FIRST_YEAR, 1, 1);
    }
    while year <= LAST_YEAR {
        if !fields.has_year(year) {
            (year, month, day) = (year + 1, 1, 1);
            continue;
        }
        if fields.months.contains(month as u32) {
            let days_in_month = Date::new(year, month, 1).ok()?.days_in_month();
            for day in day..=days_in_month {
                let date = Date::new(year, month, day).ok()?;
                if !day_matches(&fields.day_rule, date) {
                    continue;
                }
                if let Some(run) = first_run_on(fields, tz, date, after) {
                    return Some(run);
                }
            }
        }
        (year, month, day) = if month == 12 {
            (year + 1, 1, 1)
        } else {
            (year, month + 1, 1)
        };
    }
    None
}

/// The first selected time on `date` whose instant is after `after`.
fn first_run_on(
    fields: &CronFields,
    tz: &TimeZone,
    date: Date,
    after: Timestamp,
) -> Option<Timestamp> {
    for hour in fields.hours.iter() {
        for minute in fields.minutes.iter() {
            let Ok(local) = DateTime::new(
                date.year(),
                date.month(),
                date.day(),
                hour as i8,
                minute as i8,
                0,
                0,
            ) else {
                continue;
            };
            if let Some(instant) = local_to_instant(tz, local)
                && instant > after
            {
                return Some(instant);
            }
        }
    }
    None
}

/// The instant a local time runs at: `None` inside a gap, the first occurrence inside a fold.
pub(crate) fn local_to_instant(tz: &TimeZone, local: DateTime) -> Option<Timestamp> {
    let offset = match tz.to_ambiguous_timestamp(local).offset() {
        AmbiguousOffset::Unambiguous { offset } => offset,
        AmbiguousOffset::Gap { .. } => return None,
        AmbiguousOffset::Fold { before, .. } => before,
    };
    offset.to_timestamp(local).ok()
}

/// Whether the day fields select `date`.
pub(crate) fn day_matches(rule: &DayRule, date: Date) -> bool {
    match rule {
        DayRule::OfMonth(days) => month_day_matches(days, date),
        DayRule::OfWeek(days) => week_day_matches(days, date),
    }
}

fn month_day_matches(days: &MonthDays, date: Date) -> bool {
    let day = date.day();
    let last = date.days_in_month();
    days.days.contains(day as u32)
        || (days.last_day && day == last)
        || (days.last_weekday && day == nearest_weekday(date, last))
        || days
            .nearest_weekday
            .iter()
            .any(|target| target as i8 <= last && nearest_weekday(date, target as i8) == day)
}

/// The Monday-to-Friday day nearest `target` in `date`'s month, never leaving the month:
/// a Saturday moves back to Friday (forward to Monday the 3rd when it is the 1st), a Sunday moves
/// forward to Monday (back to Friday when it is the last day).
fn nearest_weekday(date: Date, target: i8) -> i8 {
    let Ok(target_date) = date.first_of_month().with().day(target).build() else {
        return 0;
    };
    match target_date.weekday().to_sunday_one_offset() {
        7 if target == 1 => 3,
        7 => target - 1,
        1 if target == date.days_in_month() => target - 2,
        1 => target + 1,
        _ => target,
    }
}

fn week_day_matches(days: &WeekDays, date: Date) -> bool {
    let weekday = date.weekday().to_sunday_one_offset() as u32;
    let day = date.day();
    days.days.contains(weekday)
        || (days.last_in_month.contains(weekday) && day + 7 > date.days_in_month())
        || days.nth == Some((weekday, ((day - 1) / 7 + 1) as u32))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn instant(local: &str, zone: &str) -> Option<String> {
        let zone = TimeZone::get(zone).unwrap();
        local_to_instant(&zone, local.parse().unwrap()).map(|instant| instant.to_string())
    }

    #[test]
    fn nonexistent_local_times_do_not_run() {
        assert_eq!(instant("2025-03-09T02:30", "America/New_York"), None);
        assert_eq!(instant("2025-10-05T02:15", "Australia/Lord_Howe"), None);
        assert_eq!(
            instant("2025-10-05T02:30", "Australia/Lord_Howe").as_deref(),
            Some("2025-10-04T15:30:00Z")
        );
    }

    #[test]
    fn repeated_local_times_run_at_their_first_occurrence() {
        assert_eq!(
            instant("2025-11-02T01:30", "America/New_York").as_deref(),
            Some("2025-11-02T05:30:00Z")
        );
        assert_eq!(
            instant("2025-04-06T01:45", "Australia/Lord_Howe").as_deref(),
            Some("2025-04-05T14:45:00Z")
        );
    }

    #[test]
    fn nearest_weekday_edges() {
        let date = |text: &str| text.parse::<Date>().unwrap();
        // Saturday the 1st -> Monday the 3rd; Sunday the last -> Friday.
        assert_eq!(nearest_weekday(date("2025-02-10"), 1), 3);
        assert_eq!(nearest_weekday(date("2025-08-10"), 31), 29);
        // Sunday mid-month -> Monday; Saturday mid-month -> Friday; weekday stays.
        assert_eq!(nearest_weekday(date("2025-06-01"), 15), 16);
        assert_eq!(nearest_weekday(date("2025-03-01"), 15), 14);
        assert_eq!(nearest_weekday(date("2025-01-01"), 15), 15);
    }
}
