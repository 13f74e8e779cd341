//! `dateCalculation`: a value (a date, or a number with `inputType: "number"`) passed
//! through `steps`, each `{function, arguments}` (see [`steps::Step`]), with dayjs's
//! semantics (NocoBase's date library). Dates use `chrono`, time zones [`zone::Tz`]
//! (IANA names).

mod format;
mod steps;
mod text;
mod units;
mod zone;

use async_trait::async_trait;
use std::borrow::Cow;

use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Utc};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Value, json};
use zone::Tz;

use crate::engine::{Checker, Node, NodeStop, RunContext};
use crate::model::NodeDefinition;
use steps::Step;
use text::bounded;

pub type Date = DateTime<Tz>;

/// The value flowing through the steps.
#[derive(Debug, Clone, PartialEq)]
pub enum Current {
    Date(Date),
    Other(Value),
}

pub struct DateCalculation;

#[async_trait]
impl Node for DateCalculation {
    type Config = DateConfig;

    fn name(&self) -> &'static str {
        "dateCalculation"
    }

    fn check(&self, c: &DateConfig, at: &str, check: &mut Checker) {
        if c.input.is_none() {
            check.error(
                format!("{at}.input"),
                "is required (a date, a number or a {{variable}})",
            );
        }
        let Some(steps) = &c.steps else {
            check.error(
                format!("{at}.steps"),
                "is required: an array of {function, arguments}",
            );
            return;
        };
        for (i, step) in steps.iter().enumerate() {
            step.check(&format!("{at}.steps[{i}]"), check);
        }
    }

    async fn run(
        &self,
        c: &DateConfig,
        _node: &NodeDefinition,
        cx: &mut RunContext<'_>,
    ) -> Result<Value, NodeStop> {
        let fail = |message: String| NodeStop::Fail(json!({ "message": message }));
        let input = cx.render(c.input.as_ref().unwrap_or(&Value::Null));
        let mut current = match c.input_type {
            InputType::Number => Current::Other(input),
            InputType::Date => Current::Date(parse_date(&input).map_err(fail)?),
        };
        let render =
            |argument: &Option<Value>| argument.as_ref().map_or(Value::Null, |a| cx.render(a));
        for (i, step) in c.steps.iter().flatten().enumerate() {
            current = step
                .apply(&render, current)
                .map_err(|e| fail(format!("step {} ({}): {e}", i + 1, step.name())))?;
        }
        Ok(output(&current))
    }
}

/// `input` (templated), `inputType`, and `steps` applied in order (arguments
/// templated).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DateConfig {
    #[serde(default)]
    input: Option<Value>,
    #[serde(default, deserialize_with = "input_type_or_null")]
    #[schemars(with = "Option<InputType>")]
    input_type: InputType,
    #[serde(default)]
    steps: Option<Vec<Step>>,
}

/// What `input` is: a date (the default) or a plain number.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum InputType {
    #[default]
    Date,
    Number,
}

/// `inputType: null` is the default.
fn input_type_or_null<'de, D: serde::Deserializer<'de>>(d: D) -> Result<InputType, D::Error> {
    Ok(Option::<InputType>::deserialize(d)?.unwrap_or_default())
}

/// A date from an ISO 8601 / RFC 3339 string, a `YYYY-MM-DD[ HH:mm[:ss]]` string (UTC),
/// or a millisecond timestamp.
pub fn parse_date(value: &Value) -> Result<Date, String> {
    match value {
        Value::Number(n) => {
            let ms = n
                .as_f64()
                .filter(|ms| ms.is_finite())
                .ok_or("not a timestamp")?;
            // Beyond ±9e18 ms the cast would saturate; chrono's range ends long before.
            let out_of_range = || format!("the timestamp {ms} is out of range");
            if ms.abs() >= 9.0e18 {
                return Err(out_of_range());
            }
            Utc.timestamp_millis_opt(ms.trunc() as i64)
                .single()
                .map(|d| d.with_timezone(&Tz::UTC))
                .ok_or_else(out_of_range)
        }
        Value::String(s) => {
            let s = bounded("the date", s)?.trim();
            if let Some(d) = parse_text(s) {
                // chrono reads `:60` as a leap second; JavaScript's dates have none.
                if d.timestamp_subsec_nanos() >= 1_000_000_000 {
                    return Err(format!("{s:?} is not a date (a 60th second)"));
                }
                return Ok(d);
            }
            if let Ok(ms) = s.parse::<i64>() {
                return parse_date(&json!(ms));
            }
            Err(format!("{s:?} is not a date"))
        }
        other => Err(format!("{other} is not a date")),
    }
}

