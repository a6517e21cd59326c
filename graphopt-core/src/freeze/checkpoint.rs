//! TensorFlow's checkpoint format (the tensor bundle): a sorted-string table `PREFIX.index`
//! mapping tensor names to `BundleEntryProto`s (where the bytes are), and data shards
//! `PREFIX.data-NNNNN-of-NNNNN`. Block checksums and tensor checksums (masked CRC32C) are
//! verified; snappy-compressed blocks are supported.
//!
//! Every offset and length read from the files is checked arithmetic; only regular files are
//! read (the index up to its size, shards memory-mapped); what a block, a key, a decoded
//! index entry (its dims, slices and extents at their in-memory size, not their few bytes on
//! disk) or a tensor would allocate is asked of the [`budget`] first, a snappy block's claimed
//! length is checked against the most snappy can expand, and the stored parts of a
//! partitioned tensor must not overlap in the shard (aliased parts could otherwise make a
//! small checkpoint assemble into gigabytes).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use prost::Message;

use crate::budget;
use crate::io::wire::varint;
use crate::proto::{
    tensor_slice_proto, BundleEntryProto, BundleHeaderProto, DataType, TensorProto,
    TensorSliceProto,
};
use crate::tensor::{dims_of, shape_proto, Tensor};

/// Why a checkpoint cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckpointError {
    #[error("{}: {message}", path.display())]
    File { path: PathBuf, message: String },
    #[error("checkpoint {}: no tensor '{key}'", prefix.display())]
    NoKey { prefix: PathBuf, key: String },
    #[error("checkpoint {}: tensor '{key}': {message}", prefix.display())]
    Tensor {
        prefix: PathBuf,
        key: String,
        message: String,
    },
}

const MAGIC: u64 = 0xdb47_7524_8b80_fb57;
const FOOTER: usize = 48;

/// CRC32C as TensorFlow stores it: rotated and offset so a CRC of data containing CRCs is not
/// itself trivially related to them.
pub fn masked_crc32c(bytes: &[u8]) -> u32 {
    let crc = crc32c::crc32c(bytes);
    crc.rotate_right(15).wrapping_add(0xa282_ead8)
}

/// Key/value pairs of a table, in order.
type Entries = Vec<(Vec<u8>, Vec<u8>)>;

/// Reads an SSTable file: every key/value of every data block, in order.
fn read_table(data: &[u8]) -> Result<Entries, String> {
    if data.len() < FOOTER {
        return Err("too short for a table footer; truncated?".into());
    }
    let footer = &data[data.len() - FOOTER..];
    let mut magic = [0u8; 8];
    magic.copy_from_slice(&footer[40..48]);
    if u64::from_le_bytes(magic) != MAGIC {
        return Err("not a TensorFlow checkpoint index (bad table magic)".into());
    }
    let mut pos = 0;
    let handle = |pos: &mut usize| -> Option<(usize, usize)> {
        Some((
            usize::try_from(varint(footer, pos)?).ok()?,
            usize::try_from(varint(footer, pos)?).ok()?,
        ))
    };
    let _metaindex = handle(&mut pos).ok_or("bad footer")?;
    let index = handle(&mut pos).ok_or("bad footer")?;
    let mut handles = Vec::new();
    block_entries(&read_block(data, index)?, &mut handles)?;
    let mut entries = Vec::new();
    for (_, value) in handles {
        let mut p = 0;
        let offset = varint(&value, &mut p)
            .and_then(|v| usize::try_from(v).ok())
            .ok_or("bad block handle")?;
        let size = varint(&value, &mut p)
            .and_then(|v| usize::try_from(v).ok())
            .ok_or("bad block handle")?;
        block_entries(&read_block(data, (offset, size))?, &mut entries)?;
    }
    Ok(entries)
}

/// Snappy's largest expansion: a 3-byte copy element writes at most 64 bytes.
const SNAPPY_MAX_RATIO: usize = 22;

