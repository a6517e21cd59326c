//! The content-addressed artifact cache: `<cache dir>/<key>/model.pb` and `manifest.json`,
//! written atomically so concurrent builds never see a partial entry, and a `used` file whose
//! modification time says when a build last used the entry.
//!
//! Pruning keeps the cache within a size and an age ([`Limits`]); it never removes an entry
//! used in the last [`IN_USE`] (a concurrent build may be reading it), and removes an entry by
//! first renaming it, so a reader finds the whole entry or none.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use sha2::{Digest, Sha256};

use crate::fingerprint::Memo;
use crate::manifest::Manifest;

/// Hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&crate::sha256::digest(bytes))
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The most a file graphopt reads whole besides the model may hold (a manifest, a memo, a
/// lock file: kilobytes, megabytes for the largest models).
pub const SMALL_FILE: u64 = 64 << 20;

/// The bytes of the regular file at `path` if it holds at most `limit`: the small files a
/// build reads whole go through this, so one replaced by a FIFO, a device, a link to one or a
/// huge file is an error, never a hang or an allocation without end.
pub fn read_small(path: &Path, limit: u64) -> std::io::Result<Vec<u8>> {
    let size = graphopt_core::io::regular_file(path)?;
    if size > limit {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!(
                "{} long, where at most {} is expected",
                graphopt_core::budget::size(size),
                graphopt_core::budget::size(limit)
            ),
        ));
    }
    // Read no further than the size checked, should the file grow meanwhile.
    graphopt_core::io::read_regular(path)
}

/// [`read_small`] as UTF-8 text.
pub fn read_small_text(path: &Path, limit: u64) -> std::io::Result<String> {
    String::from_utf8(read_small(path, limit)?).map_err(|e| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("not valid UTF-8 text ({e})"),
        )
    })
}

/// A listing of every file under `dir` (sorted relative paths, sizes and sha256s), so a
/// directory source is keyed by its whole content. Files are hashed as streams, or their hash
/// taken from `memo` when they are unchanged. Symlinks are followed as the freezer follows
/// them (a `variables` link to a checkpoint elsewhere is keyed by that checkpoint), each
/// directory once, so a link cycle cannot make the walk endless; a dangling link is skipped
/// (nothing can read it: an editor's lock link). Also returns the total size of the files.
pub fn directory_digest(
    dir: &Path,
    memo: &mut Memo,
) -> Result<(Vec<u8>, u64), (PathBuf, std::io::Error)> {
    let mut files = Vec::new();
    let mut pending = vec![PathBuf::new()];
    let mut visited = std::collections::HashSet::new();
    let root = std::fs::canonicalize(dir).map_err(|e| (dir.to_path_buf(), e))?;
    while let Some(relative) = pending.pop() {
        let path = dir.join(&relative);
        let real = std::fs::canonicalize(&path).map_err(|e| (path.clone(), e))?;
        // A link up to a directory holding the model (`up -> ..`, `home -> ~`) would key,
        // and hash, that whole tree: the package's target directory, the home directory.
        if real != root && root.starts_with(&real) {
            let message = format!(
                "links to {}, a directory that holds the model; every file under the model's directory is hashed, so link to what the model needs (its variables directory) instead",
                real.display()
            );
            return Err((path, std::io::Error::other(message)));
        }
        if !visited.insert(real) {
            continue;
        }
        let mut entries = std::fs::read_dir(&path)
            .and_then(|listing| listing.collect::<Result<Vec<_>, _>>())
            .map_err(|e| (path.clone(), e))?;
        // In name order, so a directory reachable twice is listed under the same path on
        // every file system.
        entries.sort_by_key(|entry| entry.file_name());
        for entry in entries {
            let mut kind = entry.file_type().map_err(|e| (entry.path(), e))?;
            if kind.is_symlink() {
                match std::fs::metadata(entry.path()) {
                    Ok(target) => kind = target.file_type(),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                    Err(e) => return Err((entry.path(), e)),
                }
            }
            let child = relative.join(entry.file_name());
            if kind.is_dir() {
                pending.push(child);
            } else {
                files.push(child);
            }
        }
    }
    files.sort();
    let mut listing = Vec::new();
    let mut total = 0u64;
    for relative in files {
        let path = dir.join(&relative);
        let hashed = memo
            .hash_file(&path, false)
            .map_err(|e| (path.clone(), e))?;
        total = total.saturating_add(hashed.size);
        let name: Vec<String> = relative
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect();
        listing.extend_from_slice(
            format!("{} {} {}\n", name.join("/"), hashed.size, hashed.sha256).as_bytes(),
        );
    }
    Ok((listing, total))
}

