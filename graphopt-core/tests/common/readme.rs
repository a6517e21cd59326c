//! Figures the README states, read from its text, so a test compares the real value with what
//! the README says rather than with a copy of it that can drift.

use std::path::Path;

/// README.md as it is.
pub fn raw_text() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// README.md with every run of white space (line breaks included) made one space, so a
/// sentence matches however the README wraps it.
pub fn text() -> String {
    normalize(&raw_text())
}

/// The rows of the README's one table whose header line is `header`, without the header and
/// the `| --- |` line.
pub fn table_rows(header: &str) -> Vec<String> {
    let text = raw_text();
    assert_eq!(
        text.lines().filter(|l| l.trim() == header).count(),
        1,
        "README.md must have one table \"{header}\""
    );
    text.lines()
        .skip_while(|l| l.trim() != header)
        .skip(1)
        .take_while(|l| l.starts_with('|'))
        .filter(|l| !l.starts_with("| ---"))
        .map(str::to_string)
        .collect()
}

fn normalize(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The length of the figure at the start of `s`: digits, optionally more `.digits` groups
/// (`0.267`, a version such as `4.10.0`) and an exponent (`1.1e-6`). 0 if `s` does not start
/// with a digit.
fn figure_len(s: &str) -> usize {
    let b = s.as_bytes();
    let digits = |mut i: usize| {
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        i
    };
    let mut end = digits(0);
    if end == 0 {
        return 0;
    }
    while end + 1 < b.len() && b[end] == b'.' && b[end + 1].is_ascii_digit() {
        end = digits(end + 1);
    }
    if end < b.len() && (b[end] == b'e' || b[end] == b'E') {
        let mut i = end + 1;
        if i < b.len() && (b[i] == b'-' || b[i] == b'+') {
            i += 1;
        }
        if i < b.len() && b[i].is_ascii_digit() {
            end = digits(i);
        }
    }
    end
}

/// Matches `pattern` at byte `at` of `text`: its literal parts exactly, each `{}` a figure.
fn match_at(text: &str, at: usize, pattern: &str) -> Option<Vec<String>> {
    let mut rest = &text[at..];
    let mut figures = Vec::new();
    let mut parts = pattern.split("{}").peekable();
    while let Some(literal) = parts.next() {
        rest = rest.strip_prefix(literal)?;
        if parts.peek().is_some() {
            let len = figure_len(rest);
            if len == 0 {
                return None;
            }
            figures.push(rest[..len].to_string());
            rest = &rest[len..];
        }
    }
    Some(figures)
}

/// The figures of the one place in `text` that matches `pattern` (white space normalized like
/// `text`), where each `{}` stands for a figure. Panics unless exactly one place matches, so
/// a README that rewords the sentence, or repeats it with other figures, fails the test.
pub fn figures_in(text: &str, pattern: &str) -> Vec<String> {
    let pattern = normalize(pattern);
    let anchor = pattern.split("{}").next().unwrap_or("");
    let matches: Vec<Vec<String>> = text
        .match_indices(anchor)
        .filter_map(|(at, _)| match_at(text, at, &pattern))
        .collect();
    match matches.as_slice() {
        [one] => one.clone(),
        [] => panic!("README.md no longer says \"{pattern}\" ({{}} a figure)"),
        _ => panic!("README.md says \"{pattern}\" more than once: {matches:?}"),
    }
}

/// [`figures_in`] the README.
pub fn figures(pattern: &str) -> Vec<String> {
    figures_in(&text(), pattern)
}

/// The one figure `pattern` has, as a number.
pub fn figure<T: std::str::FromStr>(pattern: &str) -> T {
    let figures = figures(pattern);
    assert_eq!(figures.len(), 1, "\"{pattern}\" must hold one figure");
    figures[0]
        .parse()
        .unwrap_or_else(|_| panic!("README.md: '{}' is not a number", figures[0]))
}

/// The README's text between `start` and the next `end` after it, both unique.
pub fn between(start: &str, end: &str) -> String {
    let text = text();
    let (start, end) = (normalize(start), normalize(end));
    assert!(!start.is_empty() && !end.is_empty(), "empty marker");
    assert_eq!(
        text.matches(start.as_str()).count(),
        1,
        "README.md must say \"{start}\" exactly once"
    );
    let from = text.find(start.as_str()).unwrap() + start.len();
    let to = text[from..]
        .find(end.as_str())
        .unwrap_or_else(|| panic!("README.md: no \"{end}\" after \"{start}\""));
    text[from..from + to].to_string()
}
