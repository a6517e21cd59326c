//! The crates graphopt's code is built from, as the workspace's `Cargo.lock` resolved them: part of
//! every cache key, so an artifact made with one version of a dependency (say `libm`, whose
//! functions fold constants) is never handed back after `cargo update` changed it.
//!
//! The digest covers the name, version, source and checksum of every package reachable from
//! `graphopt-build` in the lock file (build and optional dependencies included, since the lock
//! lists them), and nothing else: updating a crate graphopt does not use keeps the cache.
//! Graphopt's own crates are path or git packages whose code the source fingerprint covers.
//!
//! The lock file is the one at the package's workspace root, found by cargo's rules
//! ([`find_lock_file`]). Its digest is memoized in `$OUT_DIR` by the lock file's
//! SHA-256, which the fingerprint memo gives without reading an unchanged file.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::cache::KeyBuilder;
use crate::fingerprint::Memo;

/// The package whose dependency closure is keyed.
const ROOT: &str = "graphopt-build";

/// Why the dependencies could not be identified. The build goes on without the cache.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("no Cargo.lock at the workspace root {}", dir.display())]
    NotFound { dir: PathBuf },
    #[error(
        "{} is a package cargo fetched (crates.io, git or vendored): the app's Cargo.lock is not known from there",
        dir.display()
    )]
    Fetched { dir: PathBuf },
    #[error("{}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{} does not parse as a Cargo.lock: {message}", path.display())]
    Parse { path: PathBuf, message: String },
    #[error("{} lists no package '{ROOT}'", path.display())]
    NoRoot { path: PathBuf },
    #[error(
        "{}: package '{package}' depends on '{reference}', which the file does not list",
        path.display()
    )]
    Dangling {
        path: PathBuf,
        package: String,
        reference: String,
    },
}

#[derive(Debug, Deserialize)]
struct LockFile {
    #[serde(default)]
    package: Vec<Package>,
}

#[derive(Debug, Deserialize)]
struct Package {
    name: String,
    version: String,
    source: Option<String>,
    checksum: Option<String>,
    /// `name`, `name version` or `name version (source)`: as much as tells packages apart.
    #[serde(default)]
    dependencies: Vec<String>,
}

/// The lock file cargo resolves the package in `dir` with: the one at its workspace's root,
/// found as cargo finds that root (the `package.workspace` path if the manifest gives one,
/// else the nearest directory at or above the package whose `Cargo.toml` has a `[workspace]`
/// table that does not exclude it, else the package's own directory). A `Cargo.lock` on the
/// way that is not at the root (a member's stray one) is not the one cargo uses.
///
/// A package cargo fetched (from crates.io or git, or vendored) may carry its own
/// `Cargo.lock`, but the app that depends on it resolved the versions: from there the app's
/// lock file cannot be known, and none is taken.
pub fn find_lock_file(dir: &Path) -> Result<PathBuf, LockError> {
    if fetched(dir) {
        return Err(LockError::Fetched {
            dir: dir.to_path_buf(),
        });
    }
    let root = workspace_root(dir);
    let lock = root.join("Cargo.lock");
    if lock.is_file() {
        Ok(lock)
    } else {
        Err(LockError::NotFound { dir: root })
    }
}

/// Whether `dir` holds a package cargo unpacked or checked out itself: registry and git
/// sources carry a `.cargo-ok` marker, vendored ones a `.cargo-checksum.json`.
fn fetched(dir: &Path) -> bool {
    dir.join(".cargo-ok").is_file() || dir.join(".cargo-checksum.json").is_file()
}

/// The `Cargo.toml` in `dir` as a table, if there is one that parses (a manifest is small: a
/// larger file is not read).
fn manifest(dir: &Path) -> Option<toml::Table> {
    const LARGEST: u64 = 1 << 20;
    let text = crate::cache::read_small_text(&dir.join("Cargo.toml"), LARGEST).ok()?;
    toml::from_str(&text).ok()
}

/// The root of the workspace the package in `dir` belongs to, by cargo's rules.
pub fn workspace_root(dir: &Path) -> PathBuf {
    let own = manifest(dir);
    if let Some(own) = &own {
        if own.contains_key("workspace") {
            return dir.to_path_buf();
        }
        let explicit = own
            .get("package")
            .and_then(|p| p.get("workspace"))
            .and_then(|w| w.as_str());
        if let Some(explicit) = explicit {
            return dir.join(explicit);
        }
    }
    for ancestor in dir.ancestors().skip(1) {
        let Some(table) = manifest(ancestor) else {
            continue;
        };
        let Some(workspace) = table.get("workspace") else {
            continue;
        };
        let excluded = workspace
            .get("exclude")
            .and_then(|e| e.as_array())
            .into_iter()
            .flatten()
            .filter_map(|e| e.as_str())
            .any(|e| dir.starts_with(ancestor.join(e)));
        return if excluded {
            dir.to_path_buf()
        } else {
            ancestor.to_path_buf()
        };
    }
    dir.to_path_buf()
}

