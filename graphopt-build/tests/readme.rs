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
    // The workspace's lock file pins every dependency the app shares with graphopt, so the test
    // builds what CI's `--locked` checked, not whatever crates.io has newest today.
    std::fs::copy(workspace().join("Cargo.lock"), dir.join("Cargo.lock")).unwrap();
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
fn the_digits_example_says_what_its_build_did_and_classifies_the_held_out_digits() {
    let first_screen = &readme()[..readme().find("\n## ").unwrap()];
    assert!(first_screen.contains("\ncargo run -p digits\n"));
    let out = Command::new(env!("CARGO"))
        .args(["run", "--quiet", "-p", "digits"])
        .current_dir(workspace())
        .env("CARGO_TARGET_DIR", workspace().join("target"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    // What it says of its build is what @deploy makes of the bundled model, byte for byte.
    let source_path = workspace().join("examples/digits/models/digits.pb");
    let source = graphopt_core::io::read_graph(&source_path).unwrap().graph;
    let mut optimized = source.clone();
    let specs = graphopt_core::transforms::parse("@deploy").unwrap();
    graphopt_core::transforms::run(
        &graphopt_core::transforms::Registry::with_builtins(),
        &mut optimized,
        &specs,
        &["image".into()],
        &["probs".into()],
    )
    .unwrap();
    let bytes = graphopt_core::io::encode_graph(&optimized);
    let sha256: String = {
        use sha2::Digest as _;
        sha2::Sha256::digest(&bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    };
    assert_eq!(
        lines[0],
        format!(
            "optimized at build time: {} nodes, {} bytes -> {} nodes, {} bytes, embedded (sha256 {sha256})",
            source.node.len(),
            std::fs::metadata(&source_path).unwrap().len(),
            optimized.node.len(),
            bytes.len()
        ),
        "{stdout}"
    );
    assert_eq!(
        lines[2],
        "input image:0 Float [-1, 8, 8, 1], output probs:0 Float [-1, 10]"
    );
    // The embedded, optimized graph classifies exactly as many digits right as TensorFlow did
    // with the frozen graph (examples/digits/data/tensorflow.json, from train.py).
    let record: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(workspace().join("examples/digits/data/tensorflow.json")).unwrap(),
    )
    .unwrap();
    let images = record["test_images"].as_u64().unwrap();
    // The first screen's "classifies 360 held-out digits" is the record's count.
    assert!(
        first_screen.contains(&format!("classifies {images} held-out digits\n")),
        "the README's digit count is not {images}"
    );
    let tensorflow = record["frozen_graph_accuracy"].as_f64().unwrap();
    let correct = (tensorflow * images as f64).round() as u64;
    assert_eq!(
        lines[3],
        format!(
            "accuracy on {images} held-out digits: {:.2}% ({correct}/{images})",
            100.0 * correct as f64 / images as f64
        ),
        "{stdout}"
    );
    assert_eq!(
        lines[4],
        format!(
            "TensorFlow's accuracy on the same images: {:.2}%",
            tensorflow * 100.0
        )
    );
}

#[test]
fn the_cli_installs_with_cargo_install_path() {
    let first_screen = &readme()[..readme().find("\n## ").unwrap()];
    assert!(first_screen.contains("\ncargo install --locked --path graphopt-cli\n"));
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
        // What docs.rs builds for the facade, and the crates a custom transform's author reads.
        &["-p", "graphopt", "--all-features"][..],
        &["-p", "graphopt-build", "--no-default-features"][..],
        &[
            "-p",
            "graphopt-core",
            "-p",
            "graphopt-types",
            "--all-features",
        ][..],
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

/// CPU seconds (user + system) of this process's waited-for children, from /proc/self/stat
/// (Linux, at 100 ticks a second); 0 elsewhere.
fn children_cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    // Fields 16 and 17 (cutime, cstime); the rest starts at field 3.
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(13) + ticks(14)) / 100.0
}

/// Builds the app in `dir` with its own target directory and cache: wall and CPU seconds.
fn timed_build(dir: &Path) -> (f64, f64) {
    let cpu = children_cpu_seconds();
    let started = Instant::now();
    let out = Command::new(env!("CARGO"))
        .args(["build", "--quiet"])
        .current_dir(dir)
        .env("CARGO_TARGET_DIR", dir.join("target"))
        .env("GRAPHOPT_CACHE_DIR", dir.join("cache"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    (
        started.elapsed().as_secs_f64(),
        children_cpu_seconds() - cpu,
    )
}

/// The README's build times: a fresh minimal app (the README's build.rs, a main.rs that only
/// embeds the model, no `eval`) and the README's app (with `eval`) built from nothing, each
/// with its own new target directory and cache, so every dependency compiles; then the
/// minimal app again after touching build.rs (a cache hit).
///
/// `cargo test -p graphopt-build --test readme -- --ignored --nocapture clean_build_time`
#[test]
#[ignore = "a measurement, minutes long"]
fn clean_build_time_of_a_fresh_app() {
    let minimal = tempfile::tempdir().unwrap();
    readme_app(minimal.path(), "minimal-app");
    let toml = std::fs::read_to_string(minimal.path().join("Cargo.toml"))
        .unwrap()
        .replace(", features = [\"eval\"]", "");
    std::fs::write(minimal.path().join("Cargo.toml"), toml).unwrap();
    std::fs::write(
        minimal.path().join("src/main.rs"),
        "graphopt::include_model!(digits);\nfn main() {\n    println!(\"{}\", digits::GRAPH_DEF.len());\n}\n",
    )
    .unwrap();
    let clean = timed_build(minimal.path());
    let source = std::fs::read_to_string(minimal.path().join("build.rs")).unwrap();
    std::fs::write(minimal.path().join("build.rs"), source).unwrap();
    let hit = timed_build(minimal.path());
    let with_eval = tempfile::tempdir().unwrap();
    readme_app(with_eval.path(), "readme-eval-app");
    let eval = timed_build(with_eval.path());
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "fresh minimal app with graphopt-build: clean build {:.1} s ({:.1} s CPU), build.rs touched (cache hit) {:.1} s; \
         the README's app (with eval): clean build {:.1} s ({:.1} s CPU); {} cores, load average {}",
        clean.0,
        clean.1,
        hit.0,
        eval.0,
        eval.1,
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        load.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
    );
}
