//! Each class of refusal, and that its message names the field and says what to fix.

use coffer_cron::{CronField, Schedule, ScheduleError};

fn message(expression: &str) -> String {
    match Schedule::parse(expression, "Etc/UTC") {
        Ok(_) => panic!("{expression} was accepted"),
        Err(error) => error.to_string(),
    }
}

fn field_of(expression: &str) -> CronField {
    match Schedule::parse(expression, "Etc/UTC") {
        Err(ScheduleError::InvalidField { field, .. }) => field,
        other => panic!("{expression}: expected a field error, got {other:?}"),
    }
}

#[test]
fn day_field_conflict() {
    assert_eq!(
        message("cron(0 5 * * * *)"),
        "Invalid ScheduleExpression cron(0 5 * * * *): exactly one of day-of-month and day-of-week must be '?'"
    );
    assert!(message("cron(0 5 ? * ? *)").contains("exactly one of day-of-month and day-of-week"));
    assert!(message("cron(0 5 1 * MON *)").contains("exactly one of day-of-month and day-of-week"));
}

#[test]
fn rate_and_other_forms() {
    assert_eq!(
        message("rate(1 hour)"),
        "Invalid ScheduleExpression rate(1 hour): rate(...) expressions are not supported for backup rules; write a cron(...) expression such as cron(0 5 ? * * *)"
    );
    for expression in [
        "at(2025-01-01T00:00:00)",
        "0 5 * * ?",
        "",
        "cron(0 5 ? * * *",
        "CRON(0 5 ? * * *)",
    ] {
        assert!(
            message(expression)
                .contains("expected cron(minutes hours day-of-month month day-of-week year)"),
            "{expression}"
        );
    }
}

#[test]
fn field_count() {
    assert_eq!(
        message("cron(0 5 ? * *)"),
        "Invalid ScheduleExpression cron(0 5 ? * *): expected 6 fields (minutes hours day-of-month month day-of-week year), found 5"
    );
    assert!(message("cron(0 0 5 ? * * *)").ends_with("found 7"));
    assert!(message("cron()").ends_with("found 0"));
}

#[test]
fn out_of_range_values_name_the_field() {
    assert_eq!(
        message("cron(60 5 ? * * *)"),
        "Invalid ScheduleExpression cron(60 5 ? * * *): minutes field '60': '60' is out of range, allowed values are 0-59"
    );
    assert_eq!(field_of("cron(0 24 ? * * *)"), CronField::Hours);
    assert_eq!(field_of("cron(0 5 32 * ? *)"), CronField::DayOfMonth);
    assert_eq!(field_of("cron(0 5 0 * ? *)"), CronField::DayOfMonth);
    assert_eq!(field_of("cron(0 5 1 13 ? *)"), CronField::Month);
    assert_eq!(field_of("cron(0 5 ? * 0 *)"), CronField::DayOfWeek);
    assert_eq!(field_of("cron(0 5 ? * 8 *)"), CronField::DayOfWeek);
    assert_eq!(field_of("cron(0 5 ? * * 1969)"), CronField::Year);
    assert_eq!(field_of("cron(0 5 ? * * 2200)"), CronField::Year);
    assert!(message("cron(0 5 ? * 8 *)").contains("allowed values are 1-7 or SUN-SAT"));
    assert!(message("cron(0 5 1 13 ? *)").contains("allowed values are 1-12 or JAN-DEC"));
}

#[test]
fn malformed_values() {
    assert!(
        message("cron(0 5 ? FOO * *)").contains("month field 'FOO': 'FOO' is not a valid value")
    );
    assert!(message("cron(0 5 ? * MONDAY *)").contains("day-of-week field 'MONDAY'"));
    assert!(message("cron(0 5,,6 ? * * *)").contains("hours field '5,,6': empty list element"));
    assert!(message("cron(0 -5 ? * * *)").contains("hours field '-5': missing value"));
    assert!(
        message("cron(0/0 5 ? * * *)")
            .contains("the step after '/' must be a whole number of at least 1")
    );
    assert!(message("cron(0/x 5 ? * * *)").contains("the step after '/'"));
    assert!(message("cron(0 20-4 ? * * *)").contains("range start 20 is after its end 4"));
    assert!(message("cron(0 5 ? * FRI-MON *)").contains("ranges do not wrap around"));
}

#[test]
fn question_mark_outside_day_fields() {
    assert!(message("cron(? 5 ? * * *)").contains(
        "minutes field '?': '?' is only allowed in the day-of-month and day-of-week fields"
    ));
    assert!(message("cron(0 5 1,? * ? *)").contains("'?' must be the whole field"));
}

#[test]
fn special_day_rules() {
    assert!(
        message("cron(0 5 L-3 * ? *)").contains(
            "day-of-month field 'L-3': offsets from the last day (L-n) are not supported"
        )
    );
    assert!(message("cron(0 5 1-5W * ? *)").contains("W takes a single day, for example 15W"));
    assert!(message("cron(0 5 32W * ? *)").contains("out of range"));
    assert!(message("cron(0 5 ? * 3#6 *)").contains("the n in day#n must be 1 to 5"));
    assert!(
        message("cron(0 5 ? * 3#1,6#3 *)").contains("must be the only expression in the field")
    );
    assert!(message("cron(0 5 ? * 1-3L *)").contains("L takes a single weekday"));
    assert!(message("cron(0 5 ? * 9L *)").contains("out of range"));
    assert!(message("cron(0 5 L * L *)").contains("exactly one of day-of-month and day-of-week"));
}

#[test]
fn unknown_timezone() {
    let error = Schedule::parse("cron(0 5 ? * * *)", "Mars/Olympus_Mons").unwrap_err();
    assert_eq!(
        error.to_string(),
        "Invalid ScheduleExpressionTimezone Mars/Olympus_Mons: not a known IANA time zone name, for example Etc/UTC or Europe/Paris"
    );
    assert!(Schedule::parse("cron(0 5 ? * * *)", "").is_err());
    assert!(Schedule::parse("cron(0 5 ? * * *)", "../../etc/passwd").is_err());
}

#[test]
fn interval_too_short() {
    let error = Schedule::parse_for_backup_rule("cron(0,30 * ? * * *)", "Etc/UTC").unwrap_err();
    assert_eq!(
        error.to_string(),
        "Invalid ScheduleExpression cron(0,30 * ? * * *): the interval between backup jobs shouldn't be less than 60 minutes; the minutes field must select a single minute"
    );
}

#[test]
fn long_input_is_cut_in_messages() {
    let expression = format!("cron({} 5 ? * * *)", "1,".repeat(10_000));
    assert!(message(&expression).len() < 600);
}
