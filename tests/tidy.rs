//! Tidy checks: the architecture rules of graphopt, written down as data and checked on every
//! source file, so a broken layer boundary fails `cargo test` with the file and the path.
//!
//! Rules:
//! - inside graphopt-core, a module uses only the modules listed for it in [`MAY_USE`]
//!   (every `crate::` and `super::` path counts, not only `use` lines);
//! - a transform never uses another transform's file;
//! - graphopt-macros and the facade with default features never depend on graphopt-core, and
//!   the facade's normal dependencies compile one major version of syn;
//! - no `unsafe` outside the memory-mapping module;
//! - no `unwrap`, `expect`, `panic!`, `todo!`, `unimplemented!`, `unreachable!` in library code.

use std::collections::BTreeSet;
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
    ("io", &["proto", "text_format", "error", "budget", "pages"]),
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
            "proto", "dtype", "tensor", "error", "budget", "pages", "graph", "analysis", "eval",
        ],
    ),
    // transforms: thin registered wrappers over rewrite
    (
        "transforms",
        &[
            "proto", "dtype", "tensor", "error", "budget", "graph", "analysis", "eval", "rewrite",
        ],
    ),
    // users of the transforms
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
        "targets",
        &[
            "proto", "dtype", "tensor", "error", "graph", "analysis", "eval", "rewrite",
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
];

/// Files allowed to contain `unsafe`, with how many times: mapping a file read-only, advising
/// the system that pages of such a mapping may leave the resident set, allowing huge pages
/// on new weight buffers, starting writeback.
const UNSAFE_ALLOWED: &[(&str, usize)] = &[("graphopt-core/src/pages.rs", 4)];

/// Library source trees where panicking calls are banned.
const LIBRARY_SOURCES: &[&str] = &[
    "src",
    "graphopt-core/src",
    "graphopt-build/src",
    "graphopt-macros/src",
    "graphopt-cli/src",
    "graphopt-source-hash/src",
];

/// Generated code, exempt from the source rules.
const GENERATED: &[&str] = &["graphopt-core/src/proto/tensorflow.rs"];

const PANICKING: &[&str] = &[
    ".unwrap()",
    ".expect(",
    "panic!",
    "todo!",
    "unimplemented!",
    "unreachable!",
];

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
/// newlines kept, so line numbers stay right).
fn without_tests(code: &str) -> String {
    let blank = |text: &str| -> String {
        text.chars()
            .map(|c| if c == '\n' { '\n' } else { ' ' })
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
        let mut depth = 0usize;
        let mut end = after.len();
        for (k, b) in after.bytes().enumerate().skip(open) {
            match b {
                b'{' => depth += 1,
                b'}' => {
                    depth -= 1;
                    if depth == 0 {
                        end = k + 1;
                        break;
                    }
                }
                _ => {}
            }
        }
        out.push_str(&blank(&after[..end]));
        rest = &after[end..];
    }
    out.push_str(rest);
    out
}

fn is_ident_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// Every path in `code` that starts with `crate::` or `super::`, resolved to a module path
/// from the crate root (`module` is the path of the file's own module), with its line. Grouped
/// imports (`crate::{a, b::c}`) give one path per member.
fn crate_paths(code: &str, module: &[String]) -> Vec<(usize, Vec<String>)> {
    let bytes = code.as_bytes();
    let mut found = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let starts_word = i == 0 || !(is_ident_byte(bytes[i - 1]) || bytes[i - 1] == b':');
        let rest = &code[i..];
        let (mut base, skip): (Vec<String>, usize) = if starts_word && rest.starts_with("crate::") {
            (Vec::new(), "crate::".len())
        } else if starts_word && rest.starts_with("super::") {
            let mut base = module.to_vec();
            let mut skip = 0;
            while code[i + skip..].starts_with("super::") {
                base.pop();
                skip += "super::".len();
            }
            (base, skip)
        } else {
            i += 1;
            continue;
        };
        let line = code[..i].matches('\n').count() + 1;
        let tail = &code[i + skip..];
        let mut segments = Vec::new();
        for segment in tail.split("::") {
            let ident: String = segment
                .trim_start()
                .bytes()
                .take_while(|&b| is_ident_byte(b))
                .map(char::from)
                .collect();
            if ident.is_empty() {
                break;
            }
            let whole = segment.trim_start().len() == ident.len();
            segments.push(ident);
            if !whole {
                break;
            }
        }
        if segments.is_empty() && tail.trim_start().starts_with('{') {
            for member in group_members(tail.trim_start()) {
                let mut path = base.clone();
                path.extend(member);
                found.push((line, path));
            }
        } else {
            base.extend(segments);
            found.push((line, base));
        }
        i += skip;
    }
    found
}

