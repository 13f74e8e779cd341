//! The steps of a `dateCalculation`: one variant per function, each with the
//! arguments it reads, so the editor schema lists every function's arguments.
//! The format is NocoBase's `{function, arguments}`; each argument may be
//! templated, so each is a JSON value until the run renders it.

use super::Tz;
use chrono::{Datelike, Timelike, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Deserializer};
use serde_json::{Value, json};

use super::text::{bounded, text_arg};
use super::units::{self, Unit};
use super::{Current, Date, date_of, parse_date};
use crate::engine::Checker;
use crate::nodes::calculation::number;

/// Every function's name, as the message for another one lists them.
const FUNCTIONS: [&str; 13] = [
    "add",
    "subtract",
    "diff",
    "get",
    "startOfTime",
    "endOfTime",
    "isLeapYear",
    "format",
    "transDuration",
    "toTimestamp",
    "tsToDate",
    "changeTimezone",
    "now",
];

/// One step: `{function, arguments}`. `arguments` may be left out, and holds
/// what the function reads (others are ignored).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(tag = "function", rename_all = "camelCase")]
pub enum Step {
    /// `number` × `unit` (default `day`) later; months clamp to the month's end.
    Add {
        #[serde(default, deserialize_with = "listed")]
        arguments: Shift,
    },
    /// `number` × `unit` (default `day`) earlier.
    Subtract {
        #[serde(default, deserialize_with = "listed")]
        arguments: Shift,
    },
    /// The date minus `date`, in `unit`s (fractional).
    Diff {
        #[serde(default, deserialize_with = "listed")]
        arguments: Difference,
    },
    /// A number: `month` is 0-based, `day` the weekday (0 = Sunday), `date` the
    /// day of the month.
    Get {
        #[serde(default, deserialize_with = "listed")]
        arguments: UnitOnly,
    },
    /// The first millisecond of the `unit` (weeks start on Sunday).
    StartOfTime {
        #[serde(default, deserialize_with = "listed")]
        arguments: UnitOnly,
    },
    /// The last millisecond of the `unit`.
    EndOfTime {
        #[serde(default, deserialize_with = "listed")]
        arguments: UnitOnly,
    },
    /// Whether the date's year is a leap year.
    IsLeapYear {
        #[serde(default, deserialize_with = "listed", rename = "arguments")]
        _arguments: Nothing,
    },
    /// Text, in dayjs's tokens.
    Format {
        #[serde(default, deserialize_with = "listed")]
        arguments: Pattern,
    },
    /// A number (a duration) converted between fixed-length units.
    TransDuration {
        #[serde(default, deserialize_with = "listed")]
        arguments: Conversion,
    },
    /// A timestamp, in milliseconds (or `unit: second`).
    ToTimestamp {
        #[serde(default, deserialize_with = "listed")]
        arguments: UnitOnly,
    },
    /// A date from a timestamp, in milliseconds (or `unit: second`).
    TsToDate {
        #[serde(default, deserialize_with = "listed")]
        arguments: UnitOnly,
    },
    /// The same instant in another time zone.
    ChangeTimezone {
        #[serde(default, deserialize_with = "listed")]
        arguments: Zone,
    },
    /// The time the step runs.
    Now {
        #[serde(default, deserialize_with = "listed", rename = "arguments")]
        _arguments: Nothing,
    },
    /// A function hookflow does not have: refused when a definition is validated.
    #[serde(other)]
    #[schemars(skip)]
    Unknown,
}

/// `number` (may be text: `"2"`) and `unit`.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(default)]
#[schemars(extend("additionalProperties" = true))]
pub struct Shift {
    /// How many units: a number, or text that reads as one (`"2"`).
    number: Option<Value>,
    /// A unit: `year quarter month week day date hour minute second millisecond`,
    /// plurals, or dayjs's short forms (`M` month, `m` minute).
    unit: Option<Value>,
}

/// `date`, `unit`, `isAbs` (the absolute value) and `round` (toward zero).
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(default, rename_all = "camelCase")]
#[schemars(extend("additionalProperties" = true))]
pub struct Difference {
    /// The date subtracted.
    date: Option<Value>,
    /// A unit: `year quarter month week day date hour minute second millisecond`,
    /// plurals, or dayjs's short forms (`M` month, `m` minute).
    unit: Option<Value>,
    /// `true`: the absolute value.
    is_abs: Option<Value>,
    /// `true`: truncated toward zero.
    round: Option<Value>,
}

