//! The `--transforms` grammar of TensorFlow's `transform_graph`:
//!
//! ```text
//! transforms := (NAME ["(" [param ("," param)*] ")"])*      separated by white space
//! param      := PNAME "=" (QUOTED | BARE)                   repeated names build a list
//! NAME/PNAME := [A-Za-z0-9_]+
//! QUOTED     := '"' anything up to the next unescaped '"' '"'  (backslashes kept as written)
//! BARE       := characters other than white space , ( ) = "
//! ```
//!
//! Every string TensorFlow accepts parses to the same list here. Deliberate differences, all in
//! the direction of accepting what users paste from TensorFlow's own documentation or
//! rejecting what TensorFlow silently mangles:
//! - a backslash before a line break is white space (the docs' shell continuations inside
//!   quotes, which TensorFlow itself rejects);
//! - white space is allowed around `=`, `,` and `)`;
//! - a transform whose `(` is never closed is an error (TensorFlow drops it silently).

use std::collections::BTreeMap;
use std::fmt;

/// One transform invocation from the string: its name, its parameters, and where it starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransformSpec {
    pub name: String,
    /// Parameter name to every value given for it, in order.
    pub params: BTreeMap<String, Vec<String>>,
    /// 1-based column (in characters) of the name in the original string.
    pub column: usize,
}

impl fmt::Display for TransformSpec {
    /// Canonical form: parameters sorted by name, values quoted when needed.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)?;
        if self.params.is_empty() {
            return Ok(());
        }
        f.write_str("(")?;
        let mut first = true;
        for (name, values) in &self.params {
            for value in values {
                if !first {
                    f.write_str(", ")?;
                }
                first = false;
                if !value.is_empty() && value.chars().all(is_tensorflow_bare_char) {
                    write!(f, "{name}={value}")?;
                } else {
                    write!(f, "{name}=\"{value}\"")?;
                }
            }
        }
        f.write_str(")")
    }
}

/// Canonical text of a whole transform list (one space between transforms).
pub fn canonical(specs: &[TransformSpec]) -> String {
    specs
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(" ")
}

/// A malformed transform string: what was expected, and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("column {column}: {message} (at `{excerpt}`)")]
pub struct SpecError {
    /// 1-based column in characters.
    pub column: usize,
    pub message: String,
    /// The text from the error position, shortened.
    pub excerpt: String,
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// What TensorFlow's parser takes unquoted; the canonical form quotes everything else so
/// TensorFlow can read it too.
fn is_tensorflow_bare_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '/' | '-')
}

fn is_bare_value_char(c: char) -> bool {
    !c.is_whitespace() && !matches!(c, ',' | '(' | ')' | '=' | '"' | '\\')
}

struct Scanner<'a> {
    chars: Vec<(usize, char)>,
    text: &'a str,
    pos: usize,
}

impl<'a> Scanner<'a> {
    fn new(text: &'a str) -> Self {
        Scanner {
            chars: text.char_indices().collect(),
            text,
            pos: 0,
        }
    }

    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).map(|&(_, c)| c)
    }

    fn peek_at(&self, offset: usize) -> Option<char> {
        self.chars.get(self.pos + offset).map(|&(_, c)| c)
    }

    fn error(&self, message: impl Into<String>) -> SpecError {
        let byte = self
            .chars
            .get(self.pos)
            .map_or(self.text.len(), |&(b, _)| b);
        let rest = self.text.get(byte..).unwrap_or("");
        let mut excerpt: String = rest.chars().take(24).collect();
        if excerpt.is_empty() {
            excerpt = "end of string".into();
        } else if rest.chars().count() > 24 {
            excerpt.push_str("...");
        }
        SpecError {
            column: self.pos + 1,
            message: message.into(),
            excerpt: excerpt.replace('\n', "\\n"),
        }
    }

    /// Skips white space, including a backslash that ends a line.
    fn skip_space(&mut self) {
        loop {
            match self.peek() {
                Some(c) if c.is_whitespace() => self.pos += 1,
                Some('\\') => {
                    let mut ahead = 1;
                    while matches!(self.peek_at(ahead), Some(' ' | '\t' | '\r')) {
                        ahead += 1;
                    }
                    if matches!(self.peek_at(ahead), Some('\n') | None) {
                        self.pos += ahead;
                    } else {
                        return;
                    }
                }
                _ => return,
            }
        }
    }

    fn take_while(&mut self, keep: impl Fn(char) -> bool) -> String {
        let mut out = String::new();
        while let Some(c) = self.peek() {
            if !keep(c) {
                break;
            }
            out.push(c);
            self.pos += 1;
        }
        out
    }

    fn describe_here(&self) -> String {
        match self.peek() {
            Some(c) => format!("'{c}'"),
            None => "the end of the string".into(),
        }
    }
}

