//! Hand-checked runs of each feature of the dialect.

use chrono::Duration;
use coffer_cron::Schedule;

use crate::{runs, utc};

#[test]
fn default_rule_runs_daily_at_five_utc() {
    assert_eq!(
        runs(
            Schedule::DEFAULT_EXPRESSION,
            Schedule::DEFAULT_TIMEZONE,
            "2025-03-01T04:59",
            3
        ),
        ["2025-03-01T05:00", "2025-03-02T05:00", "2025-03-03T05:00"]
    );
}

#[test]
fn next_run_is_strictly_after() {
    let schedule = Schedule::parse("cron(0 5 ? * * *)", "Etc/UTC").unwrap();
    let five = utc("2025-03-01T05:00");
    assert_eq!(schedule.next_after(five), Some(utc("2025-03-02T05:00")));
    let just_before = five - Duration::nanoseconds(1);
    assert_eq!(schedule.next_after(just_before), Some(five));
}

#[test]
fn last_day_of_month() {
    assert_eq!(
        runs("cron(0 12 L * ? *)", "Etc/UTC", "2024-01-31T12:00", 4),
        [
            "2024-02-29T12:00",
            "2024-03-31T12:00",
            "2024-04-30T12:00",
            "2024-05-31T12:00"
        ]
    );
}

#[test]
fn last_friday_of_month() {
    assert_eq!(
        runs("cron(0 8 ? * 6L *)", "Etc/UTC", "2025-01-01T00:00", 4),
        [
            "2025-01-31T08:00",
            "2025-02-28T08:00",
            "2025-03-28T08:00",
            "2025-04-25T08:00"
        ]
    );
    assert_eq!(
        runs("cron(0 8 ? * FRIL *)", "Etc/UTC", "2025-01-01T00:00", 1),
        ["2025-01-31T08:00"]
    );
}

#[test]
fn last_day_of_week_is_saturday() {
    assert_eq!(
        runs("cron(0 8 ? * L *)", "Etc/UTC", "2025-01-01T00:00", 2),
        ["2025-01-04T08:00", "2025-01-11T08:00"]
    );
}

#[test]
fn second_tuesday() {
    assert_eq!(
        runs("cron(0 9 ? * 3#2 *)", "Etc/UTC", "2025-01-01T00:00", 4),
        [
            "2025-01-14T09:00",
            "2025-02-11T09:00",
            "2025-03-11T09:00",
            "2025-04-08T09:00"
        ]
    );
    assert_eq!(
        runs("cron(0 9 ? * tue#2 *)", "Etc/UTC", "2025-01-01T00:00", 1),
        ["2025-01-14T09:00"]
    );
}

#[test]
fn fifth_weekday_skips_months_without_one() {
    // Fifth Saturdays of 2025: March 29, May 31, August 30, November 29.
    assert_eq!(
        runs("cron(0 9 ? * 7#5 *)", "Etc/UTC", "2025-01-01T00:00", 4),
        [
            "2025-03-29T09:00",
            "2025-05-31T09:00",
            "2025-08-30T09:00",
            "2025-11-29T09:00"
        ]
    );
}

#[test]
fn nearest_weekday() {
    // 2025: Jan 15 Wednesday; Feb 15 and Mar 15 Saturdays (-> Friday 14); Apr 15 Tuesday;
    // May 15 Thursday; Jun 15 Sunday (-> Monday 16).
    assert_eq!(
        runs("cron(0 9 15W * ? *)", "Etc/UTC", "2025-01-01T00:00", 6),
        [
            "2025-01-15T09:00",
            "2025-02-14T09:00",
            "2025-03-14T09:00",
            "2025-04-15T09:00",
            "2025-05-15T09:00",
            "2025-06-16T09:00"
        ]
    );
}

#[test]
fn nearest_weekday_stays_in_the_month() {
    // Saturday 1 February 2025 -> Monday 3rd, not Friday 31 January.
    assert_eq!(
        runs("cron(0 9 1W * ? *)", "Etc/UTC", "2025-01-02T00:00", 1),
        ["2025-02-03T09:00"]
    );
    // Sunday 31 August 2025 -> Friday 29th, not Monday 1 September.
    assert_eq!(
        runs("cron(0 9 31W * ? *)", "Etc/UTC", "2025-08-01T00:00", 1),
        ["2025-08-29T09:00"]
    );
    // 31W never runs in 30-day months: from 1 April 2025 the next is 30 May (31st is a Saturday).
    assert_eq!(
        runs("cron(0 9 31W * ? *)", "Etc/UTC", "2025-04-01T00:00", 1),
        ["2025-05-30T09:00"]
    );
}