/// `unit`.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(default)]
#[schemars(extend("additionalProperties" = true))]
pub struct UnitOnly {
    /// A unit: `year quarter month week day date hour minute second millisecond`,
    /// plurals, or dayjs's short forms (`M` month, `m` minute).
    unit: Option<Value>,
}

/// `format`: dayjs tokens, `[literal]` text kept as written.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(default)]
#[schemars(extend("additionalProperties" = true))]
pub struct Pattern {
    /// dayjs tokens (`YYYY MM DD HH mm ss SSS Z A d dddd MMMM Do X x`), at most
    /// 1,000 characters.
    format: Option<Value>,
}

/// `unitBefore`, `unitAfter` (both `millisecond` by default) and `round`.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(default, rename_all = "camelCase")]
#[schemars(extend("additionalProperties" = true))]
pub struct Conversion {
    /// The unit of the number in (a fixed-length one: not months or years).
    unit_before: Option<Value>,
    /// The unit of the number out.
    unit_after: Option<Value>,
    /// `true`: rounded to a whole number.
    round: Option<Value>,
}

/// `timezone`: an IANA name (`Asia/Tokyo`).
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(default)]
#[schemars(extend("additionalProperties" = true))]
pub struct Zone {
    /// An IANA time zone name (`Asia/Tokyo`).
    timezone: Option<Value>,
}

/// No arguments.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[schemars(extend("additionalProperties" = true))]
pub struct Nothing {}

/// `arguments` that are not an object (null, say) read as none, as they always
/// have.
fn listed<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: serde::de::DeserializeOwned + Default,
{
    match Value::deserialize(d)? {
        listed @ Value::Object(_) => T::deserialize(listed).map_err(serde::de::Error::custom),
        _ => Ok(T::default()),
    }
}

