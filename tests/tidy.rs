//! Tidy checks: the architecture rules of graphopt, written down as data and checked on every
//! source file, so a broken layer boundary fails `cargo test` with the file and the path.
//!
//! Rules:
//! - inside graphopt-core, a module uses only the modules listed for it in [`MAY_USE`]
//!   (every `crate::` and `super::` path counts, not only `use` lines, and use groups count
//!   leaf by leaf at any depth; a name the crate root binds, by a `use` in lib.rs or a
//!   `#[macro_export]` macro, counts as the module it comes from, and lib.rs may not
//!   glob-import a module, whose names could then not be traced);
//! - a transform never uses another transform's file, never glob-imports the transforms
//!   module (or the crate root), and outside its tests never names the registry or runner
//!   ([`REGISTRY_ITEMS`]): composite transforms call the rewrite layer;
//! - graphopt-macros and the facade with default features never depend on graphopt-core, and
//!   the facade's normal dependencies compile one major version of syn; graphopt-build's
//!   normal dependencies include no miette ([`NOT_FOR_BUILD`]);
//! - no `unsafe` outside the memory-mapping module;
//! - no `unwrap`, `expect` (as methods or as `Option::`/`Result::` paths), `panic!`, `todo!`,
//!   `unimplemented!`, `unreachable!` in library code: the `src` of every workspace member
//!   but the examples.
//!
//! Each rule is a function of text (a source, a manifest, `cargo tree` output) with unit tests
//! at the end that feed it a breaking input.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// graphopt-core's modules, bottom layer first, with the modules each may use. A module may
/// always use itself; `lib.rs` declares them all.
const MAY_USE: &[(&str, &[&str])] = &[
    // data
    ("proto", &[]),
    // the memory and work budget: consulted by every layer above, uses nothing
    ("budget", &[]),
    // the pages of files: mapping, releasing, writing behind; uses nothing
    ("pages", &[]),
    ("dtype", &["proto"]),
    ("tensor", &["proto", "dtype", "budget"]),
    ("text_format", &["proto"]),
    ("error", &["proto"]),
    // weights computed as they are written (batch-norm folding's scaled weights)
    ("late_weights", &["proto", "pages"]),
    (
        "io",
        &[
            "proto",
            "text_format",
            "error",
            "budget",
            "pages",
            "late_weights",
        ],
    ),
    // graph: the model, attributes, edits, op knowledge, functions and inlining
    ("graph", &["proto", "dtype", "tensor", "error", "budget"]),
    // analysis
    (
        "analysis",
        &["proto", "dtype", "tensor", "error", "budget", "graph"],
    ),
    // eval: kernels and the executor
    (
        "eval",
        &[
            "proto", "dtype", "tensor", "error", "budget", "graph", "analysis",
        ],
    ),
    // the shared rewrite layer: plain functions that transforms and composites call
    (
        "rewrite",
        &[
            "proto",
            "dtype",
            "tensor",
            "error",
            "budget",
            "pages",
            "late_weights",
            "graph",
            "analysis",
            "eval",
        ],
    ),
    // the targets' profiles and the checker of what each target can load: below the
    // transforms, which may use it (`legalize(target=...)` reads a profile); it uses none
    (
        "targets",
        &[
            "proto", "dtype", "tensor", "error", "graph", "analysis", "eval", "rewrite",
        ],
    ),
    // transforms: thin registered wrappers over rewrite, and the targets' profiles that
    // `legalize(target=...)` reads
    (
        "transforms",
        &[
            "proto",
            "dtype",
            "tensor",
            "error",
            "budget",
            "late_weights",
            "graph",
            "analysis",
            "eval",
            "rewrite",
            "targets",
        ],
    ),
    // above the rewrite layer, using no transform (freezing calls the rewrite layer):
    // freezing, verifying, summaries
    (
        "freeze",
        &[
            "proto", "dtype", "tensor", "error", "budget", "pages", "io", "graph", "analysis",
            "eval", "rewrite",
        ],
    ),
    (
        "verify",
        &[
            "proto", "dtype", "tensor", "error", "budget", "graph", "analysis", "eval", "summary",
        ],
    ),
    (
        "summary",
        &[
            "proto", "dtype", "tensor", "error", "budget", "graph", "analysis",
        ],
    ),
];

/// The umbrella error wraps the errors of the modules below it: it may name their `*Error`
/// types, and nothing else of theirs.
const ERROR_MAY_WRAP: &[&str] = &[
    "graph",
    "transforms",
    "io",
    "tensor",
    "text_format",
    "budget",
    "late_weights",
];

/// Files allowed to contain `unsafe`, with how many times: mapping a file read-only, advising
/// the system that pages of such a mapping may leave the resident set, allowing huge pages
/// on new weight buffers, starting writeback.
const UNSAFE_ALLOWED: &[(&str, usize)] = &[("graphopt-core/src/pages.rs", 4)];

/// What a transform file may name from `crate::transforms` besides its own file: the interface
/// every transform implements. Anything else there is another transform's file, the registry
/// and runner ([`REGISTRY_ITEMS`]), or a new item that must be added here deliberately.
const TRANSFORM_INTERFACE: &[&str] = &["Transform", "TransformContext", "Params"];

/// The registry, the runner and the transform-string parser. A transform, composite ones
/// included (`@deploy`, `legalize`), calls the rewrite layer's functions and never runs
/// transforms by their names, so its library code names none of these. Its `#[cfg(test)]`
/// code may: a transform's tests drive the registered transform through the runner, which is
/// the registry calling the transform, not the transform calling the registry.
const REGISTRY_ITEMS: &[&str] = &[
    "Registry",
    "with_builtins",
    "run",
    "run_in",
    "parse",
    "spec",
    "canonical",
    "TransformSpec",
    "SpecError",
    "TransformOutcome",
];

/// Words that name the registry wherever they stand in a transform's library code (a path
/// catches `super::parse`; these also catch a name reached some other way).
const REGISTRY_WORDS: &[&str] = &["Registry", "with_builtins"];

/// Files of `graphopt-core/src/transforms` that are the transform machinery, not transforms:
/// the transform-string parser. (`mod.rs`, the module itself, holds the registry and runner.)
const TRANSFORM_MACHINERY: &[&str] = &["spec"];

/// Workspace members that are not library code: the example apps. Every other member's `src`
/// is scanned, the CLI's included (it is installed by users, and reports errors rather than
/// panicking like the libraries do).
///
/// Build scripts (`build.rs`) are not scanned: they run once on the developer's machine at
/// compile time, never inside an app, and panicking is how a build script reports a failure
/// to cargo (`cargo:error` aside), so the panic rule, which protects an app's process, does
/// not apply to them.
const NOT_LIBRARY: &[&str] = &["examples/"];

/// Generated code, exempt from the source rules.
const GENERATED: &[&str] = &["graphopt-core/src/proto/tensorflow.rs"];

/// Methods of `Option` and `Result` that panic: banned as method calls (`x.unwrap()`) and as
/// paths (`.map(Option::unwrap)`). A path through another type (`T::unwrap`, a trait's own
/// non-panicking function) is allowed.
const PANICKING_METHODS: &[&str] = &["unwrap", "expect", "unwrap_err", "expect_err"];

/// Macros that panic, all banned in library code, `unreachable!` included: a case the code
/// believes impossible is returned as an error (or made unrepresentable), so a wrong belief
/// fails one call instead of the app. `assert!` is not listed: it states an invariant on
/// purpose.
const PANICKING_MACROS: &[&str] = &["panic", "todo", "unimplemented", "unreachable"];

fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Every `.rs` file below `dir`. A directory that cannot be read fails the test: a rule
/// checked on no files would pass without checking anything.
fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    let mut entries: Vec<_> = entries
        .map(|e| {
            e.unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
                .path()
        })
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

fn relative(path: &Path) -> String {
    path.strip_prefix(workspace_root())
        .unwrap_or(path)
        .to_string_lossy()
        .replace('\\', "/")
}

/// The members of the workspace whose root manifest is `manifest`: the `members` of its
/// `[workspace]` table, and `.` when the root is a package too.
fn workspace_members(manifest: &str) -> Vec<String> {
    let mut members = Vec::new();
    let lines: Vec<&str> = manifest.lines().collect();
    if lines.iter().any(|l| l.trim() == "[package]") {
        members.push(".".to_string());
    }
    let Some(table) = lines.iter().position(|l| l.trim() == "[workspace]") else {
        return members;
    };
    let rest = lines[table + 1..].join("\n");
    let section_end = rest
        .lines()
        .scan(0usize, |at, l| {
            let start = *at;
            *at += l.len() + 1;
            Some((start, l))
        })
        .find(|(_, l)| l.starts_with('['))
        .map_or(rest.len(), |(start, _)| start);
    let section = &rest[..section_end];
    let Some(key) = section
        .lines()
        .find(|l| l.trim_start().starts_with("members"))
        .and_then(|l| section.find(l))
    else {
        return members;
    };
    let Some(open) = section[key..].find('[').map(|p| key + p) else {
        return members;
    };
    let close = section[open..]
        .find(']')
        .map_or(section.len(), |p| open + p);
    let array = &section[open + 1..close];
    members.extend(
        array
            .split('"')
            .skip(1)
            .step_by(2)
            .map(|m| m.trim_end_matches('/').to_string()),
    );
    members
}

/// The source trees where panicking calls and `unsafe` are banned: `src` of every workspace
/// member except [`NOT_LIBRARY`].
fn library_source_dirs(manifest: &str) -> Vec<String> {
    workspace_members(manifest)
        .into_iter()
        .filter(|m| !NOT_LIBRARY.iter().any(|prefix| m.starts_with(prefix)))
        .map(|m| {
            if m == "." {
                "src".to_string()
            } else {
                format!("{m}/src")
            }
        })
        .collect()
}

fn root_manifest() -> String {
    std::fs::read_to_string(workspace_root().join("Cargo.toml")).expect("the root Cargo.toml")
}

