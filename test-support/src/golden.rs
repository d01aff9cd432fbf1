//! Golden files: a test renders its text, compares it with the file under `tests/golden/`, and
//! with `UPDATE_GOLDEN=1` rewrites the file instead, so an intended change is one command and a
//! diff to read.

use std::fmt::Write as _;
use std::path::Path;

/// Whether this run rewrites golden files (`UPDATE_GOLDEN=1`) rather than comparing.
pub fn updating() -> bool {
    std::env::var_os("UPDATE_GOLDEN").is_some_and(|v| v == "1")
}

/// Compares `got` with the golden file at `path`, or writes it there when [`updating`].
/// Returns what is wrong, with a line diff and `update_command`, or `None` when it matches.
pub fn check(path: &Path, got: &str, update_command: &str) -> Option<String> {
    if updating() {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).expect("create the golden directory");
        }
        std::fs::write(path, got).expect("write the golden file");
        return None;
    }
    match std::fs::read_to_string(path) {
        Ok(want) if want == got => None,
        Ok(want) => Some(format!(
            "{} differs (- golden, + now):\n{}\nIf the change is intended, run: {update_command}",
            path.display(),
            diff(&want, got)
        )),
        Err(e) => Some(format!(
            "{} cannot be read ({e}); create it with: {update_command}",
            path.display()
        )),
    }
}

/// A line diff (longest common subsequence), changed lines with two lines of context.
pub fn diff(want: &str, got: &str) -> String {
    let a: Vec<&str> = want.lines().collect();
    let b: Vec<&str> = got.lines().collect();
    let mut lcs = vec![vec![0u32; b.len() + 1]; a.len() + 1];
    for i in (0..a.len()).rev() {
        for j in (0..b.len()).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let mut ops: Vec<(char, &str)> = Vec::new();
    let (mut i, mut j) = (0, 0);
    while i < a.len() || j < b.len() {
        if i < a.len() && j < b.len() && a[i] == b[j] {
            ops.push((' ', a[i]));
            i += 1;
            j += 1;
        } else if i < a.len() && (j == b.len() || lcs[i + 1][j] >= lcs[i][j + 1]) {
            ops.push(('-', a[i]));
            i += 1;
        } else {
            ops.push(('+', b[j]));
            j += 1;
        }
    }
    let near_change = |k: usize| {
        ops[k.saturating_sub(2)..(k + 3).min(ops.len())]
            .iter()
            .any(|(op, _)| *op != ' ')
    };
    let mut out = String::new();
    let mut skipped = false;
    for (k, (op, text)) in ops.iter().enumerate() {
        if near_change(k) {
            let _ = writeln!(out, "{op} {text}");
            skipped = false;
        } else if !skipped {
            out.push_str("  ...\n");
            skipped = true;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diff_shows_changed_lines() {
        let d = diff("a\nb\nc\n", "a\nx\nc\n");
        assert_eq!(d, "  a\n- b\n+ x\n  c\n");
    }

    #[test]
    fn check_names_the_file_and_the_command() {
        let dir = crate::TempDir::new("golden-check");
        let path = dir.join("x.golden");
        let missing = check(&path, "a\n", "RUN-ME").unwrap();
        assert!(
            missing.contains("cannot be read") && missing.contains("RUN-ME"),
            "{missing}"
        );
        std::fs::write(&path, "a\nb\n").unwrap();
        assert_eq!(check(&path, "a\nb\n", "RUN-ME"), None);
        let differs = check(&path, "a\nc\n", "RUN-ME").unwrap();
        assert!(differs.contains("- b\n+ c"), "{differs}");
    }
}