impl Step {
    /// The function's name, as definitions write it.
    pub fn name(&self) -> &'static str {
        let at = match self {
            Step::Add { .. } => 0,
            Step::Subtract { .. } => 1,
            Step::Diff { .. } => 2,
            Step::Get { .. } => 3,
            Step::StartOfTime { .. } => 4,
            Step::EndOfTime { .. } => 5,
            Step::IsLeapYear { .. } => 6,
            Step::Format { .. } => 7,
            Step::TransDuration { .. } => 8,
            Step::ToTimestamp { .. } => 9,
            Step::TsToDate { .. } => 10,
            Step::ChangeTimezone { .. } => 11,
            Step::Now { .. } => 12,
            Step::Unknown => return "an unknown function",
        };
        FUNCTIONS[at]
    }

    /// Reports the arguments written in the definition that cannot work: an
    /// unknown unit or time zone, a format past the bound. `at` is the step's path.
    pub fn check(&self, at: &str, check: &mut Checker) {
        let unit = |name: &str, value: &Option<Value>, check: &mut Checker| {
            if let Some(Value::String(u)) = value
                && Unit::parse(u).is_none()
            {
                check.error(
                    format!("{at}.arguments.{name}"),
                    format!("unknown unit {u:?}"),
                );
            }
        };
        match self {
            Step::Add { arguments: a } | Step::Subtract { arguments: a } => {
                unit("unit", &a.unit, check)
            }
            Step::Diff { arguments: a } => unit("unit", &a.unit, check),
            Step::Get { arguments: a }
            | Step::StartOfTime { arguments: a }
            | Step::EndOfTime { arguments: a }
            | Step::ToTimestamp { arguments: a }
            | Step::TsToDate { arguments: a } => unit("unit", &a.unit, check),
            Step::TransDuration { arguments: a } => {
                unit("unitBefore", &a.unit_before, check);
                unit("unitAfter", &a.unit_after, check);
            }
            Step::Format { arguments: a } => {
                if let Some(Value::String(f)) = &a.format
                    && let Err(message) = bounded("the format", f)
                {
                    check.error(format!("{at}.arguments.format"), message);
                }
            }
            Step::ChangeTimezone { arguments: a } => {
                if let Some(Value::String(tz)) = &a.timezone
                    && !tz.contains("{{")
                    && tz.parse::<Tz>().is_err()
                {
                    check.error(
                        format!("{at}.arguments.timezone"),
                        format!("unknown time zone {tz:?} (use an IANA name)"),
                    );
                }
            }
            Step::IsLeapYear { .. } | Step::Now { .. } => {}
            Step::Unknown => check.error(
                format!("{at}.function"),
                format!("must be one of {}", FUNCTIONS.join(", ")),
            ),
        }
    }

    /// Applies the step; `render` gives an argument's value in this run.
    pub fn apply(
        &self,
        render: &dyn Fn(&Option<Value>) -> Value,
        current: Current,
    ) -> Result<Current, String> {
        let date = || date_of(&current);
        let unit = |value: &Option<Value>, name: &str, default: Unit| {
            unit_arg(&render(value), name, default)
        };
        Ok(match self {
            Step::Add { arguments: a } | Step::Subtract { arguments: a } => {
                let amount = number_arg(&render(&a.number), "number")?;
                let amount = if matches!(self, Step::Subtract { .. }) {
                    -amount
                } else {
                    amount
                };
                Current::Date(units::add(
                    date()?,
                    amount,
                    unit(&a.unit, "unit", Unit::Day)?,
                )?)
            }
            Step::Diff { arguments: a } => {
                let other = parse_date(&render(&a.date))?;
                let mut value = units::diff(date()?, other, unit(&a.unit, "unit", Unit::Day)?);
                if flag(&render(&a.is_abs)) {
                    value = value.abs();
                }
                if flag(&render(&a.round)) {
                    value = value.trunc();
                }
                Current::Other(number(value))
            }
            Step::Get { arguments: a } => {
                Current::Other(json!(get(&date()?, unit(&a.unit, "unit", Unit::Day)?)))
            }
            Step::StartOfTime { arguments: a } => {
                Current::Date(units::start_of(date()?, unit(&a.unit, "unit", Unit::Day)?)?)
            }
            Step::EndOfTime { arguments: a } => {
                Current::Date(units::end_of(date()?, unit(&a.unit, "unit", Unit::Day)?)?)
            }
            Step::IsLeapYear { .. } => {
                let year = date()?.year();
                Current::Other(json!((year % 4 == 0 && year % 100 != 0) || year % 400 == 0))
            }
            Step::Format { arguments: a } => {
                let pattern = render(&a.format);
                let pattern = text_arg(&pattern, "format")?.unwrap_or("YYYY-MM-DDTHH:mm:ssZ");
                Current::Other(Value::String(super::format::format(&date()?, pattern)))
            }
            Step::TransDuration { arguments: a } => {
                let value = match &current {
                    Current::Other(v) => number_arg(v, "v")?,
                    Current::Date(_) => {
                        return Err("needs a number (a duration), not a date".into());
                    }
                };
                let before = unit(&a.unit_before, "unitBefore", Unit::Millisecond)?;
                let after = unit(&a.unit_after, "unitAfter", Unit::Millisecond)?;
                let mut converted = value * before.fixed_ms()? / after.fixed_ms()?;
                if flag(&render(&a.round)) {
                    converted = converted.round();
                }
                Current::Other(number(converted))
            }
            Step::ToTimestamp { arguments: a } => {
                let ms = date()?.timestamp_millis();
                Current::Other(match unit(&a.unit, "unit", Unit::Millisecond)? {
                    Unit::Second => json!(ms.div_euclid(1000)),
                    _ => json!(ms),
                })
            }
            Step::TsToDate { arguments: a } => {
                let raw = match &current {
                    Current::Other(v) => number_arg(v, "v")?,
                    Current::Date(d) => d.timestamp_millis() as f64,
                };
                let ms = match unit(&a.unit, "unit", Unit::Millisecond)? {
                    Unit::Second => raw * 1000.0,
                    _ => raw,
                };
                Current::Date(parse_date(&json!(ms))?)
            }
            Step::ChangeTimezone { arguments: a } => {
                let name = render(&a.timezone);
                let name = text_arg(&name, "timezone")?.ok_or("timezone is required")?;
                let tz: Tz = name
                    .parse()
                    .map_err(|_| format!("unknown time zone {name:?}"))?;
                Current::Date(date()?.with_timezone(&tz))
            }
            Step::Now { .. } => Current::Date(Utc::now().with_timezone(&Tz::UTC)),
            Step::Unknown => return Err("unknown function".into()),
        })
    }
}