/// A block's contents, checksum verified and decompressed.
fn read_block(data: &[u8], (offset, size): (usize, usize)) -> Result<Vec<u8>, String> {
    let end = offset
        .checked_add(size)
        .filter(|&e| {
            e.checked_add(5)
                .is_some_and(|trailer| trailer <= data.len())
        })
        .ok_or("a block lies outside the file; truncated?")?;
    let contents = &data[offset..end];
    let kind = data[end];
    let mut stored = [0u8; 4];
    stored.copy_from_slice(&data[end + 1..end + 5]);
    let crc = crc32c::crc32c_append(crc32c::crc32c(contents), &[kind]);
    if crc.rotate_right(15).wrapping_add(0xa282_ead8) != u32::from_le_bytes(stored) {
        return Err(format!(
            "block at offset {offset} fails its checksum; the file is corrupted"
        ));
    }
    match kind {
        0 => {
            budget::alloc(contents.len() as u64).map_err(|e| e.to_string())?;
            Ok(contents.to_vec())
        }
        1 => {
            // The length a snappy block claims is allocated before anything is decoded.
            let claimed = snap::raw::decompress_len(contents)
                .map_err(|e| format!("bad snappy block: {e}"))?;
            if claimed
                > contents
                    .len()
                    .saturating_mul(SNAPPY_MAX_RATIO)
                    .saturating_add(64)
            {
                return Err(format!(
                    "a snappy block of {} bytes claims {claimed} bytes, more than snappy can expand to",
                    contents.len()
                ));
            }
            budget::alloc(claimed as u64).map_err(|e| e.to_string())?;
            snap::raw::Decoder::new()
                .decompress_vec(contents)
                .map_err(|e| format!("bad snappy block: {e}"))
        }
        other => Err(format!("unknown block compression {other}")),
    }
}

/// What one key/value pair of [`Entries`] costs besides its bytes: the pair in a vector whose
/// capacity may be twice its length, and the two allocations' bookkeeping.
const ENTRY_OVERHEAD: u64 = 2 * std::mem::size_of::<(Vec<u8>, Vec<u8>)>() as u64 + 2 * ALLOCATION;

/// What the allocator keeps besides an allocation's bytes (its header and rounding), counted
/// for every small heap allocation the index's entries make.
const ALLOCATION: u64 = 16;

/// Appends the key/value pairs of `block` to `out`.
fn block_entries(block: &[u8], out: &mut Entries) -> Result<(), String> {
    if block.len() < 4 {
        return Err("block too short".into());
    }
    let mut n = [0u8; 4];
    n.copy_from_slice(&block[block.len() - 4..]);
    let restarts = u32::from_le_bytes(n) as usize;
    let end = restarts
        .checked_mul(4)
        .and_then(|r| block.len().checked_sub(4 + r))
        .ok_or("bad restart count")?;
    let mut pos = 0;
    let mut key: Vec<u8> = Vec::new();
    let length = |pos: &mut usize| -> Result<usize, String> {
        varint(block, pos)
            .and_then(|v| usize::try_from(v).ok())
            .ok_or_else(|| "bad entry".to_string())
    };
    while pos < end {
        let shared = length(&mut pos)?;
        let unshared = length(&mut pos)?;
        let value_len = length(&mut pos)?;
        let key_end = pos.checked_add(unshared);
        let value_end = key_end.and_then(|k| k.checked_add(value_len));
        let (Some(key_end), Some(value_end)) = (key_end, value_end) else {
            return Err("bad entry lengths".into());
        };
        if shared > key.len() || value_end > end {
            return Err("bad entry lengths".into());
        }
        // Keys share prefixes, so a small block can describe long keys: each copy is charged,
        // and so is the pair's own cost (an empty entry is 3 bytes of the block).
        let entry_bytes = (shared + unshared + value_len) as u64 + ENTRY_OVERHEAD;
        budget::alloc(entry_bytes).map_err(|e| e.to_string())?;
        key.truncate(shared);
        key.extend_from_slice(&block[pos..key_end]);
        out.push((key.clone(), block[key_end..value_end].to_vec()));
        pos = value_end;
    }
    Ok(())
}

/// The most memory decoding an index entry can take per byte of its encoding: an empty
/// `dim {}` or `slices { extent {} }` is 2 to 4 bytes and becomes a 24- to 32-byte struct, in
/// vectors whose capacity may be twice their length (and at least 4).
const DECODE_BYTES_PER_BYTE: u64 = 48;

