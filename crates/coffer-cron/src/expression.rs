//! Parsing of `cron(...)` expressions into the sets of values each field selects.
//!
//! AWS Backup takes EventBridge's cron dialect: six fields (minutes, hours, day-of-month, month,
//! day-of-week, year), 1 = Sunday, names for months and weekdays, `?` in exactly one of the two
//! day fields, and the Quartz-style `L`, `W` and `#` day rules. Everything a field can express
//! becomes plain data here ([`CronFields`]); the calendar arithmetic lives in `evaluate`.
//! Parsing never panics, whatever the input.

use crate::error::{CronField, ScheduleError, shown};

/// Lowest year the year field accepts.
pub(crate) const FIRST_YEAR: i16 = 1970;
/// Highest year the year field accepts; no schedule fires after this year.
pub(crate) const LAST_YEAR: i16 = 2199;

const MONTH_NAMES: [&str; 12] = [
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
];
const WEEKDAY_NAMES: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

/// A set of small non-negative integers (0..256), one bit each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct ValueSet([u64; 4]);

impl ValueSet {
    pub(crate) fn insert(&mut self, value: u32) {
        if let Some(word) = self.0.get_mut((value / 64) as usize) {
            *word |= 1 << (value % 64);
        }
    }

    pub(crate) fn contains(&self, value: u32) -> bool {
        self.0
            .get((value / 64) as usize)
            .is_some_and(|word| word & (1 << (value % 64)) != 0)
    }

    pub(crate) fn len(&self) -> u32 {
        self.0.iter().map(|word| word.count_ones()).sum()
    }

    /// Members in ascending order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = u32> + '_ {
        (0..256).filter(|&value| self.contains(value))
    }
}

/// Which days a schedule fires on: AWS allows restricting by day-of-month or by day-of-week,
/// never both (the other field is `?`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum DayRule {
    OfMonth(MonthDays),
    OfWeek(WeekDays),
}

/// Day-of-month selections; a day fires when any of them matches.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct MonthDays {
    /// Plain days 1..=31.
    pub(crate) days: ValueSet,
    /// `L`: the last day of the month.
    pub(crate) last_day: bool,
    /// `LW`: the last weekday (Monday to Friday) of the month.
    pub(crate) last_weekday: bool,
    /// `nW`: the weekday nearest day n, without leaving the month.
    pub(crate) nearest_weekday: ValueSet,
}

/// Day-of-week selections (1 = Sunday ... 7 = Saturday); a day fires when any of them matches.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct WeekDays {
    /// Every such weekday.
    pub(crate) days: ValueSet,
    /// `nL`: the last such weekday of the month.
    pub(crate) last_in_month: ValueSet,
    /// `d#n`: the n-th such weekday of the month (the only expression in the field).
    pub(crate) nth: Option<(u32, u32)>,
}

/// A parsed expression: what each field selects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CronFields {
    pub(crate) minutes: ValueSet,
    pub(crate) hours: ValueSet,
    pub(crate) day_rule: DayRule,
    pub(crate) months: ValueSet,
    /// Years as offsets from [`FIRST_YEAR`].
    pub(crate) years: ValueSet,
}

impl CronFields {
    pub(crate) fn has_year(&self, year: i16) -> bool {
        (FIRST_YEAR..=LAST_YEAR).contains(&year) && self.years.contains((year - FIRST_YEAR) as u32)
    }
}

/// The numeric range and names of one field.
struct FieldSpec {
    field: CronField,
    min: u32,
    max: u32,
    /// Names for `min`, `min + 1`, ...
    names: &'static [&'static str],
    /// Subtracted from values before they go into a [`ValueSet`] (years do not fit otherwise).
    base: u32,
}