/// Builds a cache key from labelled parts; each part is length-prefixed so no two different
/// lists of parts hash the same.
#[derive(Default)]
pub struct KeyBuilder(Sha256);

impl KeyBuilder {
    pub fn part(&mut self, label: &str, bytes: &[u8]) -> &mut Self {
        for piece in [label.as_bytes(), bytes] {
            self.0.update((piece.len() as u64).to_le_bytes());
            self.0.update(piece);
        }
        self
    }

    /// A part made of several strings, each length-prefixed: `["a", "b"]` and `["a,b"]`
    /// differ.
    pub fn list(&mut self, label: &str, items: &[String]) -> &mut Self {
        let mut bytes = Vec::new();
        for item in items {
            bytes.extend_from_slice(&(item.len() as u64).to_le_bytes());
            bytes.extend_from_slice(item.as_bytes());
        }
        self.part(label, &bytes)
    }

    pub fn finish(self) -> String {
        self.0
            .finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}

/// The cache folder: `$GRAPHOPT_CACHE_DIR` (a relative one taken from `workspace_root`, so
/// every package of a workspace shares it, wherever cargo runs their build scripts), else
/// `graphopt-cache` in the target directory.
pub fn cache_dir(out_dir: &Path, workspace_root: &Path) -> PathBuf {
    cache_dir_from(
        out_dir,
        workspace_root,
        std::env::var_os("GRAPHOPT_CACHE_DIR"),
        std::env::var_os("CARGO_TARGET_DIR"),
    )
}

/// [`cache_dir`] given the two variables' values.
fn cache_dir_from(
    out_dir: &Path,
    workspace_root: &Path,
    cache_var: Option<std::ffi::OsString>,
    target_var: Option<std::ffi::OsString>,
) -> PathBuf {
    if let Some(dir) = cache_var.filter(|d| !d.is_empty()) {
        return workspace_root.join(dir);
    }
    target_dir(out_dir, target_var).join("graphopt-cache")
}

/// The target directory the build writes to. cargo puts OUT_DIR at
/// `<target>/[<triple>/]<profile>/build/<pkg>-<hash>/out` and runs build scripts in their
/// package's directory, so `$CARGO_TARGET_DIR` is used as given only when absolute; a relative
/// one (relative to where cargo was started, which a build script cannot know) is the ancestor
/// of OUT_DIR that ends with it. Otherwise the fourth ancestor of OUT_DIR.
fn target_dir(out_dir: &Path, target_var: Option<std::ffi::OsString>) -> PathBuf {
    if let Some(var) = target_var.filter(|d| !d.is_empty()) {
        let var = PathBuf::from(var);
        if var.is_absolute() {
            return var;
        }
        let plain = var
            .components()
            .all(|c| matches!(c, std::path::Component::Normal(_)));
        if plain {
            if let Some(found) = out_dir.ancestors().find(|a| a.ends_with(&var)) {
                return found.to_path_buf();
            }
        }
    }
    // out -> <pkg>-<hash> -> build -> <profile> -> <target>
    out_dir
        .ancestors()
        .nth(4)
        .map_or_else(|| out_dir.to_path_buf(), Path::to_path_buf)
}

/// A cache entry, if present and intact: the path of its model bytes and its manifest. An
/// entry whose bytes no longer match its recorded hash is reported and ignored; the bytes are
/// hashed only when their stamp changed since `memo` last saw them intact.
pub fn lookup(
    dir: &Path,
    key: &str,
    memo: &mut Memo,
) -> Result<Option<(PathBuf, Manifest)>, String> {
    let entry = dir.join(key);
    let model = entry.join("model.pb");
    let text = match read_small_text(&entry.join("manifest.json"), SMALL_FILE) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(format!(
                "cache entry {} has an unreadable manifest ({e}); rebuilding",
                entry.display()
            ))
        }
    };
    let manifest: Manifest = match serde_json::from_str(&text) {
        Ok(m) => m,
        Err(e) => {
            return Err(format!(
                "cache entry {} has an unreadable manifest ({e}); rebuilding",
                entry.display()
            ))
        }
    };
    // A manifest is trusted only for its own entry: one copied or moved under another key
    // (or edited) would hand back another model's artifact, or typed constants that do not
    // describe its bytes (include_model! sizes GRAPH_DEF by `size_bytes`).
    if manifest.key != key {
        return Err(format!(
            "cache entry {} holds the manifest of entry {}; rebuilding",
            entry.display(),
            manifest.key
        ));
    }
    match memo.has_sha256(&model, &manifest.sha256, manifest.size_bytes) {
        Ok(true) => {}
        Ok(false) => {
            return Err(format!(
                "cache entry {} does not match its recorded hash and size; rebuilding",
                entry.display()
            ))
        }
        Err(_) => return Ok(None),
    }
    touch(&entry);
    Ok(Some((model, manifest)))
}