/// Decodes a message of the index: what decoding may allocate is charged while it runs, then
/// what the decoded message really holds (`cost`) for as long as the command runs. A small
/// index of empty dims or slices would otherwise decode into 16-40 times its size uncharged.
fn decode_charged<M: Message + Default>(
    value: &[u8],
    cost: impl FnOnce(&M) -> u64,
) -> Result<M, String> {
    let bound = (value.len() as u64)
        .saturating_mul(DECODE_BYTES_PER_BYTE)
        .saturating_add(std::mem::size_of::<M>() as u64);
    let message = budget::scratch_scope(|| {
        budget::alloc(bound).map_err(|e| e.to_string())?;
        M::decode(value).map_err(|e| e.to_string())
    })?;
    budget::alloc(cost(&message)).map_err(|e| e.to_string())?;
    Ok(message)
}

/// A vector's heap allocation at its capacity.
fn vector_cost(capacity: usize, item: usize) -> u64 {
    if capacity == 0 {
        return 0;
    }
    (capacity as u64)
        .saturating_mul(item as u64)
        .saturating_add(ALLOCATION)
}

/// What a decoded entry keeps under a key of `key_len` bytes: its place in the map (key and
/// value, in tree nodes that may be half full), the key's bytes, and every vector of dims,
/// names, slices and extents at its capacity.
fn entry_cost(entry: &BundleEntryProto, key_len: usize) -> u64 {
    use crate::proto::{tensor_shape_proto::Dim, tensor_slice_proto::Extent};
    use std::mem::size_of;
    let mut cost =
        2 * (size_of::<String>() + size_of::<BundleEntryProto>()) as u64 + vector_cost(key_len, 1);
    if let Some(shape) = &entry.shape {
        cost = cost.saturating_add(vector_cost(shape.dim.capacity(), size_of::<Dim>()));
        for dim in &shape.dim {
            cost = cost.saturating_add(vector_cost(dim.name.capacity(), 1));
        }
    }
    cost = cost.saturating_add(vector_cost(
        entry.slices.capacity(),
        size_of::<TensorSliceProto>(),
    ));
    for slice in &entry.slices {
        cost = cost.saturating_add(vector_cost(slice.extent.capacity(), size_of::<Extent>()));
    }
    cost
}

/// What a decoded header keeps.
fn header_cost(header: &BundleHeaderProto) -> u64 {
    let consumers = header
        .version
        .as_ref()
        .map_or(0, |v| v.bad_consumers.capacity());
    (std::mem::size_of::<BundleHeaderProto>() as u64)
        .saturating_add(vector_cost(consumers, std::mem::size_of::<i32>()))
}

/// An open checkpoint.
#[derive(Debug)]
pub struct Checkpoint {
    prefix: PathBuf,
    header: BundleHeaderProto,
    entries: BTreeMap<String, BundleEntryProto>,
    /// Parts of partitioned tensors, under TF's binary slice keys (see `slice_key`).
    slice_entries: BTreeMap<Vec<u8>, BundleEntryProto>,
    /// Shard files, read once each; tensors are slices of them.
    shards: std::sync::Mutex<BTreeMap<i32, Bytes>>,
}

impl Checkpoint {
    /// Opens `PREFIX.index` (give the prefix, e.g. `model.ckpt` or `variables/variables`).
    pub fn open(prefix: impl AsRef<Path>) -> Result<Self, CheckpointError> {
        let prefix = prefix.as_ref().to_path_buf();
        let index = PathBuf::from(format!("{}.index", prefix.display()));
        let file_error = |message: String| CheckpointError::File {
            path: index.clone(),
            message,
        };
        let data = crate::io::read_regular(&index).map_err(|e| {
            file_error(format!(
                "{e} (is '{}' the checkpoint prefix?)",
                prefix.display()
            ))
        })?;
        let mut header = None;
        let mut entries = BTreeMap::new();
        let mut slice_entries = BTreeMap::new();
        for (key, value) in read_table(&data).map_err(file_error)? {
            if key.is_empty() {
                header = Some(decode_charged(&value, header_cost).map_err(file_error)?);
                continue;
            }
            let name = String::from_utf8_lossy(&key).into_owned();
            let entry = decode_charged(&value, |entry| entry_cost(entry, key.len()))
                .map_err(|e| file_error(format!("entry '{name}': {e}")))?;
            if key.first() == Some(&0) {
                slice_entries.insert(key, entry);
            } else {
                entries.insert(name, entry);
            }
        }
        let header = header.ok_or_else(|| file_error("no bundle header".into()))?;
        if header.endianness != 0 {
            return Err(file_error(
                "big-endian checkpoints are not supported".into(),
            ));
        }
        Ok(Checkpoint {
            prefix,
            header,
            entries,
            slice_entries,
            shards: Default::default(),
        })
    }