const MINUTES: FieldSpec = FieldSpec {
    field: CronField::Minutes,
    min: 0,
    max: 59,
    names: &[],
    base: 0,
};
const HOURS: FieldSpec = FieldSpec {
    field: CronField::Hours,
    min: 0,
    max: 23,
    names: &[],
    base: 0,
};
const DAY_OF_MONTH: FieldSpec = FieldSpec {
    field: CronField::DayOfMonth,
    min: 1,
    max: 31,
    names: &[],
    base: 0,
};
const MONTH: FieldSpec = FieldSpec {
    field: CronField::Month,
    min: 1,
    max: 12,
    names: &MONTH_NAMES,
    base: 0,
};
const DAY_OF_WEEK: FieldSpec = FieldSpec {
    field: CronField::DayOfWeek,
    min: 1,
    max: 7,
    names: &WEEKDAY_NAMES,
    base: 0,
};
const YEAR: FieldSpec = FieldSpec {
    field: CronField::Year,
    min: FIRST_YEAR as u32,
    max: LAST_YEAR as u32,
    names: &[],
    base: FIRST_YEAR as u32,
};

/// A field-level problem, before the expression and field are attached.
type FieldResult<T> = Result<T, String>;

/// Parses `cron(M H DOM MON DOW Y)`.
pub(crate) fn parse(expression: &str) -> Result<CronFields, ScheduleError> {
    let trimmed = expression.trim();
    let Some(body) = trimmed
        .strip_prefix("cron(")
        .and_then(|rest| rest.strip_suffix(')'))
    else {
        return Err(if trimmed.starts_with("rate(") {
            ScheduleError::RateNotSupported {
                expression: shown(expression),
            }
        } else {
            ScheduleError::NotCron {
                expression: shown(expression),
            }
        });
    };
    let fields: Vec<&str> = body.split_whitespace().collect();
    let [minutes, hours, day_of_month, month, day_of_week, year] = fields[..] else {
        return Err(ScheduleError::FieldCount {
            expression: shown(expression),
            found: fields.len(),
        });
    };

    let invalid = |field: CronField, value: &str| {
        let (expression, value) = (shown(expression), shown(value));
        move |problem: String| ScheduleError::InvalidField {
            expression,
            field,
            value,
            problem,
        }
    };

    let minutes = parse_plain(&MINUTES, minutes).map_err(invalid(CronField::Minutes, minutes))?;
    let hours = parse_plain(&HOURS, hours).map_err(invalid(CronField::Hours, hours))?;
    let month_days =
        parse_day_of_month(day_of_month).map_err(invalid(CronField::DayOfMonth, day_of_month))?;
    let months = parse_plain(&MONTH, month).map_err(invalid(CronField::Month, month))?;
    let week_days =
        parse_day_of_week(day_of_week).map_err(invalid(CronField::DayOfWeek, day_of_week))?;
    let years = parse_plain(&YEAR, year).map_err(invalid(CronField::Year, year))?;

    let day_rule = match (month_days, week_days) {
        (Some(month_days), None) => DayRule::OfMonth(month_days),
        (None, Some(week_days)) => DayRule::OfWeek(week_days),
        _ => {
            return Err(ScheduleError::DayFieldConflict {
                expression: shown(expression),
            });
        }
    };
    Ok(CronFields {
        minutes,
        hours,
        day_rule,
        months,
        years,
    })
}

/// A field made only of lists, ranges, `*` and steps.
fn parse_plain(spec: &FieldSpec, text: &str) -> FieldResult<ValueSet> {
    let mut set = ValueSet::default();
    for element in text.to_ascii_uppercase().split(',') {
        if element == "?" {
            return Err(format!(
                "'?' is only allowed in the day-of-month and day-of-week fields, use '*' in the {} field",
                spec.field
            ));
        }
        add_range(spec, element, &mut set)?;
    }
    Ok(set)
}