/// The source with comments, string and char literals blanked out (newlines kept), so that
/// only code is scanned.
fn code_only(source: &str) -> String {
    let bytes = source.as_bytes();
    let mut out = String::with_capacity(source.len());
    let mut i = 0;
    let keep_newlines = |text: &[u8], out: &mut String| {
        for &b in text {
            out.push(if b == b'\n' { '\n' } else { ' ' });
        }
    };
    while i < bytes.len() {
        let rest = &bytes[i..];
        if rest.starts_with(b"//") {
            let end = rest.iter().position(|&b| b == b'\n').unwrap_or(rest.len());
            keep_newlines(&rest[..end], &mut out);
            i += end;
        } else if rest.starts_with(b"/*") {
            let mut depth = 0usize;
            let mut j = 0;
            while j < rest.len() {
                if rest[j..].starts_with(b"/*") {
                    depth += 1;
                    j += 2;
                } else if rest[j..].starts_with(b"*/") {
                    depth -= 1;
                    j += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    j += 1;
                }
            }
            keep_newlines(&rest[..j], &mut out);
            i += j;
        } else if rest[0] == b'r' && (rest.get(1) == Some(&b'"') || rest.get(1) == Some(&b'#')) {
            let hashes = rest[1..].iter().take_while(|&&b| b == b'#').count();
            if rest.get(1 + hashes) != Some(&b'"') {
                out.push('r');
                i += 1;
                continue;
            }
            let mut closing = vec![b'"'];
            closing.extend(std::iter::repeat_n(b'#', hashes));
            let body = 2 + hashes;
            let end = rest[body..]
                .windows(closing.len())
                .position(|w| w == closing.as_slice())
                .map_or(rest.len(), |p| body + p + closing.len());
            keep_newlines(&rest[..end], &mut out);
            i += end;
        } else if rest[0] == b'"' {
            let mut j = 1;
            while j < rest.len() && rest[j] != b'"' {
                j += if rest[j] == b'\\' { 2 } else { 1 };
            }
            let end = (j + 1).min(rest.len());
            keep_newlines(&rest[..end], &mut out);
            i += end;
        } else if rest[0] == b'\'' {
            // A char literal ('a', '\n', '"'), or a lifetime ('a), which is kept.
            let len = if rest.get(1) == Some(&b'\\') {
                rest.iter().skip(2).position(|&b| b == b'\'').map(|p| p + 3)
            } else if rest.get(2) == Some(&b'\'') {
                Some(3)
            } else {
                None
            };
            match len {
                Some(len) if len <= 12 => {
                    keep_newlines(&rest[..len], &mut out);
                    i += len;
                }
                _ => {
                    out.push('\'');
                    i += 1;
                }
            }
        } else {
            let ch = source[i..].chars().next().unwrap_or(' ');
            out.push(ch);
            i += ch.len_utf8();
        }
    }
    out
}

/// The code with every `#[cfg(test)]` item blanked out (a module or function and its braces;
/// newlines kept, and byte offsets, so lines and positions stay right).
fn without_tests(code: &str) -> String {
    let blank = |text: &str| -> String {
        text.bytes()
            .map(|b| if b == b'\n' { '\n' } else { ' ' })
            .collect()
    };
    let mut out = String::with_capacity(code.len());
    let mut rest = code;
    while let Some(at) = rest.find("#[cfg(test)]") {
        out.push_str(&rest[..at]);
        let after = &rest[at..];
        let Some(open) = after.find(['{', ';']) else {
            rest = "";
            break;
        };
        if after.as_bytes()[open] == b';' {
            out.push_str(&blank(&after[..open + 1]));
            rest = &after[open + 1..];
            continue;
        }
        let end = matching_brace(after.as_bytes(), open).map_or(after.len(), |close| close + 1);
        out.push_str(&blank(&after[..end]));
        rest = &after[end..];
    }
    out.push_str(rest);
    out
}

fn is_ident_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// The position of the `}` closing the `{` at `open`.
fn matching_brace(bytes: &[u8], open: usize) -> Option<usize> {
    let mut depth = 0usize;
    for (k, &b) in bytes.iter().enumerate().skip(open) {
        match b {
            b'{' => depth += 1,
            b'}' => {
                depth = depth.saturating_sub(1);
                if depth == 0 {
                    return Some(k);
                }
            }
            _ => {}
        }
    }
    None
}

fn skip_whitespace(bytes: &[u8], mut at: usize) -> usize {
    while bytes.get(at).is_some_and(u8::is_ascii_whitespace) {
        at += 1;
    }
    at
}

/// The identifier starting at `at` (empty if none).
fn ident_at(code: &str, at: usize) -> &str {
    let Some(rest) = code.get(at..) else {
        return "";
    };
    let len = rest.bytes().take_while(|&b| is_ident_byte(b)).count();
    &rest[..len]
}

/// Every identifier of `code` with its position.
fn idents(code: &str) -> Vec<(usize, &str)> {
    let bytes = code.as_bytes();
    let mut found = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        if is_ident_byte(bytes[at]) {
            let ident = ident_at(code, at);
            found.push((at, ident));
            at += ident.len();
        } else {
            at += 1;
        }
    }
    found
}

