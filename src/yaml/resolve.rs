//! Plain-scalar type resolution as go-yaml performs it, on the way in and on the way out.
//!
//! The same rules decide what a plain scalar means when a document is read and whether a
//! string must be quoted when it is written (a string that would read back as another type
//! is quoted), so both directions share this module.

use crate::calendar::{civil_from_days, days_from_civil};

/// What a plain scalar resolves to.
#[derive(Debug, Clone, PartialEq)]
pub enum Resolved {
    Null,
    Bool(bool),
    Int(i64),
    Uint(u64),
    Float(f64),
    /// A date or date-time; go-yaml keeps the text when the target is untyped.
    Timestamp,
    Str,
}

impl Resolved {
    /// The YAML core-schema tag in short form, as go-yaml names it in errors.
    pub fn tag(&self) -> &'static str {
        match self {
            Resolved::Null => "!!null",
            Resolved::Bool(_) => "!!bool",
            Resolved::Int(_) | Resolved::Uint(_) => "!!int",
            Resolved::Float(_) => "!!float",
            Resolved::Timestamp => "!!timestamp",
            Resolved::Str => "!!str",
        }
    }
}

/// Resolves plain scalar text the way go-yaml's resolver does: a table keyed on the first
/// character picks the candidate types, then exact words, timestamps, integers (with Go's
/// base prefixes and `_` separators) and YAML-style floats are tried in that order.
pub fn resolve_plain(text: &str) -> Resolved {
    let Some(&first) = text.as_bytes().first() else {
        return Resolved::Null;
    };
    let hint = match first {
        b'+' | b'-' => Hint::Sign,
        b'0'..=b'9' => Hint::Digit,
        b'y' | b'Y' | b'n' | b'N' | b't' | b'T' | b'f' | b'F' | b'o' | b'O' | b'~' => Hint::Word,
        b'.' => Hint::Dot,
        _ => return Resolved::Str,
    };
    if let Some(word) = resolve_word(text) {
        return word;
    }
    match hint {
        Hint::Word => Resolved::Str,
        Hint::Dot => match parse_dot_float(text) {
            Some(value) => Resolved::Float(value),
            None => Resolved::Str,
        },
        Hint::Digit | Hint::Sign => resolve_number(text),
    }
}

enum Hint {
    Sign,
    Digit,
    Word,
    Dot,
}

fn resolve_word(text: &str) -> Option<Resolved> {
    Some(match text {
        "true" | "True" | "TRUE" => Resolved::Bool(true),
        "false" | "False" | "FALSE" => Resolved::Bool(false),
        "~" | "null" | "Null" | "NULL" => Resolved::Null,
        ".nan" | ".NaN" | ".NAN" => Resolved::Float(f64::NAN),
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => Resolved::Float(f64::INFINITY),
        "-.inf" | "-.Inf" | "-.INF" => Resolved::Float(f64::NEG_INFINITY),
        _ => return None,
    })
}

fn resolve_number(text: &str) -> Resolved {
    if is_timestamp(text) {
        return Resolved::Timestamp;
    }
    let plain: String = text.chars().filter(|&c| c != '_').collect();
    if let Some(value) = parse_go_int(&plain) {
        if let Ok(value) = i64::try_from(value) {
            return Resolved::Int(value);
        }
        if !plain.starts_with(['+', '-'])
            && let Ok(value) = u64::try_from(value)
        {
            return Resolved::Uint(value);
        }
    }
    if is_yaml_float(&plain)
        && let Ok(value) = plain.parse::<f64>()
        && value.is_finite()
    {
        return Resolved::Float(value);
    }
    Resolved::Str
}

/// Go's `strconv.ParseInt(s, 0, 64)` syntax: optional sign, then `0x`, `0o`, `0b` or a
/// leading `0` (octal) prefix. Returns the value with enough range to range-check later.
fn parse_go_int(text: &str) -> Option<i128> {
    let (negative, body) = match text.as_bytes().first()? {
        b'+' => (false, &text[1..]),
        b'-' => (true, &text[1..]),
        _ => (false, text),
    };
    let lower = body.to_ascii_lowercase();
    let (radix, digits) = if let Some(rest) = lower.strip_prefix("0x") {
        (16, rest)
    } else if let Some(rest) = lower.strip_prefix("0o") {
        (8, rest)
    } else if let Some(rest) = lower.strip_prefix("0b") {
        (2, rest)
    } else if lower.len() > 1 && lower.starts_with('0') {
        (8, &lower[1..])
    } else {
        (10, lower.as_str())
    };
    if digits.is_empty() || digits.len() > 70 || !digits.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    let magnitude = u128::from_str_radix(digits, radix).ok()?;
    let magnitude = i128::try_from(magnitude).ok()?;
    Some(if negative { -magnitude } else { magnitude })
}

