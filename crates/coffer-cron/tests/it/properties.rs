//! Property tests: the evaluator against a brute-force reference that walks real time minute by
//! minute, and parsing against arbitrary input.
//!
//! The reference shares no calendar code with the crate: days are judged with chrono's
//! `NaiveDate` from the definitions in `docs/schedules.md`, and the daylight-saving rules fall out
//! of the walk itself. Walking instants forward, a local time skipped by spring forward never
//! shows up, and a local time repeated by fall back shows up a second time no later than the
//! latest local time already seen, so "run when the local time is new and matches" is exactly
//! "skip nonexistent times, run ambiguous ones once at their first occurrence".

use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveDateTime, Timelike, Utc, Weekday};
use coffer_cron::Schedule;
use proptest::prelude::*;

const ZONES: [&str; 6] = [
    "Etc/UTC",
    "America/New_York",
    "Europe/London",
    "Australia/Lord_Howe",
    "Asia/Kolkata",
    "Europe/Paris",
];

/// What a generated expression selects, for the reference to judge.
#[derive(Debug, Clone)]
struct Generated {
    minutes: Vec<u32>,
    hours: Vec<u32>,
    day: DayGen,
    months: Vec<u32>,
    expression: String,
}

#[derive(Debug, Clone)]
enum DayGen {
    /// Plain days of the month (`*` is all of them).
    MonthDays(Vec<u32>),
    Last,
    LastWeekday,
    NearestWeekday(u32),
    /// Weekdays 1 = Sunday .. 7 = Saturday.
    WeekDays(Vec<u32>),
    LastOfMonth(u32),
    Nth(u32, u32),
}