/// A date written as text: ISO 8601 with an offset (`Z`, `+09:00`, or with seconds
/// `+09:18:59`, as dates in old local mean time print), or without one (UTC), with
/// years of any sign and width chrono holds (`-0001`, `+10000`), or a plain date.
fn parse_text(s: &str) -> Option<Date> {
    let utc = |d: NaiveDateTime| d.and_utc().with_timezone(&Tz::UTC);
    if let Ok(d) = DateTime::parse_from_rfc3339(s) {
        return Some(d.with_timezone(&Tz::UTC));
    }
    let zoned = match s.strip_suffix(['Z', 'z']) {
        Some(local) => Cow::Owned(format!("{local}+00:00")),
        None => Cow::Borrowed(s),
    };
    for f in [
        "%Y-%m-%dT%H:%M:%S%.f%:z",
        "%Y-%m-%d %H:%M:%S%.f%:z",
        "%Y-%m-%dT%H:%M%:z",
    ] {
        if let Ok(d) = DateTime::parse_from_str(&zoned, f) {
            return Some(d.with_timezone(&Tz::UTC));
        }
    }
    if let Some(d) = with_offset_seconds(s) {
        return Some(d);
    }
    for f in [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%d %H:%M",
    ] {
        if let Ok(d) = NaiveDateTime::parse_from_str(s, f) {
            return Some(utc(d));
        }
    }
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .ok()
        .map(|d| utc(d.and_time(NaiveTime::MIN)))
}

