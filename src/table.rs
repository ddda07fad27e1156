//! Plain-text tables for the command line: columns padded to their widest cell, the last
//! column left unpadded (it holds free text such as a message).

/// Renders `header` and `rows` as aligned lines, each ending in `\n`. Nothing when `rows` is
/// empty, so a caller prints no header over an empty table.
pub fn render<R: AsRef<[String]>>(header: &[&str], rows: &[R]) -> String {
    let mut out = String::new();
    if rows.is_empty() {
        return out;
    }
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row.as_ref()) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut line = |cells: &mut dyn Iterator<Item = &str>| {
        let mut cells = cells.enumerate().peekable();
        while let Some((i, cell)) = cells.next() {
            out.push_str(cell);
            if cells.peek().is_some() {
                let pad = widths[i].saturating_sub(cell.chars().count()) + 2;
                out.extend(std::iter::repeat_n(' ', pad));
            }
        }
        out.push('\n');
    };
    line(&mut header.iter().copied());
    for row in rows {
        line(&mut row.as_ref().iter().map(String::as_str));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pads_every_column_but_the_last() {
        let rows = vec![
            vec!["a".to_owned(), "long cell".to_owned(), "x".to_owned()],
            vec!["bbbb".to_owned(), "c".to_owned(), "free text".to_owned()],
        ];
        assert_eq!(
            render(&["K", "V", "MESSAGE"], &rows),
            "K     V          MESSAGE\na     long cell  x\nbbbb  c          free text\n"
        );
        assert_eq!(render::<Vec<String>>(&["K"], &[]), "");
    }
}
