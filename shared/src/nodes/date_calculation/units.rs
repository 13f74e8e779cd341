//! Time units with dayjs's names, and the arithmetic on them.

use chrono::{Datelike, Days, Months, NaiveDate, TimeDelta, TimeZone, Timelike};

use super::Date;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Year,
    Quarter,
    Month,
    Week,
    /// A day; for `get`, the weekday.
    Day,
    /// The day of the month (`get` only; elsewhere the same as `Day`).
    Date,
    Hour,
    Minute,
    Second,
    Millisecond,
}

impl Unit {
    /// dayjs's long names, plurals and short forms (`M` month, `m` minute).
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "y" | "year" | "years" => Self::Year,
            "Q" | "quarter" | "quarters" => Self::Quarter,
            "M" | "month" | "months" => Self::Month,
            "w" | "week" | "weeks" => Self::Week,
            "d" | "day" | "days" => Self::Day,
            "D" | "date" | "dates" => Self::Date,
            "h" | "hour" | "hours" => Self::Hour,
            "m" | "minute" | "minutes" => Self::Minute,
            "s" | "second" | "seconds" => Self::Second,
            "ms" | "millisecond" | "milliseconds" => Self::Millisecond,
            _ => return None,
        })
    }

    /// Milliseconds in one unit, for units of fixed length.
    pub fn fixed_ms(self) -> Result<f64, String> {
        Ok(match self {
            Self::Week => 604_800_000.0,
            Self::Day | Self::Date => 86_400_000.0,
            Self::Hour => 3_600_000.0,
            Self::Minute => 60_000.0,
            Self::Second => 1_000.0,
            Self::Millisecond => 1.0,
            Self::Year | Self::Quarter | Self::Month => {
                return Err("years, quarters and months have no fixed length".into());
            }
        })
    }
}

fn out_of_range() -> String {
    "the date is out of range".into()
}

fn add_months(d: Date, months: i64) -> Result<Date, String> {
    let n = Months::new(u32::try_from(months.unsigned_abs()).map_err(|_| out_of_range())?);
    if months >= 0 {
        d.checked_add_months(n)
    } else {
        d.checked_sub_months(n)
    }
    .ok_or_else(out_of_range)
}

/// The largest whole amount `add` takes: far past any date chrono can hold
/// (about ±262,000 years), yet small enough that no unit's arithmetic overflows.
const MAX_WHOLE: f64 = 1e12;

/// dayjs's `add`: calendar units move the calendar (clamping to the month's end),
/// the others move the clock. Amounts come from requests: any value that leaves
/// the range of dates is an error, never an overflow.
pub fn add(d: Date, amount: f64, unit: Unit) -> Result<Date, String> {
    if !amount.is_finite() {
        return Err(format!("{amount} is not a finite number"));
    }
    // Calendar and day units count whole units, at most 1e12 of them (so the
    // cast is exact and their multiples fit); the others are checked in ms.
    let whole = || {
        let whole = amount.trunc();
        if whole.abs() > MAX_WHOLE {
            Err(out_of_range())
        } else {
            Ok(whole as i64)
        }
    };
    match unit {
        Unit::Year => add_months(d, whole()? * 12),
        Unit::Quarter => add_months(d, whole()? * 3),
        Unit::Month => add_months(d, whole()?),
        Unit::Week | Unit::Day | Unit::Date => {
            let whole = whole()?;
            let days = if unit == Unit::Week { whole * 7 } else { whole };
            let local = TimeDelta::try_days(days)
                .and_then(|delta| d.naive_local().checked_add_signed(delta))
                .ok_or_else(out_of_range)?;
            d.timezone()
                .from_local_datetime(&local)
                .earliest()
                .ok_or_else(out_of_range)
        }
        _ => {
            let ms = (amount * unit.fixed_ms()?).round();
            if ms.abs() >= 9.0e18 {
                return Err(out_of_range());
            }
            TimeDelta::try_milliseconds(ms as i64)
                .and_then(|delta| d.checked_add_signed(delta))
                .ok_or_else(out_of_range)
        }
    }
}

/// Months from `other` to `this`, with a fraction (dayjs's `monthDiff`).
fn month_diff(this: Date, other: Date) -> f64 {
    if this < other {
        return -month_diff(other, this);
    }
    let mut whole = i64::from(this.year() - other.year()) * 12 + i64::from(this.month0())
        - i64::from(other.month0());
    let at = |m: i64| add_months(other, m).unwrap_or(other);
    let mut anchor = at(whole);
    if anchor > this {
        whole -= 1;
        anchor = at(whole);
    }
    let next = at(whole + 1);
    let span = (next - anchor).num_milliseconds() as f64;
    whole as f64
        + if span > 0.0 {
            (this - anchor).num_milliseconds() as f64 / span
        } else {
            0.0
        }
}

/// dayjs's `diff(other, unit, true)`: `this − other` in units, as a fraction.
pub fn diff(this: Date, other: Date, unit: Unit) -> f64 {
    let ms = (this - other).num_milliseconds() as f64;
    match unit {
        Unit::Year => month_diff(this, other) / 12.0,
        Unit::Quarter => month_diff(this, other) / 3.0,
        Unit::Month => month_diff(this, other),
        other_unit => ms / other_unit.fixed_ms().unwrap_or(1.0),
    }
}

/// dayjs's `startOf` (weeks start on Sunday).
pub fn start_of(d: Date, unit: Unit) -> Result<Date, String> {
    let tz = d.timezone();
    let day = |date: NaiveDate| {
        tz.from_local_datetime(&date.and_hms_opt(0, 0, 0).expect("midnight"))
            .earliest()
            .ok_or_else(out_of_range)
    };
    let date = d.date_naive();
    match unit {
        Unit::Year => day(NaiveDate::from_ymd_opt(d.year(), 1, 1).ok_or_else(out_of_range)?),
        Unit::Quarter => day(NaiveDate::from_ymd_opt(d.year(), d.month0() / 3 * 3 + 1, 1)
            .ok_or_else(out_of_range)?),
        Unit::Month => day(date.with_day(1).ok_or_else(out_of_range)?),
        Unit::Week => day(date
            .checked_sub_days(Days::new(u64::from(d.weekday().num_days_from_sunday())))
            .ok_or_else(out_of_range)?),
        Unit::Day | Unit::Date => day(date),
        Unit::Hour => d
            .with_minute(0)
            .and_then(|d| d.with_second(0))
            .and_then(|d| d.with_nanosecond(0))
            .ok_or_else(out_of_range),
        Unit::Minute => d
            .with_second(0)
            .and_then(|d| d.with_nanosecond(0))
            .ok_or_else(out_of_range),
        Unit::Second => d.with_nanosecond(0).ok_or_else(out_of_range),
        Unit::Millisecond => Ok(d),
    }
}

/// dayjs's `endOf`: the last millisecond of the unit.
pub fn end_of(d: Date, unit: Unit) -> Result<Date, String> {
    if unit == Unit::Millisecond {
        return Ok(d);
    }
    let start = start_of(d, unit)?;
    let next = add(start, 1.0, unit)?;
    next.checked_sub_signed(TimeDelta::milliseconds(1))
        .ok_or_else(out_of_range)
}