/// The day-of-month field; `None` for `?`.
fn parse_day_of_month(text: &str) -> FieldResult<Option<MonthDays>> {
    if text == "?" {
        return Ok(None);
    }
    let mut days = MonthDays::default();
    for element in text.to_ascii_uppercase().split(',') {
        match element {
            "?" => return Err("'?' must be the whole field".to_owned()),
            "L" => days.last_day = true,
            "LW" => days.last_weekday = true,
            _ if element.starts_with("L-") => {
                return Err("offsets from the last day (L-n) are not supported; use L (last day) or LW (last weekday)".to_owned());
            }
            _ => {
                if let Some(day) = element.strip_suffix('W') {
                    if day.contains(['-', '/', '*']) || day.is_empty() {
                        return Err(format!(
                            "W takes a single day, for example 15W, not '{}'",
                            shown(element)
                        ));
                    }
                    days.nearest_weekday
                        .insert(parse_value(&DAY_OF_MONTH, day)?);
                } else {
                    add_range(&DAY_OF_MONTH, element, &mut days.days)?;
                }
            }
        }
    }
    Ok(Some(days))
}

/// The day-of-week field; `None` for `?`.
fn parse_day_of_week(text: &str) -> FieldResult<Option<WeekDays>> {
    if text == "?" {
        return Ok(None);
    }
    let upper = text.to_ascii_uppercase();
    let mut days = WeekDays::default();
    if upper.contains('#') {
        let Some((day, nth)) = upper.split_once('#') else {
            return Err("expected day#n, for example 3#2 for the second Tuesday".to_owned());
        };
        if upper.contains(',') {
            return Err("a '#' expression must be the only expression in the field".to_owned());
        }
        let day = parse_value(&DAY_OF_WEEK, day)?;
        let nth = parse_number(nth)
            .filter(|nth| (1..=5).contains(nth))
            .ok_or_else(|| format!("the n in day#n must be 1 to 5, not '{}'", shown(nth)))?;
        days.nth = Some((day, nth));
        return Ok(Some(days));
    }
    for element in upper.split(',') {
        match element {
            "?" => return Err("'?' must be the whole field".to_owned()),
            // `L` alone is the last day of the week: Saturday.
            "L" => days.days.insert(7),
            _ => {
                if let Some(day) = element.strip_suffix('L') {
                    if day.contains(['-', '/', '*']) {
                        return Err(format!(
                            "L takes a single weekday, for example 6L for the last Friday, not '{}'",
                            shown(element)
                        ));
                    }
                    days.last_in_month.insert(parse_value(&DAY_OF_WEEK, day)?);
                } else {
                    add_range(&DAY_OF_WEEK, element, &mut days.days)?;
                }
            }
        }
    }
    Ok(Some(days))
}

/// Adds one list element (`*`, `v`, `a-b`, each optionally `/step`) to `set`.
fn add_range(spec: &FieldSpec, element: &str, set: &mut ValueSet) -> FieldResult<()> {
    if element.is_empty() {
        return Err("empty list element".to_owned());
    }
    let (range, step) = match element.split_once('/') {
        Some((range, step)) => {
            let step = parse_number(step)
                .filter(|&step| step >= 1)
                .ok_or_else(|| {
                    format!(
                        "the step after '/' must be a whole number of at least 1, not '{}'",
                        shown(step)
                    )
                })?;
            (range, Some(step))
        }
        None => (element, None),
    };
    let (first, last) = if range == "*" {
        (spec.min, spec.max)
    } else if let Some((first, last)) = range.split_once('-') {
        let (first, last) = (parse_value(spec, first)?, parse_value(spec, last)?);
        if first > last {
            return Err(format!(
                "range start {first} is after its end {last}; ranges do not wrap around"
            ));
        }
        (first, last)
    } else {
        let first = parse_value(spec, range)?;
        // `a/n` means "from a, every n" to the end of the field's range.
        (first, if step.is_some() { spec.max } else { first })
    };
    let step = step.unwrap_or(1);
    let mut value = first;
    while value <= last {
        set.insert(value - spec.base);
        value = match value.checked_add(step) {
            Some(next) => next,
            None => break,
        };
    }
    Ok(())
}

