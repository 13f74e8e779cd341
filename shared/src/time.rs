//! One clock format for every record: RFC 3339, UTC, milliseconds; and times as
//! people write them: a duration back from now (`90s`, `10m`, `2h`, `7d`, `2w`) or
//! an RFC 3339 instant.

use chrono::{DateTime, SecondsFormat, Utc};

/// Now as `2026-11-28T01:44:17.123Z`.
pub fn now_rfc3339() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Now in unix seconds (signed timestamps are compared with it).
pub fn unix_seconds() -> i64 {
    Utc::now().timestamp()
}

/// A duration such as `10m`, `2h` or `7d`.
pub fn parse_duration(text: &str) -> Result<chrono::Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let amount: i64 = digits
        .parse()
        .map_err(|_| format!("{text:?} is not a duration such as 90s, 10m, 2h, 7d or 2w"))?;
    let seconds = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3_600,
        "d" => 86_400,
        "w" => 604_800,
        _ => {
            return Err(format!(
                "{text:?}: the unit must be s, m, h, d or w (such as 10m, 2h or 7d)"
            ));
        }
    };
    amount
        .checked_mul(seconds)
        .and_then(chrono::Duration::try_seconds)
        .ok_or_else(|| format!("{text:?} is too long"))
}

/// An instant: RFC 3339, or a duration back from `now`.
pub fn parse_instant(text: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>, String> {
    if let Ok(t) = DateTime::parse_from_rfc3339(text.trim()) {
        return Ok(t.with_timezone(&Utc));
    }
    let back = parse_duration(text)
        .map_err(|e| format!("{e}; or give an RFC 3339 time such as 2026-11-29T08:00:00Z"))?;
    now.checked_sub_signed(back)
        .ok_or_else(|| format!("{text:?} is too long ago"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_instants() {
        let now = DateTime::parse_from_rfc3339("2026-11-29T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(parse_duration("10m").unwrap().num_seconds(), 600);
        assert_eq!(parse_duration("7d").unwrap().num_seconds(), 604_800);
        assert_eq!(
            parse_instant("2h", now).unwrap().to_rfc3339(),
            "2026-11-29T10:00:00+00:00"
        );
        assert_eq!(
            parse_instant("2026-11-28T08:00:00+01:00", now)
                .unwrap()
                .to_rfc3339(),
            "2026-11-28T07:00:00+00:00"
        );
        for bad in ["", "m", "10", "10x", "-1d", "99999999999999999w"] {
            assert!(parse_instant(bad, now).is_err(), "{bad:?}");
        }
    }
}
