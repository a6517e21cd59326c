//! A memo of file fingerprints, so an unchanged input is never read again: like cargo's
//! fingerprints, a file's SHA-256 is reused while its size, nanosecond modification and change
//! times, inode and device are all unchanged, and computed afresh whenever any of them changes.
//!
//! The memo lives in `$OUT_DIR/graphopt-fingerprints.json`, one per package build, so two
//! builds never write one memo. Losing it only costs a rehash.
//!
//! Like git's index, a file modified within [`RACY`] of being hashed is not memoized: a write
//! in the same clock tick as the hash would leave its fingerprint unchanged. Nor is a model
//! file whose change time is that recent (its modification time set back by `cp -p`,
//! `touch -d` or an unpacked archive): a same-size rewrite with the time set back again
//! would differ only in a change time that the same clock tick leaves equal.
//!
//! Cache entries are checked without their change time: graphopt hard-links them into
//! OUT_DIR and renames those links, which changes the change time of the entry's file too;
//! entries are only ever replaced by a rename, never written in place, and a write in place
//! changes the modification time.

use std::collections::BTreeMap;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

/// Files modified less than this before they were hashed are hashed again next time.
pub const RACY: Duration = Duration::from_secs(2);

/// What identifies one version of a file without reading it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stamp {
    size: u64,
    modified_ns: i128,
    changed_ns: i128,
    inode: u64,
    device: u64,
}

impl Stamp {
    /// The stamp of a regular file; `None` for anything else.
    pub fn of(metadata: &std::fs::Metadata) -> Option<Stamp> {
        if !metadata.is_file() {
            return None;
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt as _;
            let ns = |s: i64, n: i64| i128::from(s) * 1_000_000_000 + i128::from(n);
            Some(Stamp {
                size: metadata.len(),
                modified_ns: ns(metadata.mtime(), metadata.mtime_nsec()),
                changed_ns: ns(metadata.ctime(), metadata.ctime_nsec()),
                inode: metadata.ino(),
                device: metadata.dev(),
            })
        }
        #[cfg(not(unix))]
        {
            let modified = metadata
                .modified()
                .ok()?
                .duration_since(SystemTime::UNIX_EPOCH)
                .ok()?
                .as_nanos() as i128;
            Some(Stamp {
                size: metadata.len(),
                modified_ns: modified,
                changed_ns: modified,
                inode: 0,
                device: 0,
            })
        }
    }

    /// Whether the file changed within [`RACY`] of `now`: its modification time, and for
    /// [`Scope::Input`] its change time too. A file whose modification time was set back
    /// (`touch -d`, `cp -p`, an unpacked archive, Nix's fixed times) is told from its next
    /// version of the same size only by the change time, which a rewrite in the same clock
    /// tick leaves equal: that fingerprint is no more trustworthy than a fresh modification
    /// time. (A time in the future, from clock skew, is racy too.)
    fn is_racy(&self, now: SystemTime, scope: Scope) -> bool {
        let now_ns = now
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as i128);
        let latest = match scope {
            Scope::Input => self.modified_ns.max(self.changed_ns),
            // Entries' change times are not compared (linking changes them).
            Scope::CacheEntry => self.modified_ns,
        };
        now_ns.saturating_sub(latest) < RACY.as_nanos() as i128
    }

    /// Whether `self` matches `other`, the change time compared only for [`Scope::Input`].
    fn matches(&self, other: &Stamp, scope: Scope) -> bool {
        match scope {
            Scope::Input => self == other,
            Scope::CacheEntry => {
                Stamp {
                    changed_ns: other.changed_ns,
                    ..*self
                } == *other
            }
        }
    }

    /// Whether two stamps are of one file on disk (hard links share it).
    pub fn same_file(&self, other: &Stamp) -> bool {
        cfg!(unix) && self.inode == other.inode && self.device == other.device
    }
}

/// What [`WHILE_READING`] runs.
#[cfg(test)]
type ReadHook = Box<dyn FnMut(&Path)>;

#[cfg(test)]
thread_local! {
    /// Runs after a file was read to hash it, before its stamp is taken again: the tests'
    /// way to change the file in the middle of a read.
    static WHILE_READING: std::cell::RefCell<Option<ReadHook>> =
        const { std::cell::RefCell::new(None) };
}