/// The 1-based line of byte `at`.
fn line_of(code: &str, at: usize) -> usize {
    code.as_bytes()[..at.min(code.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// The inline modules of `code` (`mod tests { ... }`): the span of each one's braces and its
/// name, so that `super::` inside one resolves from the inline module, not from the file.
fn inline_modules(code: &str) -> Vec<(usize, usize, String)> {
    let bytes = code.as_bytes();
    let mut found = Vec::new();
    for (at, word) in idents(code) {
        if word != "mod" {
            continue;
        }
        let name_at = skip_whitespace(bytes, at + word.len());
        let name = ident_at(code, name_at);
        if name.is_empty() {
            continue;
        }
        let open = skip_whitespace(bytes, name_at + name.len());
        if bytes.get(open) != Some(&b'{') {
            continue;
        }
        let close = matching_brace(bytes, open).unwrap_or(bytes.len());
        found.push((open, close, name.to_string()));
    }
    found
}

/// One path into the crate found in the code.
#[derive(Debug, Clone, PartialEq, Eq)]
struct CratePath {
    /// The line of the path's last segment.
    line: usize,
    /// Where the path starts (its `crate` or `super`).
    at: usize,
    /// The module path from the crate root; a glob import ends in `*`.
    path: Vec<String>,
    /// Whether the path stands in a `use` declaration (not in an expression, a type or a
    /// `pub(in ...)` visibility).
    in_use: bool,
}

/// One leaf of a path tree.
#[derive(Debug)]
struct Leaf {
    /// Where its last segment stands.
    at: usize,
    /// The full path; a glob ends in `*`.
    path: Vec<String>,
    /// The name an `as` binds it to.
    alias: Option<String>,
}

/// Parses the path tree at `*at`: segments separated by `::`, `{...}` groups at any depth
/// (nested ones too), a `*` glob, `self` in a group, `as` renames. Pushes one full path per
/// leaf, with the position of its last segment. `after_separator`: the tree follows a `::`, so
/// that an end with no segment (`crate::x::<T>`, `crate::`) still yields the path so far.
fn path_tree(
    code: &str,
    at: &mut usize,
    mut prefix: Vec<String>,
    after_separator: bool,
    out: &mut Vec<Leaf>,
) {
    let bytes = code.as_bytes();
    let mut after_separator = after_separator;
    let mut last = *at;
    loop {
        *at = skip_whitespace(bytes, *at);
        match bytes.get(*at) {
            Some(b'{') => {
                *at += 1;
                loop {
                    *at = skip_whitespace(bytes, *at);
                    match bytes.get(*at) {
                        None => return,
                        Some(b'}') => {
                            *at += 1;
                            return;
                        }
                        Some(b',') => *at += 1,
                        Some(_) => {
                            let before = *at;
                            path_tree(code, at, prefix.clone(), false, out);
                            if *at == before {
                                return; // not a use tree
                            }
                        }
                    }
                }
            }
            Some(b'*') => {
                prefix.push("*".to_string());
                out.push(Leaf {
                    at: *at,
                    path: prefix,
                    alias: None,
                });
                *at += 1;
                return;
            }
            _ => {
                let ident = ident_at(code, *at);
                if ident.is_empty() {
                    if after_separator {
                        out.push(Leaf {
                            at: last,
                            path: prefix,
                            alias: None,
                        });
                    }
                    return;
                }
                last = *at;
                *at += ident.len();
                if ident != "self" {
                    prefix.push(ident.to_string());
                }
                let next = skip_whitespace(bytes, *at);
                if code[next..].starts_with("::") {
                    *at = next + 2;
                    after_separator = true;
                    continue;
                }
                let mut alias = None;
                if ident_at(code, next) == "as" {
                    let alias_at = skip_whitespace(bytes, next + 2);
                    let name = ident_at(code, alias_at);
                    *at = alias_at + name.len();
                    alias = Some(name.to_string());
                }
                out.push(Leaf {
                    at: last,
                    path: prefix,
                    alias,
                });
                return;
            }
        }
    }
}

/// Whether the path starting at `at` stands in a `use` declaration: the last word of its
/// statement before it is `use`.
fn in_use_declaration(code: &str, at: usize) -> bool {
    let start = code[..at].rfind([';', '{', '}']).map_or(0, |p| p + 1);
    code[start..at].split_whitespace().last() == Some("use")
}

/// Every path in `code` that starts with `crate` or `super`, resolved to a module path from
/// the crate root (`module` is the path of the file's own module; `super` inside an inline
/// `mod` counts from it), with its line. Use trees give one path per leaf, groups expanded at
/// any depth (`crate::a::{b::{c, d}, e}`); `use super as x;` gives the module itself.
fn crate_paths(code: &str, module: &[String]) -> Vec<CratePath> {
    let bytes = code.as_bytes();
    let inline = inline_modules(code);
    let mut found = Vec::new();
    for (at, word) in idents(code) {
        if at > 0 && matches!(bytes[at - 1], b':' | b'#') {
            continue; // a later segment, or a raw identifier
        }
        let mut base = match word {
            "crate" => Vec::new(),
            "super" => {
                let mut base = module.to_vec();
                base.extend(
                    inline
                        .iter()
                        .filter(|(open, close, _)| *open < at && at < *close)
                        .map(|(_, _, name)| name.clone()),
                );
                base
            }
            _ => continue,
        };
        let in_use = in_use_declaration(code, at);
        let mut next = at;
        let mut separated = false;
        loop {
            let word = ident_at(code, next);
            if word == "super" {
                base.pop();
            } else if word != "crate" || next != at {
                break;
            }
            let after = skip_whitespace(bytes, next + word.len());
            if code[after..].starts_with("::") {
                next = skip_whitespace(bytes, after + 2);
                separated = true;
            } else {
                next = after;
                separated = false;
                break;
            }
        }
        if !separated {
            // `crate` or `super` alone: a visibility (`pub(crate)`), or `use super as x;`.
            if in_use {
                found.push(CratePath {
                    line: line_of(code, at),
                    at,
                    path: base,
                    in_use,
                });
            }
            continue;
        }
        let mut leaves = Vec::new();
        path_tree(code, &mut next, base.clone(), true, &mut leaves);
        if leaves.is_empty() {
            leaves.push(Leaf {
                at,
                path: base,
                alias: None,
            });
        }
        for leaf in leaves {
            found.push(CratePath {
                line: line_of(code, leaf.at),
                at,
                path: leaf.path,
                in_use,
            });
        }
    }
    found
}

/// The module path of a file under `src`: `eval/shapes.rs` -> [eval, shapes],
/// `eval/mod.rs` -> [eval], `lib.rs` -> [].
fn module_of(relative_to_src: &str) -> Vec<String> {
    let trimmed = relative_to_src.trim_end_matches(".rs");
    let mut parts: Vec<String> = trimmed.split('/').map(str::to_string).collect();
    if matches!(
        parts.last().map(String::as_str),
        Some("mod" | "lib" | "main")
    ) {
        parts.pop();
    }
    parts
}

/// The transform rules for one path of the transform file `this`: it names, of
/// `crate::transforms`, only its own file and [`TRANSFORM_INTERFACE`]; never another
/// transform's file, never (outside its tests) the registry, never a glob or the module
/// itself, which would make other transforms reachable by a name no path here shows.
fn transform_path_problem(this: &str, found: &CratePath, in_tests: bool) -> Option<String> {
    let path = &found.path;
    let shown = format!("crate::{}", path.join("::"));
    if path.last().is_some_and(|s| s == "*") {
        let prefix = &path[..path.len() - 1];
        return (prefix.is_empty() || prefix == ["transforms"]).then(|| {
            format!(
                "the transform '{this}' glob-imports {shown}, which makes other transforms \
                 reachable by bare name"
            )
        });
    }
    if path.first().is_none_or(|t| t != "transforms") {
        return None;
    }
    let Some(other) = path.get(1) else {
        return found.in_use.then(|| {
            format!(
                "the transform '{this}' imports the transforms module itself ({shown}), which \
                 reaches other transforms and the registry by relative paths"
            )
        });
    };
    if other == this || TRANSFORM_INTERFACE.contains(&other.as_str()) {
        return None;
    }
    if REGISTRY_ITEMS.contains(&other.as_str()) {
        return (!in_tests).then(|| {
            format!(
                "the transform '{this}' uses the registry or runner ({shown}): transforms call \
                 the rewrite layer, never transforms by name"
            )
        });
    }
    if other.starts_with(|c: char| c.is_ascii_lowercase()) {
        return Some(format!(
            "the transform '{this}' uses another transform's file: {shown}"
        ));
    }
    Some(format!(
        "the transform '{this}' uses {shown}, which is not in the transform interface ({}); \
         extend TRANSFORM_INTERFACE if it is meant to be shared",
        TRANSFORM_INTERFACE.join(", ")
    ))
}

/// What a name at graphopt-core's crate root stands for beyond the modules `lib.rs` declares:
/// each name a `use` in lib.rs binds there (`pub use transforms::Registry;` makes
/// `crate::Registry` the transforms' `Registry`; a private `use` too, which the whole crate
/// sees) and each `#[macro_export]` macro (`crate::map_data!` is the tensor module's). A path
/// through the root counts as a path to the module it reaches, so a re-export at the root
/// cannot carry an upper layer's item down.
#[derive(Debug, Default)]
struct RootNames {
    /// A name at the crate root -> the path from the root it stands for.
    names: BTreeMap<String, Vec<String>>,
    /// What lib.rs does that the rules cannot follow: a glob import of a module.
    problems: Vec<String>,
}

impl RootNames {
    /// The names the `use` declarations of `lib` (the source of lib.rs) bind at the crate
    /// root.
    fn from_lib(lib: &str) -> Self {
        let code = code_only(lib);
        let bytes = code.as_bytes();
        let mut root = RootNames::default();
        for (at, word) in idents(&code) {
            if word != "use" || (at > 0 && bytes[at - 1] == b':') {
                continue;
            }
            let mut next = skip_whitespace(bytes, at + word.len());
            if code[next..].starts_with("::") {
                continue; // an extern crate's path
            }
            let mut leaves = Vec::new();
            path_tree(&code, &mut next, Vec::new(), false, &mut leaves);
            for leaf in leaves {
                let mut path = leaf.path;
                if path.first().is_some_and(|s| s == "crate") {
                    path.remove(0);
                }
                if path.last().is_some_and(|s| s == "*") {
                    let module = &path[..path.len() - 1];
                    if module.first().is_some_and(|m| is_core_module(m)) {
                        root.problems.push(format!(
                            "graphopt-core/src/lib.rs:{}: `use {}` glob-imports a module at the \
                             crate root: its names could not be traced to their layer; import \
                             them by name",
                            line_of(&code, leaf.at),
                            path.join("::")
                        ));
                    }
                    continue;
                }
                let Some(name) = leaf.alias.or_else(|| path.last().cloned()) else {
                    continue;
                };
                if name != "_" && path != [name.clone()] {
                    root.names.insert(name, path);
                }
            }
        }
        root
    }

    /// Adds the `#[macro_export]` macros of the graphopt-core file at `relative_to_src`: they
    /// stand at the crate root, but belong to the file's module.
    fn add_exported_macros(&mut self, relative_to_src: &str, source: &str) {
        let code = code_only(source);
        let module = module_of(relative_to_src);
        let mut rest = 0;
        while let Some(found) = code[rest..].find("#[macro_export]") {
            let after = rest + found + "#[macro_export]".len();
            rest = after;
            let Some(rules) = code[after..].find("macro_rules!") else {
                break;
            };
            let name_at = skip_whitespace(code.as_bytes(), after + rules + "macro_rules!".len());
            let name = ident_at(&code, name_at);
            if !name.is_empty() {
                let mut path = module.clone();
                path.push(name.to_string());
                self.names.insert(name.to_string(), path);
            }
        }
    }

    /// `path` (from the crate root) with a first segment the root binds replaced by what it
    /// stands for, through re-exports of re-exports; `None` when it starts with no such name.
    fn resolve(&self, path: &[String]) -> Option<Vec<String>> {
        let mut resolved: Option<Vec<String>> = None;
        // A bound on the chain: `use a as b; use b as a;` does not resolve.
        for _ in 0..8 {
            let current = resolved.as_deref().unwrap_or(path);
            let first = current.first()?;
            if is_core_module(first) {
                break;
            }
            let target = self.names.get(first)?;
            let mut next = target.clone();
            next.extend_from_slice(&current[1..]);
            resolved = Some(next);
        }
        resolved
    }
}

fn is_core_module(name: &str) -> bool {
    MAY_USE.iter().any(|(m, _)| *m == name)
}

/// The layer rules for one path (resolved through the crate root) of a file of module `own`:
/// the transform rules if the file is a transform, the crate error's limit, [`MAY_USE`].
fn path_problem(
    own: &str,
    allowed: &[&str],
    this_transform: Option<&String>,
    found: &CratePath,
    in_tests: bool,
) -> Option<String> {
    if let Some(this) = this_transform {
        if let Some(problem) = transform_path_problem(this, found, in_tests) {
            return Some(problem);
        }
    }
    let path = &found.path;
    // Not a module: the crate root itself, or an item of lib.rs (`crate::SOURCE_SHA256`).
    let target = path.first().filter(|t| is_core_module(t))?;
    let shown = format!("crate::{}", path.join("::"));
    if target == own {
        return None;
    }
    if own == "error" && ERROR_MAY_WRAP.contains(&target.as_str()) {
        return (!path.last().is_some_and(|last| last.ends_with("Error")))
            .then(|| format!("the crate error may only wrap error types, not {shown}"));
    }
    (!allowed.contains(&target.as_str())).then(|| {
        format!(
            "module '{own}' may not use '{target}' ({shown}); it may use: {}",
            if allowed.is_empty() {
                "nothing".to_string()
            } else {
                allowed.join(", ")
            }
        )
    })
}

/// Layer violations in one graphopt-core file, as `file:line: message`; `root` says what the
/// names at the crate root stand for.
fn layer_violations(
    file: &str,
    relative_to_src: &str,
    source: &str,
    root: &RootNames,
) -> Vec<String> {
    let module = module_of(relative_to_src);
    let Some(own) = module.first() else {
        return Vec::new(); // lib.rs declares the modules; RootNames reads its imports
    };
    let mut problems = Vec::new();
    let Some((_, allowed)) = MAY_USE.iter().find(|(m, _)| m == own) else {
        return vec![format!(
            "{file}: module '{own}' has no entry in the tidy test's MAY_USE table"
        )];
    };
    let code = code_only(source);
    let library = without_tests(&code);
    let in_tests = |at: usize| library.as_bytes()[at] != code.as_bytes()[at];
    // The transform this file is, if it is one.
    let this_transform = module
        .get(1)
        .filter(|_| own == "transforms")
        .filter(|this| !TRANSFORM_MACHINERY.contains(&this.as_str()));
    let mut registry_lines = BTreeSet::new();
    for written in crate_paths(&code, &module) {
        let line = written.line;
        // A name the crate root binds counts as the item it stands for.
        let (found, through) = match root.resolve(&written.path) {
            Some(path) => {
                let through = format!(
                    " (crate::{} is crate::{} through lib.rs)",
                    written.path.join("::"),
                    path.join("::")
                );
                (CratePath { path, ..written }, through)
            }
            None => (written, String::new()),
        };
        let in_tests = in_tests(found.at);
        if let Some(problem) = path_problem(own, allowed, this_transform, &found, in_tests) {
            if this_transform.is_some() && problem.contains("registry") {
                registry_lines.insert(line);
            }
            problems.push(format!("{file}:{line}: {problem}{through}"));
        }
    }
    if let Some(this) = this_transform {
        for (at, word) in idents(&library) {
            if !REGISTRY_WORDS.contains(&word) {
                continue;
            }
            let line = line_of(&library, at);
            if registry_lines.insert(line) {
                problems.push(format!(
                    "{file}:{line}: the transform '{this}' names the registry ({word}): \
                     transforms call the rewrite layer, never transforms by name"
                ));
            }
        }
    }
    problems
}

/// Panicking calls in one library file's code outside `#[cfg(test)]`, as `file:line: ...`.
fn panicking_calls(file: &str, source: &str) -> Vec<String> {
    let code = without_tests(&code_only(source));
    let bytes = code.as_bytes();
    let mut problems = Vec::new();
    for (at, word) in idents(&code) {
        let found = if PANICKING_MACROS.contains(&word) {
            let bang = skip_whitespace(bytes, at + word.len());
            let is_call = bytes.get(bang) == Some(&b'!') && bytes.get(bang + 1) != Some(&b'=');
            is_call.then(|| format!("{word}!"))
        } else if PANICKING_METHODS.contains(&word) {
            let before = code[..at].trim_end();
            if before.ends_with('.') && !before.ends_with("..") {
                Some(format!(".{word}()"))
            } else if let Some(qualifier) = before.strip_suffix("::") {
                let qualifier = strip_turbofish(qualifier.trim_end());
                let owner = qualifier
                    .rsplit(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .next()
                    .unwrap_or("");
                matches!(owner, "Option" | "Result").then(|| format!("{owner}::{word}"))
            } else {
                None
            }
        } else {
            None
        };
        if let Some(found) = found {
            problems.push(format!(
                "{file}:{}: `{found}` in library code",
                line_of(&code, at)
            ));
        }
    }
    problems
}

/// `Option::<T>` -> `Option` (the text before a path's `::`, with its generic arguments).
fn strip_turbofish(text: &str) -> &str {
    if !text.ends_with('>') {
        return text;
    }
    let mut depth = 0usize;
    for (k, b) in text.bytes().enumerate().rev() {
        match b {
            b'>' => depth += 1,
            b'<' => {
                depth -= 1;
                if depth == 0 {
                    return text[..k].trim_end().trim_end_matches("::").trim_end();
                }
            }
            _ => {}
        }
    }
    text
}

fn unsafe_count(source: &str) -> usize {
    let code = code_only(source);
    idents(&code).iter().filter(|(_, w)| *w == "unsafe").count()
}

/// The unsafe rule for one library file: as many `unsafe` as [`UNSAFE_ALLOWED`] lists.
fn unsafe_problem(file: &str, source: &str) -> Option<String> {
    let count = unsafe_count(source);
    let allowed = UNSAFE_ALLOWED
        .iter()
        .find(|(f, _)| *f == file)
        .map_or(0, |(_, n)| *n);
    (count != allowed).then(|| {
        format!(
            "{file}: {count} `unsafe`, {allowed} allowed (only the memory-mapping module may use it)"
        )
    })
}

/// The modules `lib.rs` declares against the [`MAY_USE`] table.
fn module_table_problems(lib: &str) -> Vec<String> {
    let declared: BTreeSet<String> = code_only(lib)
        .lines()
        .filter_map(|l| {
            let l = l.trim();
            let rest = l
                .strip_prefix("pub mod ")
                .or_else(|| l.strip_prefix("pub(crate) mod "))
                .or_else(|| l.strip_prefix("mod "))?;
            Some(rest.trim_end_matches(';').trim().to_string())
        })
        .collect();
    let listed: BTreeSet<String> = MAY_USE.iter().map(|(m, _)| m.to_string()).collect();
    let mut problems: Vec<String> = declared
        .difference(&listed)
        .map(|m| format!("lib.rs declares '{m}', which has no entry in MAY_USE"))
        .collect();
    problems.extend(
        listed
            .difference(&declared)
            .map(|m| format!("MAY_USE lists '{m}', which lib.rs does not declare")),
    );
    problems
}

fn library_files() -> Vec<PathBuf> {
    let root = workspace_root();
    let mut files = Vec::new();
    for dir in library_source_dirs(&root_manifest()) {
        rust_files(&root.join(dir), &mut files);
    }
    files.retain(|f| !GENERATED.contains(&relative(f).as_str()));
    files
}

#[test]
fn graphopt_core_layers() {
    let src = workspace_root().join("graphopt-core/src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    assert!(files.len() > 20, "graphopt-core sources not found");
    // (relative to the workspace, relative to src, source)
    let sources: Vec<(String, String, String)> = files
        .iter()
        .map(|file| {
            let inner = file.strip_prefix(&src).expect("under src");
            (
                relative(file),
                inner.to_string_lossy().replace('\\', "/"),
                std::fs::read_to_string(file).expect("readable source"),
            )
        })
        .filter(|(rel, _, _)| !GENERATED.contains(&rel.as_str()))
        .collect();
    let lib = &sources
        .iter()
        .find(|(_, inner, _)| inner == "lib.rs")
        .expect("graphopt-core/src/lib.rs")
        .2;
    let mut root = RootNames::from_lib(lib);
    for (_, inner, source) in &sources {
        root.add_exported_macros(inner, source);
    }
    // The crate's own re-export of its error is read, so the rest are too.
    assert_eq!(
        root.names.get("Error").map(|p| p.join("::")).as_deref(),
        Some("error::Error"),
        "{root:?}"
    );
    let mut problems = root.problems.clone();
    for (rel, inner, source) in &sources {
        problems.extend(layer_violations(rel, inner, source, &root));
    }
    assert!(
        problems.is_empty(),
        "layer rules broken:\n{}",
        problems.join("\n")
    );
}

#[test]
fn every_core_module_has_a_layer() {
    let lib =
        std::fs::read_to_string(workspace_root().join("graphopt-core/src/lib.rs")).expect("lib.rs");
    let problems = module_table_problems(&lib);
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn no_panicking_calls_in_library_code() {
    let mut problems = Vec::new();
    for file in library_files() {
        let source = std::fs::read_to_string(&file).expect("readable source");
        problems.extend(panicking_calls(&relative(&file), &source));
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn unsafe_only_where_allowed() {
    let mut problems = Vec::new();
    for file in library_files() {
        let rel = relative(&file);
        let source = std::fs::read_to_string(&file).expect("readable source");
        problems.extend(unsafe_problem(&rel, &source));
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn every_library_member_is_scanned() {
    let manifest = root_manifest();
    let dirs = library_source_dirs(&manifest);
    let root = workspace_root();
    for member in workspace_members(&manifest) {
        let has_lib = root.join(&member).join("src/lib.rs").is_file();
        let example = NOT_LIBRARY.iter().any(|p| member.starts_with(p));
        let src = if member == "." {
            "src".to_string()
        } else {
            format!("{member}/src")
        };
        if has_lib && !example {
            assert!(
                dirs.contains(&src),
                "library member {member} is not scanned"
            );
        }
    }
    for expected in [
        "src",
        "graphopt-core/src",
        "graphopt-types/src",
        "graphopt-cli/src",
    ] {
        assert!(
            dirs.iter().any(|d| d == expected),
            "{expected} missing from {dirs:?}"
        );
    }
}

/// `cargo tree` of one package's normal dependencies (proc-macros included), as crate names
/// with versions.
fn normal_dependencies(package: &str, features: &[&str]) -> Vec<String> {
    let features = features.join(",");
    let extra: Vec<&str> = if features.is_empty() {
        Vec::new()
    } else {
        vec!["--features", &features]
    };
    dependencies(package, &["-e", "normal"], &extra)
}

/// `cargo tree -p package` with the edge kinds `edges` and `extra` arguments, as crate
/// names with versions.
fn dependencies(package: &str, edges: &[&str], extra: &[&str]) -> Vec<String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut command = std::process::Command::new(cargo);
    command
        .current_dir(workspace_root())
        .args(["tree", "--offline", "--locked", "--prefix", "none"])
        .args(edges)
        .args(["--format", "{p}", "-p", package])
        .args(extra);
    let output = command.output().expect("cargo tree runs");
    assert!(
        output.status.success(),
        "cargo tree -p {package}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    tree_lines(&String::from_utf8_lossy(&output.stdout))
}

/// The lines of `cargo tree --prefix none --format {p}`: `name vX.Y.Z [(path)]`.
fn tree_lines(output: &str) -> Vec<String> {
    output
        .lines()
        .map(|l| l.trim().trim_end_matches(" (*)").to_string())
        .filter(|l| !l.is_empty())
        .collect()
}

fn crate_versions<'a>(deps: &'a [String], name: &str) -> BTreeSet<&'a str> {
    deps.iter()
        .filter_map(|d| {
            let mut parts = d.split_whitespace();
            (parts.next() == Some(name)).then(|| parts.next().unwrap_or(""))
        })
        .collect()
}

/// Crates an app with `graphopt/eval` must not compile: the text-format parser and the
/// checkpoint reader's.
const HEAVY_FOR_EVAL: &[&str] = &["miette", "logos", "snap", "crc32c", "memmap2", "libc"];

/// The rule for `package` with default features: no graphopt-core.
fn links_core_problem(package: &str, deps: &[String]) -> Option<String> {
    (!crate_versions(deps, "graphopt-core").is_empty()).then(|| {
        format!(
            "{package} depends on graphopt-core by default:\n{}",
            deps.join("\n")
        )
    })
}

/// Crates graphopt-build's normal dependencies (what every app's build script compiles) must
/// not include: the README says graphopt-core dropped miette.
const NOT_FOR_BUILD: &[&str] = &["miette"];

/// One problem for each crate of `forbidden` that `deps` (of `who`) include.
fn forbidden_crates(who: &str, deps: &[String], forbidden: &[&str]) -> Vec<String> {
    forbidden
        .iter()
        .filter(|name| !crate_versions(deps, name).is_empty())
        .map(|name| format!("{who} compiles {name}"))
        .collect()
}

/// The rule for the facade with `eval`: graphopt-core once, none of [`HEAVY_FOR_EVAL`].
fn eval_feature_problems(deps: &[String]) -> Vec<String> {
    let mut problems = Vec::new();
    let cores = crate_versions(deps, "graphopt-core").len();
    if cores != 1 {
        problems.push(format!(
            "graphopt with `eval` compiles graphopt-core {cores} times"
        ));
    }
    problems.extend(forbidden_crates(
        "graphopt with `eval`",
        deps,
        HEAVY_FOR_EVAL,
    ));
    problems
}

/// The rule for graphopt-build with default features: none of [`NOT_FOR_BUILD`].
fn build_problems(deps: &[String]) -> Vec<String> {
    forbidden_crates("graphopt-build", deps, NOT_FOR_BUILD)
}

/// The rule for the facade with default features: one syn major.
fn syn_majors_problem(deps: &[String]) -> Option<String> {
    let majors: BTreeSet<&str> = crate_versions(deps, "syn")
        .into_iter()
        .map(|v| v.trim_start_matches('v').split('.').next().unwrap_or(""))
        .collect();
    (majors.len() != 1).then(|| {
        format!(
            "an app with graphopt's default features compiles syn {majors:?}:\n{}",
            deps.join("\n")
        )
    })
}

#[test]
fn facade_and_macros_never_link_core() {
    for package in ["graphopt", "graphopt-macros"] {
        let deps = normal_dependencies(package, &[]);
        if let Some(problem) = links_core_problem(package, &deps) {
            panic!("{problem}");
        }
    }
    // The eval feature is the one way in, and it brings neither the text-format parser nor
    // the checkpoint reader.
    let problems = eval_feature_problems(&normal_dependencies("graphopt", &["eval"]));
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn build_script_side_has_no_miette() {
    let deps = normal_dependencies("graphopt-build", &[]);
    assert!(
        crate_versions(&deps, "graphopt-core").len() == 1,
        "graphopt-build's tree was not read:\n{}",
        deps.join("\n")
    );
    let problems = build_problems(&deps);
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// The syn majors among `deps`.
fn syn_majors(deps: &[String]) -> BTreeSet<String> {
    crate_versions(deps, "syn")
        .into_iter()
        .map(|v| {
            v.trim_start_matches('v')
                .split('.')
                .next()
                .unwrap_or("")
                .to_string()
        })
        .collect()
}

/// The README's "What an app compiles": the dependency counts with default features and with
/// `eval`, the syn majors of each side, and logos left out by `default-features = false`.
#[test]
fn what_an_app_compiles_is_what_the_readme_says() {
    let readme = std::fs::read_to_string(workspace_root().join("README.md"))
        .unwrap()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    let distinct = |deps: &[String]| deps.iter().collect::<BTreeSet<_>>().len();
    let default = normal_dependencies("graphopt", &[]);
    let eval = normal_dependencies("graphopt", &["eval"]);
    let (n_default, n_eval) = (distinct(&default), distinct(&eval));
    for said in [
        format!("with `eval` ({n_eval} normal dependencies)"),
        format!("with default features ({n_default})"),
    ] {
        assert!(readme.contains(&said), "README.md does not say \"{said}\"");
    }
    let two_three: BTreeSet<String> = ["2".to_string(), "3".to_string()].into();
    assert_eq!(syn_majors(&eval), two_three, "syn majors with eval");
    let build = dependencies("graphopt-build", &["-e", "normal,build"], &[]);
    assert_eq!(
        syn_majors(&build),
        two_three,
        "syn majors of the build-script side"
    );
    assert!(
        !crate_versions(&build, "logos").is_empty(),
        "logos with .pbtxt support"
    );
    let lean = dependencies(
        "graphopt-build",
        &["-e", "normal,build"],
        &["--no-default-features"],
    );
    assert!(
        crate_versions(&lean, "logos").is_empty(),
        "graphopt-build without default features compiles logos"
    );
}

#[test]
fn facade_compiles_one_syn_major() {
    if let Some(problem) = syn_majors_problem(&normal_dependencies("graphopt", &[])) {
        panic!("{problem}");
    }
}

// The rule checker's own tests: each rule fires on a breaking source.

/// The layer problems of a source placed at `graphopt-core/src/<at>`, with a lib.rs that
/// re-exports the crate error as graphopt-core's does.
fn layers(at: &str, source: &str) -> Vec<String> {
    layers_with_lib(
        "pub mod error;\npub use error::{Error, Result};\n",
        at,
        source,
    )
}

/// The layer problems of a source placed at `graphopt-core/src/<at>` beside the lib.rs `lib`.
fn layers_with_lib(lib: &str, at: &str, source: &str) -> Vec<String> {
    let root = RootNames::from_lib(lib);
    assert!(root.problems.is_empty(), "{:?}", root.problems);
    layer_violations(at, at, source, &root)
}

#[test]
fn checker_sees_inline_paths_and_groups() {
    let source = "fn f() { let x = crate::transforms::parse(\"a\"); }\nuse crate::{graph, summary::dtype_name};\n";
    let problems = layers("eval/functional.rs", source);
    assert_eq!(problems.len(), 2, "{problems:?}");
    assert!(problems[0].contains("eval/functional.rs:1: module 'eval' may not use 'transforms'"));
    assert!(problems[1].contains("eval/functional.rs:2: module 'eval' may not use 'summary'"));
}

#[test]
fn checker_expands_groups_at_any_depth() {
    let paths = |source: &str| -> Vec<String> {
        crate_paths(source, &module_of("transforms/deploy.rs"))
            .into_iter()
            .map(|p| format!("{}:{}", p.line, p.path.join("::")))
            .collect()
    };
    assert_eq!(
        paths("use crate::transforms::{fold_constants::FoldConstants, Transform};"),
        [
            "1:transforms::fold_constants::FoldConstants",
            "1:transforms::Transform"
        ]
    );
    assert_eq!(
        paths("use crate::{transforms::{fold_constants::F}};"),
        ["1:transforms::fold_constants::F"]
    );
    assert_eq!(
        paths("use crate::{\n  rewrite::{a, b::{c, d as e}},\n  transforms::{self, *},\n};"),
        [
            "2:rewrite::a",
            "2:rewrite::b::c",
            "2:rewrite::b::d",
            "3:transforms",
            "3:transforms::*"
        ]
    );
    assert_eq!(
        paths("let x = crate::rewrite::f::<u8>(); pub(crate) fn g() {} pub(in crate::rewrite) fn h() {}"),
        ["1:rewrite::f", "1:rewrite"]
    );
    // Both forms of the audit's finding are reported as a transform importing another.
    for source in [
        "use crate::transforms::{fold_constants::FoldConstants, Transform};",
        "use crate::{transforms::{fold_constants::F}};",
        "use super::{fold_constants::{self, F}, Transform};",
    ] {
        let problems = layers("transforms/deploy.rs", source);
        assert!(
            !problems.is_empty()
                && problems.iter().all(|p| p.contains(
                    "transforms/deploy.rs:1: the transform 'deploy' uses another transform's file: crate::transforms::fold_constants"
                )),
            "{source}: {problems:?}"
        );
    }
}

#[test]
fn checker_resolves_super() {
    // From eval/mod.rs, super:: is the crate root.
    let problems = layers("eval/mod.rs", "use super::freeze::x;");
    assert_eq!(problems.len(), 1, "{problems:?}");
    // From eval/shapes.rs, super:: is eval itself.
    assert!(layers("eval/shapes.rs", "use super::kernels;").is_empty());
    assert_eq!(
        layers("eval/shapes.rs", "use super::super::rewrite;").len(),
        1
    );
    // Inside an inline module, super:: counts from that module.
    assert!(layers("eval/mod.rs", "mod tests { use super::freeze; }").is_empty());
    assert_eq!(
        layers("eval/mod.rs", "mod tests { use super::super::freeze; }").len(),
        1
    );
}

#[test]
fn checker_ignores_comments_and_strings() {
    let source = "// crate::transforms::x\n/* crate::freeze */ const S: &str = \"crate::verify\";\nconst R: &str = r#\"crate::summary\"#; const C: char = '\"'; fn g<'a>() {}";
    assert!(layers("graph/mod.rs", source).is_empty());
}

#[test]
fn checker_catches_a_transform_using_another() {
    let source = "use super::fold_constants::fold;\nuse super::{Transform, TransformContext, Params};\nfn f() { crate::transforms::strip_unused_nodes::g(); }";
    let problems = layers("transforms/fold_batch_norms.rs", source);
    assert_eq!(problems.len(), 2, "{problems:?}");
    assert!(
        problems[0].contains("uses another transform's file: crate::transforms::fold_constants")
    );
    assert!(problems[1].contains(":3: the transform 'fold_batch_norms' uses another transform's file: crate::transforms::strip_unused_nodes"));
    // Also in its tests.
    let problems = layers(
        "transforms/deploy.rs",
        "#[cfg(test)]\nmod tests { use super::super::fold_constants::F; }",
    );
    assert_eq!(problems.len(), 1, "{problems:?}");
    // Its own file, from its tests, is fine; so is the machinery among itself.
    assert!(layers(
        "transforms/deploy.rs",
        "mod tests { use super::*; use crate::transforms::deploy::Deploy; }"
    )
    .is_empty());
    assert!(layers("transforms/mod.rs", "use self::deploy::Deploy; mod deploy;").is_empty());
    // A shared name of mod.rs that is not in the interface must be added on purpose.
    let problems = layers("transforms/deploy.rs", "use super::Helper;");
    assert!(
        problems[0].contains("not in the transform interface"),
        "{problems:?}"
    );
}

#[test]
fn checker_rejects_globs_and_the_module_itself_in_a_transform() {
    for source in [
        "use super::*;",
        "use crate::transforms::*;",
        "use super::{Transform, *};",
        "use crate::*;",
        "use super::super::*;",
    ] {
        let problems = layers("transforms/deploy.rs", source);
        assert_eq!(problems.len(), 1, "{source}: {problems:?}");
        assert!(problems[0].contains("glob-imports"), "{problems:?}");
    }
    for source in [
        "use crate::transforms;",
        "use super::{self, Transform};",
        "use super as t;",
    ] {
        let problems = layers("transforms/deploy.rs", source);
        assert_eq!(problems.len(), 1, "{source}: {problems:?}");
        assert!(
            problems[0].contains("transforms module itself"),
            "{problems:?}"
        );
    }
    // The transforms module and the machinery may; so may any other module.
    assert!(layers("transforms/mod.rs", "mod tests { use super::*; }").is_empty());
    assert!(layers("transforms/spec.rs", "use super::*;").is_empty());
    assert!(layers("rewrite/constants.rs", "use super::*;").is_empty());
    assert!(layers(
        "transforms/deploy.rs",
        "pub(in crate::transforms) fn f() {}"
    )
    .is_empty());
}

#[test]
fn checker_catches_a_transform_calling_the_registry() {
    for source in [
        "use super::Registry;",
        "fn f() { let r = crate::transforms::Registry::with_builtins(); }",
        "use crate::transforms::{parse, run};",
        "use super::spec::parse;",
        "fn f() { let s = super::parse(\"fold_constants\"); }",
        "use super::{TransformSpec, TransformOutcome};",
        "fn f(r: &R) { let x = R::with_builtins(); }",
    ] {
        let problems = layers("transforms/legalize.rs", source);
        assert!(
            !problems.is_empty() && problems.iter().all(|p| p.contains("registry")),
            "{source}: {problems:?}"
        );
    }
    // One report per line.
    assert_eq!(
        layers("transforms/deploy.rs", "use super::Registry;").len(),
        1
    );
    // A transform's tests may drive it through the registry.
    assert!(layers(
        "transforms/fold_constants.rs",
        "#[cfg(test)]\nmod tests {\n    use crate::transforms::{parse, run, Registry};\n    fn t() { Registry::with_builtins(); }\n}"
    )
    .is_empty());
    // The registry's own files.
    assert!(layers(
        "transforms/mod.rs",
        "fn f() { Registry::with_builtins(); spec::parse(\"\"); }"
    )
    .is_empty());
    assert!(layers("transforms/spec.rs", "use super::Registry;").is_empty());
}

#[test]
fn checker_limits_the_crate_error_to_error_types() {
    assert!(layers("error.rs", "use crate::graph::GraphError;").is_empty());
    assert_eq!(layers("error.rs", "use crate::graph::validate;").len(), 1);
    assert_eq!(
        layers("error.rs", "use crate::verify::VerifyError;").len(),
        1
    );
    assert_eq!(
        layers("error.rs", "use crate::graph::{GraphError, validate};").len(),
        1
    );
}

#[test]
fn checker_follows_re_exports_at_the_crate_root() {
    let lib = "pub mod eval;\npub mod transforms;\npub mod error;\n\
               pub use transforms::Registry;\n\
               pub use crate::transforms::{spec::parse as parse_spec, Transform};\n\
               use self::summary as s;\n\
               pub use error::{Error, Result};\n\
               pub use Registry as Builtins;\n\
               pub use std::fmt::Write as _;\n";
    // The audit's case: eval reaching the transforms through `crate::Registry`.
    let source = "fn f() { let r = crate::Registry::with_builtins(); }";
    let problems = layers_with_lib(lib, "eval/functional.rs", source);
    assert_eq!(
        problems,
        [
            "eval/functional.rs:1: module 'eval' may not use 'transforms' \
          (crate::transforms::Registry::with_builtins); it may use: proto, dtype, tensor, error, \
          budget, graph, analysis (crate::Registry::with_builtins is \
          crate::transforms::Registry::with_builtins through lib.rs)"
        ]
    );
    // Without the re-export, `crate::Registry` is no module's: nothing to report.
    assert!(layers_with_lib("pub mod eval;\n", "eval/functional.rs", source).is_empty());
    // Renames, groups, `self::`, re-exports of re-exports, and `super::` from a module's root
    // file.
    for (at, source, module) in [
        ("eval/mod.rs", "use crate::parse_spec;", "transforms"),
        (
            "eval/mod.rs",
            "use crate::{Transform, graph};",
            "transforms",
        ),
        ("eval/mod.rs", "use super::Builtins;", "transforms"),
        (
            "graph/mod.rs",
            "fn f() { crate::s::dtype_name(); }",
            "summary",
        ),
        ("budget.rs", "use crate::Result;", "error"),
    ] {
        let problems = layers_with_lib(lib, at, source);
        assert_eq!(problems.len(), 1, "{source}: {problems:?}");
        assert!(
            problems[0].contains(&format!("may not use '{module}'"))
                && problems[0].contains("through lib.rs"),
            "{source}: {problems:?}"
        );
    }
    // What a module may use stays allowed through the root; so does the crate error.
    assert!(layers_with_lib(lib, "rewrite/constants.rs", "use crate::{Error, Result};").is_empty());
    assert!(layers_with_lib(lib, "freeze/mod.rs", "use crate::Result;").is_empty());
    // A transform reaching the registry or another transform through the root.
    let problems = layers_with_lib(lib, "transforms/deploy.rs", "use crate::Builtins;");
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(problems[0].contains("registry"), "{problems:?}");
    let lib = "pub mod transforms;\npub use transforms::fold_constants::fold;\n";
    let problems = layers_with_lib(lib, "transforms/deploy.rs", "fn f() { crate::fold(); }");
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(
        problems[0].contains("uses another transform's file: crate::transforms::fold_constants"),
        "{problems:?}"
    );
}

#[test]
fn checker_traces_exported_macros_and_rejects_root_globs() {
    let mut root = RootNames::from_lib("pub mod eval;\npub mod tensor;\n");
    root.add_exported_macros(
        "eval/kernels.rs",
        "#[macro_export]\n#[doc(hidden)]\nmacro_rules! kernel { () => {} }\nmacro_rules! local { () => {} }",
    );
    root.add_exported_macros(
        "tensor.rs",
        "// #[macro_export] in a comment\n#[macro_export]\nmacro_rules! map_data { () => {} }",
    );
    assert_eq!(
        root.names.keys().collect::<Vec<_>>(),
        ["kernel", "map_data"],
        "{root:?}"
    );
    let problems = layer_violations(
        "graph/mod.rs",
        "graph/mod.rs",
        "fn f() { crate::kernel!(); }",
        &root,
    );
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(problems[0].contains("may not use 'eval' (crate::eval::kernels::kernel)"));
    assert!(layer_violations(
        "graph/mod.rs",
        "graph/mod.rs",
        "fn f() { crate::map_data!(); }",
        &root
    )
    .is_empty());
    // A glob at the root hides where its names come from.
    for lib in [
        "pub mod transforms;\npub use transforms::*;\n",
        "pub mod eval;\nuse crate::eval::{kernels::*};\n",
    ] {
        let root = RootNames::from_lib(lib);
        assert_eq!(root.problems.len(), 1, "{lib}: {:?}", root.problems);
        assert!(root.problems[0].contains("glob-imports a module at the crate root"));
    }
    // An extern crate's glob is not graphopt-core's layering.
    assert!(RootNames::from_lib("use std::fmt::*;\n")
        .problems
        .is_empty());
}

#[test]
fn checker_requires_every_module_in_the_table() {
    let problems = layers("newmod.rs", "");
    assert_eq!(problems.len(), 1);
    assert!(problems[0].contains("no entry"));
    let lib: String = MAY_USE
        .iter()
        .filter(|(m, _)| *m != "pages")
        .map(|(m, _)| format!("pub mod {m};\n"))
        .collect();
    let problems = module_table_problems(&format!("{lib}pub(crate) mod pages;\nmod extra;\n"));
    assert_eq!(
        problems,
        ["lib.rs declares 'extra', which has no entry in MAY_USE"]
    );
    let problems = module_table_problems(&lib);
    assert_eq!(
        problems,
        ["MAY_USE lists 'pages', which lib.rs does not declare"]
    );
}

#[test]
fn checker_finds_panics_outside_tests() {
    let source = "fn f() { x.unwrap(); }\n#[cfg(test)]\nmod tests { fn t() { y.unwrap(); panic!(); } }\nfn g() { z.expect(\"why\"); }\n// a.unwrap()\n";
    let problems = panicking_calls("f.rs", source);
    assert_eq!(
        problems,
        [
            "f.rs:1: `.unwrap()` in library code",
            "f.rs:4: `.expect()` in library code"
        ]
    );
}

#[test]
fn checker_finds_every_panicking_call() {
    let cases = [
        ("a\n  .unwrap ()", "`.unwrap()`"),
        ("a.unwrap_err()", "`.unwrap_err()`"),
        ("a.expect_err(\"x\")", "`.expect_err()`"),
        ("v.map(Option::unwrap)", "`Option::unwrap`"),
        ("v.map(Result::unwrap)", "`Result::unwrap`"),
        ("v.map(|x| Option::expect(x, \"y\"))", "`Option::expect`"),
        ("v.map(std::result::Result::expect)", "`Result::expect`"),
        ("v.map(Option::<u8>::unwrap)", "`Option::unwrap`"),
        ("panic!(\"x\")", "`panic!`"),
        ("std::panic!(\"x\")", "`panic!`"),
        ("todo!()", "`todo!`"),
        ("unimplemented!()", "`unimplemented!`"),
        // Policy: unreachable! is banned like the others (see PANICKING_MACROS).
        ("unreachable!()", "`unreachable!`"),
        ("unreachable !()", "`unreachable!`"),
    ];
    for (code, expected) in cases {
        let problems = panicking_calls("f.rs", &format!("fn f() {{ {code}; }}"));
        assert_eq!(problems.len(), 1, "{code}: {problems:?}");
        assert!(problems[0].contains(expected), "{code}: {problems:?}");
    }
    // Not panicking: other methods, another type's `unwrap`, other macros, a word alone.
    for code in [
        "a.unwrap_or(1)",
        "a.unwrap_or_default()",
        "a.unwrap_or_else(f)",
        "T::unwrap(data)",
        "Wrapper::<u8>::expect(x)",
        "dont_panic!()",
        "assert!(x)",
        "let unwrap = 1",
        "std::panic::catch_unwind(f)",
        "if panic != 0 {}",
        "x..unwrap",
    ] {
        let problems = panicking_calls("f.rs", &format!("fn f() {{ {code}; }}"));
        assert!(problems.is_empty(), "{code}: {problems:?}");
    }
}

#[test]
fn checker_counts_unsafe_tokens_only() {
    assert_eq!(
        unsafe_count("unsafe { x } // unsafe\nlet not_unsafe = 1; \"unsafe\""),
        1
    );
    assert!(unsafe_problem("graphopt-core/src/eval/gemm.rs", "unsafe { x }").is_some());
    assert!(unsafe_problem("graphopt-core/src/eval/gemm.rs", "fn f() {}").is_none());
    let (pages, allowed) = UNSAFE_ALLOWED[0];
    assert!(unsafe_problem(pages, &"unsafe {}\n".repeat(allowed)).is_none());
    assert!(unsafe_problem(pages, &"unsafe {}\n".repeat(allowed + 1)).is_some());
}

#[test]
fn checker_reads_the_library_members() {
    let manifest = "[workspace]\nmembers = [\n    \"lib-a\",\n    \"tools/cli\", \"examples/app\",\n]\nexclude = [\"fuzz\"]\n\n[workspace.dependencies]\nx = \"1\"\n\n[package]\nname = \"root\"\n";
    assert_eq!(
        workspace_members(manifest),
        [".", "lib-a", "tools/cli", "examples/app"]
    );
    assert_eq!(
        library_source_dirs(manifest),
        ["src", "lib-a/src", "tools/cli/src"]
    );
    // A virtual manifest has no root package.
    assert_eq!(
        library_source_dirs("[workspace]\nmembers = [\"a\"]\n"),
        ["a/src"]
    );
}

#[test]
fn checker_reads_cargo_tree() {
    let output = "graphopt v0.1.0 (/w)\ngraphopt-macros v0.1.0 (/w/graphopt-macros)\nproc-macro2 v1.0.95\nsyn v2.0.104\nserde_derive v1.0.219 (proc-macro)\nsyn v3.0.1\nsyn v2.0.104 (*)\n\n";
    let deps = tree_lines(output);
    assert_eq!(deps.len(), 7);
    let problem = syn_majors_problem(&deps).unwrap_or_default();
    assert!(problem.contains("{\"2\", \"3\"}"), "{problem}");
    assert!(syn_majors_problem(&deps[..4]).is_none());
    assert!(links_core_problem("graphopt", &deps).is_none());
    let with_core = tree_lines("graphopt v0.1.0 (/w)\ngraphopt-core v0.1.0 (/w/graphopt-core)\n");
    assert!(links_core_problem("graphopt", &with_core).is_some());
    assert_eq!(
        eval_feature_problems(&tree_lines(
            "graphopt v0.1.0 (/w)\ngraphopt-core v0.1.0 (/w/graphopt-core)\nndarray v0.17.1\n"
        )),
        Vec::<String>::new()
    );
    assert_eq!(
        eval_feature_problems(&tree_lines(
            "graphopt v0.1.0 (/w)\ngraphopt-core v0.1.0 (/w/graphopt-core)\nmiette v7.6.0\nmemmap2 v0.9.5\n"
        )),
        [
            "graphopt with `eval` compiles miette",
            "graphopt with `eval` compiles memmap2"
        ]
    );
    assert_eq!(
        eval_feature_problems(&tree_lines("graphopt v0.1.0 (/w)\n")),
        ["graphopt with `eval` compiles graphopt-core 0 times"]
    );
    let build = "graphopt-build v0.1.0 (/w/graphopt-build)\ngraphopt-core v0.1.0 (/w/graphopt-core)\nprost-reflect v0.16.2\n";
    assert!(build_problems(&tree_lines(build)).is_empty());
    assert_eq!(
        build_problems(&tree_lines(&format!(
            "{build}miette v7.6.0\nmiette-derive v7.6.0 (proc-macro)\n"
        ))),
        ["graphopt-build compiles miette"]
    );
}

/// The README counts the `unsafe` blocks `pages` may hold.
#[test]
fn readme_counts_the_unsafe_blocks() {
    let readme = std::fs::read_to_string(workspace_root().join("README.md")).unwrap();
    let readme = readme.split_whitespace().collect::<Vec<_>>().join(" ");
    let words = ["no", "one", "two", "three", "four", "five", "six"];
    let (_, allowed) = UNSAFE_ALLOWED[0];
    let said = format!("no `unsafe` outside `pages` ({} blocks:", words[allowed]);
    assert!(readme.contains(&said), "README.md should say \"{said}\"");
}

/// The README's toolchain floor is the workspace's `rust-version`, which clippy's
/// `incompatible_msrv` holds the code to.
#[test]
fn readme_states_the_workspace_rust_version() {
    let manifest = root_manifest();
    let version = manifest
        .lines()
        .find_map(|l| l.trim().strip_prefix("rust-version = \""))
        .and_then(|rest| rest.strip_suffix('"'))
        .expect("the workspace's rust-version");
    let readme = std::fs::read_to_string(workspace_root().join("README.md")).expect("README.md");
    let stated = format!("(stable, {version} or newer; clippy's `incompatible_msrv` lint");
    let text = readme.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(
        text.contains(&stated) && text.contains(&format!("holds the code to {version}'s")),
        "README.md should say {stated:?} and that clippy holds the code to {version}"
    );
}

/// The README calls the facade (without `eval`) and graphopt-types `no_std`: each declares it,
/// and neither brings `std` back in outside its tests. (No `no_std` target is installed here
/// to build for.)
#[test]
fn the_no_std_crates_stay_no_std() {
    for (file, attribute) in [
        (
            "src/lib.rs",
            "#![cfg_attr(not(feature = \"eval\"), no_std)]",
        ),
        ("graphopt-types/src/lib.rs", "#![no_std]"),
    ] {
        let source = std::fs::read_to_string(workspace_root().join(file)).expect(file);
        assert!(
            source.lines().any(|l| l.trim() == attribute),
            "{file} no longer declares {attribute}"
        );
        assert!(
            !without_tests(&code_only(&source)).contains("extern crate std"),
            "{file} brings std back in"
        );
    }
}

/// The README's sentence on graphopt-core's layers, white space normalized: from `data (` to
/// `use no transform.`.
fn readme_layer_sentence(readme: &str) -> String {
    let text = readme.split_whitespace().collect::<Vec<_>>().join(" ");
    let start = text
        .find("form layers, each using only those below it")
        .and_then(|at| text[at..].find("data (").map(|data| at + data))
        .expect("README.md: the layer sentence (\"form layers, ... data (\")");
    let end = text[start..]
        .find("use no transform.")
        .expect("README.md: the layer sentence's end (\"use no transform.\")");
    text[start..start + end].to_string()
}

/// The words between backticks in `text`, in order.
fn backticked(text: &str) -> Vec<&str> {
    text.split('`').skip(1).step_by(2).collect()
}

/// Problems with the README's layer sentence against [`MAY_USE`]: every module of the table
/// named, each layer using only its own and lower layers' modules (the data layer's modules
/// among themselves), and `freeze`, `summary`, `verify` using what the sentence says they
/// are on and no transform.
fn layer_sentence_problems(sentence: &str, may_use: &[(&str, &[&str])]) -> Vec<String> {
    let mut problems = Vec::new();
    let uses = |module: &str| -> Option<&[&str]> {
        may_use.iter().find(|(m, _)| *m == module).map(|(_, u)| *u)
    };
    let (chain, tail) = match sentence.split_once(". `") {
        Some((chain, tail)) => (chain, format!("`{tail}")),
        None => (sentence, String::new()),
    };
    // Each layer of the chain: the data layer's parenthesized modules, then one module each.
    let mut layers: Vec<Vec<&str>> = Vec::new();
    for (k, segment) in chain.split(" < ").enumerate() {
        let names = backticked(segment);
        let layer: Vec<&str> = if k == 0 {
            names
        } else {
            names.into_iter().take(1).collect()
        };
        if layer.is_empty() {
            problems.push(format!("layer {k} names no module: {segment}"));
        }
        layers.push(layer);
    }
    let layer_of = |module: &str| layers.iter().position(|l| l.contains(&module));
    for (k, layer) in layers.iter().enumerate() {
        for module in layer {
            let Some(used) = uses(module) else {
                problems.push(format!("`{module}` is not a module of MAY_USE"));
                continue;
            };
            for u in used {
                match layer_of(u) {
                    Some(at) if at <= k => {}
                    Some(at) => problems.push(format!(
                        "`{module}` (layer {k}) uses `{u}` (layer {at}), above it"
                    )),
                    None => problems.push(format!(
                        "`{module}` (layer {k}) uses `{u}`, which is in no layer of the sentence"
                    )),
                }
            }
        }
    }
    // `freeze` (on `rewrite`), `summary` (on `analysis`) and `verify` (on `eval` and `summary`)
    let mut named: Vec<&str> = layers.iter().flatten().copied().collect();
    for part in tail.split("), ").flat_map(|p| p.split(") and ")) {
        let words = backticked(part);
        let Some((module, on)) = words.split_first() else {
            continue;
        };
        named.push(module);
        let Some(used) = uses(module) else {
            problems.push(format!("`{module}` is not a module of MAY_USE"));
            continue;
        };
        for o in on {
            if !used.contains(o) {
                problems.push(format!(
                    "`{module}` is said to be on `{o}`, which it may not use"
                ));
            }
        }
        if used.contains(&"transforms") {
            problems.push(format!("`{module}` is said to use no transform"));
        }
    }
    for (module, _) in may_use {
        if !named.contains(module) {
            problems.push(format!("the README's layers do not name `{module}`"));
        }
    }
    problems
}

/// The README's layer sentence is MAY_USE's: every module named, in an order MAY_USE keeps.
#[test]
fn readme_layers_are_the_may_use_table() {
    let readme = std::fs::read_to_string(workspace_root().join("README.md")).expect("README.md");
    let problems = layer_sentence_problems(&readme_layer_sentence(&readme), MAY_USE);
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_layer_sentence_check_fires() {
    let table: &[(&str, &[&str])] = &[
        ("proto", &[]),
        ("io", &["proto"]),
        ("graph", &["proto"]),
        ("rewrite", &["graph"]),
        ("transforms", &["rewrite"]),
        ("freeze", &["rewrite"]),
    ];
    let good = "data (`proto`, `io`) < `graph` (model) < `rewrite` < `transforms` (thin). \
                `freeze` (on `rewrite`)";
    assert!(layer_sentence_problems(good, table).is_empty());
    // A module left out, layers in the wrong order, a wrong "on".
    let missing = "data (`proto`) < `graph` < `rewrite` < `transforms`. `freeze` (on `rewrite`)";
    assert_eq!(
        layer_sentence_problems(missing, table),
        ["the README's layers do not name `io`"]
    );
    let swapped =
        "data (`proto`, `io`) < `rewrite` < `graph` < `transforms`. `freeze` (on `rewrite`)";
    assert_eq!(
        layer_sentence_problems(swapped, table),
        ["`rewrite` (layer 1) uses `graph` (layer 2), above it"]
    );
    let wrong_on =
        "data (`proto`, `io`) < `graph` < `rewrite` < `transforms`. `freeze` (on `graph`)";
    assert_eq!(
        layer_sentence_problems(wrong_on, table),
        ["`freeze` is said to be on `graph`, which it may not use"]
    );
}

/// The entries of the README's Layout block: (path, description), the path as the block's
/// first word of a line, a description line (indented) joined to the entry above it.
fn readme_layout_entries(readme: &str) -> Vec<(String, String)> {
    let section = &readme[readme.find("\n## Layout").expect("README.md: ## Layout")..];
    let block = section
        .split("```")
        .nth(1)
        .expect("README.md: the Layout code block");
    let mut entries: Vec<(String, String)> = Vec::new();
    for line in block.lines().filter(|l| !l.trim().is_empty()) {
        if line.starts_with(' ') {
            if let Some((_, description)) = entries.last_mut() {
                description.push(' ');
                description.push_str(line.trim());
            }
            continue;
        }
        let (path, description) = line.split_once(' ').unwrap_or((line, ""));
        entries.push((path.to_string(), description.trim().to_string()));
    }
    entries
}

/// Problems with the Layout block against the files `exists` finds and the repository's
/// top-level directories `top`: each path the block lists exists, each top-level directory
/// is listed (`src/` is the facade's, which the `Cargo.toml` line names), and each file or
/// directory a description names (`tidy.rs`, `fixtures/`, `bench/app_build_time.sh`)
/// exists, inside its entry or from the root.
fn layout_problems(
    entries: &[(String, String)],
    top: &[String],
    exists: &dyn Fn(&str) -> bool,
) -> Vec<String> {
    let mut problems = Vec::new();
    for (path, description) in entries {
        if !exists(path) {
            problems.push(format!("Layout lists {path}, which does not exist"));
        }
        for word in description.split([' ', '(', ')', ',', ';', ':']) {
            let word = word.trim_matches(|c: char| c == '`' || c == '.');
            let named = word.ends_with('/')
                || [".rs", ".md", ".sh", ".toml"]
                    .iter()
                    .any(|ext| word.ends_with(ext) && word.len() > ext.len());
            if named && !exists(&format!("{path}{word}")) && !exists(word) {
                problems.push(format!(
                    "Layout's {path} names {word}, which does not exist"
                ));
            }
        }
    }
    for dir in top {
        let listed = entries.iter().any(|(path, _)| {
            path.trim_end_matches('/') == dir || path.starts_with(&format!("{dir}/"))
        });
        if !listed && dir != "src" {
            problems.push(format!("Layout does not list {dir}/"));
        }
    }
    problems
}

/// The README's Layout block lists what the repository holds.
#[test]
fn readme_layout_is_the_repository() {
    let root = workspace_root();
    let readme = std::fs::read_to_string(root.join("README.md")).expect("README.md");
    let entries = readme_layout_entries(&readme);
    assert!(entries.len() >= 10, "{entries:?}");
    let top: Vec<String> = std::fs::read_dir(&root)
        .expect("the workspace root")
        .filter_map(|e| e.ok())
        .filter(|e| e.path().is_dir())
        .filter_map(|e| e.file_name().into_string().ok())
        // Hidden directories, and what builds make (git ignores `target/`).
        .filter(|name| !name.starts_with('.') && name != "target")
        .collect();
    let problems = layout_problems(&entries, &top, &|p: &str| root.join(p).exists());
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_layout_check_fires() {
    let entries = vec![
        ("docs/".to_string(), "benchmarks.md, gone.md".to_string()),
        ("tests/".to_string(), "tidy.rs, fixtures/".to_string()),
        ("old/".to_string(), String::new()),
    ];
    let files = [
        "docs/",
        "docs/benchmarks.md",
        "tests/",
        "tests/tidy.rs",
        "tests/fixtures/",
    ];
    let exists = |p: &str| files.contains(&p);
    let top = ["docs".to_string(), "tests".to_string(), "bench".to_string()];
    assert_eq!(
        layout_problems(&entries, &top, &exists),
        [
            "Layout's docs/ names gone.md, which does not exist",
            "Layout lists old/, which does not exist",
            "Layout does not list bench/",
        ]
    );
}

/// `text` without its fenced code blocks (the first screen's and the usage block's commands
/// are run by graphopt-cli's readme_commands test) and with white space normalized.
fn prose_of(markdown: &str) -> String {
    let mut prose = String::new();
    let mut fenced = false;
    for line in markdown.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
        } else if !fenced {
            prose.push_str(line);
            prose.push('\n');
        }
    }
    prose.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The repository paths `prose` names: words that start with one of `top` (top-level
/// directories) and a slash, up to the first character a path here does not use, without a
/// trailing `.`. `src/` is left out: the README's `src/main.rs` is the app's, not this
/// repository's.
fn named_paths<'a>(prose: &'a str, top: &[String]) -> Vec<&'a str> {
    let is_path_char = |c: char| c.is_ascii_alphanumeric() || "_./*-".contains(c);
    let mut paths = Vec::new();
    for (at, _) in prose.char_indices() {
        if at > 0 && prose[..at].chars().next_back().is_some_and(is_path_char) {
            continue;
        }
        let rest = &prose[at..];
        let Some(dir) = top
            .iter()
            .filter(|d| d.as_str() != "src")
            .find(|d| rest.starts_with(&format!("{d}/")))
        else {
            continue;
        };
        let len = rest.find(|c: char| !is_path_char(c)).unwrap_or(rest.len());
        let path = rest[..len].trim_end_matches('.');
        if path.len() > dir.len() + 1 || path.ends_with('/') {
            paths.push(path);
        }
    }
    paths
}

/// The directory of workspace package `name`: the root for `graphopt`, else the member
/// directory (or `examples/NAME`) whose manifest names it.
fn package_dir(name: &str, read: &dyn Fn(&str) -> Option<String>) -> Option<String> {
    let declares = |dir: &str| {
        let manifest = if dir.is_empty() {
            "Cargo.toml".to_string()
        } else {
            format!("{dir}/Cargo.toml")
        };
        read(&manifest).is_some_and(|m| m.contains(&format!("name = \"{name}\"")))
    };
    [String::new(), name.to_string(), format!("examples/{name}")]
        .into_iter()
        .find(|dir| declares(dir))
}

/// Problems with what the README's prose names: each repository path exists (a `*` pattern:
/// its directory), each backticked `cargo` command's package, `--bench`, `--test`,
/// `--manifest-path` and `--lib` test name exist, and each flag given to a `bench/*.py` or
/// `tests/**/*.py` script is one the script defines.
fn readme_reference_problems(
    prose: &str,
    top: &[String],
    read: &dyn Fn(&str) -> Option<String>,
    exists: &dyn Fn(&str) -> bool,
) -> Vec<String> {
    let mut problems = Vec::new();
    for path in named_paths(prose, top) {
        let checked = match path.find('*') {
            Some(star) => &path[..path[..star].rfind('/').map_or(0, |s| s + 1)],
            None => path,
        };
        if !exists(checked) {
            problems.push(format!("the README names {path}, which does not exist"));
        }
    }
    let spans: Vec<&str> = prose.split('`').skip(1).step_by(2).collect();
    for span in spans {
        let words: Vec<&str> = span
            .split_whitespace()
            .map(|w| w.trim_matches(|c| c == '[' || c == ']'))
            .collect();
        if words.first() == Some(&"cargo") {
            let value = |flag: &str| {
                words
                    .iter()
                    .position(|w| *w == flag)
                    .and_then(|k| words.get(k + 1))
                    .copied()
            };
            let package = value("-p").or_else(|| value("--package"));
            let dir = match package {
                Some(name) => match package_dir(name, read) {
                    Some(dir) => dir,
                    None => {
                        problems.push(format!("`{span}`: no workspace package {name}"));
                        continue;
                    }
                },
                None => String::new(),
            };
            let inside = |rest: &str| {
                if dir.is_empty() {
                    rest.to_string()
                } else {
                    format!("{dir}/{rest}")
                }
            };
            if let Some(bench) = value("--bench") {
                if !exists(&inside(&format!("benches/{bench}.rs"))) {
                    problems.push(format!("`{span}`: no bench {bench}"));
                }
            }
            if let Some(test) = value("--test") {
                if !exists(&inside(&format!("tests/{test}.rs"))) {
                    problems.push(format!("`{span}`: no test target {test}"));
                }
            }
            if let Some(path) = value("--manifest-path") {
                if !exists(path) {
                    problems.push(format!("`{span}`: no {path}"));
                }
            }
            // `--lib -- [flags] NAME`: a test function of the library.
            if words.contains(&"--lib") {
                let after = words
                    .iter()
                    .position(|w| *w == "--")
                    .map_or(&[][..], |k| &words[k + 1..]);
                if let Some(name) = after.iter().rev().find(|w| !w.starts_with('-')) {
                    let lib = read(&inside("src/lib.rs")).unwrap_or_default();
                    let modules: Vec<String> = lib
                        .lines()
                        .filter_map(|l| {
                            l.trim()
                                .strip_prefix("mod ")
                                .or_else(|| l.trim().strip_prefix("pub mod "))
                        })
                        .map(|m| inside(&format!("src/{}.rs", m.trim_end_matches(';'))))
                        .collect();
                    let found = modules
                        .iter()
                        .chain([&inside("src/lib.rs")])
                        .any(|file| read(file).is_some_and(|s| s.contains(&format!("fn {name}("))));
                    if !found {
                        problems.push(format!("`{span}`: no test function {name} in {dir}/src"));
                    }
                }
            }
        }
        // A script and the flags given to it.
        for (k, word) in words.iter().enumerate() {
            if !(word.ends_with(".py")
                && (word.starts_with("bench/") || word.starts_with("tests/")))
            {
                continue;
            }
            let Some(script) = read(word) else {
                problems.push(format!("`{span}`: no script {word}"));
                continue;
            };
            for flag in words[k + 1..].iter().take_while(|w| w.starts_with("--")) {
                let name = flag.split('=').next().unwrap_or(flag);
                if !script.contains(&format!("\"{name}\"")) {
                    problems.push(format!("`{span}`: {word} defines no {name}"));
                }
            }
        }
    }
    problems
}

/// Every file, directory, cargo target and script flag the README's prose names exists.
#[test]
fn readme_references_exist() {
    let root = workspace_root();
    let readme = std::fs::read_to_string(root.join("README.md")).expect("README.md");
    let top: Vec<String> = std::fs::read_dir(&root)
        .expect("the workspace root")
        .filter_map(|e| e.ok())
        .filter(|e| e.path().is_dir())
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|name| !name.starts_with('.') && name != "target")
        .collect();
    let prose = prose_of(&readme);
    let paths = named_paths(&prose, &top);
    assert!(paths.len() >= 30, "{paths:?}");
    let problems = readme_reference_problems(
        &prose,
        &top,
        &|p: &str| std::fs::read_to_string(root.join(p)).ok(),
        &|p: &str| root.join(p).exists(),
    );
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_reference_check_fires() {
    let files: BTreeMap<&str, &str> = [
        ("Cargo.toml", "name = \"graphopt\""),
        ("core/Cargo.toml", "name = \"core\""),
        ("core/benches/io.rs", ""),
        ("core/src/lib.rs", "mod hash;\n"),
        ("core/src/hash.rs", "fn speed() {}"),
        ("bench/run.py", "add_argument(\"--models\")"),
        ("docs/a.md", ""),
    ]
    .into();
    let read = |p: &str| files.get(p).map(|s| s.to_string());
    let exists = |p: &str| files.contains_key(p) || files.keys().any(|f| f.starts_with(p));
    let top = ["bench".to_string(), "docs".to_string(), "core".to_string()];
    let good = "see docs/a.md. `cargo bench -p core --bench io` and `cargo test -p core --lib -- --ignored speed` \
                and `bench/run.py --models x`, core/benches/*.rs";
    assert!(readme_reference_problems(good, &top, &read, &exists).is_empty());
    let bad =
        "see docs/b.md. `cargo bench -p core --bench eval` `cargo test -p core --lib -- slow` \
               `cargo run -p nothing` `bench/run.py --runs 3` `cargo test --test tidy`";
    assert_eq!(
        readme_reference_problems(bad, &top, &read, &exists),
        [
            "the README names docs/b.md, which does not exist",
            "`cargo bench -p core --bench eval`: no bench eval",
            "`cargo test -p core --lib -- slow`: no test function slow in core/src",
            "`cargo run -p nothing`: no workspace package nothing",
            "`bench/run.py --runs 3`: bench/run.py defines no --runs",
            "`cargo test --test tidy`: no test target tidy",
        ]
    );
}

/// The README's statements about which crate does a job, held to the manifests: matrix
/// products take matrixmultiply's AVX-512 kernels (its `avx512` feature), a build script hashes
/// with sha2-asm's compression function on x86_64, and folding computes transcendental
/// functions with the `libm` crate.
#[test]
fn readme_dependency_statements_hold() {
    let root = workspace_root();
    let readme = std::fs::read_to_string(root.join("README.md")).expect("README.md");
    let readme = readme.split_whitespace().collect::<Vec<_>>().join(" ");
    let manifest = |path: &str| {
        std::fs::read_to_string(root.join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
    };
    let dependency_line = |text: &str, name: &str| -> Option<String> {
        text.lines()
            .find(|l| {
                l.trim_start().starts_with(&format!("{name} "))
                    || l.trim_start().starts_with(&format!("{name}."))
            })
            .map(str::to_string)
    };
    for (said, path, crate_name, needle) in [
        (
            "Matrix products now take matrixmultiply's AVX-512 kernels on a CPU that has them",
            "Cargo.toml",
            "matrixmultiply",
            "\"avx512\"",
        ),
        (
            "hashing uses sha2-asm's compression function on x86_64",
            "graphopt-build/Cargo.toml",
            "sha2-asm",
            "",
        ),
        (
            "folding computes transcendental functions with the `libm` crate",
            "graphopt-core/Cargo.toml",
            "libm",
            "",
        ),
    ] {
        assert!(readme.contains(said), "README.md no longer says \"{said}\"");
        let text = manifest(path);
        let line = dependency_line(&text, crate_name)
            .unwrap_or_else(|| panic!("{path} does not depend on {crate_name}: \"{said}\""));
        assert!(line.contains(needle), "{path}: {line} (\"{said}\")");
    }
    // sha2-asm only where it builds: x86_64.
    let build = manifest("graphopt-build/Cargo.toml");
    let section = build
        .split("\n[")
        .find(|s| s.lines().any(|l| l.trim_start().starts_with("sha2-asm ")))
        .unwrap_or("");
    assert!(
        section.starts_with("target.") && section.contains("target_arch = \"x86_64\""),
        "graphopt-build's sha2-asm is not an x86_64 dependency: {section}"
    );
}