    /// A checkpoint with no tensors at `prefix`: what TensorFlow restores for a SavedModel
    /// without a `variables/` directory.
    pub fn empty(prefix: impl AsRef<Path>) -> Self {
        Checkpoint {
            prefix: prefix.as_ref().to_path_buf(),
            header: BundleHeaderProto::default(),
            entries: BTreeMap::new(),
            slice_entries: BTreeMap::new(),
            shards: Default::default(),
        }
    }

    /// The prefix the checkpoint was opened at (`PREFIX.index` is its index).
    pub fn prefix(&self) -> &Path {
        &self.prefix
    }

    /// Tensor names in the checkpoint, sorted.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.entries.keys().map(String::as_str)
    }

    /// Where and what a tensor is.
    pub fn entry(&self, key: &str) -> Option<&BundleEntryProto> {
        self.entries.get(key)
    }

    fn tensor_error(&self, key: &str, message: String) -> CheckpointError {
        CheckpointError::Tensor {
            prefix: self.prefix.clone(),
            key: key.to_string(),
            message,
        }
    }

    fn lookup(&self, key: &str) -> Result<&BundleEntryProto, CheckpointError> {
        self.entries.get(key).ok_or_else(|| CheckpointError::NoKey {
            prefix: self.prefix.clone(),
            key: key.to_string(),
        })
    }

    /// Raw bytes of a tensor, checksum verified.
    pub fn raw(&self, key: &str) -> Result<Bytes, CheckpointError> {
        let entry = self.lookup(key)?;
        if !entry.slices.is_empty() {
            return Err(self.tensor_error(
                key,
                "a partitioned tensor has no bytes of its own; read it with read_proto".into(),
            ));
        }
        self.raw_of(entry, key)
    }

    fn raw_of(&self, entry: &BundleEntryProto, key: &str) -> Result<Bytes, CheckpointError> {
        let fail = |message: String| self.tensor_error(key, message);
        let shard = PathBuf::from(format!(
            "{}.data-{:05}-of-{:05}",
            self.prefix.display(),
            entry.shard_id,
            self.header.num_shards.max(1)
        ));
        let data = {
            let mut shards = self
                .shards
                .lock()
                .map_err(|_| fail("shard cache poisoned".into()))?;
            match shards.get(&entry.shard_id) {
                Some(data) => data.clone(),
                None => {
                    let data = crate::io::map_regular(&shard)
                        .map_err(|e| fail(format!("{}: {e} (missing shard?)", shard.display())))?;
                    shards.insert(entry.shard_id, data.clone());
                    data
                }
            }
        };
        let (offset, size) = (
            usize::try_from(entry.offset).unwrap_or(usize::MAX),
            usize::try_from(entry.size).unwrap_or(usize::MAX),
        );
        let end = offset
            .checked_add(size)
            .filter(|&end| end <= data.len())
            .ok_or_else(|| {
                fail(format!(
                    "bytes {offset}+{size} lie outside {}; truncated?",
                    shard.display()
                ))
            })?;
        let bytes = data.slice(offset..end);
        let checksum = if entry.dtype == DataType::DtString as i32 {
            let count = dims_of(entry.shape.as_ref())
                .ok()
                .and_then(|d| d.iter().try_fold(1usize, |n, &d| n.checked_mul(d)))
                .ok_or_else(|| fail("the shape's element count overflows".into()))?;
            string_checksum(&bytes, count)
        } else {
            Some(masked_crc32c(&bytes))
        };
        if checksum != Some(entry.crc32c) {
            return Err(fail(format!(
                "checksum mismatch in {}; the file is corrupted",
                shard.display()
            )));
        }
        // Checked: until something reads the tensor again (writing it out), its pages need
        // not stay resident.
        crate::pages::release(&bytes);
        Ok(bytes)
    }

    /// A tensor's value as a TensorProto. Numeric contents are a slice of the shard buffer
    /// (no copy), so freezing a large model holds its weights once.
    pub fn read_proto(&self, key: &str) -> Result<TensorProto, CheckpointError> {
        let entry = self.lookup(key)?;
        if entry.slices.is_empty() {
            self.proto_of(entry, key)
        } else {
            self.assemble(entry, key)
        }
    }

    /// The part `extents` (start and length per dimension, length -1 for all of it) of the
    /// tensor `key`, as a TF1 partitioned variable restores it. A stored slice with exactly
    /// these extents is returned without a copy.
    pub fn read_slice(
        &self,
        key: &str,
        extents: &[(i64, i64)],
    ) -> Result<TensorProto, CheckpointError> {
        let entry = self.lookup(key)?;
        let fail = |message: String| self.tensor_error(key, message);
        let full = dims_of(entry.shape.as_ref()).map_err(|e| fail(e.to_string()))?;
        let (start, size) = resolve_extents(extents, &full)
            .ok_or_else(|| fail(format!("slice {extents:?} does not fit the shape {full:?}")))?;
        let stored = entry
            .slices
            .iter()
            .find(|slice| resolve_slice(slice, &full) == Some((start.clone(), size.clone())));
        if let Some(slice) = stored {
            let slice_key = slice_key(key, &stored_extents(slice));
            let part = self
                .slice_entries
                .get(&slice_key)
                .ok_or_else(|| fail(format!("the part {extents:?} is listed but not stored")))?;
            return self.proto_of(part, key);
        }
        let whole = self.read_proto(key)?;
        cut(&whole, &full, &start, &size).ok_or_else(|| fail("bad tensor layout".into()))
    }

    /// A partitioned tensor put together from its stored parts.
    fn assemble(
        &self,
        entry: &BundleEntryProto,
        key: &str,
    ) -> Result<TensorProto, CheckpointError> {
        let fail = |message: String| self.tensor_error(key, message);
        let full = dims_of(entry.shape.as_ref()).map_err(|e| fail(e.to_string()))?;
        let element = DataType::try_from(entry.dtype)
            .ok()
            .filter(|&d| d != DataType::DtString)
            .and_then(crate::tensor::dtype_size)
            .ok_or_else(|| {
                fail(format!(
                    "partitioned tensors of dtype {} are not supported",
                    entry.dtype
                ))
            })?;
        let mut parts = Vec::with_capacity(entry.slices.len());
        let mut covered = 0usize;
        // (shard, offset, end) of every part: parts must not share bytes.
        let mut spans = Vec::with_capacity(entry.slices.len());
        for slice in &entry.slices {
            let (start, size) = resolve_slice(slice, &full)
                .ok_or_else(|| fail(format!("a stored part does not fit the shape {full:?}")))?;
            let part_entry = self
                .slice_entries
                .get(&slice_key(key, &stored_extents(slice)))
                .ok_or_else(|| fail(format!("the part at {start:?} is listed but not stored")))?;
            let part = self.raw_of(part_entry, key)?;
            covered = covered.saturating_add(part.len());
            // An empty part shares no bytes, and sorted among the others it would hide an
            // overlap of its neighbours from the check below.
            if !part.is_empty() {
                spans.push((
                    part_entry.shard_id,
                    part_entry.offset,
                    part_entry.offset.saturating_add(part_entry.size),
                ));
            }
            parts.push((start, size, part));
        }
        // Sorted by start, non-empty parts overlap only if some part overlaps the next.
        spans.sort_unstable();
        if spans
            .windows(2)
            .any(|w| w[0].0 == w[1].0 && w[1].1 < w[0].2)
        {
            return Err(fail(
                "the stored parts overlap in the shard; the checkpoint is corrupted".into(),
            ));
        }
        // The parts are real bytes in the shard, so their total bounds the allocation.
        let total = full.iter().try_fold(element, |n, &d| n.checked_mul(d));
        if total != Some(covered) {
            return Err(fail(format!(
                "the stored parts hold {covered} bytes, the shape {full:?} needs {total:?}"
            )));
        }
        budget::alloc(covered as u64).map_err(|e| fail(e.to_string()))?;
        let mut content = vec![0u8; covered];
        for (start, size, part) in &parts {
            let zero = vec![0; full.len()];
            copy_box(part, size, &zero, &mut content, &full, start, size, element)
                .ok_or_else(|| fail(format!("the part at {start:?} has the wrong size")))?;
        }
        Ok(TensorProto {
            dtype: entry.dtype,
            tensor_shape: Some(shape_proto(&full)),
            tensor_content: Bytes::from(content),
            ..Default::default()
        })
    }

    fn proto_of(
        &self,
        entry: &BundleEntryProto,
        key: &str,
    ) -> Result<TensorProto, CheckpointError> {
        let fail = |message: String| self.tensor_error(key, message);
        let raw = self.raw_of(entry, key)?;
        let dims = dims_of(entry.shape.as_ref()).map_err(|e| fail(e.to_string()))?;
        let count = dims
            .iter()
            .try_fold(1usize, |n, &d| n.checked_mul(d))
            .ok_or_else(|| fail("the shape's element count overflows".into()))?;
        let mut proto = TensorProto {
            dtype: entry.dtype,
            tensor_shape: Some(shape_proto(&dims)),
            ..Default::default()
        };
        if entry.dtype == DataType::DtString as i32 {
            // Each string is a copy and a handle; there are at most as many as bytes.
            if count > raw.len() {
                return Err(fail(format!(
                    "{} bytes cannot hold {count} strings",
                    raw.len()
                )));
            }
            budget::alloc_items(count, std::mem::size_of::<Bytes>(), "a string tensor")
                .and_then(|()| budget::alloc(raw.len() as u64))
                .map_err(|e| fail(e.to_string()))?;
            proto.string_val = decode_strings(&raw, count)
                .ok_or_else(|| fail("bad string tensor encoding".into()))?;
        } else {
            let element = DataType::try_from(entry.dtype)
                .ok()
                .and_then(crate::tensor::dtype_size)
                .ok_or_else(|| fail(format!("unsupported dtype {}", entry.dtype)))?;
            if count.checked_mul(element) != Some(raw.len()) {
                return Err(fail(format!(
                    "{} bytes stored for {count} elements of {element} bytes",
                    raw.len()
                )));
            }
            proto.tensor_content = raw;
        }
        Ok(proto)
    }

    /// A tensor's value.
    pub fn read(&self, key: &str) -> Result<Tensor, CheckpointError> {
        let proto = self.read_proto(key)?;
        Tensor::from_proto(&proto).map_err(|e| self.tensor_error(key, e.to_string()))
    }
}