/// `^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$`
fn is_yaml_float(text: &str) -> bool {
    let bytes = text.as_bytes();
    let mut at = 0;
    if matches!(bytes.first(), Some(b'+' | b'-')) {
        at += 1;
    }
    let digits = |at: &mut usize| {
        let start = *at;
        while bytes.get(*at).is_some_and(u8::is_ascii_digit) {
            *at += 1;
        }
        *at - start
    };
    if bytes.get(at) == Some(&b'.') {
        at += 1;
        if digits(&mut at) == 0 {
            return false;
        }
    } else {
        if digits(&mut at) == 0 {
            return false;
        }
        if bytes.get(at) == Some(&b'.') {
            at += 1;
            digits(&mut at);
        }
    }
    if matches!(bytes.get(at), Some(b'e' | b'E')) {
        at += 1;
        if matches!(bytes.get(at), Some(b'+' | b'-')) {
            at += 1;
        }
        if digits(&mut at) == 0 {
            return false;
        }
    }
    at == bytes.len()
}

/// Go's `strconv.ParseFloat` on text that starts with a dot: `.5`, `.5e3`.
fn parse_dot_float(text: &str) -> Option<f64> {
    if !is_yaml_float(text) {
        return None;
    }
    text.parse::<f64>().ok().filter(|value| value.is_finite())
}

/// The timestamp forms go-yaml recognises: `YYYY-M-D`, optionally followed by a time
/// (`T`, `t` or space separated; the `T`/`t` forms need a zone).
pub fn is_timestamp(text: &str) -> bool {
    parse_timestamp(text).is_some()
}

/// A timestamp as go-yaml writes the `time.Time` it decodes into an untyped value: in UTC,
/// RFC 3339 with trailing zeros of the fraction dropped.
pub fn timestamp_rfc3339(text: &str) -> Option<String> {
    let stamp = parse_timestamp(text)?;
    let days = days_from_civil(stamp.year, stamp.month, stamp.day);
    let seconds = days * 86_400
        + i64::from(stamp.hour) * 3600
        + i64::from(stamp.minute) * 60
        + i64::from(stamp.second)
        - i64::from(stamp.offset_minutes) * 60;
    let (year, month, day) = civil_from_days(seconds.div_euclid(86_400));
    let in_day = seconds.rem_euclid(86_400);
    let mut out = format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}",
        in_day / 3600,
        in_day / 60 % 60,
        in_day % 60
    );
    let fraction = stamp.nanos.trim_end_matches('0');
    if !fraction.is_empty() {
        out.push('.');
        out.push_str(fraction);
    }
    out.push('Z');
    Some(out)
}

struct Timestamp {
    year: i64,
    month: u32,
    day: u32,
    hour: u32,
    minute: u32,
    second: u32,
    /// Fraction of a second as nine digits.
    nanos: String,
    offset_minutes: i32,
}