/// What a file is to the memo, which decides what its stamp must keep.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scope {
    /// A model's source: every part of the stamp.
    Input,
    /// A cache entry's artifact: all but the change time.
    CacheEntry,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Entry {
    stamp: Stamp,
    sha256: String,
}

/// The memo: file path to (stamp, SHA-256).
#[derive(Debug, Default)]
pub struct Memo {
    file: Option<PathBuf>,
    entries: BTreeMap<PathBuf, Entry>,
    changed: bool,
    /// How far the memo's clock runs ahead of the system's: zero, except in tests that
    /// stand for a hash taken long after the file changed.
    #[cfg(test)]
    ahead: Duration,
}

/// A file's SHA-256 and size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hashed {
    pub sha256: String,
    pub size: u64,
    /// The bytes, when they had to be read (the memo did not know the file).
    pub bytes: Option<Vec<u8>>,
}

impl Memo {
    /// The memo stored at `file`; an empty one when it is missing or unreadable.
    pub fn load(file: PathBuf) -> Memo {
        let entries = crate::cache::read_small(&file, crate::cache::SMALL_FILE)
            .ok()
            .and_then(|bytes| serde_json::from_slice::<Vec<(PathBuf, Entry)>>(&bytes).ok())
            .map(|list| list.into_iter().collect())
            .unwrap_or_default();
        Memo {
            file: Some(file),
            entries,
            changed: false,
            #[cfg(test)]
            ahead: Duration::ZERO,
        }
    }

    /// The time raciness is judged against.
    fn now(&self) -> SystemTime {
        #[cfg(test)]
        {
            SystemTime::now() + self.ahead
        }
        #[cfg(not(test))]
        {
            SystemTime::now()
        }
    }

    /// Writes the memo back if it changed (best effort: a lost memo only costs a rehash).
    pub fn save(&mut self) {
        let Some(file) = &self.file else { return };
        if !self.changed {
            return;
        }
        let list: Vec<(&PathBuf, &Entry)> = self.entries.iter().collect();
        if let Ok(json) = serde_json::to_vec(&list) {
            if crate::cache::replace_atomically(file, &json).is_ok() {
                self.changed = false;
            }
        }
    }

    fn remember(&mut self, path: &Path, stamp: Stamp, sha256: &str, scope: Scope) {
        if stamp.is_racy(self.now(), scope) {
            self.forget(path);
            return;
        }
        let entry = Entry {
            stamp,
            sha256: sha256.to_string(),
        };
        self.entries.insert(path.to_path_buf(), entry);
        self.changed = true;
    }

    fn forget(&mut self, path: &Path) {
        if self.entries.remove(path).is_some() {
            self.changed = true;
        }
    }

    /// The SHA-256 the memo holds for `path` if the file is unchanged since it was hashed.
    fn known(&self, path: &Path, stamp: &Stamp, scope: Scope) -> Option<&str> {
        self.entries
            .get(path)
            .filter(|e| e.stamp.matches(stamp, scope))
            .map(|e| e.sha256.as_str())
    }

    /// The SHA-256 and size of the regular file at `path`: from the memo when its stamp is
    /// unchanged, otherwise by reading it (then the bytes come back too, so a caller that
    /// needs them reads the file once). `keep_bytes` false hashes as a stream.
    pub fn hash_file(&mut self, path: &Path, keep_bytes: bool) -> std::io::Result<Hashed> {
        self.hash(path, keep_bytes, Scope::Input)
    }