/// The digest of `graphopt-build`'s dependency closure in the Cargo.lock text `text` (read
/// from `path`, which errors name).
pub fn closure_digest(path: &Path, text: &str) -> Result<String, LockError> {
    let lock: LockFile = toml::from_str(text).map_err(|e| LockError::Parse {
        path: path.to_path_buf(),
        message: e.message().to_string(),
    })?;
    let mut by_name: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, package) in lock.package.iter().enumerate() {
        by_name.entry(&package.name).or_default().push(i);
    }
    let mut pending: Vec<usize> = by_name.get(ROOT).cloned().unwrap_or_default();
    if pending.is_empty() {
        return Err(LockError::NoRoot {
            path: path.to_path_buf(),
        });
    }
    let mut reached = BTreeSet::new();
    while let Some(i) = pending.pop() {
        if !reached.insert(i) {
            continue;
        }
        let package = &lock.package[i];
        for reference in &package.dependencies {
            let matches = resolve(&lock.package, &by_name, reference);
            if matches.is_empty() {
                return Err(LockError::Dangling {
                    path: path.to_path_buf(),
                    package: package.name.clone(),
                    reference: reference.clone(),
                });
            }
            pending.extend(matches);
        }
    }
    // Sorted, so the digest does not depend on the file's order.
    let lines: BTreeSet<String> = reached
        .iter()
        .map(|&i| {
            let p = &lock.package[i];
            format!(
                "{} {} {} {}",
                p.name,
                p.version,
                p.source.as_deref().unwrap_or("path"),
                p.checksum.as_deref().unwrap_or("-")
            )
        })
        .collect();
    let mut key = KeyBuilder::default();
    for line in &lines {
        key.part("package", line.as_bytes());
    }
    Ok(key.finish())
}

/// The packages a dependency reference names: every package of that name whose version and
/// source match those the reference gives. Several only in a lock file cargo would not
/// write; keying all of them is the safe reading.
fn resolve(
    packages: &[Package],
    by_name: &BTreeMap<&str, Vec<usize>>,
    reference: &str,
) -> Vec<usize> {
    let (name, rest) = reference.split_once(' ').unwrap_or((reference, ""));
    let (version, source) = match rest.split_once(' ') {
        Some((version, source)) => (
            Some(version),
            Some(source.trim_start_matches('(').trim_end_matches(')')),
        ),
        None => ((!rest.is_empty()).then_some(rest), None),
    };
    by_name
        .get(name)
        .into_iter()
        .flatten()
        .copied()
        .filter(|&i| {
            let p = &packages[i];
            version.is_none_or(|v| v == p.version)
                && source.is_none_or(|s| Some(s) == p.source.as_deref())
        })
        .collect()
}

/// The digest memoized for one lock file's content.
#[derive(Debug, Serialize, Deserialize)]
struct Memoized {
    lock_sha256: String,
    digest: String,
}

/// The dependency digest for the package in `manifest_dir`, memoized in `out_dir`.
pub fn digest(manifest_dir: &Path, out_dir: &Path, memo: &mut Memo) -> Result<String, LockError> {
    let path = find_lock_file(manifest_dir)?;
    let read_error = |source| LockError::Read {
        path: path.clone(),
        source,
    };
    let hashed = memo.hash_file(&path, true).map_err(read_error)?;
    let memo_file = out_dir.join("graphopt-dependencies.json");
    let remembered = crate::cache::read_small(&memo_file, crate::cache::SMALL_FILE)
        .ok()
        .and_then(|bytes| serde_json::from_slice::<Memoized>(&bytes).ok())
        .filter(|m| m.lock_sha256 == hashed.sha256);
    if let Some(remembered) = remembered {
        return Ok(remembered.digest);
    }
    let bytes = match hashed.bytes {
        Some(bytes) => bytes,
        None => graphopt_core::io::read_regular(&path).map_err(read_error)?,
    };
    // Hashed and parsed from the same bytes, so the memo cannot pair a digest with the wrong
    // content even if the file changes meanwhile.
    let lock_sha256 = crate::cache::sha256_hex(&bytes);
    let text = String::from_utf8(bytes).map_err(|e| LockError::Parse {
        path: path.clone(),
        message: e.to_string(),
    })?;
    let digest = closure_digest(&path, &text)?;
    let memoized = Memoized {
        lock_sha256,
        digest: digest.clone(),
    };
    // Best effort: a lost memo only costs a parse.
    if let Ok(json) = serde_json::to_vec(&memoized) {
        crate::cache::replace_atomically(&memo_file, &json).ok();
    }
    Ok(digest)
}