/// `...T09:18:59.000+09:18:59`: an offset with seconds (chrono reads offsets to
/// the minute only), applied by hand.
fn with_offset_seconds(s: &str) -> Option<Date> {
    let at = s.len().checked_sub(9)?;
    let (local, offset) = (s.get(..at)?, s.get(at..)?);
    // Exactly `±hh:mm:ss`, minutes and seconds below 60.
    let b = offset.as_bytes();
    let sign = match b[0] {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let two = |i: usize| -> Option<i64> {
        let (t, u) = (b.get(i)?, b.get(i + 1)?);
        (t.is_ascii_digit() && u.is_ascii_digit()).then(|| i64::from((t - b'0') * 10 + (u - b'0')))
    };
    if b[3] != b':' || b[6] != b':' {
        return None;
    }
    let (h, m, sec) = (two(1)?, two(4)?, two(7)?);
    if m > 59 || sec > 59 {
        return None;
    }
    let local = NaiveDateTime::parse_from_str(local, "%Y-%m-%dT%H:%M:%S%.f").ok()?;
    if local.and_utc().timestamp_subsec_nanos() >= 1_000_000_000 {
        return None;
    }
    let shift = chrono::TimeDelta::try_seconds(sign * (h * 3600 + m * 60 + sec))?;
    let utc = local.checked_sub_signed(shift)?;
    Some(utc.and_utc().with_timezone(&Tz::UTC))
}

fn output(current: &Current) -> Value {
    match current {
        Current::Date(d) => Value::String(format::iso(d)),
        Current::Other(v) => v.clone(),
    }
}

fn date_of(current: &Current) -> Result<Date, String> {
    match current {
        Current::Date(d) => Ok(*d),
        Current::Other(v) => parse_date(v),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::NodeType;
    use crate::model::ExecutionStatus;
    use crate::nodes::test_support::run;

    /// The steps applied with their arguments as written.
    fn steps(input: Value, steps: Value) -> Result<Value, String> {
        let mut current = Current::Date(parse_date(&input)?);
        let written = |argument: &Option<Value>| argument.clone().unwrap_or(Value::Null);
        for s in steps.as_array().unwrap() {
            let step: Step = serde_json::from_value(s.clone()).unwrap();
            current = step.apply(&written, current)?;
        }
        Ok(output(&current))
    }

    #[test]
    fn add_subtract_and_month_ends() {
        let r = steps(
            json!("2024-01-31T10:00:00Z"),
            json!([{"function": "add", "arguments": {"number": 1, "unit": "month"}}]),
        );
        assert_eq!(r.unwrap(), json!("2024-02-29T10:00:00.000Z"));
        let r = steps(
            json!("2024-03-01"),
            json!([{"function": "subtract", "arguments": {"number": 36, "unit": "hour"}}]),
        );
        assert_eq!(r.unwrap(), json!("2024-02-28T12:00:00.000Z"));
        let r = steps(
            json!("2024-01-01"),
            json!([{"function": "add", "arguments": {"number": "2", "unit": "week"}}]),
        );
        assert_eq!(r.unwrap(), json!("2024-01-15T00:00:00.000Z"));
    }

    #[test]
    fn diff_in_units() {
        let diff = |unit: &str, round: bool| {
            steps(json!("2024-03-15T12:00:00Z"), json!([{"function": "diff", "arguments": {"date": "2024-01-01T00:00:00Z", "unit": unit, "round": round}}])).unwrap()
        };
        assert_eq!(diff("day", true), json!(74));
        assert_eq!(diff("day", false), json!(74.5));
        assert_eq!(diff("month", true), json!(2));
        assert_eq!(diff("hour", false), json!(1788));
        let r = steps(
            json!("2024-01-01"),
            json!([{"function": "diff", "arguments": {"date": "2024-01-03", "unit": "day", "isAbs": true}}]),
        );
        assert_eq!(r.unwrap(), json!(2));
    }

    #[test]
    fn start_end_get_and_leap_years() {
        let r = steps(
            json!("2024-05-15T13:45:10Z"),
            json!([{"function": "startOfTime", "arguments": {"unit": "month"}}]),
        );
        assert_eq!(r.unwrap(), json!("2024-05-01T00:00:00.000Z"));
        let r = steps(
            json!("2024-05-15T13:45:10Z"),
            json!([{"function": "endOfTime", "arguments": {"unit": "day"}}]),
        );
        assert_eq!(r.unwrap(), json!("2024-05-15T23:59:59.999Z"));
        let r = steps(
            json!("2024-05-15T13:45:10Z"),
            json!([{"function": "get", "arguments": {"unit": "month"}}]),
        );
        assert_eq!(r.unwrap(), json!(4));
        assert_eq!(
            steps(
                json!("2024-02-01"),
                json!([{"function": "isLeapYear", "arguments": {}}])
            )
            .unwrap(),
            json!(true)
        );
        assert_eq!(
            steps(
                json!("1900-02-01"),
                json!([{"function": "isLeapYear", "arguments": {}}])
            )
            .unwrap(),
            json!(false)
        );
    }

    #[test]
    fn format_timezones_and_timestamps() {
        let r = steps(
            json!("2024-07-04T18:30:05Z"),
            json!([
                {"function": "changeTimezone", "arguments": {"timezone": "Asia/Tokyo"}},
                {"function": "format", "arguments": {"format": "YYYY/MM/DD HH:mm:ss Z [day] d"}}
            ]),
        );
        assert_eq!(r.unwrap(), json!("2024/07/05 03:30:05 +09:00 day 5"));
        let r = steps(
            json!("2024-01-01T00:00:00Z"),
            json!([{"function": "toTimestamp", "arguments": {"unit": "second"}}]),
        );
        assert_eq!(r.unwrap(), json!(1704067200));
        let r = steps(
            json!("2024-01-01T00:00:00Z"),
            json!([
                {"function": "toTimestamp", "arguments": {}},
                {"function": "tsToDate", "arguments": {}},
                {"function": "changeTimezone", "arguments": {"timezone": "America/New_York"}}
            ]),
        );
        assert_eq!(r.unwrap(), json!("2023-12-31T19:00:00.000-05:00"));
        assert!(
            steps(
                json!("2024-01-01"),
                json!([{"function": "changeTimezone", "arguments": {"timezone": "Mars/Olympus"}}])
            )
            .is_err()
        );
    }

    #[test]
    fn every_date_result_reads_back_as_the_same_instant() {
        for (input, zone) in [
            ("-0001-01-01", "UTC"),
            ("+10000-01-01T00:00:00Z", "UTC"),
            ("0001-01-01", "Asia/Tokyo"),
            ("1800-06-01T12:00:00Z", "Pacific/Kiritimati"),
            ("1850-01-01T00:00:00Z", "America/New_York"),
        ] {
            let text = steps(
                json!(input),
                json!([{"function": "changeTimezone", "arguments": {"timezone": zone}}]),
            )
            .unwrap();
            let again = parse_date(&text).unwrap_or_else(|e| panic!("{input} {zone}: {e}"));
            assert_eq!(
                again,
                parse_date(&json!(input)).unwrap(),
                "{input} {zone}: {text}"
            );
        }
        assert_eq!(
            steps(
                json!("0001-01-01"),
                json!([{"function": "changeTimezone", "arguments": {"timezone": "Asia/Tokyo"}}])
            )
            .unwrap(),
            json!("0001-01-01T09:18:59.000+09:18:59")
        );
    }

    #[test]
    fn offsets_with_seconds_are_read_strictly_and_ms_amounts_are_not_capped() {
        for bad in [
            "2024-01-01T00:00:00+99:99:99",
            "2024-01-01T00:00:00+1:2:3456",
            "2024-01-01T00:00:00+-1:-1:-1",
        ] {
            assert!(parse_date(&json!(bad)).is_err(), "{bad}");
        }
        let r = steps(
            json!("1970-01-01T00:00:00Z"),
            json!([{"function": "add", "arguments": {"number": 1_700_000_000_000_i64, "unit": "millisecond"}}]),
        );
        assert_eq!(r.unwrap(), json!("2023-11-14T22:13:20.000Z"));
    }

    #[test]
    fn a_sixtieth_second_is_not_a_date() {
        for leap in [
            "2016-12-31T23:59:60Z",
            "0001-01-01T00:00:60Z",
            "2016-12-31 23:59:60",
        ] {
            let message = parse_date(&json!(leap)).unwrap_err();
            assert!(message.contains("not a date"), "{leap}: {message}");
        }
    }

    fn formatted(pattern: &str) -> Result<Value, String> {
        steps(
            json!("2024-07-04T18:30:05Z"),
            json!([{"function": "format", "arguments": {"format": pattern}}]),
        )
    }

    #[test]
    fn brackets_read_as_dayjs_reads_them() {
        // Each answer is what dayjs 1.11.23 gives for the same date and format.
        for (pattern, dayjs) in [
            ("[", "["),
            ("[YYYY", "[2024"),
            ("[]", "[]"),
            ("[]YYYY", "[]2024"),
            ("[[a]", "[a"),
            ("a]YYYY", "pm]2024"),
            ("[a][b]YYYY", "ab2024"),
            ("[YYYY]]", "YYYY]"),
            ("[[[[[[YYYY", "[[[[[[2024"),
        ] {
            assert_eq!(formatted(pattern).unwrap(), json!(dayjs), "{pattern}");
        }
    }

    #[test]
    fn text_past_the_bound_fails_the_step_naming_the_bound() {
        let within = "[".repeat(text::MAX_TEXT_CHARS);
        assert_eq!(formatted(&within).unwrap(), json!(within));
        let message = formatted(&"[".repeat(700_000)).unwrap_err();
        assert_eq!(
            message,
            "format is 700000 characters long; dateCalculation reads at most 1000"
        );
        // Counted in characters, not bytes.
        let wide = "é".repeat(text::MAX_TEXT_CHARS);
        assert_eq!(formatted(&wide).unwrap(), json!(wide));
        for (input, args) in [
            (
                json!("2024-01-01"),
                json!({"function": "changeTimezone", "arguments": {"timezone": "x".repeat(5000)}}),
            ),
            (
                json!("2024-01-01"),
                json!({"function": "add", "arguments": {"number": "1".repeat(5000), "unit": "day"}}),
            ),
            (
                json!("2024-01-01"),
                json!({"function": "add", "arguments": {"number": 1, "unit": "d".repeat(5000)}}),
            ),
            (
                json!("2024-01-01"),
                json!({"function": "diff", "arguments": {"date": " ".repeat(5000)}}),
            ),
        ] {
            let message = steps(input, json!([args])).unwrap_err();
            assert!(
                message.contains("5000 characters long; dateCalculation reads at most 1000"),
                "{message}"
            );
        }
        let message = parse_date(&json!(format!("2024-01-01{}", " ".repeat(5000)))).unwrap_err();
        assert!(
            message.starts_with("the date is 5010 characters long"),
            "{message}"
        );
    }

    #[test]
    fn a_written_format_past_the_bound_is_a_definition_error() {
        let mut problems = Vec::new();
        let mut check = Checker::new(&mut problems);
        let config = json!({"input": "2024-01-01", "steps": [
            {"function": "format", "arguments": {"format": "YYYY"}},
            {"function": "format", "arguments": {"format": "Y".repeat(1001)}}]});
        DateCalculation.validate(&config, "nodes[0].config", &mut check);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(
            problems[0].path,
            "nodes[0].config.steps[1].arguments.format"
        );
        assert!(
            problems[0].message.contains("at most 1000"),
            "{}",
            problems[0]
        );
    }

    #[tokio::test]
    async fn a_sent_format_past_the_bound_fails_the_node() {
        let nodes = json!([{"key": "f", "type": "dateCalculation", "config": {"input": "2024-01-01",
            "steps": [{"function": "format", "arguments": {"format": "{{$context.format}}"}}]}}]);
        let (outcome, jobs, _) = run(nodes, json!({"format": "[".repeat(700_000)})).await;
        assert_eq!(outcome.status, ExecutionStatus::Failed);
        assert_eq!(
            jobs[0].result["message"],
            "step 1 (format): format is 700000 characters long; dateCalculation reads at most 1000"
        );
    }

    #[tokio::test]
    async fn durations_from_numbers_flow_into_later_nodes() {
        let nodes = json!([
            {"key": "mins", "type": "dateCalculation", "config": {"input": "{{$context.seconds}}", "inputType": "number",
                "steps": [{"function": "transDuration", "arguments": {"unitBefore": "second", "unitAfter": "minute", "round": true}}]}},
            {"key": "out", "type": "output", "config": {"value": "{{$jobsMapByNodeKey.mins}} min"}}
        ]);
        let (outcome, _, output) = run(nodes, json!({"seconds": 151})).await;
        assert_eq!(outcome.status, ExecutionStatus::Resolved);
        assert_eq!(output, json!("3 min"));
        let nodes = json!([{"key": "d", "type": "dateCalculation", "config": {"input": "not a date", "steps": []}}]);
        let (outcome, jobs, _) = run(nodes, json!({})).await;
        assert_eq!(outcome.status, ExecutionStatus::Failed);
        assert!(
            jobs[0].result["message"]
                .as_str()
                .unwrap()
                .contains("not a date")
        );
    }
}
