//! cel-go's strings extension at version 2, as the API server enables it (`ext.Strings`):
//! `charAt`, `indexOf`, `lastIndexOf`, `lowerAscii`, `upperAscii`, `replace`, `split`,
//! `substring`, `trim`, `join`, `strings.quote` and `format`. Positions count characters
//! (code points), not bytes, as in cel-go.

use std::fmt::Write as _;

use super::sig::*;
use super::{Call, Registry};
use crate::cel::eval::EvalError;
use crate::cel::value::Value;

pub(crate) fn register(r: &mut Registry) {
    r.member("charAt", char_at, &[(&[String, Int], String)]);
    r.member(
        "indexOf",
        index_of,
        &[(&[String, String], Int), (&[String, String, Int], Int)],
    );
    r.member(
        "lastIndexOf",
        last_index_of,
        &[(&[String, String], Int), (&[String, String, Int], Int)],
    );
    r.member("lowerAscii", lower_ascii, &[(&[String], String)]);
    r.member("upperAscii", upper_ascii, &[(&[String], String)]);
    r.member(
        "replace",
        replace,
        &[
            (&[String, String, String], String),
            (&[String, String, String, Int], String),
        ],
    );
    r.member(
        "split",
        split,
        &[
            (&[String, String], list(String)),
            (&[String, String, Int], list(String)),
        ],
    );
    r.member(
        "substring",
        substring,
        &[(&[String, Int], String), (&[String, Int, Int], String)],
    );
    r.member("trim", trim, &[(&[String], String)]);
    r.member(
        "join",
        join,
        &[(&[list(String)], String), (&[list(String), String], String)],
    );
    r.global("strings.quote", quote, &[(&[String], String)]);
    r.member("format", format, &[(&[String, list(Dyn)], String)]);
}

fn string_arg<'v>(call: &Call<'_>, args: &'v [Value<'_>], i: usize) -> Result<&'v str, EvalError> {
    match args.get(i) {
        Some(Value::String(s)) => Ok(s),
        _ => call.no_overload(args),
    }
}

fn int_arg(call: &Call<'_>, args: &[Value<'_>], i: usize) -> Result<i64, EvalError> {
    match args.get(i) {
        Some(Value::Int(n)) => Ok(*n),
        _ => call.no_overload(args),
    }
}

fn out_of_range(i: i64) -> EvalError {
    EvalError::message(format!("index out of range: {i}"))
}

/// The byte offset of character `i` (of `count` characters), or an error past the end.
fn byte_offset(s: &str, i: i64) -> Result<usize, EvalError> {
    let n = usize::try_from(i).map_err(|_| out_of_range(i))?;
    if n == 0 {
        return Ok(0);
    }
    match s.char_indices().nth(n) {
        Some((offset, _)) => Ok(offset),
        None if s.chars().count() == n => Ok(s.len()),
        None => Err(out_of_range(i)),
    }
}

fn char_index(s: &str, byte: usize) -> i64 {
    s[..byte].chars().count() as i64
}