#[cfg(test)]
mod tests {
    use super::*;

    const REGISTRY: &str = "registry+https://github.com/rust-lang/crates.io-index";

    /// A Cargo.lock of `(name, version, dependencies)`, registry packages except graphopt's.
    fn lock(packages: &[(&str, &str, &[&str])]) -> String {
        let mut text = String::from("# generated by cargo\nversion = 4\n");
        for (name, version, deps) in packages {
            text += &format!("\n[[package]]\nname = \"{name}\"\nversion = \"{version}\"\n");
            if !name.starts_with("graphopt") {
                text += &format!("source = \"{REGISTRY}\"\nchecksum = \"{name}{version}\"\n");
            }
            if !deps.is_empty() {
                let list: Vec<String> = deps.iter().map(|d| format!("\"{d}\"")).collect();
                text += &format!("dependencies = [\n {},\n]\n", list.join(",\n "));
            }
        }
        text
    }

    fn app(libm: &str, unrelated: &str) -> String {
        lock(&[
            ("app", "0.1.0", &["graphopt-build", "rand"]),
            ("graphopt-build", "0.1.0", &["graphopt-core", "sha2"]),
            ("graphopt-core", "0.1.0", &["libm"]),
            ("libm", libm, &[]),
            ("sha2", "0.10.9", &[]),
            ("rand", unrelated, &[]),
        ])
    }

    fn digest_of(text: &str) -> String {
        closure_digest(Path::new("Cargo.lock"), text).unwrap()
    }

    #[test]
    fn a_changed_dependency_of_graphopt_changes_the_digest_and_an_unrelated_one_does_not() {
        let base = digest_of(&app("0.2.15", "0.8.5"));
        assert_eq!(digest_of(&app("0.2.15", "0.9.0")), base);
        assert_ne!(digest_of(&app("0.2.16", "0.8.5")), base);
        // A changed checksum (a yanked and re-published crate, a mirror) or source too.
        let changed_checksum = app("0.2.15", "0.8.5").replace("libm0.2.15", "other");
        assert_ne!(digest_of(&changed_checksum), base);
        let git = app("0.2.15", "0.8.5").replace(
            &format!("source = \"{REGISTRY}\"\nchecksum = \"libm0.2.15\""),
            "source = \"git+https://example.com/libm#0123abc\"",
        );
        assert_ne!(digest_of(&git), base);
    }

    #[test]
    fn the_digest_does_not_depend_on_the_order_of_packages() {
        let a = lock(&[
            ("graphopt-build", "0.1.0", &["libm"]),
            ("libm", "0.2.15", &[]),
        ]);
        let b = lock(&[
            ("libm", "0.2.15", &[]),
            ("graphopt-build", "0.1.0", &["libm"]),
        ]);
        assert_eq!(digest_of(&a), digest_of(&b));
    }

    #[test]
    fn references_with_versions_and_sources_pick_the_named_package() {
        // Two versions of one crate: references carry the version.
        let two = |used: &str| {
            lock(&[
                ("graphopt-build", "0.1.0", &[used]),
                ("app", "0.1.0", &["half 1.8.3"]),
                ("half", "1.8.3", &[]),
                ("half", "2.6.0", &[]),
            ])
        };
        let old = digest_of(&two("half 1.8.3"));
        let new = digest_of(&two("half 2.6.0"));
        assert_ne!(old, new);
        // The same with the source spelled out.
        assert_eq!(digest_of(&two(&format!("half 2.6.0 ({REGISTRY})"))), new);
        // Only the used version counts: the other may change freely.
        let bumped = two("half 2.6.0").replace("1.8.3", "1.8.4");
        assert_eq!(digest_of(&bumped), new);
    }

    #[test]
    fn a_lock_file_graphopt_is_not_in_or_that_does_not_parse_is_an_error() {
        let path = Path::new("/app/Cargo.lock");
        let err = closure_digest(path, &lock(&[("app", "0.1.0", &[])])).unwrap_err();
        assert_eq!(
            err.to_string(),
            "/app/Cargo.lock lists no package 'graphopt-build'"
        );
        let dangling = lock(&[("graphopt-build", "0.1.0", &["libm"])]);
        let err = closure_digest(path, &dangling).unwrap_err();
        assert_eq!(
            err.to_string(),
            "/app/Cargo.lock: package 'graphopt-build' depends on 'libm', which the file does not list"
        );
        let err = closure_digest(path, "[[package]]\nname = 3\n").unwrap_err();
        assert!(
            matches!(&err, LockError::Parse { .. })
                && err
                    .to_string()
                    .starts_with("/app/Cargo.lock does not parse"),
            "{err}"
        );
    }

