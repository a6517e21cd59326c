//! The pages of files: reading by memory map, handing pages back once they have been used,
//! and writing pages to disk while more are being written.
//!
//! A 100 MB frozen graph read into a buffer costs 100 MB of copying and 100 MB of memory before
//! decoding starts; mapped, decoding touches only the pages that hold node headers, and the
//! weights stay in the page cache until something reads them. Weights that were read and then
//! replaced (batch-norm folding scales every convolution's) or written out would stay resident
//! in the mapping: [`release`] drops them from this process's resident set, so the peak is the
//! new weights plus the largest old tensor, not both copies of every one.
//!
//! Writing a 100 MB graph and then syncing it leaves the disk idle while graphopt encodes and
//! the CPU idle while the disk writes; [`WriteBehind`] starts the disk on each few megabytes as
//! soon as they are written, so the final sync waits only for the last of them.
//!
//! Bytes read once and then replaced (the source of a weight computed as it is written) are
//! better read from the file than through the mapping: [`copy_out`] does so, so their pages are
//! never mapped into the process at all.
//!
//! A mapped file that shrinks under graphopt would make any read past its new end a SIGBUS:
//! [`copy_out`] never falls back to the mapping when its read fails, and the writers ask
//! [`check_backed`] before they read mapped bytes, so an input truncated while graphopt ran is
//! an error naming it.
//!
//! New weights a rewrite computes go into [`zeroed`] memory that the kernel may back with
//! 2 MiB pages, so writing them costs a fault per 2 MiB rather than per 4 KiB.
//!
//! This module holds all of graphopt's `unsafe`: the mapping, the advice on its pages and on
//! new buffers, the writeback request. Without the `mmap` feature `io` reads files into memory
//! instead, and [`release`], the huge-page advice and the writeback request do nothing.

#[cfg(feature = "mmap")]
use bytes::Bytes;
#[cfg(feature = "mmap")]
use std::sync::{Arc, Mutex, Weak};

/// Every live mapping made here, so that [`release`] only ever advises pages of a read-only
/// file mapping (never heap memory, which would be zeroed).
#[cfg(feature = "mmap")]
static MAPPINGS: Mutex<Vec<Weak<MappedFile>>> = Mutex::new(Vec::new());

/// A mapping and the file it maps, for reads that go around the mapping ([`copy_out`]) and
/// for checking that the file still holds what the mapping shows ([`check_backed`]).
#[cfg(feature = "mmap")]
struct MappedFile {
    map: memmap2::Mmap,
    file: std::fs::File,
    /// The file's path, for errors.
    path: std::path::PathBuf,
}

#[cfg(feature = "mmap")]
impl std::ops::Deref for MappedFile {
    type Target = memmap2::Mmap;

    fn deref(&self) -> &memmap2::Mmap {
        &self.map
    }
}

/// What the `Bytes` of a mapped file own: one reference to the mapping.
#[cfg(feature = "mmap")]
struct Mapped(Arc<MappedFile>);

#[cfg(feature = "mmap")]
impl AsRef<[u8]> for Mapped {
    fn as_ref(&self) -> &[u8] {
        &self.0.map
    }
}

/// `file` memory-mapped read-only: only the pages something reads become resident, and slices
/// of the result (a Const's `tensor_content`) point into the mapping. The caller has checked
/// that it is a regular file (`io::map_regular`); `path` is its path, for errors.
#[cfg(feature = "mmap")]
pub fn map(file: &std::fs::File, path: &std::path::Path) -> std::io::Result<Bytes> {
    if file.metadata()?.len() == 0 {
        return Ok(Bytes::new());
    }
    // SAFETY: the mapping is read-only and shared. It is sound as long as no other process
    // truncates or rewrites the file while graphopt runs, the contract TensorFlow's own
    // mmap-based readers have. graphopt itself never writes a file it reads: outputs go to a
    // temporary file renamed over the target, which leaves the mapped inode untouched.
    let map = unsafe { memmap2::Mmap::map(file)? };
    let map = Arc::new(MappedFile {
        map,
        file: file.try_clone()?,
        path: path.to_path_buf(),
    });
    let mut mappings = MAPPINGS.lock().unwrap_or_else(|e| e.into_inner());
    mappings.retain(|m| m.strong_count() > 0);
    mappings.push(Arc::downgrade(&map));
    Ok(Bytes::from_owner(Mapped(map)))
}