fn list(values: &[u32]) -> String {
    values
        .iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

/// A field as `*`, a list, a range or a step, with the values it selects.
fn field(min: u32, max: u32, max_list: usize) -> impl Strategy<Value = (String, Vec<u32>)> {
    prop_oneof![
        Just(("*".to_owned(), (min..=max).collect())),
        proptest::collection::btree_set(min..=max, 1..=max_list).prop_map(|set| {
            let values: Vec<u32> = set.into_iter().collect();
            (list(&values), values)
        }),
        (min..=max, min..=max).prop_map(move |(a, b)| {
            let (a, b) = (a.min(b), a.max(b));
            (format!("{a}-{b}"), (a..=b).collect())
        }),
        (min..=max, 1..=max - min + 1).prop_map(move |(start, step)| {
            (
                format!("{start}/{step}"),
                (start..=max).step_by(step as usize).collect(),
            )
        }),
    ]
}

fn day_gen() -> impl Strategy<Value = (String, String, DayGen)> {
    prop_oneof![
        field(1, 31, 4).prop_map(|(text, days)| (text, "?".to_owned(), DayGen::MonthDays(days))),
        Just(("L".to_owned(), "?".to_owned(), DayGen::Last)),
        Just(("LW".to_owned(), "?".to_owned(), DayGen::LastWeekday)),
        (1u32..=31).prop_map(|n| (format!("{n}W"), "?".to_owned(), DayGen::NearestWeekday(n))),
        field(1, 7, 3).prop_map(|(text, days)| ("?".to_owned(), text, DayGen::WeekDays(days))),
        (1u32..=7).prop_map(|d| ("?".to_owned(), format!("{d}L"), DayGen::LastOfMonth(d))),
        (1u32..=7, 1u32..=5).prop_map(|(d, n)| (
            "?".to_owned(),
            format!("{d}#{n}"),
            DayGen::Nth(d, n)
        )),
    ]
}

/// Expressions that run often enough for a window of days: a few minutes, several hours.
fn frequent_expression() -> impl Strategy<Value = Generated> {
    (
        proptest::collection::btree_set(0u32..60, 1..=3),
        field(0, 23, 6),
        prop_oneof![
            Just((
                "*".to_owned(),
                "?".to_owned(),
                DayGen::MonthDays((1..=31).collect())
            )),
            field(1, 7, 3).prop_map(|(text, days)| ("?".to_owned(), text, DayGen::WeekDays(days))),
            day_gen(),
        ],
    )
        .prop_map(|(minutes, (hours_text, hours), (dom, dow, day))| {
            let minutes: Vec<u32> = minutes.into_iter().collect();
            let expression = format!("cron({} {hours_text} {dom} * {dow} *)", list(&minutes));
            Generated {
                minutes,
                hours,
                day,
                months: (1..=12).collect(),
                expression,
            }
        })
}

/// Expressions judged day by day at 12:00 UTC over years.
fn daily_expression() -> impl Strategy<Value = Generated> {
    (day_gen(), field(1, 12, 4)).prop_map(|((dom, dow, day), (months_text, months))| {
        let expression = format!("cron(0 12 {dom} {months_text} {dow} *)");
        Generated {
            minutes: vec![0],
            hours: vec![12],
            day,
            months,
            expression,
        }
    })
}

fn days_in_month(date: NaiveDate) -> u32 {
    (28..=31)
        .rev()
        .find(|&day| date.with_day(day).is_some())
        .unwrap_or(28)
}

fn is_workday(date: NaiveDate) -> bool {
    !matches!(date.weekday(), Weekday::Sat | Weekday::Sun)
}

fn sunday_one(date: NaiveDate) -> u32 {
    date.weekday().num_days_from_sunday() + 1
}

/// The reference judgement of a local date.
fn day_selected(day: &DayGen, date: NaiveDate) -> bool {
    let month_dates = || (1..=days_in_month(date)).filter_map(|d| date.with_day(d));
    match day {
        DayGen::MonthDays(days) => days.contains(&date.day()),
        DayGen::Last => date.day() == days_in_month(date),
        DayGen::LastWeekday => month_dates().rfind(|d| is_workday(*d)) == Some(date),
        DayGen::NearestWeekday(n) => {
            *n <= days_in_month(date)
                && month_dates()
                    .filter(|d| is_workday(*d))
                    .min_by_key(|d| (d.day() as i64 - *n as i64).abs())
                    == Some(date)
        }
        DayGen::WeekDays(days) => days.contains(&sunday_one(date)),
        DayGen::LastOfMonth(weekday) => {
            sunday_one(date) == *weekday && (date + Duration::days(7)).month() != date.month()
        }
        DayGen::Nth(weekday, n) => {
            sunday_one(date) == *weekday
                && month_dates()
                    .filter(|d| d.weekday() == date.weekday() && *d <= date)
                    .count()
                    == *n as usize
        }
    }
}

fn selected(generated: &Generated, local: NaiveDateTime) -> bool {
    generated.minutes.contains(&local.minute())
        && generated.hours.contains(&local.hour())
        && generated.months.contains(&local.month())
        && day_selected(&generated.day, local.date())
}

fn local_time(zone: &jiff::tz::TimeZone, instant: DateTime<Utc>) -> NaiveDateTime {
    let timestamp = jiff::Timestamp::from_second(instant.timestamp()).unwrap();
    let local = zone.to_datetime(timestamp);
    NaiveDate::from_ymd_opt(
        local.year() as i32,
        local.month() as u32,
        local.day() as u32,
    )
    .unwrap()
    .and_hms_opt(local.hour() as u32, local.minute() as u32, 0)
    .unwrap()
}

/// The runs in `(after, after + window]`, walking real time minute by minute.
fn reference_runs(
    generated: &Generated,
    zone_name: &str,
    after: DateTime<Utc>,
    window: Duration,
) -> Vec<DateTime<Utc>> {
    let zone = jiff::tz::TimeZone::get(zone_name).unwrap();
    let start = after.with_second(0).unwrap().with_nanosecond(0).unwrap();
    // Warm up over the longest fold in these zones so a repeated local time is recognised.
    let mut instant = start - Duration::hours(3);
    let mut latest_local = local_time(&zone, instant);
    let mut runs = Vec::new();
    while instant <= after + window {
        let local = local_time(&zone, instant);
        let new = local > latest_local;
        latest_local = latest_local.max(local);
        if new && instant > after && selected(generated, local) {
            runs.push(instant);
        }
        instant += Duration::minutes(1);
    }
    runs
}

/// Instants from 2024 to 2028, including DST changes and the leap day of 2024 and 2028.
fn instant() -> impl Strategy<Value = DateTime<Utc>> {
    let first = DateTime::parse_from_rfc3339("2024-01-01T00:00:00Z")
        .unwrap()
        .timestamp();
    let last = DateTime::parse_from_rfc3339("2028-12-31T00:00:00Z")
        .unwrap()
        .timestamp();
    (first..last).prop_map(|second| DateTime::from_timestamp(second, 0).unwrap())
}

/// A zone and an instant shortly before one of its DST changes (in both hemispheres).
fn zone_near_dst_change() -> impl Strategy<Value = (&'static str, DateTime<Utc>)> {
    let changes = [
        ("America/New_York", "2025-03-09T07:00:00Z"), // spring forward
        ("America/New_York", "2025-11-02T06:00:00Z"), // fall back
        ("Europe/London", "2025-03-30T01:00:00Z"),
        ("Europe/London", "2025-10-26T01:00:00Z"),
        ("Europe/Paris", "2026-03-29T01:00:00Z"),
        ("Europe/Paris", "2026-10-25T01:00:00Z"),
        ("Australia/Lord_Howe", "2025-10-04T15:30:00Z"),
        ("Australia/Lord_Howe", "2025-04-05T15:00:00Z"),
    ];
    (0..changes.len(), -26 * 60i64..60).prop_map(move |(change, minutes)| {
        let (zone, at) = changes[change];
        let at = DateTime::parse_from_rfc3339(at).unwrap().to_utc();
        (
            zone,
            at + Duration::minutes(minutes) + Duration::seconds(minutes.rem_euclid(61)),
        )
    })
}

/// Any zone at any instant, or a zone close to one of its DST changes.
fn zone_and_instant() -> impl Strategy<Value = (&'static str, DateTime<Utc>)> {
    prop_oneof![
        (proptest::sample::select(ZONES.to_vec()), instant()),
        zone_near_dst_change(),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn runs_match_minute_walk(
        generated in frequent_expression(),
        (zone, after) in zone_and_instant(),
    ) {
        let schedule = Schedule::parse(&generated.expression, zone).unwrap();
        let window = Duration::days(3);
        let mut actual = Vec::new();
        let mut cursor = after;
        while let Some(run) = schedule.next_after(cursor).filter(|run| *run <= after + window) {
            actual.push(run);
            cursor = run;
        }
        prop_assert_eq!(actual, reference_runs(&generated, zone, after, window));
    }

    #[test]
    fn daily_runs_match_calendar_over_years(generated in daily_expression()) {
        let schedule = Schedule::parse(&generated.expression, "Etc/UTC").unwrap();
        let from = NaiveDate::from_ymd_opt(2023, 12, 31).unwrap();
        let until = NaiveDate::from_ymd_opt(2032, 1, 1).unwrap();
        let expected: Vec<NaiveDate> = from
            .iter_days()
            .skip(1)
            .take_while(|date| *date < until)
            .filter(|date| generated.months.contains(&date.month()) && day_selected(&generated.day, *date))
            .collect();
        let mut actual = Vec::new();
        let mut cursor = from.and_hms_opt(23, 0, 0).unwrap().and_utc();
        while let Some(run) = schedule.next_after(cursor).filter(|run| run.date_naive() < until) {
            prop_assert_eq!(run.time(), chrono::NaiveTime::from_hms_opt(12, 0, 0).unwrap());
            actual.push(run.date_naive());
            cursor = run;
        }
        prop_assert_eq!(actual, expected);
    }

    #[test]
    fn single_minute_schedules_keep_an_hour_apart(
        minute in 0u32..60,
        (hours, _) in field(0, 23, 8),
        (zone, after) in zone_and_instant().prop_filter("Lord Howe's 30-minute change", |(zone, _)| *zone != "Australia/Lord_Howe"),
    ) {
        let schedule = Schedule::parse(&format!("cron({minute} {hours} * * ? *)"), zone).unwrap();
        prop_assert!(schedule.min_interval_ok());
        let gap = schedule.shortest_gap(after, after + Duration::days(2));
        prop_assert!(gap.is_none_or(|gap| gap >= Duration::minutes(60)), "{:?}", gap);
    }

    #[test]
    fn several_minutes_are_refused_and_do_run_closer(
        minutes in proptest::collection::btree_set(0u32..60, 2..=4),
        (hours, _) in field(0, 23, 8),
        after in instant(),
    ) {
        let expression = format!("cron({} {hours} * * ? *)", list(&minutes.into_iter().collect::<Vec<_>>()));
        let schedule = Schedule::parse(&expression, "Etc/UTC").unwrap();
        prop_assert!(!schedule.min_interval_ok());
        prop_assert!(Schedule::parse_for_backup_rule(&expression, "Etc/UTC").is_err());
        let gap = schedule.shortest_gap(after, after + Duration::days(2)).unwrap();
        prop_assert!(gap < Duration::minutes(60));
    }

    #[test]
    fn parsing_arbitrary_text_never_panics(text in any::<String>(), zone in any::<String>()) {
        let _ = Schedule::parse(&text, &zone);
        let _ = Schedule::parse(&format!("cron({text})"), "Etc/UTC");
    }

    #[test]
    fn parsing_and_evaluating_cron_like_text_never_panics(
        fields in proptest::collection::vec("[0-9A-Z*/,#?LW-]{0,6}", 0..8),
        after in prop_oneof![
            instant(),
            Just(DateTime::<Utc>::MIN_UTC),
            Just(DateTime::<Utc>::MAX_UTC),
        ],
    ) {
        let expression = format!("cron({})", fields.join(" "));
        if let Ok(schedule) = Schedule::parse(&expression, "Europe/London") {
            let _ = schedule.min_interval_ok();
            let _ = schedule.upcoming(after, 3);
        }
    }
}