/// Extents as stored: (start, length) with -1 for a whole dimension.
fn stored_extents(slice: &TensorSliceProto) -> Vec<(i64, i64)> {
    slice
        .extent
        .iter()
        .map(|e| {
            let length = match e.has_length {
                Some(tensor_slice_proto::extent::HasLength::Length(l)) => l,
                None => -1,
            };
            (e.start, length)
        })
        .collect()
}

fn resolve_slice(slice: &TensorSliceProto, full: &[usize]) -> Option<(Vec<usize>, Vec<usize>)> {
    resolve_extents(&stored_extents(slice), full)
}

/// Start and size per dimension, checked against the full shape. TF writes no extents for a
/// slice that is the whole tensor.
fn resolve_extents(extents: &[(i64, i64)], full: &[usize]) -> Option<(Vec<usize>, Vec<usize>)> {
    if extents.is_empty() {
        return Some((vec![0; full.len()], full.to_vec()));
    }
    if extents.len() != full.len() {
        return None;
    }
    let mut start = Vec::with_capacity(full.len());
    let mut size = Vec::with_capacity(full.len());
    for (&(s, l), &d) in extents.iter().zip(full) {
        let (s, l) = if l == -1 {
            (0, d)
        } else {
            (usize::try_from(s).ok()?, usize::try_from(l).ok()?)
        };
        if s.checked_add(l)? > d {
            return None;
        }
        start.push(s);
        size.push(l);
    }
    Some((start, size))
}

