//! Why a schedule expression or time zone was refused.
//!
//! Backup rules reach Coffer through the AWS Backup API, so every message starts the way AWS's
//! own validation errors do ("Invalid ScheduleExpression ...") and then says which field is wrong
//! and what to write instead. The API layer turns these into `InvalidParameterValueException`.

use std::fmt;

/// The six fields of a `cron(...)` expression, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CronField {
    Minutes,
    Hours,
    DayOfMonth,
    Month,
    DayOfWeek,
    Year,
}

impl CronField {
    /// All fields in the order they appear in an expression.
    pub const ALL: [CronField; 6] = [
        CronField::Minutes,
        CronField::Hours,
        CronField::DayOfMonth,
        CronField::Month,
        CronField::DayOfWeek,
        CronField::Year,
    ];

    /// The field's name as the AWS documentation spells it.
    pub fn name(self) -> &'static str {
        match self {
            CronField::Minutes => "minutes",
            CronField::Hours => "hours",
            CronField::DayOfMonth => "day-of-month",
            CronField::Month => "month",
            CronField::DayOfWeek => "day-of-week",
            CronField::Year => "year",
        }
    }
}

impl fmt::Display for CronField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A schedule expression or time zone that Coffer cannot accept, with what to fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    /// `rate(...)` is an EventBridge form that backup rules do not accept.
    #[error(
        "Invalid ScheduleExpression {expression}: rate(...) expressions are not supported for backup rules; write a cron(...) expression such as cron(0 5 ? * * *)"
    )]
    RateNotSupported { expression: String },

    /// Not of the form `cron(...)` at all.
    #[error(
        "Invalid ScheduleExpression {expression}: expected cron(minutes hours day-of-month month day-of-week year), for example cron(0 5 ? * * *)"
    )]
    NotCron { expression: String },

    /// `cron(...)` with other than six fields.
    #[error(
        "Invalid ScheduleExpression {expression}: expected 6 fields (minutes hours day-of-month month day-of-week year), found {found}"
    )]
    FieldCount { expression: String, found: usize },

    /// One field is malformed or out of range.
    #[error("Invalid ScheduleExpression {expression}: {field} field '{value}': {problem}")]
    InvalidField {
        expression: String,
        field: CronField,
        value: String,
        problem: String,
    },

    /// Both or neither of day-of-month and day-of-week are `?`.
    #[error(
        "Invalid ScheduleExpression {expression}: exactly one of day-of-month and day-of-week must be '?'"
    )]
    DayFieldConflict { expression: String },

    /// Runs would come closer than 60 minutes apart.
    #[error(
        "Invalid ScheduleExpression {expression}: the interval between backup jobs shouldn't be less than 60 minutes; the minutes field must select a single minute"
    )]
    IntervalTooShort { expression: String },

    /// The ScheduleExpressionTimezone is not an IANA time zone name.
    #[error(
        "Invalid ScheduleExpressionTimezone {timezone}: not a known IANA time zone name, for example Etc/UTC or Europe/Paris"
    )]
    UnknownTimezone { timezone: String },
}

/// Result of this crate's fallible operations.
pub type Result<T, E = ScheduleError> = std::result::Result<T, E>;

/// Caps user input echoed in messages so a huge request cannot make a huge error.
pub(crate) fn shown(text: &str) -> String {
    const MAX_CHARS: usize = 120;
    if text.chars().count() <= MAX_CHARS {
        text.to_owned()
    } else {
        let mut cut: String = text.chars().take(MAX_CHARS).collect();
        cut.push('…');
        cut
    }
}
