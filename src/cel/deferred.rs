//! A review as CEL expressions read it, decoded only where they look.
//!
//! Decoding a whole 8 KB Deployment review into a tree took about 25 µs, most of what a
//! ten-validation policy cost, while its expressions read a few dozen fields of it. So the
//! text is indexed once (where every object and array closes: one scan that jumps over
//! strings) and each object or array is decoded one level deep, its own objects and arrays
//! left as text, the first time an expression reads it. What a level holds decodes as
//! [`Json::parse`] decodes it: strings borrow from the text unless they hold escapes, and
//! numbers go through the same serde_json visitor.
//!
//! The text is JSON that serde_json has accepted already (the review decoder reads every byte
//! of the body before CEL policies run), so the index checks only what it relies on: strings
//! that end and brackets that pair. Anything else that is not JSON never panics; a level that
//! does not read as JSON reads as null, and an expression reading it fails (and so its policy
//! denies, unless its failurePolicy says otherwise).

use std::fmt;
use std::sync::OnceLock;

use super::json::{Json, Node};

/// JSON text, where each of its objects and arrays closes, and the levels decoded so far.
pub struct Document<'t> {
    text: &'t str,
    /// Every object and array, in the order they open.
    brackets: Vec<Bracket>,
    /// What each of them holds, once decoded (same order).
    levels: Vec<OnceLock<Level>>,
    root: Slot,
}

/// Where an object or array is, and which comes next.
#[derive(Debug, Clone, Copy)]
struct Bracket {
    open: u32,
    close: u32,
    /// The index of the first object or array opening after this one closes: its next
    /// sibling, when it has one.
    after: u32,
}

/// Why text cannot be indexed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unindexable {
    #[error("the text is over 4 GiB")]
    TooLong,
    #[error("a bracket at byte {0} is not paired")]
    Unpaired(usize),
    #[error("the string at byte {0} does not end")]
    UnendedString(usize),
}

/// A value of a document: a scalar decoded, or an object or array to decode on first read.
/// It holds offsets and indices, not borrows, so that a level decoded later can be kept in the
/// document (a value that borrowed could not be both cached and covariant in its lifetime).
#[derive(Debug)]
pub enum Slot {
    Null,
    Bool(bool),
    Int(i64),
    Double(f64),
    /// A string without escapes: its text between the quotes.
    Text {
        start: u32,
        end: u32,
    },
    /// A string with escapes, unescaped.
    Escaped(Box<str>),
    /// An object or array: its index among the document's.
    Container(u32),
}

/// What an object or array holds, one level deep.
#[derive(Debug)]
pub enum Level {
    Array(Vec<Slot>),
    /// Keys are [`Slot::Text`] or [`Slot::Escaped`].
    Object(Vec<(Slot, Slot)>),
    /// Text that does not read as JSON (see the module's documentation).
    Unreadable,
}

impl<'t> Document<'t> {
    /// Indexes `text`, JSON that serde_json has accepted.
    pub fn index(text: &'t str) -> Result<Document<'t>, Unindexable> {
        let bytes = text.as_bytes();
        if u32::try_from(bytes.len()).is_err() {
            return Err(Unindexable::TooLong);
        }
        // A review has about one bracket per 50 bytes; reserving that avoids regrowing.
        let mut brackets: Vec<Bracket> = Vec::with_capacity(bytes.len() / 40 + 4);
        let mut open: Vec<(usize, u8)> = Vec::with_capacity(16);
        let mut at = 0;
        while let Some(&byte) = bytes.get(at) {
            if byte == b'"' {
                at = string_end(bytes, at)
                    .ok_or(Unindexable::UnendedString(at))?
                    .0;
            } else if byte | 0x20 == b'{' {
                // `{` or `[`
                open.push((brackets.len(), byte));
                brackets.push(Bracket {
                    open: at as u32,
                    close: 0,
                    after: 0,
                });
            } else if byte | 0x20 == b'}' {
                // `}` or `]`, which must close what opened last: `{` or `[` alike
                let next = brackets.len() as u32;
                match open.pop() {
                    Some((index, opener)) if opener + 2 == byte => {
                        brackets[index].close = at as u32;
                        brackets[index].after = next;
                    }
                    _ => return Err(Unindexable::Unpaired(at)),
                }
            }
            at += 1;
        }
        if let Some((index, _)) = open.pop() {
            return Err(Unindexable::Unpaired(brackets[index].open as usize));
        }
        let levels = std::iter::repeat_with(OnceLock::new)
            .take(brackets.len())
            .collect();
        let mut document = Document {
            text,
            brackets,
            levels,
            root: Slot::Null,
        };
        let mut reader = Reader {
            document: &document,
            at: 0,
            next_container: 0,
        };
        reader.skip_whitespace();
        document.root = reader.value().unwrap_or(Slot::Null);
        Ok(document)
    }

    /// The value the text holds.
    pub fn root(&self) -> Node<'_> {
        Node::of(self, &self.root)
    }