/// TF's key for one stored part of a partitioned tensor: OrderedCode of 0, the name, the rank,
/// then each dimension's start and length (-1 for all of it) as signed numbers. Public so
/// tests can write checkpoints of partitioned variables.
pub fn slice_key(name: &str, extents: &[(i64, i64)]) -> Vec<u8> {
    let mut key = vec![0u8]; // the number 0: a zero-length big-endian body
    for &byte in name.as_bytes() {
        match byte {
            0x00 => key.extend_from_slice(&[0x00, 0xff]),
            0xff => key.extend_from_slice(&[0xff, 0x00]),
            b => key.push(b),
        }
    }
    key.extend_from_slice(&[0x00, 0x01]);
    let rank = extents.len() as u64;
    let body: Vec<u8> = rank
        .to_be_bytes()
        .into_iter()
        .skip_while(|&b| b == 0)
        .collect();
    key.push(body.len() as u8);
    key.extend_from_slice(&body);
    for &(start, length) in extents {
        write_signed_increasing(&mut key, start);
        write_signed_increasing(&mut key, length);
    }
    key
}

/// OrderedCode's signed-number encoding: the value's big-endian two's complement in the
/// fewest bytes, with a unary length prefix in the leading bits (ones for non-negative
/// values, zeros for negative ones, after XOR with the sign).
fn write_signed_increasing(out: &mut Vec<u8>, value: i64) {
    const HEADER: [[u8; 2]; 11] = [
        [0, 0],
        [0x80, 0],
        [0xc0, 0],
        [0xe0, 0],
        [0xf0, 0],
        [0xf8, 0],
        [0xfc, 0],
        [0xfe, 0],
        [0xff, 0],
        [0xff, 0x80],
        [0xff, 0xc0],
    ];
    let magnitude = if value < 0 { !value } else { value } as u64;
    let bits = 64 - magnitude.leading_zeros() as usize;
    // Each byte carries 7 bits of the value beside its share of the header, and one bit is
    // the sign.
    let len = (bits + 1).div_ceil(7).clamp(1, 10);
    if len == 1 {
        out.push(HEADER[1][0] ^ (value as u8));
        return;
    }
    let sign = if value < 0 { 0xff } else { 0x00 };
    let mut buffer = [sign; 10];
    buffer[2..].copy_from_slice(&value.to_be_bytes());
    let begin = 10 - len;
    buffer[begin] ^= HEADER[len][0];
    buffer[begin + 1] ^= HEADER[len][1];
    out.extend_from_slice(&buffer[begin..]);
}