/// Records that a build uses the entry now (best effort: a failure only makes the entry look
/// older to pruning, and in-use protection also looks at the directory's own time).
fn touch(entry: &Path) {
    let marker = entry.join("used");
    // Opening a FIFO (or a link to one) to write blocks until a reader comes: anything but a
    // regular file is replaced.
    if std::fs::symlink_metadata(&marker).is_ok_and(|m| !m.is_file()) {
        let _ = std::fs::remove_file(&marker);
    }
    let _ = std::fs::File::create(&marker).and_then(|f| f.set_modified(SystemTime::now()));
}

/// Stores an entry (bytes first, manifest last, each atomically) and returns the path of its
/// model bytes.
pub fn store(dir: &Path, key: &str, bytes: &[u8], manifest: &Manifest) -> std::io::Result<PathBuf> {
    let entry = dir.join(key);
    std::fs::create_dir_all(&entry)?;
    let json = serde_json::to_string_pretty(manifest).map_err(std::io::Error::other)?;
    let model = entry.join("model.pb");
    replace_atomically(&model, bytes)?;
    replace_atomically(&entry.join("manifest.json"), json.as_bytes())?;
    touch(&entry);
    Ok(model)
}

/// Temporary sibling file, then rename: readers see the old file or the whole new one. A
/// symlink at `path` is written through, a FIFO or character device written into (as the CLI
/// writes its outputs): only for a file the user names (the lock file).
pub fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    graphopt_core::io::write_atomically(path, bytes)
        .map_err(|e| std::io::Error::other(e.to_string()))
}

/// [`write_atomically`] for the files graphopt owns (cache entries, OUT_DIR's artifacts,
/// memos and index): whatever else is at `path` is replaced, never followed or written into.
/// A symlink there (a damaged or planted cache entry) would have been written through to a
/// file outside the cache, a link to a FIFO blocked the build for ever, one to `/dev/null`
/// swallowed the entry, which then stayed damaged.
pub fn replace_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    match std::fs::symlink_metadata(path) {
        Ok(metadata) if !metadata.is_file() && !metadata.is_dir() => std::fs::remove_file(path)?,
        _ => {}
    }
    write_atomically(path, bytes)
}

/// How long after its last use an entry counts as in use by a build and is never removed.
pub const IN_USE: Duration = Duration::from_secs(10 * 60);

/// How large and how old the cache may grow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Total bytes of all entries.
    pub max_size: u64,
    /// Time since an entry's last use.
    pub max_age: Duration,
}

/// The size limit's variable: bytes, or a number with a K, M or G suffix (powers of 1024).
pub const MAX_SIZE_VAR: &str = "GRAPHOPT_CACHE_MAX_SIZE";
/// The age limit's variable: days.
pub const MAX_AGE_VAR: &str = "GRAPHOPT_CACHE_MAX_AGE_DAYS";

impl Limits {
    /// 1 GiB, 30 days.
    pub const DEFAULT: Limits = Limits {
        max_size: 1 << 30,
        max_age: Duration::from_secs(30 * 24 * 3600),
    };

