//! The content-addressed artifact cache: `<cache dir>/<key>/model.pb` and `manifest.json`,
//! written atomically so concurrent builds never see a partial entry.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::manifest::Manifest;

/// Hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A listing of every file under `dir` (sorted relative paths, sizes and sha256s), so a
/// directory source is keyed by its whole content. Files are hashed as streams; symlinked
/// directories are not followed, so a link cycle cannot make the walk endless.
pub fn directory_digest(dir: &Path) -> Result<Vec<u8>, (PathBuf, std::io::Error)> {
    let mut files = Vec::new();
    let mut pending = vec![PathBuf::new()];
    while let Some(relative) = pending.pop() {
        let path = dir.join(&relative);
        let entries = std::fs::read_dir(&path).map_err(|e| (path.clone(), e))?;
        for entry in entries {
            let entry = entry.map_err(|e| (path.clone(), e))?;
            let kind = entry.file_type().map_err(|e| (entry.path(), e))?;
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
    for relative in files {
        let path = dir.join(&relative);
        let mut file = std::fs::File::open(&path).map_err(|e| (path.clone(), e))?;
        let mut hasher = Sha256::new();
        let size = std::io::copy(&mut file, &mut hasher).map_err(|e| (path.clone(), e))?;
        let name: Vec<String> = relative
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect();
        let digest = hex(&hasher.finalize());
        listing.extend_from_slice(format!("{} {size} {digest}\n", name.join("/")).as_bytes());
    }
    Ok(listing)
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

    pub fn finish(self) -> String {
        self.0
            .finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}

/// The cache folder: `$GRAPHOPT_CACHE_DIR`, else `graphopt-cache` in the target directory
/// (found above OUT_DIR, which cargo puts at `<target>/<profile>/build/<pkg>/out`).
pub fn cache_dir(out_dir: &Path) -> PathBuf {
    if let Some(dir) = std::env::var_os("GRAPHOPT_CACHE_DIR").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir).join("graphopt-cache");
    }
    // out -> <pkg>-<hash> -> build -> <profile> -> <target>
    out_dir
        .ancestors()
        .nth(4)
        .map(|target| target.join("graphopt-cache"))
        .unwrap_or_else(|| out_dir.join("graphopt-cache"))
}

/// A cache entry, if present and intact: the model bytes and its manifest. An entry whose
/// bytes no longer match its recorded hash is reported and ignored.
pub fn lookup(dir: &Path, key: &str) -> Result<Option<(Vec<u8>, Manifest)>, String> {
    let entry = dir.join(key);
    let (Ok(bytes), Ok(text)) = (
        std::fs::read(entry.join("model.pb")),
        std::fs::read_to_string(entry.join("manifest.json")),
    ) else {
        return Ok(None);
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
    if sha256_hex(&bytes) != manifest.sha256 {
        return Err(format!(
            "cache entry {} does not match its recorded hash; rebuilding",
            entry.display()
        ));
    }
    Ok(Some((bytes, manifest)))
}

/// Stores an entry (bytes first, manifest last, each atomically).
pub fn store(dir: &Path, key: &str, bytes: &[u8], manifest: &Manifest) -> std::io::Result<()> {
    let entry = dir.join(key);
    std::fs::create_dir_all(&entry)?;
    let json = serde_json::to_string_pretty(manifest).map_err(std::io::Error::other)?;
    write_atomically(&entry.join("model.pb"), bytes)?;
    write_atomically(&entry.join("manifest.json"), json.as_bytes())
}

/// Temporary sibling file, then rename: readers see the old file or the whole new one.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    graphopt_core::io::write_atomically(path, bytes)
        .map_err(|e| std::io::Error::other(e.to_string()))
}