/// Tells the system that the pages wholly inside `bytes` will not be read again soon, if
/// `bytes` lies in a mapping made by [`map`]: they leave this process's resident set
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
        let Some((map, offset)) = mapping_of(bytes) else {
            return;
        };
        // Pages wholly inside the slice only: a page it shares with a neighbour stays.
        let first = offset.div_ceil(PAGE) * PAGE;
        let last = (offset + bytes.len()) / PAGE * PAGE;
        if last > first {
            // SAFETY: the range is inside a live read-only shared file mapping (held by `map`
            // while this runs). MADV_DONTNEED there only unmaps the pages from this process;
            // the next read refills them from the file, with the same contents as long as the
            // file is not changed underneath, the contract of `map`. Advice is a hint: a
            // failure changes nothing.
            let _ = unsafe {
                map.unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, first, last - first)
            };
        }
    }
    #[cfg(not(all(unix, feature = "mmap")))]
    let _ = bytes;
}

/// Maps the pages of `bytes` into this process ahead of a read, if it lies in a mapping made
/// by [`map`]. Before `write` hands a mapped slice to the kernel: the kernel's copy from a
/// page not mapped in stops, faults it in and starts again, which measured slower than the
/// copy it saves (Linux 5.14+; elsewhere nothing).
pub fn populate(bytes: &[u8]) {
    #[cfg(all(target_os = "linux", feature = "mmap"))]
    if let Some((map, offset)) = mapping_of(bytes) {
        // A hint: a failure (an older kernel) changes nothing.
        let _ = map.advise_range(memmap2::Advice::PopulateRead, offset, bytes.len());
    }
    #[cfg(not(all(target_os = "linux", feature = "mmap")))]
    let _ = bytes;
}

/// Copies `bytes` into `out` (as long as `bytes`). A slice of a mapping made by [`map`] is
/// read from its file instead (`pread`), so its pages are never mapped into this process: no
/// fault to map each in, no unmapping after.
///
/// A read that fails is an error naming the file, never a copy from the mapping after all: the
/// likeliest failure is a file that shrank since it was mapped, and touching a mapped page past
/// the file's end kills the process with SIGBUS.
pub fn copy_out(bytes: &[u8], out: &mut [u8]) -> std::io::Result<()> {
    let len = bytes.len().min(out.len());
    let (bytes, out) = (&bytes[..len], &mut out[..len]);
    #[cfg(all(unix, feature = "mmap"))]
    if let Some((mapped, offset)) = mapping_of(bytes) {
        use std::os::unix::fs::FileExt;
        let at = u64::try_from(offset).map_err(std::io::Error::other)?;
        return mapped.file.read_exact_at(out, at).map_err(|e| {
            match shrunk(&mapped, offset, len) {
                Some(error) => error,
                None => std::io::Error::new(
                    e.kind(),
                    format!(
                        "{}: reading bytes {offset}..{} of the input again: {e}",
                        mapped.path.display(),
                        offset.saturating_add(len)
                    ),
                ),
            }
        });
    }
    out.copy_from_slice(bytes);
    Ok(())
}