/// Parses a `--transforms` string into transform invocations, in order.
pub fn parse(text: &str) -> Result<Vec<TransformSpec>, SpecError> {
    let mut scanner = Scanner::new(text);
    let mut specs = Vec::new();
    loop {
        scanner.skip_space();
        if scanner.peek().is_none() {
            return Ok(specs);
        }
        let column = scanner.pos + 1;
        // `@name` names a pipeline, such as `@deploy`.
        let pipeline = scanner.peek() == Some('@');
        if pipeline {
            scanner.pos += 1;
        }
        let mut name = scanner.take_while(is_name_char);
        if pipeline && !name.is_empty() {
            name.insert(0, '@');
        }
        if name.is_empty() {
            let hint = if scanner.peek() == Some(',') {
                "; transforms are separated by spaces, not commas"
            } else {
                ""
            };
            return Err(scanner.error(format!(
                "expected a transform name (letters, digits, '_'; '@' first for a pipeline), found {}{hint}",
                scanner.describe_here()
            )));
        }
        let mut params: BTreeMap<String, Vec<String>> = BTreeMap::new();
        if scanner.peek() == Some('(') {
            scanner.pos += 1;
            parse_params(&mut scanner, &name, &mut params)?;
        } else if let Some(c) = scanner.peek() {
            let at_continuation = c == '\\';
            if !c.is_whitespace() && !at_continuation {
                let hint = if c == ',' {
                    "; transforms are separated by spaces, not commas"
                } else {
                    ""
                };
                return Err(scanner.error(format!(
                    "expected '(', white space or the end after transform name '{name}', found '{c}'{hint}"
                )));
            }
        }
        specs.push(TransformSpec {
            name,
            params,
            column,
        });
    }
}

fn parse_params(
    scanner: &mut Scanner<'_>,
    transform: &str,
    params: &mut BTreeMap<String, Vec<String>>,
) -> Result<(), SpecError> {
    let mut expect_separator = false;
    loop {
        scanner.skip_space();
        match scanner.peek() {
            Some(')') => {
                scanner.pos += 1;
                return Ok(());
            }
            None => {
                return Err(scanner.error(format!(
                    "the parameter list of '{transform}' is not closed with ')'"
                )))
            }
            Some(',') => {
                // A leading or doubled comma is accepted, as TensorFlow does.
                scanner.pos += 1;
                expect_separator = false;
                continue;
            }
            Some(_) if expect_separator => {
                return Err(scanner.error(format!(
                    "expected ',' or ')' in the parameters of '{transform}', found {}",
                    scanner.describe_here()
                )))
            }
            Some(_) => {}
        }
        let name = scanner.take_while(is_name_char);
        if name.is_empty() {
            return Err(scanner.error(format!(
                "expected a parameter name in the parameters of '{transform}', found {}",
                scanner.describe_here()
            )));
        }
        scanner.skip_space();
        if scanner.peek() != Some('=') {
            return Err(scanner.error(format!(
                "expected '=' after parameter '{name}' of '{transform}', found {}",
                scanner.describe_here()
            )));
        }
        scanner.pos += 1;
        scanner.skip_space();
        let value = if scanner.peek() == Some('"') {
            scanner.pos += 1;
            parse_quoted(scanner, transform, &name)?
        } else {
            let value = scanner.take_while(is_bare_value_char);
            if value.is_empty() {
                return Err(scanner.error(format!(
                    "expected a value for parameter '{name}' of '{transform}' (quote it if it \
                     contains spaces, commas or parentheses), found {}",
                    scanner.describe_here()
                )));
            }
            value
        };
        params.entry(name).or_default().push(value);
        expect_separator = true;
    }
}

fn parse_quoted(
    scanner: &mut Scanner<'_>,
    transform: &str,
    param: &str,
) -> Result<String, SpecError> {
    let start = scanner.pos;
    let mut value = String::new();
    loop {
        match scanner.peek() {
            None => {
                scanner.pos = start.saturating_sub(1);
                return Err(scanner.error(format!(
                    "the quoted value of parameter '{param}' of '{transform}' is not closed"
                )));
            }
            Some('"') => {
                scanner.pos += 1;
                return Ok(value);
            }
            Some('\\') => {
                // Kept as written (TensorFlow does not unescape); it only stops `\"` ending the value.
                value.push('\\');
                scanner.pos += 1;
                if let Some(next) = scanner.peek() {
                    value.push(next);
                    scanner.pos += 1;
                }
            }
            Some(c) => {
                value.push(c);
                scanner.pos += 1;
            }
        }
    }
}