    #[test]
    fn the_workspace_lock_file_covers_graphopt_core_and_its_libm() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let path = find_lock_file(root).unwrap();
        assert_eq!(path, root.parent().unwrap().join("Cargo.lock"));
        let text = std::fs::read_to_string(&path).unwrap();
        let digest = closure_digest(&path, &text).unwrap();
        // libm is in the closure: changing its version in the text changes the digest.
        let libm = text
            .split("[[package]]")
            .find(|p| p.contains("name = \"libm\""))
            .expect("libm is locked");
        let bumped = text.replace(libm, &libm.replace("version = \"", "version = \"9"));
        assert_ne!(closure_digest(&path, &bumped).unwrap(), digest);
    }

    #[test]
    fn the_lock_file_is_the_workspace_roots_as_cargo_finds_it() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let write = |relative: &str, text: &str| {
            let path = root.join(relative);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        };
        write(
            "Cargo.toml",
            "[workspace]\nmembers = [\"app\"]\nexclude = [\"solo\"]\n",
        );
        write("Cargo.lock", "");
        // A member's own stray lock file is not the one cargo uses.
        write("app/Cargo.toml", "[package]\nname = \"app\"\n");
        write("app/Cargo.lock", "");
        assert_eq!(
            find_lock_file(&root.join("app")).unwrap(),
            root.join("Cargo.lock")
        );
        // An excluded package is a workspace of its own.
        write("solo/Cargo.toml", "[package]\nname = \"solo\"\n");
        write("solo/Cargo.lock", "");
        assert_eq!(
            find_lock_file(&root.join("solo")).unwrap(),
            root.join("solo/Cargo.lock")
        );
        // `package.workspace` names the root.
        write(
            "elsewhere/pkg/Cargo.toml",
            "[package]\nname = \"pkg\"\nworkspace = \"../..\"\n",
        );
        assert_eq!(
            find_lock_file(&root.join("elsewhere/pkg")).unwrap(),
            root.join("elsewhere/pkg/../..").join("Cargo.lock")
        );
        // A package cargo fetched: its own lock file is not the app's, and no other is taken.
        write("fetched/Cargo.toml", "[package]\nname = \"fetched\"\n");
        write("fetched/Cargo.lock", "");
        write("fetched/.cargo-ok", "");
        let err = find_lock_file(&root.join("fetched")).unwrap_err();
        assert!(matches!(err, LockError::Fetched { .. }), "{err}");
    }

    #[test]
    fn the_digest_is_memoized_by_the_lock_files_content() {
        let dir = tempfile::tempdir().unwrap();
        let app_dir = dir.path().join("app");
        let out = dir.path().join("out");
        std::fs::create_dir_all(&app_dir).unwrap();
        std::fs::create_dir_all(&out).unwrap();
        let memo_path = out.join("memo.json");
        // (The temporary directory is not inside a cargo project.)
        std::fs::write(
            dir.path().join("Cargo.toml"),
            "[workspace]\nmembers = [\"app\"]\n",
        )
        .unwrap();
        let err = digest(&app_dir, &out, &mut Memo::load(memo_path.clone())).unwrap_err();
        assert!(matches!(err, LockError::NotFound { .. }), "{err}");
        // The lock file is found above the package, at the workspace root.
        let lock_path = dir.path().join("Cargo.lock");
        std::fs::write(&lock_path, app("0.2.15", "0.8.5")).unwrap();
        let mut memo = Memo::load(memo_path.clone());
        let first = digest(&app_dir, &out, &mut memo).unwrap();
        assert_eq!(first, digest_of(&app("0.2.15", "0.8.5")));
        // The memo answers for the same content without parsing: a planted digest comes back.
        let memo_file = out.join("graphopt-dependencies.json");
        let planted = Memoized {
            lock_sha256: crate::cache::sha256_hex(app("0.2.15", "0.8.5").as_bytes()),
            digest: "planted".into(),
        };
        std::fs::write(&memo_file, serde_json::to_vec(&planted).unwrap()).unwrap();
        assert_eq!(digest(&app_dir, &out, &mut memo).unwrap(), "planted");
        // Changed content: a new digest, whatever the memo held.
        std::fs::write(&lock_path, app("0.2.16", "0.8.5")).unwrap();
        let second = digest(&app_dir, &out, &mut memo).unwrap();
        assert_eq!(second, digest_of(&app("0.2.16", "0.8.5")));
        assert_ne!(second, first);
    }
}
