//! Files read by memory map, and handing their pages back once they have been used.
//!
//! A 100 MB frozen graph read into a buffer costs 100 MB of copying and 100 MB of memory before
//! decoding starts; mapped, decoding touches only the pages that hold node headers, and the
//! weights stay in the page cache until something reads them. Weights that were read and then
//! replaced (batch-norm folding scales every convolution's) or written out would stay resident
//! in the mapping: [`release`] drops them from this process's resident set, so the peak is the
//! new weights plus the largest old tensor, not both copies of every one.
//!
//! This module holds all of graphopt's `unsafe`: the mapping and the advice on its pages.
//! Without the `mmap` feature files are read into memory instead and [`release`] does nothing.

use std::path::Path;

use bytes::Bytes;

#[cfg(feature = "mmap")]
use std::sync::{Arc, Mutex, Weak};

/// Every live mapping made here, so that [`release`] only ever advises pages of a read-only
/// file mapping (never heap memory, which would be zeroed).
#[cfg(feature = "mmap")]
static MAPPINGS: Mutex<Vec<Weak<memmap2::Mmap>>> = Mutex::new(Vec::new());

/// What the `Bytes` of a mapped file own: one reference to the mapping.
#[cfg(feature = "mmap")]
struct Mapped(Arc<memmap2::Mmap>);

#[cfg(feature = "mmap")]
impl AsRef<[u8]> for Mapped {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

/// The bytes of the regular file at `path`, read into memory (the `mmap` feature is off).
#[cfg(not(feature = "mmap"))]
pub fn map_regular(path: &Path) -> std::io::Result<Bytes> {
    super::read_regular(path).map(Bytes::from)
}

/// The bytes of the regular file at `path`, memory-mapped read-only: only the pages something
/// reads become resident, and slices of the result (a Const's `tensor_content`) point into the
/// mapping. A FIFO, a device or a directory is an error before anything opens it.
#[cfg(feature = "mmap")]
pub fn map_regular(path: &Path) -> std::io::Result<Bytes> {
    let expected = super::regular_file(path)?;
    let file = std::fs::File::open(path)?;
    // The file opened may not be the one checked (a swap in between): check what is open.
    let metadata = file.metadata()?;
    if !metadata.is_file() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "not a regular file; graphopt reads only regular files",
        ));
    }
    if metadata.len() != expected {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "the file changed while it was opened",
        ));
    }
    if metadata.len() == 0 {
        return Ok(Bytes::new());
    }
    // SAFETY: the mapping is read-only and shared. It is sound as long as no other process
    // truncates or rewrites the file while graphopt runs, the contract TensorFlow's own
    // mmap-based readers have. graphopt itself never writes a file it reads: outputs go to a
    // temporary file renamed over the target, which leaves the mapped inode untouched.
    let map = Arc::new(unsafe { memmap2::Mmap::map(&file)? });
    let mut mappings = MAPPINGS.lock().unwrap_or_else(|e| e.into_inner());
    mappings.retain(|m| m.strong_count() > 0);
    mappings.push(Arc::downgrade(&map));
    Ok(Bytes::from_owner(Mapped(map)))
}

/// Tells the system that the pages wholly inside `bytes` will not be read again soon, if
/// `bytes` lies in a mapping made by [`map_regular`]: they leave this process's resident set
/// and stay in the page cache, so a later read faults them back in with the same contents.
/// Anything else (heap memory, a partial page at either end) is left alone. Only ever a
/// matter of memory, never of results.
pub fn release(bytes: &[u8]) {
    #[cfg(all(unix, feature = "mmap"))]
    {
        const PAGE: usize = 4096;
        if bytes.len() < PAGE {
            return;
        }
        let start = bytes.as_ptr() as usize;
        let end = start + bytes.len();
        let mappings = MAPPINGS.lock().unwrap_or_else(|e| e.into_inner());
        for map in mappings.iter().filter_map(Weak::upgrade) {
            let base = map.as_ptr() as usize;
            if start < base || end > base + map.len() {
                continue;
            }
            // Pages wholly inside the slice only: a page it shares with a neighbour stays.
            let first = (start - base).div_ceil(PAGE) * PAGE;
            let last = (end - base) / PAGE * PAGE;
            if last > first {
                // SAFETY: the range is inside a live read-only shared file mapping (held by
                // `map` while this runs). MADV_DONTNEED there only unmaps the pages from this
                // process; the next read refills them from the file, with the same contents as
                // long as the file is not changed underneath, the contract of `map_regular`.
                // Advice is a hint: a failure changes nothing.
                let _ = unsafe {
                    map.unchecked_advise_range(
                        memmap2::UncheckedAdvice::DontNeed,
                        first,
                        last - first,
                    )
                };
            }
            return;
        }
    }
    #[cfg(not(all(unix, feature = "mmap")))]
    let _ = bytes;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn released_pages_read_back_the_same() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("weights.bin");
        let contents: Vec<u8> = (0..5 * 4096 + 100).map(|i| (i * 7 % 251) as u8).collect();
        std::fs::write(&path, &contents).expect("write");
        let mapped = map_regular(&path).expect("map");
        assert_eq!(&mapped[..], &contents[..]);
        let slice = mapped.slice(10..4 * 4096 + 50);
        release(&slice);
        release(&mapped);
        assert_eq!(&slice[..], &contents[10..4 * 4096 + 50]);
        assert_eq!(&mapped[..], &contents[..]);
        // Heap memory is never advised.
        let heap = contents.clone();
        release(&heap);
        assert_eq!(heap, contents);
    }

    #[test]
    fn empty_and_non_regular_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let empty = dir.path().join("empty.pb");
        std::fs::write(&empty, b"").expect("write");
        assert!(map_regular(&empty).expect("map").is_empty());
        let error = map_regular(dir.path()).expect_err("a directory");
        assert!(error.to_string().contains("directory"), "{error}");
    }
}