    /// The text of a [`Slot::Text`] (empty for any other slot).
    pub fn text_of(&self, slot: &Slot) -> &'t str {
        match slot {
            Slot::Text { start, end } => {
                self.text.get(*start as usize..*end as usize).unwrap_or("")
            }
            _ => "",
        }
    }

    /// Whether a key slot reads as `key`.
    pub fn key_is(&self, slot: &Slot, key: &str) -> bool {
        match slot {
            Slot::Text { start, end } => {
                self.text.as_bytes().get(*start as usize..*end as usize) == Some(key.as_bytes())
            }
            Slot::Escaped(text) => &**text == key,
            _ => false,
        }
    }

    /// What the object or array `index` holds, decoded now if it was not yet.
    pub fn level(&self, index: u32) -> &Level {
        match self.levels.get(index as usize) {
            Some(level) => level.get_or_init(|| self.decode(index).unwrap_or(Level::Unreadable)),
            None => &Level::Unreadable,
        }
    }

    /// The text of the object or array `index`.
    pub fn container_text(&self, index: u32) -> &'t str {
        self.brackets
            .get(index as usize)
            .and_then(|b| self.text.get(b.open as usize..=b.close as usize))
            .unwrap_or("")
    }

    fn decode(&self, index: u32) -> Option<Level> {
        let bracket = self.brackets.get(index as usize)?;
        let mut reader = Reader {
            document: self,
            at: bracket.open as usize + 1,
            next_container: index + 1,
        };
        let end = bracket.close as usize;
        let object = self.text.as_bytes().get(bracket.open as usize)? == &b'{';
        reader.skip_whitespace();
        if reader.at == end {
            return Some(match object {
                true => Level::Object(Vec::new()),
                false => Level::Array(Vec::new()),
            });
        }
        // Kubernetes objects have a handful of fields per level.
        let mut entries = Vec::with_capacity(if object { 8 } else { 0 });
        let mut items = Vec::with_capacity(if object { 0 } else { 4 });
        loop {
            if object {
                let key = reader.string()?;
                reader.skip_whitespace();
                reader.expect(b':')?;
                reader.skip_whitespace();
                entries.push((key, reader.value()?));
            } else {
                items.push(reader.value()?);
            }
            reader.skip_whitespace();
            if reader.at == end {
                break;
            }
            reader.expect(b',')?;
            reader.skip_whitespace();
        }
        Some(match object {
            true => Level::Object(entries),
            false => Level::Array(items),
        })
    }
}

/// The offset of the quote that ends the string opening at `open`, and whether the string
/// holds escapes. Eight bytes are looked at a time (most strings of a review are keys and
/// names of a dozen bytes, too short for `memchr` to pay off).
#[inline]
fn string_end(bytes: &[u8], open: usize) -> Option<(usize, bool)> {
    let mut at = open + 1;
    let mut escaped = false;
    loop {
        match bytes.get(at..at + 8) {
            Some(chunk) => {
                let word = u64::from_le_bytes(<[u8; 8]>::try_from(chunk).ok()?);
                let found = has_byte(word, b'"') | has_byte(word, b'\\');
                if found == 0 {
                    at += 8;
                    continue;
                }
                // The lowest flag is exact (borrows only run towards higher bytes), and the
                // lowest byte comes first in a little-endian word.
                at += (found.trailing_zeros() / 8) as usize;
            }
            None => {
                while !matches!(bytes.get(at)?, b'"' | b'\\') {
                    at += 1;
                }
            }
        }
        if bytes[at] == b'"' {
            return Some((at, escaped));
        }
        escaped = true;
        at += 2;
    }
}

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGHS: u64 = 0x8080_8080_8080_8080;