/// An error if any of `slices` lies in a mapping made by [`map`] whose file no longer reaches
/// its end: reading it (a copy, or a `write` from it) would then fault past the file's end,
/// which kills the process with SIGBUS. Writers call it before they read mapped bytes, so that
/// an input truncated after it was read is an error naming it. One look at the mappings and
/// one `fstat` per mapping the slices lie in. The file could still shrink between this check
/// and the read; only another process truncating the input does that (the contract of
/// [`map`]).
pub fn check_backed<'a>(slices: impl IntoIterator<Item = &'a [u8]>) -> std::io::Result<()> {
    #[cfg(all(unix, feature = "mmap"))]
    {
        let live: Vec<Arc<MappedFile>> = {
            let mappings = MAPPINGS.lock().unwrap_or_else(|e| e.into_inner());
            mappings.iter().filter_map(Weak::upgrade).collect()
        };
        if live.is_empty() {
            return Ok(());
        }
        // The furthest byte needed of each mapping.
        let mut ends = vec![0usize; live.len()];
        for bytes in slices {
            let start = bytes.as_ptr() as usize;
            let Some(end) = start.checked_add(bytes.len()).filter(|_| !bytes.is_empty()) else {
                continue;
            };
            let within = live.iter().position(|map| {
                let base = map.as_ptr() as usize;
                start >= base && end <= base.saturating_add(map.len())
            });
            if let Some(i) = within {
                let base = live[i].as_ptr() as usize;
                ends[i] = ends[i].max(end - base);
            }
        }
        for (map, &end) in live.iter().zip(&ends) {
            if let Some(error) = (end > 0).then(|| shrunk(map, 0, end)).flatten() {
                return Err(error);
            }
        }
    }
    #[cfg(not(all(unix, feature = "mmap")))]
    let _ = slices;
    Ok(())
}

/// The error for bytes `offset..offset + len` of `mapped` if its file is now shorter than
/// their end (or cannot be asked its length).
#[cfg(all(unix, feature = "mmap"))]
fn shrunk(mapped: &MappedFile, offset: usize, len: usize) -> Option<std::io::Error> {
    let end = u64::try_from(offset.saturating_add(len)).unwrap_or(u64::MAX);
    let now = match mapped.file.metadata() {
        Ok(metadata) => metadata.len(),
        Err(e) => {
            return Some(std::io::Error::new(
                e.kind(),
                format!(
                    "{}: cannot tell its length again: {e}",
                    mapped.path.display()
                ),
            ))
        }
    };
    (now < end).then(|| {
        std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            format!(
                "{}: the input file changed while graphopt used it: it is now {now} bytes \
                 long, was {}, and held bytes up to {end} still needed for the output",
                mapped.path.display(),
                mapped.map.len()
            ),
        )
    })
}

/// The live mapping made by [`map`] that holds all of `bytes`, and where in it they start.
#[cfg(all(unix, feature = "mmap"))]
fn mapping_of(bytes: &[u8]) -> Option<(Arc<MappedFile>, usize)> {
    let start = bytes.as_ptr() as usize;
    let end = start.checked_add(bytes.len())?;
    let mappings = MAPPINGS.lock().unwrap_or_else(|e| e.into_inner());
    mappings.iter().filter_map(Weak::upgrade).find_map(|map| {
        let base = map.as_ptr() as usize;
        (start >= base && end <= base + map.len()).then(|| (Arc::clone(&map), start - base))
    })
}

/// Zeroed memory for a tensor a rewrite computes (batch-norm folding writes 94 MB of new
/// weights for a ResNet-50), to be frozen into [`bytes::Bytes`] once written.
///
/// Fresh heap memory that large is faulted in by the kernel one 4 KiB page at a time as it is
/// first written: about 24,000 faults for those weights, a fifth of the whole transform's time
/// in `perf`. Here it is allowed transparent huge pages, so the kernel hands out 2 MiB pages
/// wherever an aligned 2 MiB fits. A buffer too small to hold one is cut from a shared chunk
/// of [`ZEROED_CHUNK`] (Inception-v3 keeps 60% of its weights in tensors under 2 MiB); the
/// chunk's memory is returned when the last buffer cut from it is dropped. Only memory and
/// time differ; the bytes are the same.
pub fn zeroed(len: usize) -> bytes::BytesMut {
    /// Below this a buffer is plain heap memory: the spare chunk would waste more than the
    /// faults cost.
    const SMALL: usize = 64 << 10;
    /// From this size a buffer has its own allocation.
    const OWN: usize = HUGE_PAGE;
    if len < SMALL {
        return bytes::BytesMut::zeroed(len);
    }
    if len >= OWN {
        return huge_page_aligned(len);
    }
    static SPARE: std::sync::Mutex<Option<bytes::BytesMut>> = std::sync::Mutex::new(None);
    let mut spare = SPARE.lock().unwrap_or_else(|e| e.into_inner());
    let chunk = match spare.take() {
        Some(chunk) if chunk.len() >= len => chunk,
        _ => huge_page_aligned(ZEROED_CHUNK),
    };
    let mut rest = chunk;
    let buffer = rest.split_to(len);
    *spare = Some(rest);
    buffer
}