    /// 1 GiB and 30 days, unless `GRAPHOPT_CACHE_MAX_SIZE` / `GRAPHOPT_CACHE_MAX_AGE_DAYS` say
    /// otherwise. A value that does not parse is an error naming the variable.
    pub fn from_env() -> Result<Limits, String> {
        let mut limits = Limits::DEFAULT;
        if let Some(text) = std::env::var(MAX_SIZE_VAR).ok().filter(|v| !v.is_empty()) {
            limits.max_size = parse_size(&text).ok_or_else(|| {
                format!("{MAX_SIZE_VAR}={text} is not a size like 500M, 2G or 1048576")
            })?;
        }
        if let Some(text) = std::env::var(MAX_AGE_VAR).ok().filter(|v| !v.is_empty()) {
            let days: u64 = text
                .trim()
                .parse()
                .map_err(|_| format!("{MAX_AGE_VAR}={text} is not a number of days"))?;
            limits.max_age = Duration::from_secs(days.saturating_mul(24 * 3600));
        }
        Ok(limits)
    }
}

fn parse_size(text: &str) -> Option<u64> {
    let text = text.trim();
    let (number, unit) = match text.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((i, _)) => text.split_at(i),
        None => (text, ""),
    };
    let shift = match unit
        .trim()
        .to_ascii_uppercase()
        .trim_end_matches("IB")
        .trim_end_matches('B')
    {
        "" => 0,
        "K" => 10,
        "M" => 20,
        "G" => 30,
        "T" => 40,
        _ => return None,
    };
    number.parse::<u64>().ok()?.checked_mul(1u64 << shift)
}

/// One entry as pruning sees it.
struct Entry {
    path: PathBuf,
    size: u64,
    last_use: SystemTime,
}

fn entry_size(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|files| {
            files
                .filter_map(|f| f.ok()?.metadata().ok())
                .map(|m| m.len())
                // Sparse files may claim up to 8 EiB each: a sum would overflow.
                .fold(0, u64::saturating_add)
        })
        .unwrap_or(0)
}