/// The high bit of each byte of `word` that is `byte` (and perhaps of some bytes after it).
#[inline]
fn has_byte(word: u64, byte: u8) -> u64 {
    let x = word ^ (ONES * u64::from(byte));
    x.wrapping_sub(ONES) & !x & HIGHS
}

impl fmt::Debug for Document<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Document")
            .field("bytes", &self.text.len())
            .field("brackets", &self.brackets.len())
            .finish()
    }
}

/// Reads the values of one level of a document.
struct Reader<'d, 't> {
    document: &'d Document<'t>,
    at: usize,
    /// The index of the next object or array this level holds.
    next_container: u32,
}

impl Reader<'_, '_> {
    fn bytes(&self) -> &[u8] {
        self.document.text.as_bytes()
    }

    fn skip_whitespace(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.bytes().get(self.at) {
            self.at += 1;
        }
    }

    fn expect(&mut self, byte: u8) -> Option<()> {
        (self.bytes().get(self.at) == Some(&byte)).then(|| self.at += 1)
    }

    /// The value at the position: a scalar decoded, an object or array deferred.
    fn value(&mut self) -> Option<Slot> {
        let start = self.at;
        match *self.bytes().get(start)? {
            b'{' | b'[' => {
                let index = self.next_container;
                let bracket = self.document.brackets.get(index as usize)?;
                if bracket.open as usize != start {
                    return None;
                }
                self.next_container = bracket.after;
                self.at = bracket.close as usize + 1;
                Some(Slot::Container(index))
            }
            b'"' => self.string(),
            b't' => self.literal("true", Slot::Bool(true)),
            b'f' => self.literal("false", Slot::Bool(false)),
            b'n' => self.literal("null", Slot::Null),
            _ => self.number(),
        }
    }

    fn literal(&mut self, word: &str, value: Slot) -> Option<Slot> {
        let text = self.bytes().get(self.at..self.at + word.len())?;
        (text == word.as_bytes()).then(|| {
            self.at += word.len();
            value
        })
    }

    fn string(&mut self) -> Option<Slot> {
        let open = self.at;
        if self.bytes().get(open) != Some(&b'"') {
            return None;
        }
        let (close, escaped) = string_end(self.bytes(), open)?;
        self.at = close + 1;
        if !escaped {
            return Some(Slot::Text {
                start: open as u32 + 1,
                end: close as u32,
            });
        }
        let quoted = self.document.text.get(open..=close)?;
        let unescaped = serde_json::from_str::<String>(quoted).ok()?;
        Some(Slot::Escaped(unescaped.into_boxed_str()))
    }