/// Copies the box of `size` elements at `src_start` in `src` (shape `src_dims`) to
/// `dst_start` in `dst` (shape `dst_dims`), row by row. `None` if a buffer is too small.
#[allow(clippy::too_many_arguments)]
fn copy_box(
    src: &[u8],
    src_dims: &[usize],
    src_start: &[usize],
    dst: &mut [u8],
    dst_dims: &[usize],
    dst_start: &[usize],
    size: &[usize],
    element: usize,
) -> Option<()> {
    let rank = size.len();
    if size.contains(&0) {
        return Some(());
    }
    let strides = |dims: &[usize]| -> Vec<usize> {
        let mut strides = vec![element; dims.len()];
        for d in (0..dims.len().saturating_sub(1)).rev() {
            strides[d] = strides[d + 1] * dims[d + 1];
        }
        strides
    };
    let (src_strides, dst_strides) = (strides(src_dims), strides(dst_dims));
    let row = size.last().map_or(element, |&n| n * element);
    let mut index = vec![0usize; rank.saturating_sub(1)];
    loop {
        let offset = |start: &[usize], strides: &[usize]| -> usize {
            (0..rank)
                .map(|d| (start[d] + index.get(d).copied().unwrap_or(0)) * strides[d])
                .sum()
        };
        let (from, to) = (
            offset(src_start, &src_strides),
            offset(dst_start, &dst_strides),
        );
        dst.get_mut(to..to + row)?
            .copy_from_slice(src.get(from..from + row)?);
        // Advance the row counter over the outer dimensions.
        let mut d = index.len();
        loop {
            if d == 0 {
                return Some(());
            }
            d -= 1;
            index[d] += 1;
            if index[d] < size[d] {
                break;
            }
            index[d] = 0;
        }
    }
}