fn is_key(name: &str) -> bool {
    name.len() == 64 && name.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Removes entries unused for longer than `limits.max_age`, then the least recently used ones
/// until the rest fit in `limits.max_size`; entries used within [`IN_USE`] stay whatever the
/// limits. Returns the removed keys. Failures to remove are skipped (another build may have
/// removed the entry first).
pub fn prune(dir: &Path, limits: Limits) -> Vec<String> {
    let now = SystemTime::now();
    let age = |time: SystemTime| now.duration_since(time).unwrap_or_default();
    let Ok(listing) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut entries = Vec::new();
    for item in listing.filter_map(|e| e.ok()) {
        let name = item.file_name().to_string_lossy().into_owned();
        let path = item.path();
        let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
        if name.contains(".removing-") {
            // Left by a build that stopped while removing it.
            if modified(&path).is_some_and(|t| age(t) > IN_USE) {
                let _ = std::fs::remove_dir_all(&path);
            }
            continue;
        }
        if !is_key(&name) {
            continue;
        }
        let last_use = last_use(&path).unwrap_or(now);
        entries.push(Entry {
            size: entry_size(&path),
            path,
            last_use,
        });
    }
    // Oldest first.
    entries.sort_by_key(|e| e.last_use);
    let mut total = entries.iter().fold(0u64, |t, e| t.saturating_add(e.size));
    let mut removed = Vec::new();
    for entry in &entries {
        let idle = age(entry.last_use);
        if idle <= IN_USE || (idle <= limits.max_age && total <= limits.max_size) {
            continue;
        }
        // A build may have used the entry since the listing: look again just before removing.
        // (What a build still races past this is caught on its side: an entry that vanishes
        // between its lookup and its link is a miss, built afresh.)
        if last_use(&entry.path).is_some_and(|t| age(t) <= IN_USE) {
            continue;
        }
        if remove_entry(&entry.path) {
            total = total.saturating_sub(entry.size);
            if let Some(name) = entry.path.file_name() {
                removed.push(name.to_string_lossy().into_owned());
            }
        }
    }
    removed
}

/// When a build last used the entry at `path`: its `used` marker's time or the directory's
/// own, whichever is later.
fn last_use(path: &Path) -> Option<SystemTime> {
    let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    [modified(&path.join("used")), modified(path)]
        .into_iter()
        .flatten()
        .max()
}

/// Renames the entry out of the way (readers then miss it as a whole), then deletes it.
fn remove_entry(path: &Path) -> bool {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let mut doomed = path.as_os_str().to_owned();
    doomed.push(format!(".removing-{}-{n}", std::process::id()));
    let doomed = PathBuf::from(doomed);
    if std::fs::rename(path, &doomed).is_err() {
        return false;
    }
    let _ = std::fs::remove_dir_all(&doomed);
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest(dir: &Path) -> Vec<u8> {
        let mut memo = Memo::load(dir.join("no-memo.json"));
        directory_digest(dir, &mut memo)
            .map_err(|(path, e)| format!("{}: {e}", path.display()))
            .expect("digest")
            .0
    }

    #[cfg(unix)]
    #[test]
    fn a_directory_digest_follows_links_once_and_skips_dangling_ones() {
        use std::os::unix::fs::symlink;
        let root = tempfile::tempdir().expect("tempdir");
        let model = root.path().join("model");
        let checkpoint = root.path().join("checkpoint");
        std::fs::create_dir_all(&model).expect("mkdir");
        std::fs::create_dir_all(&checkpoint).expect("mkdir");
        std::fs::write(model.join("saved_model.pb"), b"graph").expect("write");
        std::fs::write(checkpoint.join("variables.index"), b"v1").expect("write");
        symlink(&checkpoint, model.join("variables")).expect("link");
        // A cycle and a dangling link: neither stops the walk or changes the listing.
        symlink(&model, checkpoint.join("back")).expect("link");
        let before = digest(&model);
        let text = String::from_utf8(before.clone()).expect("utf-8");
        assert!(text.contains("variables/variables.index 2 "), "{text}");
        symlink(root.path().join("nowhere"), model.join(".#lock")).expect("link");
        assert_eq!(digest(&model), before, "a dangling link is not keyed");
        // The checkpoint behind the link is keyed: retraining it changes the digest.
        std::fs::write(checkpoint.join("variables.index"), b"v2").expect("write");
        assert_ne!(digest(&model), before);
    }

    fn manifest(key: &str, bytes: &[u8]) -> Manifest {
        Manifest::of_bytes("m", key, bytes)
    }

    /// An entry is used only under its own key and with the size its manifest gives.
    #[test]
    fn an_entry_moved_under_another_key_or_with_a_lying_size_is_not_used() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cache = dir.path().join("cache");
        let (a, b) = ("a".repeat(64), "b".repeat(64));
        let mut memo = Memo::load(dir.path().join("memo.json"));
        store(&cache, &a, b"graph", &manifest(&a, b"graph")).expect("store");
        assert!(matches!(lookup(&cache, &a, &mut memo), Ok(Some(_))));
        // The whole entry copied under another key: its bytes match its manifest, but it is
        // the artifact of another model.
        std::fs::create_dir_all(cache.join(&b)).expect("mkdir");
        for file in ["model.pb", "manifest.json"] {
            std::fs::copy(cache.join(&a).join(file), cache.join(&b).join(file)).expect("copy");
        }
        let warning = lookup(&cache, &b, &mut memo).expect_err("another key's manifest");
        assert!(warning.contains("holds the manifest of entry"), "{warning}");
        // A manifest whose size is not its bytes' would make include_model! mis-size them.
        let mut lying = manifest(&a, b"graph");
        lying.size_bytes = 6;
        std::fs::write(
            cache.join(&a).join("manifest.json"),
            serde_json::to_string(&lying).expect("json"),
        )
        .expect("write");
        let warning = lookup(&cache, &a, &mut memo).expect_err("a lying size");
        assert!(
            warning.contains("does not match its recorded hash"),
            "{warning}"
        );
    }

    #[cfg(unix)]
    #[test]
    fn a_link_up_to_a_directory_holding_the_model_is_refused() {
        use std::os::unix::fs::symlink;
        let root = tempfile::tempdir().expect("tempdir");
        let model = root.path().join("package/models/cnn");
        std::fs::create_dir_all(&model).expect("mkdir");
        std::fs::write(model.join("saved_model.pb"), b"graph").expect("write");
        std::fs::write(root.path().join("package/big.bin"), b"not the model").expect("write");
        symlink(root.path().join("package"), model.join("up")).expect("link");
        let mut memo = Memo::load(root.path().join("memo.json"));
        let (path, error) = directory_digest(&model, &mut memo).expect_err("refused");
        assert_eq!(path, model.join("up"));
        assert!(
            error
                .to_string()
                .contains("a directory that holds the model"),
            "{error}"
        );
    }

    /// A manifest replaced by a link to a device, a FIFO or a huge sparse file: a warning, not
    /// a read without end (before: /dev/zero was read until memory ran out).
    #[cfg(unix)]
    #[test]
    fn a_cache_manifest_that_is_no_small_regular_file_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cache = dir.path().join("cache");
        let key = "c".repeat(64);
        let mut memo = Memo::load(dir.path().join("memo.json"));
        store(&cache, &key, b"graph", &manifest(&key, b"graph")).expect("store");
        let path = cache.join(&key).join("manifest.json");
        let fifo = dir.path().join("fifo");
        let made_fifo = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .is_ok_and(|s| s.success());
        let sparse = dir.path().join("sparse");
        std::fs::File::create(&sparse)
            .and_then(|f| f.set_len(1 << 40))
            .expect("sparse file");
        let mut targets = vec![PathBuf::from("/dev/zero"), sparse];
        if made_fifo {
            targets.push(fifo);
        }
        for target in targets {
            std::fs::remove_file(&path).expect("remove");
            std::os::unix::fs::symlink(&target, &path).expect("link");
            let warning = lookup(&cache, &key, &mut memo).expect_err("refused");
            assert!(warning.contains("has an unreadable manifest"), "{warning}");
        }
    }

    /// A damaged entry whose files are links (to a file outside the cache, to a FIFO) is
    /// rebuilt as regular files: before, the store wrote through the link, replacing the file
    /// outside, and blocked for ever opening the FIFO (shown in a scratch app: `cargo build`
    /// hung until killed). The FIFO has a reader here, so the old code fails the test rather
    /// than hanging it. (`O_NONBLOCK` is 0o4000 on these architectures.)
    #[cfg(all(
        target_os = "linux",
        any(target_arch = "x86_64", target_arch = "aarch64")
    ))]
    #[test]
    fn a_store_replaces_links_and_fifos_in_an_entry_and_writes_through_none() {
        use std::os::unix::fs::OpenOptionsExt as _;
        let dir = tempfile::tempdir().expect("tempdir");
        let cache = dir.path().join("cache");
        let key = "f".repeat(64);
        let entry = cache.join(&key);
        std::fs::create_dir_all(&entry).expect("mkdir");
        let outside = dir.path().join("outside.pb");
        std::fs::write(&outside, b"not the cache's").expect("write");
        std::os::unix::fs::symlink(&outside, entry.join("model.pb")).expect("link");
        let fifo = dir.path().join("fifo");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .expect("mkfifo runs");
        assert!(made.success(), "mkfifo failed");
        std::os::unix::fs::symlink(&fifo, entry.join("manifest.json")).expect("link");
        std::os::unix::fs::symlink(&fifo, entry.join("used")).expect("link");
        const O_NONBLOCK: i32 = 0o4000;
        let _reader = std::fs::File::options()
            .read(true)
            .custom_flags(O_NONBLOCK)
            .open(&fifo)
            .expect("open the FIFO");
        let mut memo = Memo::load(dir.path().join("memo.json"));
        assert!(lookup(&cache, &key, &mut memo).is_err(), "a damaged entry");
        store(&cache, &key, b"graph", &manifest(&key, b"graph")).expect("store");
        assert_eq!(std::fs::read(&outside).expect("read"), b"not the cache's");
        for file in ["model.pb", "manifest.json", "used"] {
            let kind = std::fs::symlink_metadata(entry.join(file)).expect("stat");
            assert!(kind.is_file(), "{file} is {kind:?}");
        }
        assert!(matches!(lookup(&cache, &key, &mut memo), Ok(Some(_))));
    }

    /// Files claiming 8 EiB each (sparse, where the file system allows it: tmpfs, XFS,
    /// Btrfs) overflowed the sizes' sum: a panic in the build script's dev profile.
    #[cfg(target_os = "linux")]
    #[test]
    fn pruning_a_cache_of_huge_sparse_files_does_not_overflow() {
        let Ok(dir) = tempfile::tempdir_in("/dev/shm") else {
            return;
        };
        for key in ["d", "e"] {
            let entry = dir.path().join(key.repeat(64));
            std::fs::create_dir_all(&entry).expect("mkdir");
            for name in ["model.pb", "manifest.json", "used"] {
                let huge = std::fs::File::create(entry.join(name))
                    .and_then(|f| f.set_len(i64::MAX as u64));
                if huge.is_err() {
                    return;
                }
            }
        }
        // Both are in use (just written), so nothing is removed; what matters is no panic.
        assert!(prune(dir.path(), Limits::DEFAULT).is_empty());
    }

    #[test]
    fn list_parts_keep_their_items_apart() {
        let key = |items: &[&str]| {
            let items: Vec<String> = items.iter().map(|s| s.to_string()).collect();
            let mut key = KeyBuilder::default();
            key.list("inputs", &items);
            key.finish()
        };
        assert_ne!(key(&["a", "b"]), key(&["a,b"]));
        assert_ne!(key(&["ab"]), key(&["a", "b"]));
        assert_eq!(key(&["a", "b"]), key(&["a", "b"]));
    }

    #[test]
    fn the_cache_dir_is_one_per_workspace_wherever_a_build_script_runs() {
        let root = Path::new("/ws");
        let out = Path::new("/ws/tgt/debug/build/app-0123/out");
        let dir = |cache: Option<&str>, target: Option<&str>| {
            cache_dir_from(out, root, cache.map(Into::into), target.map(Into::into))
        };
        // A relative GRAPHOPT_CACHE_DIR is the workspace's, an absolute one as given.
        assert_eq!(dir(Some("cache"), None), Path::new("/ws/cache"));
        assert_eq!(dir(Some("/c"), Some("/t")), Path::new("/c"));
        // Unset or empty: the target directory found above OUT_DIR.
        assert_eq!(dir(None, None), Path::new("/ws/tgt/graphopt-cache"));
        assert_eq!(dir(Some(""), Some("")), Path::new("/ws/tgt/graphopt-cache"));
        // An absolute CARGO_TARGET_DIR as given; a relative one is where OUT_DIR lies, never
        // a directory of that name inside the package.
        assert_eq!(dir(None, Some("/t")), Path::new("/t/graphopt-cache"));
        assert_eq!(dir(None, Some("tgt")), Path::new("/ws/tgt/graphopt-cache"));
        assert_eq!(
            dir(None, Some("ws/tgt")),
            Path::new("/ws/tgt/graphopt-cache")
        );
        // One that OUT_DIR does not end in (`..`, or a build-dir elsewhere): from OUT_DIR.
        assert_eq!(
            dir(None, Some("../tgt")),
            Path::new("/ws/tgt/graphopt-cache")
        );
        assert_eq!(
            dir(None, Some("other")),
            Path::new("/ws/tgt/graphopt-cache")
        );
        // With a target triple, OUT_DIR is one level deeper; the named directory still wins.
        let triple = Path::new("/ws/tgt/x86_64-unknown-linux-gnu/debug/build/app-0123/out");
        let found = cache_dir_from(triple, root, None, Some("tgt".into()));
        assert_eq!(found, Path::new("/ws/tgt/graphopt-cache"));
    }

    #[test]
    fn the_default_limits_are_one_gib_and_thirty_days() {
        assert_eq!(Limits::DEFAULT.max_size, parse_size("1G").unwrap_or(0));
        assert_eq!(Limits::DEFAULT.max_age, Duration::from_secs(30 * 86400));
    }

    #[test]
    fn sizes_parse_with_binary_suffixes() {
        assert_eq!(parse_size("1048576"), Some(1 << 20));
        assert_eq!(parse_size("500M"), Some(500 << 20));
        assert_eq!(parse_size("2G"), Some(2 << 30));
        assert_eq!(parse_size("2GiB"), Some(2 << 30));
        assert_eq!(parse_size("64k"), Some(64 << 10));
        assert_eq!(parse_size("0"), Some(0));
        assert_eq!(parse_size("lots"), None);
        assert_eq!(parse_size("1X"), None);
    }
}
