//! The README, checked: its Build integration snippets compiled and run as a fresh app crate
//! (printing what the README says they print), `cargo install --path graphopt-cli` from its
//! first screen, and rustdoc without warnings. Also the measurement behind the README's build
//! time (ignored by default; see `clean_build_time_of_a_fresh_app`).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Instant;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn readme() -> String {
    std::fs::read_to_string(workspace().join("README.md")).unwrap()
}

/// The text of the README section that starts with `heading`.
fn section(readme: &str, heading: &str) -> String {
    let start = readme.find(heading).unwrap();
    let rest = &readme[start + heading.len()..];
    let end = rest.find("\n## ").unwrap_or(rest.len());
    rest[..end].to_string()
}

/// Every fenced code block of `text` as (language, body).
fn code_blocks(text: &str) -> Vec<(String, String)> {
    let mut blocks = Vec::new();
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        if let Some(language) = line.strip_prefix("```") {
            let body: Vec<&str> = lines.by_ref().take_while(|l| *l != "```").collect();
            blocks.push((language.to_string(), body.join("\n") + "\n"));
        }
    }
    blocks
}

/// The block whose first line is `first_line`.
fn block(blocks: &[(String, String)], first_line: &str) -> String {
    blocks
        .iter()
        .find(|(_, body)| body.lines().next() == Some(first_line))
        .map(|(_, body)| body.clone())
        .unwrap_or_else(|| panic!("no README block starting with {first_line}"))
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A fresh app made of the README's Cargo.toml dependencies, build.rs and src/main.rs, with
/// the digits model where build.rs looks for it.
fn readme_app(dir: &Path, package: &str) -> String {
    let blocks = code_blocks(&section(&readme(), "## Build integration"));
    let root = workspace().display().to_string();
    let dependencies = block(&blocks, "# Cargo.toml")
        .replace(
            "\"../graphopt/graphopt-build\"",
            &format!("{:?}", format!("{root}/graphopt-build")),
        )
        .replace("\"../graphopt\"", &format!("{root:?}"));
    assert!(!dependencies.contains("../graphopt"), "{dependencies}");
    let toml = format!(
        "[package]\nname = \"{package}\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[workspace]\n\n{dependencies}"
    );
    std::fs::create_dir_all(dir.join("src")).unwrap();
    std::fs::create_dir_all(dir.join("models")).unwrap();
    std::fs::write(dir.join("Cargo.toml"), toml).unwrap();
    std::fs::write(dir.join("build.rs"), block(&blocks, "// build.rs")).unwrap();
    std::fs::write(dir.join("src/main.rs"), block(&blocks, "// src/main.rs")).unwrap();
    std::fs::copy(
        workspace().join("examples/digits/models/digits.pb"),
        dir.join("models/digits.pb"),
    )
    .unwrap();
    // The output the README shows: the `text` block after main.rs.
    let main = blocks
        .iter()
        .position(|(_, body)| body.starts_with("// src/main.rs"))
        .unwrap();
    let (language, printed) = &blocks[main + 1];
    assert_eq!(language, "text");
    printed.clone()
}

#[test]
fn the_readme_build_integration_snippets_build_and_run_as_a_fresh_app() {
    let dir = tempfile::tempdir().unwrap();
    let printed = readme_app(dir.path(), "readme-app");
    let out = Command::new(env!("CARGO"))
        .args(["run", "--quiet"])
        .current_dir(dir.path())
        .env(
            "CARGO_TARGET_DIR",
            workspace().join("target/graphopt-app-test"),
        )
        .env("GRAPHOPT_CACHE_DIR", dir.path().join("cache"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), printed);
}

#[test]
fn the_cli_installs_with_cargo_install_path() {
    let first_screen = &readme()[..readme().find("\n## ").unwrap()];
    assert!(first_screen.contains("\ncargo install --path graphopt-cli\n"));
    let root = tempfile::tempdir().unwrap();
    // --debug and the workspace's target directory, so the dev build is reused.
    let out = Command::new(env!("CARGO"))
        .args([
            "install",
            "--path",
            "graphopt-cli",
            "--locked",
            "--debug",
            "--root",
        ])
        .arg(root.path())
        .current_dir(workspace())
        .env("CARGO_TARGET_DIR", workspace().join("target"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let version = Command::new(root.path().join("bin/graphopt"))
        .arg("--version")
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&version.stdout),
        format!("graphopt {}\n", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn rustdoc_has_no_warnings_with_and_without_features() {
    for args in [
        &[
            "-p",
            "graphopt",
            "-p",
            "graphopt-build",
            "-p",
            "graphopt-macros",
        ][..],
        &["-p", "graphopt", "--features", "eval"][..],
    ] {
        let out = Command::new(env!("CARGO"))
            .args(["doc", "--no-deps", "--quiet"])
            .args(args)
            .current_dir(workspace())
            .env(
                "CARGO_TARGET_DIR",
                workspace().join("target/graphopt-doc-test"),
            )
            .env("RUSTDOCFLAGS", "-D warnings")
            .output()
            .unwrap();
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
    }
}

/// The README's build time: a fresh app (the README's) built from nothing, with a fresh target
/// directory and cache, so every dependency compiles; then a cache hit after touching build.rs.
///
/// `cargo test -p graphopt-build --release --test readme -- --ignored --nocapture clean_build_time`
#[test]
#[ignore = "a measurement, minutes long"]
fn clean_build_time_of_a_fresh_app() {
    let dir = tempfile::tempdir().unwrap();
    readme_app(dir.path(), "fresh-app");
    let build = || {
        let started = Instant::now();
        let out = Command::new(env!("CARGO"))
            .args(["build", "--quiet"])
            .current_dir(dir.path())
            .env("CARGO_TARGET_DIR", dir.path().join("target"))
            .env("GRAPHOPT_CACHE_DIR", dir.path().join("cache"))
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        started.elapsed().as_secs_f64()
    };
    let clean = build();
    let source = std::fs::read_to_string(dir.path().join("build.rs")).unwrap();
    std::fs::write(dir.path().join("build.rs"), source).unwrap();
    let rebuild = build();
    println!(
        "fresh app with graphopt-build: clean build {clean:.1} s, build.rs touched (cache hit) {rebuild:.1} s"
    );
}