/// `len` zeroed bytes starting on a 2 MiB boundary, allowed huge pages.
///
/// The allocator maps a large buffer on a 4 KiB boundary, so an unaligned one loses the huge
/// page of its first partial 2 MiB, and one of 2-4 MiB (ResNet-50's 3x3x256x256 weights) often
/// holds no aligned 2 MiB at all. Over-allocating by 2 MiB and starting at the first boundary
/// costs address space only: the pages skipped or left past the end are never touched.
fn huge_page_aligned(len: usize) -> bytes::BytesMut {
    let Some(padded) = len.checked_add(HUGE_PAGE) else {
        return bytes::BytesMut::zeroed(len);
    };
    let mut whole = bytes::BytesMut::zeroed(padded);
    let skip = (whole.as_ptr() as usize).wrapping_neg() % HUGE_PAGE;
    let mut buffer = whole.split_off(skip);
    buffer.truncate(len);
    allow_huge_pages(&buffer);
    buffer
}

const HUGE_PAGE: usize = 2 << 20;

/// The size of the chunks [`zeroed`] cuts buffers under 2 MiB from.
pub const ZEROED_CHUNK: usize = 16 << 20;

/// Advises the kernel that the pages wholly inside `buffer`, heap memory not yet touched,
/// may be backed by transparent huge pages (Linux; elsewhere nothing).
fn allow_huge_pages(buffer: &[u8]) {
    #[cfg(all(target_os = "linux", feature = "mmap"))]
    {
        const PAGE: usize = 4096;
        let start = buffer.as_ptr() as usize;
        let first = start.div_ceil(PAGE) * PAGE;
        let last = (start + buffer.len()) / PAGE * PAGE;
        if last > first {
            // SAFETY: the range lies inside `buffer`, memory this process owns for the whole
            // call. MADV_HUGEPAGE only changes how the kernel backs the pages, never their
            // contents; a failure (a kernel without it) changes nothing.
            let _ = unsafe {
                libc::madvise(
                    first as *mut libc::c_void,
                    last - first,
                    libc::MADV_HUGEPAGE,
                )
            };
        }
    }
    #[cfg(not(all(target_os = "linux", feature = "mmap")))]
    let _ = buffer;
}

/// A file being written that hands each [`WriteBehind::CHUNK`] written to the disk right away
/// (on Linux; elsewhere a plain file), so that syncing it at the end waits for little.
pub struct WriteBehind {
    file: std::fs::File,
    written: u64,
    started: u64,
}

impl WriteBehind {
    /// How much is written before the disk is asked to start on it.
    pub const CHUNK: u64 = 8 << 20;

    pub fn new(file: std::fs::File) -> Self {
        WriteBehind {
            file,
            written: 0,
            started: 0,
        }
    }

    pub fn into_file(self) -> std::fs::File {
        self.file
    }
}