fn parse_timestamp(text: &str) -> Option<Timestamp> {
    let bytes = text.as_bytes();
    let year_digits = bytes.iter().take_while(|b| b.is_ascii_digit()).count();
    if year_digits != 4 || bytes.get(4) != Some(&b'-') {
        return None;
    }
    let number = |at: &mut usize, min: usize, max: usize| -> Option<u32> {
        let start = *at;
        while bytes.get(*at).is_some_and(u8::is_ascii_digit) && *at - start < max {
            *at += 1;
        }
        if *at - start < min {
            return None;
        }
        text[start..*at].parse().ok()
    };
    let expect = |at: &mut usize, byte: u8| -> Option<()> {
        (bytes.get(*at) == Some(&byte)).then(|| *at += 1)
    };
    let year: i64 = text[..4].parse().ok()?;
    let mut at = 5;
    let month = number(&mut at, 1, 2)?;
    expect(&mut at, b'-')?;
    let day = number(&mut at, 1, 2)?;
    if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
        return None;
    }
    let mut stamp = Timestamp {
        year,
        month,
        day,
        hour: 0,
        minute: 0,
        second: 0,
        nanos: String::new(),
        offset_minutes: 0,
    };
    if at == bytes.len() {
        return Some(stamp);
    }
    let zoned = match bytes.get(at)? {
        b'T' | b't' => true,
        b' ' => false,
        _ => return None,
    };
    at += 1;
    stamp.hour = number(&mut at, 1, 2)?;
    expect(&mut at, b':')?;
    stamp.minute = number(&mut at, 1, 2)?;
    expect(&mut at, b':')?;
    stamp.second = number(&mut at, 1, 2)?;
    if stamp.hour > 23 || stamp.minute > 59 || stamp.second > 59 {
        return None;
    }
    if bytes.get(at) == Some(&b'.') {
        at += 1;
        let start = at;
        number(&mut at, 1, 9)?;
        stamp.nanos = format!("{:0<9}", &text[start..at]);
    }
    if !zoned {
        return (at == bytes.len()).then_some(stamp);
    }
    match bytes.get(at)? {
        b'Z' => (at + 1 == bytes.len()).then_some(stamp),
        sign @ (b'+' | b'-') => {
            let negative = *sign == b'-';
            at += 1;
            let hours = number(&mut at, 2, 2)?;
            expect(&mut at, b':')?;
            let minutes = number(&mut at, 2, 2)?;
            if at != bytes.len() || hours > 23 || minutes > 59 {
                return None;
            }
            let offset = (hours * 60 + minutes) as i32;
            stamp.offset_minutes = if negative { -offset } else { offset };
            Some(stamp)
        }
        _ => None,
    }
}

fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// YAML 1.1 boolean words, which go-yaml still quotes on output for other parsers' sake.
pub fn is_old_bool(text: &str) -> bool {
    matches!(
        text,
        "y" | "Y"
            | "yes"
            | "Yes"
            | "YES"
            | "on"
            | "On"
            | "ON"
            | "n"
            | "N"
            | "no"
            | "No"
            | "NO"
            | "off"
            | "Off"
            | "OFF"
    )
}

/// The YAML 1.1 old bool words accepted when the target is a typed bool.
pub fn old_bool_value(text: &str) -> Option<bool> {
    match text {
        "y" | "Y" | "yes" | "Yes" | "YES" | "on" | "On" | "ON" => Some(true),
        "n" | "N" | "no" | "No" | "NO" | "off" | "Off" | "OFF" => Some(false),
        _ => None,
    }
}

/// `^[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+(?:\.[0-9_]*)?$`: YAML 1.1 sexagesimal numbers.
pub fn is_base60_float(text: &str) -> bool {
    let bytes = text.as_bytes();
    let mut at = 0;
    if matches!(bytes.first(), Some(b'+' | b'-')) {
        at += 1;
    }
    if !bytes.get(at).is_some_and(u8::is_ascii_digit) {
        return false;
    }
    while bytes
        .get(at)
        .is_some_and(|b| b.is_ascii_digit() || *b == b'_')
    {
        at += 1;
    }
    let mut groups = 0;
    while bytes.get(at) == Some(&b':') {
        at += 1;
        let start = at;
        while at - start < 2 && bytes.get(at).is_some_and(u8::is_ascii_digit) {
            at += 1;
        }
        match at - start {
            1 => {}
            2 if bytes.get(start).is_some_and(|&tens| tens <= b'5') => {}
            _ => return false,
        }
        groups += 1;
    }
    if groups == 0 {
        return false;
    }
    if bytes.get(at) == Some(&b'.') {
        at += 1;
        while bytes
            .get(at)
            .is_some_and(|b| b.is_ascii_digit() || *b == b'_')
        {
            at += 1;
        }
    }
    at == bytes.len()
}

