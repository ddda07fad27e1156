//! Timestamps and durations of the CEL standard library: `timestamp()`, `duration()`, their
//! arithmetic and comparisons (in `core`), and the accessors (`getFullYear`, `getHours`...).
//!
//! Time zones: the accessors take UTC (the API server's `cel.DefaultUTCTimeZone(true)`) or a
//! fixed offset (`"+05:30"`); an IANA zone name (`"Europe/Berlin"`) is an evaluation error,
//! since portier carries no time zone database.

use super::{Call, Registry, take};
use crate::cel::eval::EvalError;
use crate::cel::types::Type as T;
use crate::cel::value::{Duration, Timestamp, Value};

const NANOS: i128 = 1_000_000_000;
/// CEL's duration range: ±315,576,000,000 seconds (10,000 years).
const MAX_DURATION: i128 = 315_576_000_000 * NANOS;
/// 0001-01-01T00:00:00Z and 9999-12-31T23:59:59.999999999Z.
const MIN_TIMESTAMP: i128 = -62_135_596_800 * NANOS;
const MAX_TIMESTAMP: i128 = 253_402_300_800 * NANOS - 1;

pub(crate) fn register(r: &mut Registry) {
    r.global(
        "duration",
        to_duration,
        &[(&[T::String], T::Duration), (&[T::Duration], T::Duration)],
    );
    r.global(
        "timestamp",
        to_timestamp,
        &[
            (&[T::String], T::Timestamp),
            (&[T::Timestamp], T::Timestamp),
            (&[T::Int], T::Timestamp),
        ],
    );
    for name in [
        "getFullYear",
        "getMonth",
        "getDayOfYear",
        "getDayOfMonth",
        "getDate",
        "getDayOfWeek",
    ] {
        r.member(
            name,
            accessor,
            &[
                (&[T::Timestamp], T::Int),
                (&[T::Timestamp, T::String], T::Int),
            ],
        );
    }
    for name in ["getHours", "getMinutes", "getSeconds", "getMilliseconds"] {
        r.member(
            name,
            accessor,
            &[
                (&[T::Timestamp], T::Int),
                (&[T::Timestamp, T::String], T::Int),
                (&[T::Duration], T::Int),
            ],
        );
    }
}

/// A duration, or "duration overflow" outside CEL's range.
pub(crate) fn duration<'a>(nanos: i128) -> Result<Value<'a>, EvalError> {
    if !(-MAX_DURATION..=MAX_DURATION).contains(&nanos) {
        return Err(EvalError::message("duration overflow"));
    }
    Ok(Value::Duration(Duration(nanos)))
}

/// A timestamp, or "timestamp overflow" outside years 1 to 9999.
pub(crate) fn timestamp<'a>(nanos: i128) -> Result<Value<'a>, EvalError> {
    if !(MIN_TIMESTAMP..=MAX_TIMESTAMP).contains(&nanos) {
        return Err(EvalError::message("timestamp overflow"));
    }
    Ok(Value::Timestamp(Timestamp(nanos)))
}

