//! Upstream's message building blocks, reproduced byte for byte: `joinQuote` (no escaping),
//! sorted de-duplicated value lists, and Go's `%q` for annotation values.
//! Only called when reporting.

use std::fmt::Write;

use crate::pod::ContainerRef;

/// `reason (detail)`, as upstream's `ForbiddenDetail` joins a check result.
pub fn problem(reason: &str, detail: &str) -> String {
    format!("{reason} ({detail})")
}

/// `container "name"`: upstream names init and ephemeral containers so too.
pub fn container(at: &ContainerRef<'_, '_>) -> String {
    format!("container \"{}\"", at.container.name)
}

/// Upstream's `joinQuote`: each item in double quotes, unescaped, joined by `, `.
pub fn join_quote<S: AsRef<str>>(items: impl IntoIterator<Item = S>) -> String {
    let mut out = String::new();
    for (i, item) in items.into_iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        out.push('"');
        out.push_str(item.as_ref());
        out.push('"');
    }
    out
}

/// The distinct items in byte order, as upstream's `sets.List` gives them.
pub fn sorted_distinct<'s>(items: impl IntoIterator<Item = &'s str>) -> Vec<&'s str> {
    let mut items: Vec<&str> = items.into_iter().collect();
    items.sort_unstable();
    items.dedup();
    items
}

/// Go's `strconv.Quote` (the `%q` verb) for a valid UTF-8 string: printable characters as they
/// are, the usual backslash escapes, `\xNN` for other ASCII controls and `\uNNNN`/`\UNNNNNNNN`
/// for other non-printable characters.
pub fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{b}' => out.push_str("\\v"),
            c if c.is_ascii() && (c.is_ascii_control()) => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c if go_printable(c) => out.push(c),
            c if (c as u32) < 0x10000 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => {
                let _ = write!(out, "\\U{:08x}", c as u32);
            }
        }
    }
    out.push('"');
    out
}

/// An approximation of Go's `unicode.IsPrint` for non-control characters: letters, marks,
/// numbers, punctuation, symbols and the ASCII space are printable; other spaces, format
/// characters and private-use or unassigned ones are not.
fn go_printable(c: char) -> bool {
    if c == ' ' {
        return true;
    }
    if c.is_control() || c.is_whitespace() {
        return false;
    }
    let u = c as u32;
    let format_or_private = matches!(u,
        0xAD | 0x600..=0x605 | 0x61C | 0x6DD | 0x70F | 0x180E | 0x200B..=0x200F
        | 0x202A..=0x202E | 0x2060..=0x2064 | 0x2066..=0x206F | 0xFEFF | 0xFFF9..=0xFFFB
        | 0xE000..=0xF8FF | 0xF0000..=0x10FFFF | 0xD800..=0xDFFF);
    !format_or_private
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn join_quote_and_sorting_match_upstream() {
        assert_eq!(join_quote(["a", "b"]), r#""a", "b""#);
        assert_eq!(join_quote(Vec::<&str>::new()), "");
        assert_eq!(join_quote([r#"x"y"#]), r#""x"y""#, "no escaping");
        assert_eq!(sorted_distinct(["b", "a", "b", "B"]), vec!["B", "a", "b"]);
    }

    #[test]
    fn go_quote_escapes_as_strconv_quote() {
        assert_eq!(go_quote("unconfined"), r#""unconfined""#);
        assert_eq!(go_quote(""), r#""""#);
        assert_eq!(go_quote("a\"b\\c"), r#""a\"b\\c""#);
        assert_eq!(go_quote("l\n\t\u{0}\u{7f}"), r#""l\n\t\x00\x7f""#);
        assert_eq!(go_quote("héllo ☃"), "\"héllo ☃\"");
        assert_eq!(go_quote("\u{a0}\u{200b}"), r#""\u00a0\u200b""#);
    }
}