impl std::io::Write for WriteBehind {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.file.write(buf)?;
        self.written = self.written.saturating_add(n as u64);
        if self.written - self.started >= Self::CHUNK {
            start_writeback(&self.file, self.started, self.written - self.started);
            self.started = self.written;
        }
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

/// Asks the kernel to start writing the given range of `file` to disk, without waiting and
/// without dropping it from the page cache (a build reads the artifact right back).
fn start_writeback(file: &std::fs::File, offset: u64, len: u64) {
    #[cfg(all(target_os = "linux", feature = "mmap"))]
    {
        use std::os::fd::AsRawFd as _;
        let (Ok(offset), Ok(len)) = (i64::try_from(offset), i64::try_from(len)) else {
            return;
        };
        // SAFETY: a plain system call on a descriptor `file` owns for the whole call; it reads
        // and writes no memory of this process. It is a request: a failure changes nothing
        // (the final sync writes what is left).
        let _ = unsafe {
            libc::sync_file_range(file.as_raw_fd(), offset, len, libc::SYNC_FILE_RANGE_WRITE)
        };
    }
    #[cfg(not(all(target_os = "linux", feature = "mmap")))]
    let _ = (file, offset, len);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(feature = "mmap")]
    #[test]
    fn released_pages_read_back_the_same() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("weights.bin");
        let contents: Vec<u8> = (0..5 * 4096 + 100).map(|i| (i * 7 % 251) as u8).collect();
        std::fs::write(&path, &contents).expect("write");
        let mapped = map(&std::fs::File::open(&path).expect("open"), &path).expect("map");
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

    /// The resident size of the mapping starting at `mapped`, from `/proc/self/smaps` (other
    /// threads' memory does not count there).
    #[cfg(all(target_os = "linux", feature = "mmap"))]
    fn resident_kib_of(mapped: &[u8]) -> u64 {
        let smaps = std::fs::read_to_string("/proc/self/smaps").expect("smaps");
        let start = format!("{:x}-", mapped.as_ptr() as usize);
        let entry = smaps
            .split_inclusive('\n')
            .skip_while(|line| !line.starts_with(&start))
            .skip(1)
            // Up to the next mapping's header, the one kind of line with an address range.
            .take_while(|line| !line.contains('-'))
            .find(|line| line.starts_with("Rss:"))
            .expect("the mapping's Rss line");
        entry
            .split_whitespace()
            .nth(1)
            .and_then(|kib| kib.parse::<u64>().ok())
            .expect("Rss in kB")
    }

