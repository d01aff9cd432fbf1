//! Where a key stands in `config.yaml` text, so each problem can name its line.
//!
//! The YAML library reports positions only for syntax errors, not for the keys of a value it
//! has already read, so keys are found again in the text: block style by indentation, and for
//! flow style or sequences the deepest enclosing key that could be found.

/// The 1-based line of the key at `path` in block-style YAML `text`. When a nested key is
/// not found (flow style, sequences), the deepest ancestor found is returned.
pub(super) fn find_key_line(text: &str, path: &[&str]) -> Option<usize> {
    let lines: Vec<&str> = text.lines().collect();
    let mut start = 0;
    let mut parent_indent: Option<usize> = None;
    let mut found = None;
    for key in path {
        let mut hit = None;
        for (i, line) in lines.iter().enumerate().skip(start) {
            let trimmed = line.trim_start();
            if trimmed.is_empty() || trimmed.starts_with('#') || trimmed.starts_with("---") {
                continue;
            }
            let indent = line.len() - trimmed.len();
            match parent_indent {
                Some(p) if indent <= p => break,
                None if indent != 0 => continue,
                _ => {}
            }
            if line_key(trimmed) == Some(key) {
                hit = Some((i, indent));
                break;
            }
        }
        match hit {
            Some((i, indent)) => {
                found = Some(i + 1);
                start = i + 1;
                parent_indent = Some(indent);
            }
            // The deepest ancestor found (flow style, sequences), or nothing.
            None => return found,
        }
    }
    found
}

/// The key of a `key: value` line (plain or quoted), if it is one.
fn line_key(trimmed: &str) -> Option<&str> {
    let (key, rest) = if let Some(q) = trimmed.chars().next().filter(|c| *c == '"' || *c == '\'') {
        let end = trimmed[1..].find(q)? + 1;
        (&trimmed[1..end], &trimmed[end + 1..])
    } else {
        let colon = trimmed.find(':')?;
        (trimmed[..colon].trim_end(), &trimmed[colon..])
    };
    let rest = rest.trim_start();
    let after = rest.strip_prefix(':')?;
    (after.is_empty() || after.starts_with([' ', '\t'])).then_some(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn find_key_line_handles_nesting_quotes_and_fallbacks() {
        let t = "# c\nshelly:\n  # x\n  enabled: true\n  'server_url': u\nmetrics: {a: 1}\nother:\n  enabled: 3\n";
        assert_eq!(find_key_line(t, &["shelly"]), Some(2));
        assert_eq!(find_key_line(t, &["shelly", "enabled"]), Some(4));
        assert_eq!(find_key_line(t, &["shelly", "server_url"]), Some(5));
        assert_eq!(find_key_line(t, &["metrics", "a"]), Some(6));
        assert_eq!(find_key_line(t, &["other", "enabled"]), Some(8));
        assert_eq!(find_key_line(t, &["missing"]), None);
    }
}