/// The members of a `{a, b::c, d::{e, f}}` group, each as its path segments (nested groups
/// contribute their parent's path).
fn group_members(group: &str) -> Vec<Vec<String>> {
    let mut depth = 0usize;
    let mut members = Vec::new();
    let mut current = String::new();
    for ch in group.chars() {
        match ch {
            '{' => {
                depth += 1;
                if depth > 1 {
                    current.push(ch);
                }
            }
            '}' => {
                depth -= 1;
                if depth == 0 {
                    members.push(std::mem::take(&mut current));
                    break;
                }
                current.push(ch);
            }
            ',' if depth == 1 => members.push(std::mem::take(&mut current)),
            _ => current.push(ch),
        }
    }
    members
        .iter()
        .map(|m| {
            m.split("::")
                .map(|s| {
                    s.trim()
                        .bytes()
                        .take_while(|&b| is_ident_byte(b))
                        .map(char::from)
                        .collect::<String>()
                })
                .take_while(|s| !s.is_empty())
                .collect::<Vec<_>>()
        })
        .filter(|m| !m.is_empty())
        .collect()
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

/// Layer violations in one graphopt-core file, as `file:line: message`.
fn layer_violations(file: &str, relative_to_src: &str, source: &str) -> Vec<String> {
    let module = module_of(relative_to_src);
    let Some(own) = module.first() else {
        return Vec::new(); // lib.rs declares the modules
    };
    let mut problems = Vec::new();
    let Some((_, allowed)) = MAY_USE.iter().find(|(m, _)| m == own) else {
        return vec![format!(
            "{file}: module '{own}' has no entry in the tidy test's MAY_USE table"
        )];
    };
    let code = code_only(source);
    for (line, path) in crate_paths(&code, &module) {
        let Some(target) = path.first() else {
            continue; // the crate root itself (re-exports of Error, Result)
        };
        let shown = format!("crate::{}", path.join("::"));
        if matches!(target.as_str(), "Error" | "Result") {
            continue; // the crate-level re-exports of error::{Error, Result}
        }
        if !MAY_USE.iter().any(|(m, _)| m == target) {
            continue; // a macro or item of the crate root, e.g. crate::map_data!
        }
        if target == own {
            if own == "transforms" {
                if let (Some(this), Some(other)) = (module.get(1), path.get(1)) {
                    let shared = matches!(other.as_str(), "spec")
                        || other.chars().next().is_some_and(char::is_uppercase);
                    if this != other && !shared && this != "spec" {
                        problems.push(format!(
                            "{file}:{line}: the transform '{this}' uses another transform's file: {shown}"
                        ));
                    }
                }
            }
            continue;
        }
        if own == "error" && ERROR_MAY_WRAP.contains(&target.as_str()) {
            if path.last().is_some_and(|last| last.ends_with("Error")) {
                continue;
            }
            problems.push(format!(
                "{file}:{line}: the crate error may only wrap error types, not {shown}"
            ));
            continue;
        }
        if !allowed.contains(&target.as_str()) {
            problems.push(format!(
                "{file}:{line}: module '{own}' may not use '{target}' ({shown}); it may use: {}",
                if allowed.is_empty() {
                    "nothing".to_string()
                } else {
                    allowed.join(", ")
                }
            ));
        }
    }
    problems
}

fn panicking_calls(file: &str, source: &str) -> Vec<String> {
    let code = without_tests(&code_only(source));
    let mut problems = Vec::new();
    for (n, line) in code.lines().enumerate() {
        for banned in PANICKING {
            if line.contains(banned) {
                problems.push(format!("{file}:{}: {banned} in library code", n + 1));
            }
        }
    }
    problems
}

fn unsafe_count(source: &str) -> usize {
    let code = code_only(source);
    code.match_indices("unsafe")
        .filter(|(at, _)| {
            let before = code[..*at].bytes().last();
            let after = code.as_bytes().get(at + "unsafe".len()).copied();
            !before.is_some_and(is_ident_byte) && !after.is_some_and(is_ident_byte)
        })
        .count()
}

fn library_files() -> Vec<PathBuf> {
    let root = workspace_root();
    let mut files = Vec::new();
    for dir in LIBRARY_SOURCES {
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
    let mut problems = Vec::new();
    for file in &files {
        let rel = relative(file);
        if GENERATED.contains(&rel.as_str()) {
            continue;
        }
        let source = std::fs::read_to_string(file).expect("readable source");
        let inner = file.strip_prefix(&src).expect("under src");
        let inner = inner.to_string_lossy().replace('\\', "/");
        problems.extend(layer_violations(&rel, &inner, &source));
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
    let declared: BTreeSet<String> = lib
        .lines()
        .filter_map(|l| {
            let l = l.trim();
            let rest = l
                .strip_prefix("pub mod ")
                .or_else(|| l.strip_prefix("mod "))?;
            Some(rest.trim_end_matches(';').to_string())
        })
        .collect();
    let listed: BTreeSet<String> = MAY_USE.iter().map(|(m, _)| m.to_string()).collect();
    assert_eq!(
        declared, listed,
        "lib.rs modules and the MAY_USE table differ"
    );
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
        let count = unsafe_count(&source);
        let allowed = UNSAFE_ALLOWED
            .iter()
            .find(|(f, _)| *f == rel)
            .map_or(0, |(_, n)| *n);
        if count != allowed {
            problems.push(format!(
                "{rel}: {count} `unsafe`, {allowed} allowed (only the memory-mapping module may use it)"
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// `cargo tree` of one package's normal dependencies (proc-macros included), as crate names
/// with versions.
fn normal_dependencies(package: &str, features: &[&str]) -> Vec<String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut command = std::process::Command::new(cargo);
    command
        .current_dir(workspace_root())
        .args([
            "tree",
            "--offline",
            "--locked",
            "-e",
            "normal",
            "--prefix",
            "none",
        ])
        .args(["--format", "{p}", "-p", package]);
    if !features.is_empty() {
        command.args(["--features", &features.join(",")]);
    }
    let output = command.output().expect("cargo tree runs");
    assert!(
        output.status.success(),
        "cargo tree -p {package}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout)
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

#[test]
fn facade_and_macros_never_link_core() {
    for package in ["graphopt", "graphopt-macros"] {
        let deps = normal_dependencies(package, &[]);
        assert!(
            crate_versions(&deps, "graphopt-core").is_empty(),
            "{package} depends on graphopt-core by default:\n{}",
            deps.join("\n")
        );
    }
    // The eval feature is the one way in, and it brings neither the text-format parser nor
    // the checkpoint reader.
    let with_eval = normal_dependencies("graphopt", &["eval"]);
    assert_eq!(crate_versions(&with_eval, "graphopt-core").len(), 1);
    for heavy in ["miette", "logos", "snap", "crc32c", "memmap2", "libc"] {
        assert!(
            crate_versions(&with_eval, heavy).is_empty(),
            "graphopt with `eval` compiles {heavy}"
        );
    }
}

#[test]
fn facade_compiles_one_syn_major() {
    let deps = normal_dependencies("graphopt", &[]);
    let majors: BTreeSet<&str> = crate_versions(&deps, "syn")
        .into_iter()
        .map(|v| v.trim_start_matches('v').split('.').next().unwrap_or(""))
        .collect();
    assert_eq!(
        majors.len(),
        1,
        "an app with graphopt's default features compiles syn {majors:?}:\n{}",
        deps.join("\n")
    );
}

// The rule checker's own tests: each rule fires on a breaking source.

#[test]
fn checker_sees_inline_paths_and_groups() {
    let source = "fn f() { let x = crate::transforms::parse(\"a\"); }\nuse crate::{graph, summary::dtype_name};\n";
    let problems = layer_violations("eval/functional.rs", "eval/functional.rs", source);
    assert_eq!(problems.len(), 2, "{problems:?}");
    assert!(problems[0].contains("eval/functional.rs:1: module 'eval' may not use 'transforms'"));
    assert!(problems[1].contains("eval/functional.rs:2: module 'eval' may not use 'summary'"));
}

#[test]
fn checker_resolves_super() {
    // From eval/mod.rs, super:: is the crate root.
    let problems = layer_violations("eval/mod.rs", "eval/mod.rs", "use super::freeze::x;");
    assert_eq!(problems.len(), 1, "{problems:?}");
    // From eval/shapes.rs, super:: is eval itself.
    assert!(layer_violations("eval/shapes.rs", "eval/shapes.rs", "use super::kernels;").is_empty());
    assert_eq!(
        layer_violations(
            "eval/shapes.rs",
            "eval/shapes.rs",
            "use super::super::rewrite;"
        )
        .len(),
        1
    );
}

#[test]
fn checker_ignores_comments_and_strings() {
    let source = "// crate::transforms::x\n/* crate::freeze */ const S: &str = \"crate::verify\";\nconst R: &str = r#\"crate::summary\"#; const C: char = '\"'; fn g<'a>() {}";
    assert!(layer_violations("graph/mod.rs", "graph/mod.rs", source).is_empty());
}

#[test]
fn checker_catches_a_transform_using_another() {
    let source = "use super::fold_constants::fold;\nuse super::{Transform, TransformContext};\nuse super::spec::TransformSpec;";
    let problems = layer_violations(
        "transforms/fold_batch_norms.rs",
        "transforms/fold_batch_norms.rs",
        source,
    );
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(
        problems[0].contains("uses another transform's file: crate::transforms::fold_constants")
    );
}

#[test]
fn checker_limits_the_crate_error_to_error_types() {
    assert!(layer_violations("error.rs", "error.rs", "use crate::graph::GraphError;").is_empty());
    assert_eq!(
        layer_violations("error.rs", "error.rs", "use crate::graph::validate;").len(),
        1
    );
    assert_eq!(
        layer_violations("error.rs", "error.rs", "use crate::verify::VerifyError;").len(),
        1
    );
}

#[test]
fn checker_requires_every_module_in_the_table() {
    let problems = layer_violations("newmod.rs", "newmod.rs", "");
    assert_eq!(problems.len(), 1);
    assert!(problems[0].contains("no entry"));
}

#[test]
fn checker_finds_panics_outside_tests() {
    let source = "fn f() { x.unwrap(); }\n#[cfg(test)]\nmod tests { fn t() { y.unwrap(); panic!(); } }\nfn g() { z.expect(\"why\"); }\n// a.unwrap()\n";
    let problems = panicking_calls("f.rs", source);
    assert_eq!(
        problems,
        [
            "f.rs:1: .unwrap() in library code",
            "f.rs:4: .expect( in library code"
        ]
    );
}

#[test]
fn checker_counts_unsafe_tokens_only() {
    assert_eq!(
        unsafe_count("unsafe { x } // unsafe\nlet not_unsafe = 1; \"unsafe\""),
        1
    );
}