fn to_duration<'a>(call: &mut Call<'_>, args: &mut [Value<'a>]) -> Result<Value<'a>, EvalError> {
    match &args[0] {
        Value::Duration(_) => Ok(take(args, 0)),
        Value::String(s) => match parse_duration(s) {
            Some(nanos) => duration(nanos),
            None => Err(EvalError::message(format!(
                "type conversion error from 'string' to 'google.protobuf.Duration': invalid duration {:?}",
                &**s
            ))),
        },
        _ => call.no_overload(args),
    }
}

fn to_timestamp<'a>(call: &mut Call<'_>, args: &mut [Value<'a>]) -> Result<Value<'a>, EvalError> {
    match &args[0] {
        Value::Timestamp(_) => Ok(take(args, 0)),
        Value::Int(seconds) => timestamp(i128::from(*seconds) * NANOS),
        Value::String(s) => match parse_rfc3339(s) {
            Some(nanos) => timestamp(nanos),
            None => Err(EvalError::message(format!(
                "type conversion error from 'string' to 'google.protobuf.Timestamp': invalid timestamp {:?}",
                &**s
            ))),
        },
        _ => call.no_overload(args),
    }
}

/// Go's `time.ParseDuration`: an optional sign, then numbers (with fractions) with units
/// `ns`, `us` (`µs`, `μs`), `ms`, `s`, `m`, `h`; `"0"` alone needs no unit.
pub(crate) fn parse_duration(text: &str) -> Option<i128> {
    let (negative, mut rest) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    if rest == "0" {
        return Some(0);
    }
    if rest.is_empty() {
        return None;
    }
    let mut total: i128 = 0;
    while !rest.is_empty() {
        let int_len = rest.bytes().take_while(u8::is_ascii_digit).count();
        let int_part = &rest[..int_len];
        rest = &rest[int_len..];
        let mut frac_part = "";
        if let Some(after) = rest.strip_prefix('.') {
            let frac_len = after.bytes().take_while(u8::is_ascii_digit).count();
            frac_part = &after[..frac_len];
            rest = &after[frac_len..];
        }
        if int_part.is_empty() && frac_part.is_empty() {
            return None;
        }
        let unit_len = rest
            .char_indices()
            .find(|(_, c)| c.is_ascii_digit() || *c == '.')
            .map_or(rest.len(), |(i, _)| i);
        let unit: i128 = match &rest[..unit_len] {
            "ns" => 1,
            "us" | "µs" | "μs" => 1_000,
            "ms" => 1_000_000,
            "s" => NANOS,
            "m" => 60 * NANOS,
            "h" => 3600 * NANOS,
            _ => return None,
        };
        rest = &rest[unit_len..];
        let whole: i128 = if int_part.is_empty() {
            0
        } else {
            int_part.parse::<i128>().ok()?
        };
        let mut value = whole.checked_mul(unit)?;
        // The fraction, to nanosecond precision.
        let mut scale = unit;
        for digit in frac_part.bytes() {
            scale /= 10;
            if scale == 0 {
                break;
            }
            value = value.checked_add(i128::from(digit - b'0') * scale)?;
        }
        total = total.checked_add(value)?;
        if total > i128::from(i64::MAX) {
            return None;
        }
    }
    Some(if negative { -total } else { total })
}

/// RFC 3339 as Go's `time.Parse(time.RFC3339, s)` reads it, in nanoseconds since the epoch.
pub(crate) fn parse_rfc3339(s: &str) -> Option<i128> {
    let b = s.as_bytes();
    let digits = |from: usize, len: usize| -> Option<i64> {
        let part = s.get(from..from + len)?;
        part.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| part.parse().ok())?
    };
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b'T'
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let (year, month, day) = (digits(0, 4)?, digits(5, 2)?, digits(8, 2)?);
    let (hour, minute, second) = (digits(11, 2)?, digits(14, 2)?, digits(17, 2)?);
    if !(1..=12).contains(&month)
        || day < 1
        || day > days_in_month(year, month)
        || hour > 23
        || minute > 59
        || second > 59
    {
        return None;
    }
    let mut i = 19;
    let mut nanos: i128 = 0;
    if b.get(i) == Some(&b'.') {
        let start = i + 1;
        let len = b[start..].iter().take_while(|c| c.is_ascii_digit()).count();
        if len == 0 || len > 9 {
            return None;
        }
        let frac: i128 = s[start..start + len].parse().ok()?;
        nanos = frac * 10_i128.pow(9 - len as u32);
        i = start + len;
    }
    let offset_seconds: i64 = match s.get(i..)? {
        "Z" => 0,
        zone if zone.len() == 6 && (zone.starts_with('+') || zone.starts_with('-')) => {
            if zone.as_bytes()[3] != b':' {
                return None;
            }
            let (h, m) = (digits(i + 1, 2)?, digits(i + 4, 2)?);
            if h > 23 || m > 59 {
                return None;
            }
            let sign = if zone.starts_with('-') { -1 } else { 1 };
            sign * (h * 3600 + m * 60)
        }
        _ => return None,
    };
    let days = days_from_civil(year, month, day);
    let seconds = days * 86_400 + hour * 3600 + minute * 60 + second - offset_seconds;
    Some(i128::from(seconds) * NANOS + nanos)
}

fn is_leap(year: i64) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if is_leap(year) => 29,
        _ => 28,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// (year, month 1-12, day 1-31) of a day count since 1970-01-01.
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// Go's `Time.Format(time.RFC3339Nano)` in UTC: trailing zeros of the fraction dropped.
pub(crate) fn format_timestamp(t: Timestamp) -> String {
    let seconds = t.0.div_euclid(NANOS) as i64;
    let nanos = t.0.rem_euclid(NANOS);
    let (year, month, day) = civil_from_days(seconds.div_euclid(86_400));
    let secs_of_day = seconds.rem_euclid(86_400);
    let mut out = format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}",
        secs_of_day / 3600,
        secs_of_day % 3600 / 60,
        secs_of_day % 60
    );
    if nanos != 0 {
        let frac = format!("{nanos:09}");
        out.push('.');
        out.push_str(frac.trim_end_matches('0'));
    }
    out.push('Z');
    out
}