    /// Copied out of a mapping, bytes are read from the file: the same bytes, and none of the
    /// mapping's pages become resident.
    #[cfg(all(target_os = "linux", feature = "mmap"))]
    #[test]
    fn copies_out_of_a_mapping_read_the_file_not_the_pages() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("weights.bin");
        let contents: Vec<u8> = (0..(2 << 20) + 100).map(|i| (i * 7 % 251) as u8).collect();
        std::fs::write(&path, &contents).expect("write");
        let mapped = map(&std::fs::File::open(&path).expect("open"), &path).expect("map");
        let mut out = vec![0u8; (1 << 20) + 3];
        copy_out(&mapped[101..101 + out.len()], &mut out).expect("copy");
        assert_eq!(out, contents[101..101 + out.len()]);
        assert_eq!(
            resident_kib_of(&mapped),
            0,
            "no page of the mapping was touched"
        );
        // Heap memory is copied.
        let mut small = [0u8; 5];
        copy_out(&contents[3..8], &mut small).expect("copy");
        assert_eq!(small, contents[3..8]);
    }

    /// Bytes of a mapped file that shrank since it was mapped are an error naming the file,
    /// from both the read around the mapping and the check writers make: never a read of the
    /// mapping past the file's end (SIGBUS).
    #[cfg(all(unix, feature = "mmap"))]
    #[test]
    fn bytes_of_a_file_that_shrank_are_an_error_not_a_fault() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("shrinks.bin");
        std::fs::write(&path, vec![3u8; 64 << 10]).expect("write");
        let mapped = map(&std::fs::File::open(&path).expect("open"), &path).expect("map");
        let tail = mapped.slice(40 << 10..);
        check_backed([&tail[..]]).expect("whole");
        std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .and_then(|f| f.set_len(8 << 10))
            .expect("truncate");
        let mut out = vec![0u8; tail.len()];
        let error = copy_out(&tail, &mut out).expect_err("read past the end");
        assert_eq!(error.kind(), std::io::ErrorKind::UnexpectedEof);
        assert!(error.to_string().contains("shrinks.bin"), "{error}");
        assert!(error.to_string().contains("now 8192 bytes"), "{error}");
        let error = check_backed([&mapped[..4], &tail[..]]).expect_err("past the end");
        assert!(error.to_string().contains("shrinks.bin"), "{error}");
        // What the file still holds reads as before.
        check_backed([&mapped[..4096], &[1u8, 2][..]]).expect("within");
        let mut head = [0u8; 16];
        copy_out(&mapped[100..116], &mut head).expect("within");
        assert_eq!(head, [3; 16]);
    }

    /// The mapping's own resident size, from `/proc/self/smaps` (other threads' memory does
    /// not count there): touched, it holds the file; released, it holds none of it.
    #[cfg(all(target_os = "linux", feature = "mmap"))]
    #[test]
    fn released_pages_leave_the_resident_set() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("resident.bin");
        let contents = vec![7u8; 8 << 20];
        std::fs::write(&path, &contents).expect("write");
        let mapped = map(&std::fs::File::open(&path).expect("open"), &path).expect("map");
        let resident_kib = || resident_kib_of(&mapped);
        let sum: u64 = mapped.iter().map(|&b| u64::from(b)).sum();
        assert_eq!(sum, 7 * (8 << 20));
        assert!(resident_kib() >= 7 << 10, "touched: {} KiB", resident_kib());
        release(&mapped);
        assert_eq!(resident_kib(), 0, "released");
        assert_eq!(&mapped[..4], &[7, 7, 7, 7], "read back after release");
    }

    #[test]
    fn zeroed_buffers_are_zero_and_their_own() {
        // Every size class: heap, cut from a shared chunk, own; then enough buffers just under
        // 2 MiB to run past the end of a chunk into the next.
        let sizes = [
            0,
            100,
            64 << 10,
            1 << 20,
            (1 << 20) + 7,
            2 << 20,
            ZEROED_CHUNK - 5,
        ];
        let past_a_chunk = [(2 << 20) - 3; ZEROED_CHUNK / (2 << 20) + 2];
        let mut buffers: Vec<bytes::BytesMut> = Vec::new();
        for (i, &len) in sizes.iter().chain(&sizes).chain(&past_a_chunk).enumerate() {
            let mut buffer = zeroed(len);
            assert_eq!(buffer.len(), len);
            assert!(buffer.iter().all(|&b| b == 0), "{len} bytes zeroed");
            if len >= HUGE_PAGE {
                assert_eq!(
                    buffer.as_ptr() as usize % HUGE_PAGE,
                    0,
                    "{len} bytes aligned"
                );
            }
            buffer.fill(i as u8 + 1);
            buffers.push(buffer);
        }
        // Writing one never reached another.
        let frozen: Vec<bytes::Bytes> = buffers.into_iter().map(|b| b.freeze()).collect();
        for (i, buffer) in frozen.iter().enumerate() {
            assert!(buffer.iter().all(|&b| b == i as u8 + 1), "buffer {i}");
        }
    }

    #[test]
    fn write_behind_writes_everything() {
        use std::io::Write as _;
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("out.pb");
        let mut out = WriteBehind::new(std::fs::File::create(&path).expect("create"));
        let block: Vec<u8> = (0..1_000_003u32).map(|i| (i % 253) as u8).collect();
        let mut expected = Vec::new();
        for _ in 0..20 {
            out.write_all(&block).expect("write");
            expected.extend_from_slice(&block);
        }
        assert!(out.written > WriteBehind::CHUNK && out.started > 0);
        out.into_file().sync_all().expect("sync");
        assert_eq!(std::fs::read(&path).expect("read"), expected);
    }
}