fn unit_arg(value: &Value, name: &str, default: Unit) -> Result<Unit, String> {
    match text_arg(value, name)? {
        None => Ok(default),
        Some(u) => Unit::parse(u).ok_or_else(|| format!("unknown unit {u:?}")),
    }
}

/// A finite number (JSON, or text that reads as one: `"2"`); `"NaN"` and
/// `"Infinity"` are not numbers here.
fn number_arg(value: &Value, name: &str) -> Result<f64, String> {
    let number = match value {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => bounded(name, s)?.trim().parse::<f64>().ok(),
        _ => return Err(format!("{name} is required (a number)")),
    };
    number
        .filter(|n| n.is_finite())
        .ok_or_else(|| format!("{name} {value} is not a finite number"))
}

fn flag(value: &Value) -> bool {
    value.as_bool().unwrap_or(false)
}

/// dayjs's `get`: month is 0-based, `day` is the weekday (0 = Sunday), `date` the day
/// of the month.
fn get(d: &Date, unit: Unit) -> i64 {
    match unit {
        Unit::Year => i64::from(d.year()),
        Unit::Quarter => i64::from(d.month0() / 3 + 1),
        Unit::Month => i64::from(d.month0()),
        Unit::Week => i64::from(d.iso_week().week()),
        Unit::Day => i64::from(d.weekday().num_days_from_sunday()),
        Unit::Date => i64::from(d.day()),
        Unit::Hour => i64::from(d.hour()),
        Unit::Minute => i64::from(d.minute()),
        Unit::Second => i64::from(d.second()),
        Unit::Millisecond => i64::from(d.timestamp_subsec_millis()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_function_name_reads_as_its_step() {
        for name in FUNCTIONS {
            let step: Step = serde_json::from_value(json!({"function": name})).unwrap();
            assert_eq!(step.name(), name);
        }
        let other: Step =
            serde_json::from_value(json!({"function": "later", "arguments": {"a": 1}})).unwrap();
        assert!(matches!(other, Step::Unknown));
    }

    #[test]
    fn the_schema_says_each_functions_arguments() {
        let schema = schemars::schema_for!(Step).to_value();
        let variants = schema["oneOf"].as_array().unwrap();
        let names: Vec<&str> = variants
            .iter()
            .map(|v| v["properties"]["function"]["const"].as_str().unwrap())
            .collect();
        assert_eq!(names, FUNCTIONS);
        let arguments = |function: &str| -> Vec<String> {
            let at = FUNCTIONS.iter().position(|f| *f == function).unwrap();
            let reference = variants[at]["properties"]["arguments"]["$ref"]
                .as_str()
                .unwrap();
            let name = reference.rsplit('/').next().unwrap();
            let listed = schema["$defs"][name]["properties"].as_object();
            listed
                .into_iter()
                .flatten()
                .map(|(k, _)| k.clone())
                .collect()
        };
        assert_eq!(arguments("add"), ["number", "unit"]);
        assert_eq!(arguments("diff"), ["date", "unit", "isAbs", "round"]);
        assert_eq!(
            arguments("transDuration"),
            ["unitBefore", "unitAfter", "round"]
        );
        assert_eq!(arguments("changeTimezone"), ["timezone"]);
        assert!(arguments("now").is_empty());
    }

    #[test]
    fn each_step_is_checked_by_its_function() {
        let mut problems = Vec::new();
        let mut check = Checker::new(&mut problems);
        let steps: Vec<Step> = serde_json::from_value(json!([
            {"function": "later"},
            {"function": "add", "arguments": {"number": 1, "unit": "fortnight", "note": "kept"}},
            {"function": "changeTimezone", "arguments": {"timezone": "Mars/Olympus_Mons"}},
            {"function": "changeTimezone", "arguments": {"timezone": "{{$context.zone}}"}},
            {"function": "isLeapYear", "arguments": null},
            {"function": "now"}
        ]))
        .unwrap();
        for (i, step) in steps.iter().enumerate() {
            step.check(&format!("s[{i}]"), &mut check);
        }
        let found: Vec<String> = problems.iter().map(ToString::to_string).collect();
        assert_eq!(
            found,
            [
                format!("s[0].function: must be one of {}", FUNCTIONS.join(", ")),
                "s[1].arguments.unit: unknown unit \"fortnight\"".to_string(),
                "s[2].arguments.timezone: unknown time zone \"Mars/Olympus_Mons\" (use an IANA name)"
                    .to_string(),
            ]
        );
    }
}
