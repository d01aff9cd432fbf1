//! Text from outside (a path segment, a device id) as an error message or log line may repeat
//! it: cut to a length and escaped, so that it can neither swell a response nor forge a line.

/// `text` cut to `max_chars` characters (then `...`), with quotes, backslashes, control and
/// non-ASCII characters escaped as Rust writes them (`\'`, `\n`, `\u{e9}`).
pub fn shown(text: &str, max_chars: usize) -> String {
    let mut out: String = text
        .chars()
        .take(max_chars)
        .flat_map(char::escape_default)
        .collect();
    if text.chars().nth(max_chars).is_some() {
        out.push_str("...");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cut_and_escaped() {
        assert_eq!(shown("jetson-01", 64), "jetson-01");
        assert_eq!(shown(r#"a'b"c\d"#, 64), r#"a\'b\"c\\d"#);
        assert_eq!(shown("x\ny\u{1b}[31m", 64), r"x\ny\u{1b}[31m");
        assert_eq!(shown("\u{e9}", 64), r"\u{e9}");
        assert_eq!(shown(&"a".repeat(10), 4), "aaaa...");
        assert_eq!(shown("aaaa", 4), "aaaa");
    }
}
