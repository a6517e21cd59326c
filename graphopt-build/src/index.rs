//! The index of the models one build-script run declared, so `include_model!` sees exactly
//! those and never an artifact an earlier run left in OUT_DIR.
//!
//! The first model a build-script process builds sets aside everything in `$OUT_DIR/graphopt/`
//! into `.previous/` (cargo keeps OUT_DIR across runs, so it holds every artifact ever written
//! there); each model then takes its unchanged artifacts back from there, untouched, so their
//! modification times stay and nothing downstream sees a new file. Each model built then
//! adds its name to the run's list, rewrites `$OUT_DIR/graphopt/models-index.json` and passes the list
//! to the package's compilation as `cargo::rustc-env=GRAPHOPT_MODELS=a,b`: cargo keeps the last
//! value, which names every model of the run. The macro trusts that variable alone, so a build
//! script that builds no model at all leaves nothing embeddable either.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::fingerprint::Stamp;

/// The run's list of models. Its name holds a `-`, which no model name can: a model called
/// `index` wrote its manifest to `index.json`, which this list then overwrote.
pub const INDEX_FILE: &str = "models-index.json";

/// The variable `include_model!` reads; keep in sync with graphopt-macros.
pub const MODELS_VAR: &str = "GRAPHOPT_MODELS";

/// Models built so far by this process, or `None` before the first.
static RUN: Mutex<Option<Vec<String>>> = Mutex::new(None);

/// Starts the run on its first call in this process (removing every earlier artifact from
/// `dir`), and refuses a name declared twice in one run, or one that differs from an earlier
/// name only in case: on a case-insensitive file system (macOS's and Windows' defaults) both
/// would write the same `NAME.pb`, and one module would embed the other's graph.
pub fn begin(dir: &Path, name: &str) -> Result<(), BeginError> {
    let mut run = RUN.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    match run.as_ref() {
        Some(models) if models.iter().any(|m| m == name) => Err(BeginError::Duplicate),
        Some(models) => match models.iter().find(|m| m.eq_ignore_ascii_case(name)) {
            Some(other) => Err(BeginError::SameFiles(other.clone())),
            None => Ok(()),
        },
        None => {
            set_aside(dir).map_err(BeginError::Io)?;
            *run = Some(Vec::new());
            Ok(())
        }
    }
}

/// Why a model cannot start.
#[derive(Debug)]
pub enum BeginError {
    Duplicate,
    /// The earlier model whose file names differ from this one's only in case.
    SameFiles(String),
    Io(std::io::Error),
}

/// Where the files of the previous run wait to be taken back.
fn previous(dir: &Path) -> PathBuf {
    dir.join(".previous")
}

/// Moves every file in `dir` (artifacts and index of an earlier run) into `.previous/`,
/// emptied first: a model not declared again stays there, out of the macro's reach.
fn set_aside(dir: &Path) -> std::io::Result<()> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    let previous = previous(dir);
    match std::fs::remove_dir_all(&previous) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    std::fs::create_dir(&previous)?;
    for entry in entries {
        let entry = entry?;
        if entry.file_type()?.is_file() {
            std::fs::rename(entry.path(), previous.join(entry.file_name()))?;
        }
    }
    Ok(())
}

/// Puts the cache entry's file `from` at `dir/file_name`: the previous run's file back when it
/// is a link to the same file, else a new hard link (a copy where links are impossible, such
/// as across file systems).
pub fn place_linked(dir: &Path, file_name: &str, from: &Path) -> std::io::Result<()> {
    let dest = dir.join(file_name);
    let earlier = previous(dir).join(file_name);
    let stamp = |p: &Path| std::fs::metadata(p).ok().and_then(|m| Stamp::of(&m));
    if let (Some(a), Some(b)) = (stamp(&earlier), stamp(from)) {
        if a.same_file(&b) {
            return std::fs::rename(&earlier, &dest);
        }
    }
    match std::fs::remove_file(&dest) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    if link(from, &dest).is_ok() {
        return Ok(());
    }
    // A copy (the cache on another file system): the previous run's copy is taken back when
    // it holds the same bytes, so an unchanged artifact is not rewritten (a new modification
    // time every run) there either.
    let bytes = std::fs::read(from)?;
    place_bytes(dir, file_name, &bytes)
}

/// `std::fs::hard_link`; in tests, failing as across file systems when [`NO_LINKS`] is set.
fn link(from: &Path, to: &Path) -> std::io::Result<()> {
    #[cfg(test)]
    if NO_LINKS.with(std::cell::Cell::get) {
        return Err(std::io::Error::other("cross-device link (test)"));
    }
    std::fs::hard_link(from, to)
}