/// cel-go's `string(duration)`: seconds with the fraction needed, and an `s`.
pub(crate) fn format_duration(d: Duration) -> String {
    let negative = d.0 < 0;
    let abs = d.0.unsigned_abs();
    let seconds = abs / NANOS as u128;
    let nanos = abs % NANOS as u128;
    let mut out = String::new();
    if negative {
        out.push('-');
    }
    out.push_str(&seconds.to_string());
    if nanos != 0 {
        let frac = format!("{nanos:09}");
        out.push('.');
        out.push_str(frac.trim_end_matches('0'));
    }
    out.push('s');
    out
}

/// The offset in seconds named by a time zone argument.
fn zone_offset(zone: &str) -> Result<i64, EvalError> {
    if zone.is_empty() || zone == "UTC" || zone == "Z" {
        return Ok(0);
    }
    let b = zone.as_bytes();
    let fixed = (b.len() == 6 && b[3] == b':' && (b[0] == b'+' || b[0] == b'-'))
        .then(|| {
            let h: i64 = zone[1..3].parse().ok()?;
            let m: i64 = zone[4..6].parse().ok()?;
            let sign = if b[0] == b'-' { -1 } else { 1 };
            Some(sign * (h * 3600 + m * 60))
        })
        .flatten();
    fixed.ok_or_else(|| {
        EvalError::message(format!(
            "unsupported time zone {zone:?}: portier knows UTC and fixed offsets such as \"+02:00\", not IANA zone names"
        ))
    })
}

fn accessor<'a>(call: &mut Call<'_>, args: &mut [Value<'a>]) -> Result<Value<'a>, EvalError> {
    let name = call.function;
    if let Value::Duration(d) = &args[0] {
        let ms = d.0 / 1_000_000;
        let v = match name {
            "getHours" => d.0 / (3600 * NANOS),
            "getMinutes" => d.0 / (60 * NANOS),
            "getSeconds" => d.0 / NANOS,
            "getMilliseconds" => ms,
            _ => return call.no_overload(args),
        };
        return Ok(Value::Int(v as i64));
    }
    let Value::Timestamp(t) = &args[0] else {
        return call.no_overload(args);
    };
    let offset = match args.get(1) {
        None => 0,
        Some(Value::String(zone)) => zone_offset(zone)?,
        Some(_) => return call.no_overload(args),
    };
    let local = t.0 + i128::from(offset) * NANOS;
    let seconds = local.div_euclid(NANOS) as i64;
    let days = seconds.div_euclid(86_400);
    let secs_of_day = seconds.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    let v = match name {
        "getFullYear" => year,
        "getMonth" => month - 1,
        "getDayOfYear" => days - days_from_civil(year, 1, 1),
        "getDayOfMonth" => day - 1,
        "getDate" => day,
        // 1970-01-01 was a Thursday; Sunday is 0.
        "getDayOfWeek" => (days + 4).rem_euclid(7),
        "getHours" => secs_of_day / 3600,
        "getMinutes" => secs_of_day % 3600 / 60,
        "getSeconds" => secs_of_day % 60,
        "getMilliseconds" => (local.rem_euclid(NANOS) / 1_000_000) as i64,
        _ => return call.no_overload(args),
    };
    Ok(Value::Int(v))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_as_go_does() {
        assert_eq!(parse_duration("1h2m3.5s"), Some(3723 * NANOS + NANOS / 2));
        assert_eq!(parse_duration("-1.5h"), Some(-5400 * NANOS));
        assert_eq!(parse_duration("300ms"), Some(300_000_000));
        assert_eq!(parse_duration("1µs"), Some(1000));
        assert_eq!(parse_duration("0"), Some(0));
        assert_eq!(parse_duration("1"), None);
        assert_eq!(parse_duration(""), None);
        assert_eq!(parse_duration("1d"), None);
        assert_eq!(parse_duration(".s"), None);
    }

    #[test]
    fn timestamps_round_trip() {
        for text in [
            "1970-01-01T00:00:00Z",
            "2023-02-03T23:31:20Z",
            "0001-01-01T00:00:00Z",
            "9999-12-31T23:59:59.999999999Z",
            "2024-02-29T12:00:00.5Z",
        ] {
            let t = parse_rfc3339(text).unwrap();
            assert_eq!(format_timestamp(Timestamp(t)), text);
        }
        assert_eq!(
            parse_rfc3339("2023-02-03T23:31:20+01:00"),
            parse_rfc3339("2023-02-03T22:31:20Z")
        );
        assert_eq!(parse_rfc3339("2023-02-30T00:00:00Z"), None);
        assert_eq!(parse_rfc3339("2023-02-03 23:31:20Z"), None);
        assert_eq!(format_duration(Duration(-1_500_000_000)), "-1.5s");
        assert_eq!(format_duration(Duration(3600 * NANOS)), "3600s");
    }
}