/// Formats a float as Go's `strconv.FormatFloat(f, 'g', -1, 64)`, with YAML's spellings of
/// infinity and NaN.
pub fn format_go_float(value: f64) -> String {
    if value.is_nan() {
        return ".nan".into();
    }
    if value.is_infinite() {
        return if value > 0.0 { ".inf" } else { "-.inf" }.into();
    }
    if value == 0.0 {
        return if value.is_sign_negative() { "-0" } else { "0" }.into();
    }
    // Rust's `{:e}` yields the shortest round-tripping digits, as Go's -1 precision does.
    let scientific = format!("{value:e}");
    let (mantissa, exponent) = scientific
        .split_once('e')
        .unwrap_or((scientific.as_str(), "0"));
    let exponent: i32 = exponent.parse().unwrap_or(0);
    let negative = mantissa.starts_with('-');
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let sign = if negative { "-" } else { "" };
    // Go switches to exponent form at 1e6 when printing shortest digits.
    if !(-4..6).contains(&exponent) {
        let (head, tail) = digits.split_at(1);
        let fraction = if tail.is_empty() {
            String::new()
        } else {
            format!(".{tail}")
        };
        let exponent_sign = if exponent < 0 { '-' } else { '+' };
        return format!(
            "{sign}{head}{fraction}e{exponent_sign}{:02}",
            exponent.abs()
        );
    }
    let point = exponent + 1;
    if point <= 0 {
        format!("{sign}0.{}{digits}", "0".repeat((-point) as usize))
    } else if point as usize >= digits.len() {
        format!(
            "{sign}{digits}{}",
            "0".repeat(point as usize - digits.len())
        )
    } else {
        let (whole, fraction) = digits.split_at(point as usize);
        format!("{sign}{whole}.{fraction}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_like_go_yaml() {
        let cases: &[(&str, Resolved)] = &[
            ("", Resolved::Null),
            ("~", Resolved::Null),
            ("null", Resolved::Null),
            ("true", Resolved::Bool(true)),
            ("FALSE", Resolved::Bool(false)),
            ("yes", Resolved::Str),
            ("10", Resolved::Int(10)),
            ("0xa", Resolved::Int(10)),
            ("0o12", Resolved::Int(10)),
            ("0b1010", Resolved::Int(10)),
            ("012", Resolved::Int(10)),
            ("1_000", Resolved::Int(1000)),
            ("-1", Resolved::Int(-1)),
            ("+7", Resolved::Int(7)),
            ("18446744073709551615", Resolved::Uint(u64::MAX)),
            ("1.5", Resolved::Float(1.5)),
            ("08", Resolved::Float(8.0)),
            (".5", Resolved::Float(0.5)),
            ("1e3", Resolved::Float(1000.0)),
            ("2001-12-14", Resolved::Timestamp),
            ("2001-12-14T21:59:43.10-05:00", Resolved::Timestamp),
            ("2001-12-14 21:59:43.10", Resolved::Timestamp),
            ("2001-13-14", Resolved::Str),
            ("1.2.3", Resolved::Str),
            ("-x", Resolved::Str),
            ("noapic", Resolved::Str),
            ("_1", Resolved::Str),
            ("0x", Resolved::Str),
        ];
        for (text, expected) in cases {
            assert_eq!(&resolve_plain(text), expected, "{text:?}");
        }
        assert!(matches!(resolve_plain(".nan"), Resolved::Float(v) if v.is_nan()));
    }

    #[test]
    fn timestamps_normalise_to_utc() {
        assert_eq!(
            timestamp_rfc3339("2001-12-14").as_deref(),
            Some("2001-12-14T00:00:00Z")
        );
        assert_eq!(
            timestamp_rfc3339("2001-12-14t21:59:43.10-05:00").as_deref(),
            Some("2001-12-15T02:59:43.1Z")
        );
        assert_eq!(
            timestamp_rfc3339("2024-2-29 1:2:3").as_deref(),
            Some("2024-02-29T01:02:03Z")
        );
        assert_eq!(timestamp_rfc3339("2023-02-29"), None);
        assert_eq!(timestamp_rfc3339("2001-12-14T21:59:43"), None);
    }

    #[test]
    fn base60_and_old_bools() {
        assert!(is_base60_float("1:20"));
        assert!(is_base60_float("-190:20:30.15"));
        assert!(!is_base60_float("1:60"));
        assert!(!is_base60_float("a:20"));
        assert!(!is_base60_float("12"));
        assert!(is_old_bool("Off"));
        assert!(!is_old_bool("oFF"));
    }

    #[test]
    fn floats_format_like_go() {
        let cases: &[(f64, &str)] = &[
            (1.5, "1.5"),
            (2.0, "2"),
            (100000.0, "100000"),
            (1e6, "1e+06"),
            (1e20, "1e+20"),
            (1e21, "1e+21"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (-2.5e-7, "-2.5e-07"),
            (123456789.125, "1.23456789125e+08"),
            (654321.5, "654321.5"),
            (f64::INFINITY, ".inf"),
            (f64::NEG_INFINITY, "-.inf"),
        ];
        for (value, expected) in cases {
            assert_eq!(format_go_float(*value), *expected, "{value}");
        }
    }
}