/// The box at `start` of `size` from a whole tensor of shape `full`.
fn cut(
    whole: &TensorProto,
    full: &[usize],
    start: &[usize],
    size: &[usize],
) -> Option<TensorProto> {
    let element = DataType::try_from(whole.dtype)
        .ok()
        .and_then(crate::tensor::dtype_size)?;
    let bytes = size.iter().try_fold(element, |n, &d| n.checked_mul(d))?;
    budget::alloc(bytes as u64).ok()?;
    let mut content = vec![0u8; bytes];
    let zero = vec![0; size.len()];
    copy_box(
        &whole.tensor_content,
        full,
        start,
        &mut content,
        size,
        &zero,
        size,
        element,
    )?;
    Some(TensorProto {
        dtype: whole.dtype,
        tensor_shape: Some(shape_proto(size)),
        tensor_content: Bytes::from(content),
        ..Default::default()
    })
}

/// A string tensor's checksum, which TensorFlow computes over each length as a little-endian
/// u32 (u64 past 4 GiB; not the varints stored), the stored length checksum, then the bytes.
fn string_checksum(raw: &[u8], count: usize) -> Option<u32> {
    let mut pos = 0;
    let mut crc = 0u32;
    for _ in 0..count {
        let len = varint(raw, &mut pos)?;
        crc = match u32::try_from(len) {
            Ok(short) => crc32c::crc32c_append(crc, &short.to_le_bytes()),
            Err(_) => crc32c::crc32c_append(crc, &len.to_le_bytes()),
        };
    }
    crc = crc32c::crc32c_append(crc, raw.get(pos..pos + 4)?);
    crc = crc32c::crc32c_append(crc, raw.get(pos + 4..)?);
    Some(crc.rotate_right(15).wrapping_add(0xa282_ead8))
}

/// String tensors: varint lengths, a masked CRC32C of them, then the bytes.
fn decode_strings(raw: &[u8], count: usize) -> Option<Vec<Bytes>> {
    let mut pos = 0;
    let mut lengths = Vec::with_capacity(count.min(1 << 20));
    for _ in 0..count {
        lengths.push(usize::try_from(varint(raw, &mut pos)?).ok()?);
    }
    pos += 4;
    let mut out = Vec::with_capacity(lengths.len());
    for len in lengths {
        out.push(Bytes::copy_from_slice(raw.get(pos..pos.checked_add(len)?)?));
        pos += len;
    }
    Some(out)
}

#[cfg(test)]
mod slice_key_tests {
    use super::*;

    #[test]
    fn slice_keys_match_the_bytes_tensorflow_writes() {
        // From a TF 2.21 index: "embedding" rows 0..67 of [200, 6], and "dense/kernel"
        // columns 0..3 of [6, 5].
        let mut expected = b"\x00embedding\x00\x01\x01\x02".to_vec();
        expected.extend_from_slice(b"\x80\xc0\x43\x80\x86");
        assert_eq!(slice_key("embedding", &[(0, 67), (0, 6)]), expected);
        let mut expected = b"\x00dense/kernel\x00\x01\x01\x02".to_vec();
        expected.extend_from_slice(b"\x80\x86\x80\x83");
        assert_eq!(slice_key("dense/kernel", &[(0, 6), (0, 3)]), expected);
        // A whole dimension is length -1; NUL and 0xff in names are escaped.
        let mut out = Vec::new();
        write_signed_increasing(&mut out, -1);
        assert_eq!(out, [0x7f]);
        assert_eq!(&slice_key("a\0b", &[])[..6], b"\x00a\x00\xffb\x00");
    }
}