#[cfg(test)]
thread_local! {
    /// Hard links fail, as between file systems.
    static NO_LINKS: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Writes `bytes` at `dir/file_name`, or takes back the previous run's file when it holds
/// the same bytes.
pub fn place_bytes(dir: &Path, file_name: &str, bytes: &[u8]) -> std::io::Result<()> {
    let dest = dir.join(file_name);
    let earlier = previous(dir).join(file_name);
    let same = std::fs::metadata(&earlier)
        .is_ok_and(|m| m.is_file() && m.len() == bytes.len() as u64)
        && std::fs::read(&earlier).is_ok_and(|old| old == bytes);
    if same {
        return std::fs::rename(&earlier, &dest);
    }
    crate::cache::replace_atomically(&dest, bytes)
}

/// Adds `name` to the run, rewrites `dir/`[`INDEX_FILE`] and tells cargo the run's models.
pub fn record(dir: &Path, name: &str) -> std::io::Result<()> {
    let mut run = RUN.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let models = run.get_or_insert_with(Vec::new);
    if !models.iter().any(|m| m == name) {
        models.push(name.to_string());
    }
    let json = serde_json::to_string_pretty(&serde_json::json!({ "models": models }))
        .map_err(std::io::Error::other)?;
    crate::cache::replace_atomically(&dir.join(INDEX_FILE), format!("{json}\n").as_bytes())?;
    println!("cargo::rustc-env={MODELS_VAR}={}", models.join(","));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A model may be called `index`: its manifest and the run's list are two files.
    #[test]
    fn the_run_index_never_overwrites_a_manifest() {
        let dir = tempfile::tempdir().unwrap();
        place_bytes(dir.path(), "index.json", b"{\"sha256\": \"ab\"}").unwrap();
        record(dir.path(), "index").unwrap();
        let manifest = std::fs::read(dir.path().join("index.json")).unwrap();
        assert_eq!(manifest, b"{\"sha256\": \"ab\"}");
    }

    /// `Digits` after `digits` would overwrite its artifacts where case is not told apart.
    #[test]
    fn names_that_differ_only_in_case_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        begin(dir.path(), "digits").unwrap();
        record(dir.path(), "digits").unwrap();
        match begin(dir.path(), "Digits") {
            Err(BeginError::SameFiles(other)) => assert_eq!(other, "digits"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            begin(dir.path(), "digits"),
            Err(BeginError::Duplicate)
        ));
        begin(dir.path(), "digits_2").unwrap();
    }

    /// With the cache on another file system the artifact is a copy; an unchanged one is
    /// the previous run's file, untouched (before: written anew every run, so a new time).
    #[test]
    fn an_unchanged_copy_of_an_entry_is_not_rewritten() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("graphopt");
        std::fs::create_dir_all(&out).unwrap();
        let entry = dir.path().join("model.pb");
        std::fs::write(&entry, b"graph").unwrap();
        NO_LINKS.with(|no| no.set(true));
        place_linked(&out, "m.pb", &entry).unwrap();
        let stamp = |p: &Path| std::fs::metadata(p).ok().and_then(|m| Stamp::of(&m));
        let first = stamp(&out.join("m.pb")).unwrap();
        assert!(!first.same_file(&stamp(&entry).unwrap()), "a copy");
        let first_modified = std::fs::metadata(out.join("m.pb"))
            .unwrap()
            .modified()
            .unwrap();
        // The next run sets the copy aside and places the model again.
        set_aside(&out).unwrap();
        place_linked(&out, "m.pb", &entry).unwrap();
        let again = stamp(&out.join("m.pb")).unwrap();
        let modified = |p: &Path| std::fs::metadata(p).unwrap().modified().unwrap();
        assert!(again.same_file(&first), "the previous copy, not a new one");
        assert_eq!(modified(&out.join("m.pb")), first_modified);
        // A changed entry is copied anew.
        set_aside(&out).unwrap();
        std::fs::remove_file(&entry).unwrap();
        std::fs::write(&entry, b"other").unwrap();
        place_linked(&out, "m.pb", &entry).unwrap();
        assert_eq!(std::fs::read(out.join("m.pb")).unwrap(), b"other");
        NO_LINKS.with(|no| no.set(false));
    }

    /// The build treats a cache entry that vanished between its lookup and its link (pruned
    /// by a concurrent build) as a miss, which it tells by `NotFound`.
    #[test]
    fn linking_a_vanished_entry_is_not_found() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("pruned/model.pb");
        let error = place_linked(dir.path(), "m.pb", &missing).unwrap_err();
        assert_eq!(error.kind(), std::io::ErrorKind::NotFound);
        assert!(!dir.path().join("m.pb").exists());
    }
}