#[test]
fn last_weekday_of_month() {
    // May 2025 ends on Saturday 31 (-> 30th), June on Monday 30, August on Sunday 31 (-> 29th).
    assert_eq!(
        runs("cron(0 18 LW 5-8 ? 2025)", "Etc/UTC", "2025-01-01T00:00", 5),
        [
            "2025-05-30T18:00",
            "2025-06-30T18:00",
            "2025-07-31T18:00",
            "2025-08-29T18:00"
        ]
    );
}

#[test]
fn leap_days() {
    assert_eq!(
        runs("cron(0 0 29 2 ? *)", "Etc/UTC", "2025-01-01T00:00", 2),
        ["2028-02-29T00:00", "2032-02-29T00:00"]
    );
    // 2100 is not a leap year.
    assert_eq!(
        runs("cron(0 0 29 2 ? *)", "Etc/UTC", "2096-03-01T00:00", 1),
        ["2104-02-29T00:00"]
    );
}

#[test]
fn impossible_days_never_run() {
    assert_eq!(
        runs("cron(0 0 30 2 ? *)", "Etc/UTC", "2025-01-01T00:00", 1),
        Vec::<String>::new()
    );
}

#[test]
fn year_field() {
    assert_eq!(
        runs(
            "cron(0 0 1 1 ? 2030-2032)",
            "Etc/UTC",
            "2025-01-01T00:00",
            5
        ),
        ["2030-01-01T00:00", "2031-01-01T00:00", "2032-01-01T00:00"]
    );
    assert_eq!(
        runs("cron(0 0 1 1 ? 2100/50)", "Etc/UTC", "2025-01-01T00:00", 5),
        ["2100-01-01T00:00", "2150-01-01T00:00"]
    );
    assert_eq!(
        runs("cron(0 0 1 1 ? 2020)", "Etc/UTC", "2025-01-01T00:00", 1),
        Vec::<String>::new()
    );
    assert_eq!(
        runs("cron(59 23 31 12 ? *)", "Etc/UTC", "2199-12-31T23:59", 1),
        Vec::<String>::new()
    );
    assert_eq!(
        runs("cron(0 0 1 1 ? *)", "Etc/UTC", "1900-06-01T00:00", 1),
        ["1970-01-01T00:00"]
    );
}

#[test]
fn names_and_lists() {
    // Weekdays of January and July 2025 at 07:30: Jan 1 is a Wednesday.
    assert_eq!(
        runs(
            "cron(30 7 ? JAN,jul MON-FRI *)",
            "Etc/UTC",
            "2025-01-01T00:00",
            4
        ),
        [
            "2025-01-01T07:30",
            "2025-01-02T07:30",
            "2025-01-03T07:30",
            "2025-01-06T07:30"
        ]
    );
    assert_eq!(
        runs(
            "cron(30 7 ? JAN,jul MON-FRI *)",
            "Etc/UTC",
            "2025-01-31T08:00",
            1
        ),
        ["2025-07-01T07:30"]
    );
}

#[test]
fn steps() {
    assert_eq!(
        runs("cron(10 0/8 * * ? *)", "Etc/UTC", "2025-01-01T00:00", 4),
        [
            "2025-01-01T00:10",
            "2025-01-01T08:10",
            "2025-01-01T16:10",
            "2025-01-02T00:10"
        ]
    );
    assert_eq!(
        runs("cron(0 12 1-31/10 * ? *)", "Etc/UTC", "2025-02-01T00:00", 4),
        [
            "2025-02-01T12:00",
            "2025-02-11T12:00",
            "2025-02-21T12:00",
            "2025-03-01T12:00"
        ]
    );
}

#[test]
fn time_zone_without_dst() {
    // Asia/Kolkata is UTC+05:30 all year.
    assert_eq!(
        runs("cron(0 5 ? * * *)", "Asia/Kolkata", "2025-06-01T00:00", 2),
        ["2025-06-01T23:30", "2025-06-02T23:30"]
    );
}

#[test]
fn spring_forward_skips_nonexistent_times() {
    // New York skips 02:00-02:59 on 9 March 2025.
    assert_eq!(
        runs(
            "cron(30 2 * * ? *)",
            "America/New_York",
            "2025-03-08T00:00",
            3
        ),
        ["2025-03-08T07:30", "2025-03-10T06:30", "2025-03-11T06:30"]
    );
    // London skips 01:00-01:59 on 30 March 2025.
    assert_eq!(
        runs("cron(15 1 * * ? *)", "Europe/London", "2025-03-29T00:00", 2),
        ["2025-03-29T01:15", "2025-03-31T00:15"]
    );
    // Hourly runs lose one run.
    assert_eq!(
        runs(
            "cron(0 * * * ? *)",
            "America/New_York",
            "2025-03-09T05:30",
            3
        ),
        ["2025-03-09T06:00", "2025-03-09T07:00", "2025-03-09T08:00"]
    );
}

