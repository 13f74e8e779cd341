//! dayjs's `format` tokens, and the ISO form dates take in results.

use chrono::{Datelike, Timelike};

use super::Date;

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const WEEKDAYS: [&str; 7] = [
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
];

/// `2024-07-04T18:30:05.000Z`, or with the zone's offset outside UTC (with its
/// seconds when it has some, as old local mean time does: `+09:18:59`), so the
/// text always reads back as the same instant.
pub fn iso(d: &Date) -> String {
    let base = d.format("%Y-%m-%dT%H:%M:%S%.3f").to_string();
    if d.offset().to_string() == "UTC" {
        return format!("{base}Z");
    }
    let seconds = chrono::Offset::fix(d.offset()).local_minus_utc().abs() % 60;
    if seconds == 0 {
        format!("{base}{}", offset(d, true))
    } else {
        format!("{base}{}:{seconds:02}", offset(d, true))
    }
}

fn offset(d: &Date, colon: bool) -> String {
    let secs = chrono::Offset::fix(d.offset()).local_minus_utc();
    let sign = if secs < 0 { '-' } else { '+' };
    let (h, m) = (secs.abs() / 3600, secs.abs() % 3600 / 60);
    if colon {
        format!("{sign}{h:02}:{m:02}")
    } else {
        format!("{sign}{h:02}{m:02}")
    }
}

/// Formats with dayjs tokens; text in `[brackets]` is kept as written. As in dayjs
/// (`\[([^\]]+)]`), a bracket holds at least one character and ends at the first
/// `]`; a `[` with no `]` after it, or followed by `]` at once, is literal text.
pub fn format(d: &Date, pattern: &str) -> String {
    const TOKENS: [&str; 30] = [
        "YYYY", "YY", "MMMM", "MMM", "MM", "M", "DD", "D", "dddd", "ddd", "dd", "d", "HH", "H",
        "hh", "h", "mm", "m", "ss", "s", "SSS", "ZZ", "Z", "A", "a", "X", "x", "Q", "Do", "W",
    ];
    let mut out = String::new();
    let mut closes = NextClose::default();
    let mut at = 0;
    while at < pattern.len() {
        let rest = &pattern[at..];
        if rest.starts_with('[')
            && !rest[1..].starts_with(']')
            && let Some(end) = closes.after(pattern, at + 1)
        {
            out.push_str(&pattern[at + 1..end]);
            at = end + 1;
            continue;
        }
        match TOKENS.iter().find(|t| rest.starts_with(**t)) {
            Some(token) => {
                out.push_str(&token_value(d, token));
                at += token.len();
            }
            None => {
                let c = rest.chars().next().expect("not empty");
                out.push(c);
                at += c.len_utf8();
            }
        }
    }
    out
}

/// Where the next `]` is, remembered between brackets: a pattern of many `[` and
/// no `]` is scanned once, not once per `[` (which made a 700,000-character
/// format take seconds; dayjs's own regex is quadratic there too).
#[derive(Default)]
struct NextClose {
    /// The last answer: the search started at `from` and found `found`.
    from: usize,
    found: Option<usize>,
    searched: bool,
}

impl NextClose {
    /// The byte index of the first `]` at or after `from` (positions only grow).
    fn after(&mut self, pattern: &str, from: usize) -> Option<usize> {
        let still_valid = self.searched
            && from >= self.from
            && match self.found {
                Some(end) => end >= from,
                None => true,
            };
        if !still_valid {
            self.from = from;
            self.found = pattern[from..].find(']').map(|i| from + i);
            self.searched = true;
        }
        self.found
    }
}

fn token_value(d: &Date, token: &str) -> String {
    let hour12 = match d.hour() % 12 {
        0 => 12,
        h => h,
    };
    match token {
        "YYYY" => format!("{:04}", d.year()),
        "YY" => format!("{:02}", d.year().rem_euclid(100)),
        "MMMM" => MONTHS[d.month0() as usize].to_string(),
        "MMM" => MONTHS[d.month0() as usize][..3].to_string(),
        "MM" => format!("{:02}", d.month()),
        "M" => d.month().to_string(),
        "DD" => format!("{:02}", d.day()),
        "D" => d.day().to_string(),
        "Do" => ordinal(d.day()),
        "dddd" => WEEKDAYS[d.weekday().num_days_from_sunday() as usize].to_string(),
        "ddd" => WEEKDAYS[d.weekday().num_days_from_sunday() as usize][..3].to_string(),
        "dd" => WEEKDAYS[d.weekday().num_days_from_sunday() as usize][..2].to_string(),
        "d" => d.weekday().num_days_from_sunday().to_string(),
        "HH" => format!("{:02}", d.hour()),
        "H" => d.hour().to_string(),
        "hh" => format!("{hour12:02}"),
        "h" => hour12.to_string(),
        "mm" => format!("{:02}", d.minute()),
        "m" => d.minute().to_string(),
        "ss" => format!("{:02}", d.second()),
        "s" => d.second().to_string(),
        "SSS" => format!("{:03}", d.timestamp_subsec_millis()),
        "Z" => offset(d, true),
        "ZZ" => offset(d, false),
        "A" => if d.hour() < 12 { "AM" } else { "PM" }.to_string(),
        "a" => if d.hour() < 12 { "am" } else { "pm" }.to_string(),
        "X" => d.timestamp().to_string(),
        "x" => d.timestamp_millis().to_string(),
        "Q" => (d.month0() / 3 + 1).to_string(),
        "W" => d.iso_week().week().to_string(),
        _ => token.to_string(),
    }
}

fn ordinal(n: u32) -> String {
    let suffix = match (n % 10, n % 100) {
        (1, 11) | (2, 12) | (3, 13) => "th",
        (1, _) => "st",
        (2, _) => "nd",
        (3, _) => "rd",
        _ => "th",
    };
    format!("{n}{suffix}")
}