fn char_at<'a>(call: &mut Call<'_>, args: &mut [Value<'a>]) -> Result<Value<'a>, EvalError> {
    let s = string_arg(call, args, 0)?;
    let i = int_arg(call, args, 1)?;
    call.charge_traversal(s.len())?;
    let start = byte_offset(s, i)?;
    let c = s[start..]
        .chars()
        .next()
        .map(|c| c.to_string())
        .unwrap_or_default();
    Ok(Value::string(c))
}

fn index_of<'a>(call: &mut Call<'_>, args: &mut [Value<'a>]) -> Result<Value<'a>, EvalError> {
    let s = string_arg(call, args, 0)?;
    let sub = string_arg(call, args, 1)?;
    let from = if args.len() > 2 {
        int_arg(call, args, 2)?
    } else {
        0
    };
    call.charge_traversal(s.len() + sub.len())?;
    let start = byte_offset(s, from)?;
    Ok(Value::Int(match s[start..].find(sub) {
        Some(at) => char_index(s, start + at),
        None => -1,
    }))
}

fn last_index_of<'a>(call: &mut Call<'_>, args: &mut [Value<'a>]) -> Result<Value<'a>, EvalError> {
    let s = string_arg(call, args, 0)?;
    let sub = string_arg(call, args, 1)?;
    call.charge_traversal(s.len() + sub.len())?;
    let chars = s.chars().count() as i64;
    let last_start = if args.len() > 2 {
        let from = int_arg(call, args, 2)?;
        if from < 0 || from > chars {
            return Err(out_of_range(from));
        }
        from
    } else {
        chars
    };
    if sub.is_empty() {
        return Ok(Value::Int(last_start));
    }
    // The match may start at character `last_start` at the latest.
    let limit = byte_offset(s, last_start)?;
    let end = (limit + sub.len()).min(s.len());
    let mut end = end;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    Ok(Value::Int(match s[..end].rfind(sub) {
        Some(at) => char_index(s, at),
        None => -1,
    }))
}

fn lower_ascii<'a>(call: &mut Call<'_>, args: &mut [Value<'a>]) -> Result<Value<'a>, EvalError> {
    let s = string_arg(call, args, 0)?;
    call.charge_traversal(s.len())?;
    Ok(Value::string(s.to_ascii_lowercase()))
}

fn upper_ascii<'a>(call: &mut Call<'_>, args: &mut [Value<'a>]) -> Result<Value<'a>, EvalError> {
    let s = string_arg(call, args, 0)?;
    call.charge_traversal(s.len())?;
    Ok(Value::string(s.to_ascii_uppercase()))
}

/// Go's `strings.Replace(s, old, new, n)`: at most `n` replacements, all when `n < 0`; an
/// empty `old` matches before every character and at the end.
fn replace<'a>(call: &mut Call<'_>, args: &mut [Value<'a>]) -> Result<Value<'a>, EvalError> {
    let s = string_arg(call, args, 0)?;
    let old = string_arg(call, args, 1)?;
    let new = string_arg(call, args, 2)?;
    let limit = if args.len() > 3 {
        int_arg(call, args, 3)?
    } else {
        -1
    };
    // The result can be much longer than the input: charge for what is built.
    let slots = if old.is_empty() {
        s.chars().count() + 1
    } else {
        s.len() / old.len().max(1)
    };
    let max_replacements = if limit < 0 {
        slots
    } else {
        slots.min(limit as usize)
    };
    call.charge_traversal(s.len() + max_replacements * new.len())?;
    if limit == 0 {
        return Ok(Value::string(s));
    }
    let out = if old.is_empty() {
        let mut out = std::string::String::with_capacity(s.len() + max_replacements * new.len());
        let mut done = 0usize;
        for c in s.chars() {
            if done < max_replacements {
                out.push_str(new);
                done += 1;
            }
            out.push(c);
        }
        if done < max_replacements {
            out.push_str(new);
        }
        out
    } else if limit < 0 {
        s.replace(old, new)
    } else {
        s.replacen(old, new, limit as usize)
    };
    Ok(Value::string(out))
}

/// Go's `strings.SplitN`: `n == 0` gives nothing, `n < 0` everything, an empty separator
/// splits between characters.
fn split<'a>(call: &mut Call<'_>, args: &mut [Value<'a>]) -> Result<Value<'a>, EvalError> {
    let s = string_arg(call, args, 0)?;
    let sep = string_arg(call, args, 1)?;
    let limit = if args.len() > 2 {
        int_arg(call, args, 2)?
    } else {
        -1
    };
    call.charge_traversal(s.len())?;
    if limit == 0 {
        return Ok(Value::list(Vec::new()));
    }
    let parts: Vec<Value<'a>> = if sep.is_empty() {
        let chars: Vec<char> = s.chars().collect();
        let n = if limit < 0 {
            chars.len()
        } else {
            (limit as usize).min(chars.len())
        };
        let mut out: Vec<Value<'a>> = chars[..n.saturating_sub(1)]
            .iter()
            .map(|c| Value::string(c.to_string()))
            .collect();
        if n > 0 {
            out.push(Value::string(
                chars[n - 1..].iter().collect::<std::string::String>(),
            ));
        }
        out
    } else if limit < 0 {
        s.split(sep).map(Value::string).collect()
    } else {
        s.splitn(limit as usize, sep).map(Value::string).collect()
    };
    Ok(Value::list(parts))
}

fn substring<'a>(call: &mut Call<'_>, args: &mut [Value<'a>]) -> Result<Value<'a>, EvalError> {
    let s = string_arg(call, args, 0)?;
    let start = int_arg(call, args, 1)?;
    call.charge_traversal(s.len())?;
    let chars = s.chars().count() as i64;
    let end = if args.len() > 2 {
        int_arg(call, args, 2)?
    } else {
        chars
    };
    if args.len() > 2 && start > end {
        return Err(EvalError::message(format!(
            "invalid substring range. start: {start}, end: {end}"
        )));
    }
    if start < 0 || start > chars {
        return Err(out_of_range(start));
    }
    if end < 0 || end > chars {
        return Err(out_of_range(end));
    }
    let (from, to) = (byte_offset(s, start)?, byte_offset(s, end)?);
    Ok(Value::string(&s[from..to]))
}

fn trim<'a>(call: &mut Call<'_>, args: &mut [Value<'a>]) -> Result<Value<'a>, EvalError> {
    let s = string_arg(call, args, 0)?;
    call.charge_traversal(s.len())?;
    Ok(Value::string(s.trim_matches(char::is_whitespace)))
}

fn join<'a>(call: &mut Call<'_>, args: &mut [Value<'a>]) -> Result<Value<'a>, EvalError> {
    let Value::List(list) = &args[0] else {
        return call.no_overload(args);
    };
    let sep = if args.len() > 1 {
        string_arg(call, args, 1)?
    } else {
        ""
    };
    let mut out = std::string::String::new();
    for (i, item) in list.iter().enumerate() {
        let Value::String(s) = &item else {
            return Err(EvalError::no_overload("join", &[item]));
        };
        if i > 0 {
            out.push_str(sep);
        }
        out.push_str(s);
    }
    call.charge_traversal(out.len())?;
    Ok(Value::string(out))
}

/// `strings.quote`: a double-quoted string literal with CEL's escapes.
fn quote<'a>(call: &mut Call<'_>, args: &mut [Value<'a>]) -> Result<Value<'a>, EvalError> {
    let s = string_arg(call, args, 0)?;
    call.charge_traversal(s.len())?;
    Ok(Value::string(quoted(s)))
}

pub(crate) fn quoted(s: &str) -> std::string::String {
    let mut out = std::string::String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{b}' => out.push_str("\\v"),
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Go's `%q` of a string: printable characters as they are, the rest escaped.
fn go_quoted(s: &str) -> std::string::String {
    let mut out = std::string::String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\u{b}' => out.push_str("\\v"),
            c if c.is_control() => {
                let _ = if (c as u32) < 0x10000 {
                    write!(out, "\\u{:04x}", c as u32)
                } else {
                    write!(out, "\\U{:08x}", c as u32)
                };
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Go's `fmt.Sprintf("%g", d)`, as cel-go's `string(double)` prints: the shortest digits that
/// read back, in exponent form below 1e-4 and from 1e6 on (Go's shortest `%g` decides with
/// precision 6).
pub(crate) fn format_double(d: f64) -> std::string::String {
    if d.is_nan() {
        return "NaN".into();
    }
    if d.is_infinite() {
        return if d > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        };
    }
    if d == 0.0 {
        return if d.is_sign_negative() {
            "-0".into()
        } else {
            "0".into()
        };
    }
    // Rust's `{:e}` gives the shortest round-tripping digits: "1.2345e6".
    let sci = format!("{d:e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    if !(-4..6).contains(&exp) {
        let sign = if exp < 0 { '-' } else { '+' };
        return format!("{mantissa}e{sign}{:02}", exp.abs());
    }
    let negative = mantissa.starts_with('-');
    let digits: std::string::String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let point = exp + 1;
    let mut out = std::string::String::new();
    if negative {
        out.push('-');
    }
    if point <= 0 {
        out.push_str("0.");
        out.push_str(&"0".repeat((-point) as usize));
        out.push_str(&digits);
    } else if point as usize >= digits.len() {
        out.push_str(&digits);
        out.push_str(&"0".repeat(point as usize - digits.len()));
    } else {
        out.push_str(&digits[..point as usize]);
        out.push('.');
        out.push_str(&digits[point as usize..]);
    }
    out
}

/// How a value reads in messages and in `%s`: strings as they are, numbers as numbers, lists
/// and maps as CEL literals.
pub(crate) fn display(v: &Value<'_>) -> std::string::String {
    format_string(v).unwrap_or_else(|_| v.type_name().as_str().to_owned())
}

/// `%s`: cel-go's `FormatString`.
fn format_string(v: &Value<'_>) -> Result<std::string::String, EvalError> {
    Ok(match v {
        Value::List(l) => {
            let items: Result<Vec<_>, _> = l.iter().map(|item| literal(&item)).collect();
            format!("[{}]", items?.join(", "))
        }
        Value::Map(m) => {
            let mut pairs = Vec::with_capacity(m.len());
            for (k, val) in m.entries() {
                let key = match &k {
                    Value::String(s) => go_quoted(s),
                    Value::Bool(b) => b.to_string(),
                    Value::Int(i) => i.to_string(),
                    Value::Uint(u) => u.to_string(),
                    other => {
                        return Err(EvalError::message(format!(
                            "no formatting function for map key of type {}",
                            other.type_name().as_str()
                        )));
                    }
                };
                pairs.push((key, literal(&val)?));
            }
            pairs.sort_by(|a, b| a.0.cmp(&b.0));
            let parts: Vec<_> = pairs.iter().map(|(k, v)| format!("{k}:{v}")).collect();
            format!("{{{}}}", parts.join(", "))
        }
        Value::Null => "null".into(),
        Value::String(s) => s.to_string(),
        Value::Int(i) => i.to_string(),
        Value::Uint(u) => u.to_string(),
        Value::Double(d) => format_double(*d),
        Value::Bool(b) => b.to_string(),
        Value::Bytes(b) => std::string::String::from_utf8_lossy(b).into_owned(),
        Value::Timestamp(t) => super::time::format_timestamp(*t),
        Value::Duration(d) => super::time::format_duration(*d),
        Value::Type(t) => t.as_str().to_owned(),
        other => {
            return Err(EvalError::message(format!(
                "error during formatting: string clause can only be used on strings, bools, bytes, ints, doubles, maps, lists, types, durations, and timestamps, was given {}",
                other.type_name().as_str()
            )));
        }
    })
}

/// An element of a list or map in `%s`: as a CEL literal (cel-go's `clauseForType` and
/// `quoteForCEL`).
fn literal(v: &Value<'_>) -> Result<std::string::String, EvalError> {
    Ok(match v {
        Value::String(s) => go_quoted(s),
        Value::Bytes(b) => format!("b{}", go_quoted(&std::string::String::from_utf8_lossy(b))),
        Value::Double(d) if d.is_finite() => format!("{d:.6}"),
        Value::Double(d) => go_quoted(&format_double(*d)),
        Value::Timestamp(t) => format!(
            "timestamp({})",
            go_quoted(&super::time::format_timestamp(*t))
        ),
        Value::Duration(d) => format!("duration({})", go_quoted(&super::time::format_duration(*d))),
        Value::Type(t) => format!("type({})", t.as_str()),
        other => format_string(other)?,
    })
}

/// Digits of an integer with a thousands separator, as the `en-US` printer cel-go uses for
/// `%f` writes them.
fn group_thousands(digits: &str) -> std::string::String {
    let mut out = std::string::String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn format_fixed(d: f64, precision: usize) -> std::string::String {
    if d.is_nan() {
        return "NaN".into();
    }
    if d.is_infinite() {
        return if d > 0.0 { "∞".into() } else { "-∞".into() };
    }
    let text = format!("{:.*}", precision, d.abs());
    let (int_part, frac) = text.split_once('.').unwrap_or((&text, ""));
    let mut out = std::string::String::new();
    if d.is_sign_negative() && d != 0.0 {
        out.push('-');
    }
    out.push_str(&group_thousands(int_part));
    if !frac.is_empty() {
        out.push('.');
        out.push_str(frac);
    }
    out
}

fn format_scientific(d: f64, precision: usize) -> std::string::String {
    if !d.is_finite() {
        return format_fixed(d, precision);
    }
    let text = format!("{:.*e}", precision, d);
    let (mantissa, exp) = text.split_once('e').unwrap_or((&text, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    const SUPERSCRIPT: [char; 10] = ['⁰', '¹', '²', '³', '⁴', '⁵', '⁶', '⁷', '⁸', '⁹'];
    let mut out = format!("{mantissa}\u{202f}×\u{202f}10");
    if exp < 0 {
        out.push('⁻');
    }
    let digits = format!("{:02}", exp.unsigned_abs());
    for digit in digits.bytes() {
        out.push(SUPERSCRIPT[usize::from(digit - b'0')]);
    }
    out
}

/// `<string>.format(<list>)`: cel-go's printf-style formatting (`%s`, `%d`, `%f`, `%e`,
/// `%b`, `%o`, `%x`, `%X`, `%%`, with a precision for `%f` and `%e`).
fn format<'a>(call: &mut Call<'_>, args: &mut [Value<'a>]) -> Result<Value<'a>, EvalError> {
    let template = string_arg(call, args, 0)?;
    let Value::List(list) = &args[1] else {
        return call.no_overload(args);
    };
    call.charge_traversal(template.len())?;
    let mut out = std::string::String::with_capacity(template.len());
    let mut chars = template.chars().peekable();
    let mut next_arg = 0usize;
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        if chars.peek() == Some(&'%') {
            chars.next();
            out.push('%');
            continue;
        }
        let mut precision: Option<usize> = None;
        if chars.peek() == Some(&'.') {
            chars.next();
            let mut digits = std::string::String::new();
            while let Some(d) = chars.peek().filter(|d| d.is_ascii_digit()) {
                digits.push(*d);
                chars.next();
            }
            precision = Some(digits.parse().map_err(|_| {
                EvalError::message("could not parse formatting clause: invalid precision")
            })?);
        }
        let Some(verb) = chars.next() else {
            return Err(EvalError::message(
                "could not parse formatting clause: unexpected end of string",
            ));
        };
        let Some(arg) = list.get(next_arg) else {
            return Err(EvalError::message(format!("index {next_arg} out of range")));
        };
        next_arg += 1;
        let bad = |what: &str| {
            EvalError::message(format!(
                "error during formatting: {what} clause can only be used on {}, was given {}",
                match what {
                    "decimal" => "integers",
                    "fixed-point" | "scientific" => "doubles",
                    "binary" => "integers and bools",
                    "octal" => "integers",
                    _ => "integers, byte buffers, and strings",
                },
                arg.type_name().as_str()
            ))
        };
        let piece = match verb {
            's' => format_string(&arg)?,
            'd' => match &arg {
                Value::Int(i) => i.to_string(),
                Value::Uint(u) => u.to_string(),
                _ => return Err(bad("decimal")),
            },
            'f' => match &arg {
                Value::Double(d) => format_fixed(*d, precision.unwrap_or(6)),
                Value::Int(i) => format_fixed(*i as f64, precision.unwrap_or(6)),
                Value::Uint(u) => format_fixed(*u as f64, precision.unwrap_or(6)),
                _ => return Err(bad("fixed-point")),
            },
            'e' => match &arg {
                Value::Double(d) => format_scientific(*d, precision.unwrap_or(6)),
                Value::Int(i) => format_scientific(*i as f64, precision.unwrap_or(6)),
                Value::Uint(u) => format_scientific(*u as f64, precision.unwrap_or(6)),
                _ => return Err(bad("scientific")),
            },
            'b' => match &arg {
                Value::Int(i) => format_signed(*i, |u| format!("{u:b}")),
                Value::Uint(u) => format!("{u:b}"),
                Value::Bool(b) => u8::from(*b).to_string(),
                _ => return Err(bad("binary")),
            },
            'o' => match &arg {
                Value::Int(i) => format_signed(*i, |u| format!("{u:o}")),
                Value::Uint(u) => format!("{u:o}"),
                _ => return Err(bad("octal")),
            },
            'x' | 'X' => {
                let hex = match &arg {
                    Value::Int(i) => format_signed(*i, |u| format!("{u:x}")),
                    Value::Uint(u) => format!("{u:x}"),
                    Value::String(s) => s.bytes().fold(std::string::String::new(), |mut h, b| {
                        let _ = write!(h, "{b:02x}");
                        h
                    }),
                    Value::Bytes(bytes) => {
                        bytes.iter().fold(std::string::String::new(), |mut h, b| {
                            let _ = write!(h, "{b:02x}");
                            h
                        })
                    }
                    _ => return Err(bad("hex")),
                };
                if verb == 'X' { hex.to_uppercase() } else { hex }
            }
            other => {
                return Err(EvalError::message(format!(
                    "could not parse formatting clause: unrecognized formatting clause \"{other}\""
                )));
            }
        };
        call.charge_traversal(piece.len())?;
        out.push_str(&piece);
    }
    Ok(Value::string(out))
}

fn format_signed(i: i64, digits: fn(u64) -> std::string::String) -> std::string::String {
    if i < 0 {
        format!("-{}", digits(i.unsigned_abs()))
    } else {
        digits(i as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_print_as_go_s_percent_g() {
        for (d, s) in [
            (1.5, "1.5"),
            (100.0, "100"),
            (123456.0, "123456"),
            (1234567.0, "1.234567e+06"),
            (1e20, "1e+20"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (-2.5, "-2.5"),
            (f64::INFINITY, "+Inf"),
        ] {
            assert_eq!(format_double(d), s, "{d}");
        }
    }

    #[test]
    fn thousands_are_grouped_in_fixed_point() {
        assert_eq!(format_fixed(1234.5, 2), "1,234.50");
        assert_eq!(format_fixed(-1234567.0, 0), "-1,234,567");
        assert_eq!(format_fixed(3.25, 6), "3.250000");
        assert_eq!(format_scientific(2.5, 6), "2.500000\u{202f}×\u{202f}10⁰⁰");
    }
}