/// One value: a number in the field's range or, for month and day-of-week, a name.
fn parse_value(spec: &FieldSpec, text: &str) -> FieldResult<u32> {
    if let Some(index) = spec.names.iter().position(|name| *name == text) {
        return Ok(spec.min + index as u32);
    }
    let range = || {
        let mut allowed = format!("{}-{}", spec.min, spec.max);
        if let (Some(first), Some(last)) = (spec.names.first(), spec.names.last()) {
            allowed.push_str(&format!(" or {first}-{last}"));
        }
        allowed
    };
    match parse_number(text) {
        Some(value) if (spec.min..=spec.max).contains(&value) => Ok(value),
        Some(_) => Err(format!(
            "'{}' is out of range, allowed values are {}",
            shown(text),
            range()
        )),
        None if text.is_empty() => Err(format!("missing value, allowed values are {}", range())),
        None => Err(format!(
            "'{}' is not a valid value, allowed values are {}",
            shown(text),
            range()
        )),
    }
}

/// A decimal number of at most nine digits (larger ones are out of every range anyway).
fn parse_number(text: &str) -> Option<u32> {
    if text.is_empty() || !text.bytes().all(|byte| byte.is_ascii_digit()) {
        return None;
    }
    let digits = text.trim_start_matches('0');
    if digits.len() > 9 {
        return Some(u32::MAX);
    }
    Some(digits.parse().unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(set: &ValueSet) -> Vec<u32> {
        set.iter().collect()
    }

    #[test]
    fn steps_ranges_and_lists() {
        let fields = parse("cron(0/15 1 */10 JAN MON-FRI 2020)");
        assert!(matches!(
            fields,
            Err(ScheduleError::DayFieldConflict { .. })
        ));
        let fields = parse("cron(0/15 1-9/4 */10 JAN,jul,3-4 ? 2020/50)").unwrap();
        assert_eq!(values(&fields.minutes), [0, 15, 30, 45]);
        assert_eq!(values(&fields.hours), [1, 5, 9]);
        assert_eq!(values(&fields.months), [1, 3, 4, 7]);
        assert_eq!(values(&fields.years), [50, 100, 150, 200]);
        let DayRule::OfMonth(days) = fields.day_rule else {
            panic!("day-of-month rule")
        };
        assert_eq!(values(&days.days), [1, 11, 21, 31]);
    }

    #[test]
    fn weekday_forms() {
        let fields = parse("cron(0 8 ? * mon-fri,L,6L *)").unwrap();
        let DayRule::OfWeek(days) = fields.day_rule else {
            panic!("day-of-week rule")
        };
        assert_eq!(values(&days.days), [2, 3, 4, 5, 6, 7]);
        assert_eq!(values(&days.last_in_month), [6]);
        let fields = parse("cron(0 8 ? * TUE#2 *)").unwrap();
        let DayRule::OfWeek(days) = fields.day_rule else {
            panic!("day-of-week rule")
        };
        assert_eq!(days.nth, Some((3, 2)));
    }

    #[test]
    fn month_day_forms() {
        let fields = parse("cron(0 8 1,L,LW,15W * ? *)").unwrap();
        let DayRule::OfMonth(days) = fields.day_rule else {
            panic!("day-of-month rule")
        };
        assert_eq!(values(&days.days), [1]);
        assert!(days.last_day && days.last_weekday);
        assert_eq!(values(&days.nearest_weekday), [15]);
    }

    #[test]
    fn duplicates_and_huge_steps_collapse() {
        let fields = parse("cron(5,5,5-5,5/60 0 * * ? *)").unwrap();
        assert_eq!(values(&fields.minutes), [5]);
        let fields = parse("cron(0 0/99999999999999 * * ? *)").unwrap();
        assert_eq!(values(&fields.hours), [0]);
    }
}