    fn number(&mut self) -> Option<Slot> {
        let start = self.at;
        let length = self
            .bytes()
            .get(start..)?
            .iter()
            .take_while(|b| matches!(b, b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E'))
            .count();
        self.at += length;
        let token = self.document.text.get(start..self.at)?;
        // Up to 18 digits always fit an i64; anything else is read by serde_json, as
        // `Json::parse` reads it (`-0` is a double there, for one).
        if (1..=18).contains(&length) && token.bytes().all(|b| b.is_ascii_digit()) {
            return token.parse().ok().map(Slot::Int);
        }
        match Json::parse(token).ok()? {
            Json::Int(i) => Some(Slot::Int(i)),
            Json::Double(d) => Some(Slot::Double(d)),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn same_as_eager(text: &str) {
        let document = Document::index(text).unwrap_or_else(|e| panic!("{text}: {e}"));
        let parsed = Json::parse(text).unwrap();
        assert_eq!(document.root(), parsed.node(), "{text}");
        assert_eq!(document.root().to_owned_json(), parsed, "{text}");
    }

    #[test]
    fn reads_as_the_eager_decoder_reads() {
        for text in [
            r#"{"a": [1, -2, 1.5, 1e3, 9223372036854775807, 9223372036854775808, 2.0, -0, 0]}"#,
            r#"{"s": "plain", "e\u0041": "esc\"aped \\ \/ \n", "u": "\ud83d\ude00é"}"#,
            r#" [ { } , [ ] , { "k" : [ [ ] , { "x" : null } ] } , true , false , null ] "#,
            r#"{"dup": 1, "dup": 2}"#,
            r#""a string at the root""#,
            "12",
            "-12.5e-3",
            "123456789012345678",
            "1234567890123456789",
            "99999999999999999999999",
            r#"{"brackets in strings": "{[\"]}", "x": [1]}"#,
            "[]",
            "{}",
        ] {
            same_as_eager(text);
        }
    }

    #[test]
    fn the_review_fixtures_read_the_same() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
        let mut read = 0;
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "json") {
                let text = std::fs::read_to_string(&path).unwrap();
                if Json::parse(&text).is_ok() {
                    same_as_eager(&text);
                    read += 1;
                }
            }
        }
        assert!(read > 3, "only {read} fixtures read");
    }

    #[test]
    fn a_level_is_decoded_when_first_read_and_then_kept() {
        let text = r#"{"a": "plain", "b": {"c": "x\ty"}, "d": [{"e": 1}]}"#;
        let document = Document::index(text).unwrap();
        let decoded = |index: u32| document.levels[index as usize].get();
        assert!(matches!(document.root, Slot::Container(0)));
        assert!(decoded(0).is_none());
        assert_eq!(
            document.root().get("a").and_then(|a| a.as_str()),
            Some("plain")
        );
        let Some(Level::Object(entries)) = decoded(0) else {
            panic!("the root was not decoded")
        };
        assert!(matches!(entries[0].1, Slot::Text { .. }));
        let Slot::Container(b) = entries[1].1 else {
            panic!("b is not deferred")
        };
        assert_eq!(document.container_text(b), r#"{"c": "x\ty"}"#);
        let Slot::Container(d) = entries[2].1 else {
            panic!("d is not deferred")
        };
        let c = document.root().get("b").and_then(|b| b.get("c"));
        assert_eq!(c.and_then(|c| c.as_str()), Some("x\ty"));
        assert!(matches!(decoded(b), Some(Level::Object(_))));
        assert!(decoded(d).is_none(), "d was decoded though nothing read it");
        assert_eq!(
            document.root().get("d").map(|d| d.to_owned_json()),
            Some(Json::parse(r#"[{"e": 1}]"#).unwrap())
        );
    }

    #[test]
    fn unpaired_or_unended_text_is_not_indexed() {
        for (text, error) in [
            ("[1, 2", Unindexable::Unpaired(0)),
            ("[1, 2}", Unindexable::Unpaired(5)),
            (r#"{"a": 1]]"#, Unindexable::Unpaired(7)),
            (r#"{"a": "b}"#, Unindexable::UnendedString(6)),
            (r#"{"a\"#, Unindexable::UnendedString(1)),
        ] {
            assert_eq!(Document::index(text).err(), Some(error), "{text}");
        }
    }

    #[test]
    fn text_that_is_not_json_reads_as_null_and_never_panics() {
        for text in [
            "",
            "   ",
            "{1: 2}",
            r#"{"a" 1}"#,
            r#"{"a": 1 "b": 2}"#,
            "[1 2]",
            "[tru]",
            "[nul, 1]",
            r#"{"a": -}"#,
            r#"{"a": "\x"}"#,
            "[1,]",
            "[,]",
            "{\"a\": 1,}",
            "[\u{e9}]",
        ] {
            let document = Document::index(text).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(document.root(), Node::Null, "{text}");
        }
    }
}