#[test]
fn fall_back_runs_repeated_times_once_at_the_first_occurrence() {
    // New York repeats 01:00-01:59 on 2 November 2025 (EDT 05:00Z-05:59Z, then EST 06:00Z-06:59Z).
    assert_eq!(
        runs(
            "cron(30 1 * * ? *)",
            "America/New_York",
            "2025-11-01T00:00",
            3
        ),
        ["2025-11-01T05:30", "2025-11-02T05:30", "2025-11-03T06:30"]
    );
    // Starting inside the second occurrence does not run it again.
    assert_eq!(
        runs(
            "cron(45 1 * * ? *)",
            "America/New_York",
            "2025-11-02T06:10",
            1
        ),
        ["2025-11-03T06:45"]
    );
    assert_eq!(
        runs(
            "cron(0 * * * ? *)",
            "America/New_York",
            "2025-11-02T03:30",
            3
        ),
        ["2025-11-02T04:00", "2025-11-02T05:00", "2025-11-02T07:00"]
    );
}

#[test]
fn lord_howe_half_hour_shift() {
    // Lord Howe Island skips 02:00-02:29 on 5 October 2025 (+10:30 -> +11:00).
    assert_eq!(
        runs(
            "cron(15 2 * * ? *)",
            "Australia/Lord_Howe",
            "2025-10-03T00:00",
            3
        ),
        ["2025-10-03T15:45", "2025-10-05T15:15", "2025-10-06T15:15"]
    );
    // and repeats 01:30-01:59 on 6 April 2025 (+11:00 -> +10:30).
    assert_eq!(
        runs(
            "cron(45 1 * * ? *)",
            "Australia/Lord_Howe",
            "2025-04-05T00:00",
            2
        ),
        ["2025-04-05T14:45", "2025-04-06T15:15"]
    );
}

#[test]
fn minimum_interval() {
    let ok = |expression: &str| {
        Schedule::parse(expression, "Etc/UTC")
            .unwrap()
            .min_interval_ok()
    };
    assert!(ok("cron(0 5 ? * * *)"));
    assert!(ok("cron(0 */1 * * ? *)"));
    assert!(ok("cron(0 * * * ? *)"));
    assert!(ok("cron(5,5 5,5 * * ? *)"));
    assert!(ok("cron(0/60 * * * ? *)"));
    assert!(ok("cron(59 0-23 * * ? *)"));
    assert!(!ok("cron(0,30 * * * ? *)"));
    assert!(!ok("cron(0,59 5 * * ? *)"));
    assert!(!ok("cron(* 5 * * ? *)"));
    assert!(!ok("cron(0/15 5 * * ? *)"));
    assert!(Schedule::parse_for_backup_rule("cron(0 * * * ? *)", "Etc/UTC").is_ok());
    assert!(Schedule::parse_for_backup_rule("cron(0,30 * * * ? *)", "Etc/UTC").is_err());
}

#[test]
fn shortest_gap_measures_real_time() {
    let gap = |expression: &str, timezone: &str, from: &str, until: &str| {
        Schedule::parse(expression, timezone)
            .unwrap()
            .shortest_gap(utc(from), utc(until))
            .map(|gap| gap.num_minutes())
    };
    assert_eq!(
        gap(
            "cron(0,30 * * * ? *)",
            "Etc/UTC",
            "2025-01-01T00:00",
            "2025-01-02T00:00"
        ),
        Some(30)
    );
    assert_eq!(
        gap(
            "cron(0 * * * ? *)",
            "America/New_York",
            "2025-01-01T00:00",
            "2026-01-01T00:00"
        ),
        Some(60)
    );
    // The one case a single-minute schedule comes closer: Lord Howe's 30-minute spring forward.
    assert_eq!(
        gap(
            "cron(45 * * * ? *)",
            "Australia/Lord_Howe",
            "2025-10-04T12:00",
            "2025-10-05T00:00"
        ),
        Some(30)
    );
    assert_eq!(
        gap(
            "cron(0 5 1 1 ? 2030)",
            "Etc/UTC",
            "2025-01-01T00:00",
            "2040-01-01T00:00"
        ),
        None
    );
}

#[test]
fn accessors_echo_input() {
    let schedule = Schedule::parse("cron(0 5 ? * * *)", "Europe/Paris").unwrap();
    assert_eq!(schedule.expression(), "cron(0 5 ? * * *)");
    assert_eq!(schedule.timezone(), "Europe/Paris");
}