    fn hash(&mut self, path: &Path, keep_bytes: bool, scope: Scope) -> std::io::Result<Hashed> {
        // regular_file refuses FIFOs and devices before anything opens them.
        graphopt_core::io::regular_file(path)?;
        let before = Stamp::of(&std::fs::metadata(path)?)
            .ok_or_else(|| std::io::Error::other("not a regular file"))?;
        if let Some(sha256) = self.known(path, &before, scope) {
            return Ok(Hashed {
                sha256: sha256.to_string(),
                size: before.size,
                bytes: None,
            });
        }
        let (sha256, bytes) = if keep_bytes {
            let bytes = graphopt_core::io::read_regular(path)?;
            (crate::cache::sha256_hex(&bytes), Some(bytes))
        } else {
            // Read at most one byte past the size stat gave, and nothing when it gave 0: a
            // file under /proc says "regular, 0 bytes" and then streams without end (or
            // blocks, as /proc/kmsg does).
            let limit = if before.size == 0 { 0 } else { before.size + 1 };
            let mut file = std::fs::File::open(path)?.take(limit);
            let mut hasher = crate::sha256::Hasher::default();
            let mut buffer = vec![0u8; 1 << 20];
            let mut read = 0u64;
            loop {
                let n = file.read(&mut buffer)?;
                if n == 0 {
                    break;
                }
                read = read.saturating_add(n as u64);
                hasher.update(&buffer[..n]);
            }
            if read != before.size {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!(
                        "the file changed while it was read ({} bytes expected, {read} read)",
                        before.size
                    ),
                ));
            }
            (crate::cache::hex(&hasher.finalize()), None)
        };
        #[cfg(test)]
        WHILE_READING.with(|hook| {
            if let Some(hook) = hook.borrow_mut().as_mut() {
                hook(path);
            }
        });
        let after = std::fs::metadata(path).ok().and_then(|m| Stamp::of(&m));
        if after == Some(before) {
            self.remember(path, before, &sha256, scope);
        } else {
            self.forget(path);
            // A model rewritten in place while it was read (same size: the read's own check
            // sees no other change) gave bytes of no version that ever existed, half old and
            // half new weights: an artifact built from them would be cached under their hash.
            // A cache entry is only ever replaced by a rename, which leaves the read whole.
            if scope == Scope::Input {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    "the file changed while it was read; build again",
                ));
            }
        }
        let size = bytes.as_ref().map_or(before.size, |b| b.len() as u64);
        Ok(Hashed {
            sha256,
            size,
            bytes,
        })
    }

    /// Records that the cache entry's file at `path`, which this process just wrote
    /// atomically, has the SHA-256 `sha256`: the next run need not hash it. (No racy check: the
    /// file appeared whole by a rename, and a later write changes its modification time.)
    pub fn written(&mut self, path: &Path, sha256: &str) {
        match std::fs::metadata(path).ok().and_then(|m| Stamp::of(&m)) {
            Some(stamp) => {
                let entry = Entry {
                    stamp,
                    sha256: sha256.to_string(),
                };
                self.entries.insert(path.to_path_buf(), entry);
                self.changed = true;
            }
            None => self.forget(path),
        }
    }

    /// Whether the cache entry's file at `path` has the SHA-256 `expected` and `size` bytes:
    /// from the memo when the file is unchanged since it was last found so, otherwise by
    /// hashing it.
    pub fn has_sha256(&mut self, path: &Path, expected: &str, size: u64) -> std::io::Result<bool> {
        let hashed = self.hash(path, false, Scope::CacheEntry)?;
        Ok(hashed.sha256 == expected && hashed.size == size)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Sets a file's modification time into the past so it is not racy.
    fn age(path: &Path) {
        let past = SystemTime::now() - Duration::from_secs(60);
        std::fs::File::options()
            .write(true)
            .open(path)
            .unwrap()
            .set_modified(past)
            .unwrap();
    }

    /// /proc/self/pagemap is "a regular file of 0 bytes" that reads on for hundreds of GiB.
    #[cfg(target_os = "linux")]
    #[test]
    fn a_proc_file_is_read_no_further_than_its_size() {
        let dir = tempfile::tempdir().unwrap();
        let started = std::time::Instant::now();
        for keep_bytes in [false, true] {
            // A fresh memo each time, so that both ways of reading run.
            let hashed = Memo::load(dir.path().join(format!("memo-{keep_bytes}.json")))
                .hash_file(Path::new("/proc/self/pagemap"), keep_bytes)
                .unwrap();
            assert_eq!(hashed.size, 0);
            assert_eq!(hashed.sha256, crate::cache::sha256_hex(b""));
        }
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn an_unchanged_file_is_not_read_again_and_a_changed_one_is() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("model.pb");
        std::fs::write(&file, b"first").unwrap();
        age(&file);
        let memo_path = dir.path().join("memo.json");
        let mut memo = Memo::load(memo_path.clone());
        // Hashed a minute after `age` set the time back (its change time is now).
        memo.ahead = Duration::from_secs(60);
        let first = memo.hash_file(&file, true).unwrap();
        assert_eq!(first.sha256, crate::cache::sha256_hex(b"first"));
        assert!(first.bytes.is_some(), "read the first time");
        memo.save();

        let mut memo = Memo::load(memo_path.clone());
        memo.ahead = Duration::from_secs(60);
        let again = memo.hash_file(&file, true).unwrap();
        assert_eq!(again.sha256, first.sha256);
        assert!(again.bytes.is_none(), "taken from the memo");

        // Same size, new content: the times change, so it is hashed again.
        std::fs::write(&file, b"other").unwrap();
        let changed = memo.hash_file(&file, true).unwrap();
        assert_eq!(changed.sha256, crate::cache::sha256_hex(b"other"));
        assert!(changed.bytes.is_some());
    }

    #[test]
    fn a_file_written_just_now_is_not_memoized() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("model.pb");
        std::fs::write(&file, b"fresh").unwrap();
        let mut memo = Memo::load(dir.path().join("memo.json"));
        memo.hash_file(&file, false).unwrap();
        let again = memo.hash_file(&file, true).unwrap();
        assert!(again.bytes.is_some(), "a racy file is read every time");
    }

    /// A file whose modification time was set back just now (`cp -p`, `touch -d`, an
    /// unpacked archive) is told from a same-size rewrite with the same time only by its change
    /// time, which a rewrite within the same clock tick keeps: it is not memoized either.
    /// (Before: memoized, so such a rewrite kept the old hash and the old artifact.)
    #[test]
    fn a_file_whose_time_was_set_back_just_now_is_not_memoized() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("model.pb");
        std::fs::write(&file, b"first").unwrap();
        age(&file);
        let mut memo = Memo::load(dir.path().join("memo.json"));
        memo.hash_file(&file, false).unwrap();
        let again = memo.hash_file(&file, true).unwrap();
        assert!(
            again.bytes.is_some(),
            "a file changed just now is read again"
        );
        assert!(memo.entries.is_empty(), "{:?}", memo.entries);
        // A cache entry's change time is not compared, and so does not make it racy.
        memo.has_sha256(&file, &crate::cache::sha256_hex(b"first"), 5)
            .unwrap();
        assert!(memo.entries.contains_key(&file));
    }

    #[test]
    fn a_corrupted_cache_entry_is_caught_after_its_stamp_changes() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("model.pb");
        std::fs::write(&file, b"artifact").unwrap();
        age(&file);
        let expected = crate::cache::sha256_hex(b"artifact");
        let mut memo = Memo::load(dir.path().join("memo.json"));
        assert!(memo.has_sha256(&file, &expected, 8).unwrap());
        assert!(!memo.has_sha256(&file, &expected, 9).unwrap());
        std::fs::write(&file, b"corrupt!").unwrap();
        age(&file);
        assert!(!memo.has_sha256(&file, &expected, 8).unwrap());
    }

    /// A model rewritten in place, at the same size, while it was read (a training job
    /// saving over it during `cargo build`): before, the torn bytes were hashed, optimized and
    /// cached, and the build succeeded with weights of no version that ever existed.
    #[test]
    fn a_model_rewritten_while_it_is_read_is_an_error() {
        use std::io::Write as _;
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("model.pb");
        std::fs::write(&file, b"old weights").unwrap();
        age(&file);
        let rewrite = file.clone();
        WHILE_READING.with(|hook| {
            *hook.borrow_mut() = Some(Box::new(move |_: &Path| {
                let mut out = std::fs::File::options().write(true).open(&rewrite).unwrap();
                out.write_all(b"new").unwrap();
            }))
        });
        let mut memo = Memo::load(dir.path().join("memo.json"));
        for keep_bytes in [true, false] {
            let error = memo.hash_file(&file, keep_bytes).unwrap_err();
            assert!(
                error.to_string().contains("changed while it was read"),
                "{error}"
            );
        }
        // A cache entry's file is replaced by a rename, never written in place: its read is
        // whole, and a change is only a miss.
        assert!(!memo.has_sha256(&file, "", 11).unwrap());
        WHILE_READING.with(|hook| *hook.borrow_mut() = None);
        assert_eq!(
            memo.hash_file(&file, true).unwrap().sha256,
            crate::cache::sha256_hex(b"new weights")
        );
    }

    #[test]
    fn an_unreadable_memo_is_an_empty_one() {
        let dir = tempfile::tempdir().unwrap();
        let memo_path = dir.path().join("memo.json");
        std::fs::write(&memo_path, b"{not json").unwrap();
        let memo = Memo::load(memo_path);
        assert!(memo.entries.is_empty());
    }
}
