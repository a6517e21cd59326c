//! TensorFlow's checkpoint format (the tensor bundle): a sorted-string table `PREFIX.index`
//! mapping tensor names to `BundleEntryProto`s (where the bytes are), and data shards
//! `PREFIX.data-NNNNN-of-NNNNN`. Block checksums and tensor checksums (masked CRC32C) are
//! verified; snappy-compressed blocks are supported.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use prost::Message;

use crate::proto::{BundleEntryProto, BundleHeaderProto, DataType, TensorProto};
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

fn varint(data: &[u8], pos: &mut usize) -> Option<u64> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *data.get(*pos)?;
        *pos += 1;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some(value);
        }
    }
    None
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
    let mut entries = Vec::new();
    for (_, value) in block_entries(&read_block(data, index)?)? {
        let mut p = 0;
        let offset = varint(&value, &mut p)
            .and_then(|v| usize::try_from(v).ok())
            .ok_or("bad block handle")?;
        let size = varint(&value, &mut p)
            .and_then(|v| usize::try_from(v).ok())
            .ok_or("bad block handle")?;
        entries.extend(block_entries(&read_block(data, (offset, size))?)?);
    }
    Ok(entries)
}

/// A block's contents, checksum verified and decompressed.
fn read_block(data: &[u8], (offset, size): (usize, usize)) -> Result<Vec<u8>, String> {
    let end = offset
        .checked_add(size)
        .filter(|&e| e + 5 <= data.len())
        .ok_or("a block lies outside the file; truncated?")?;
    let contents = &data[offset..end];
    let kind = data[end];
    let mut stored = [0u8; 4];
    stored.copy_from_slice(&data[end + 1..end + 5]);
    let mut checked = contents.to_vec();
    checked.push(kind);
    if masked_crc32c(&checked) != u32::from_le_bytes(stored) {
        return Err(format!(
            "block at offset {offset} fails its checksum; the file is corrupted"
        ));
    }
    match kind {
        0 => Ok(contents.to_vec()),
        1 => snap::raw::Decoder::new()
            .decompress_vec(contents)
            .map_err(|e| format!("bad snappy block: {e}")),
        other => Err(format!("unknown block compression {other}")),
    }
}

fn block_entries(block: &[u8]) -> Result<Entries, String> {
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
    let mut out = Vec::new();
    while pos < end {
        let shared = varint(block, &mut pos).ok_or("bad entry")? as usize;
        let unshared = varint(block, &mut pos).ok_or("bad entry")? as usize;
        let value_len = varint(block, &mut pos).ok_or("bad entry")? as usize;
        if shared > key.len() || pos + unshared + value_len > end {
            return Err("bad entry lengths".into());
        }
        key.truncate(shared);
        key.extend_from_slice(&block[pos..pos + unshared]);
        pos += unshared;
        out.push((key.clone(), block[pos..pos + value_len].to_vec()));
        pos += value_len;
    }
    Ok(out)
}

/// An open checkpoint.
#[derive(Debug)]
pub struct Checkpoint {
    prefix: PathBuf,
    header: BundleHeaderProto,
    entries: BTreeMap<String, BundleEntryProto>,
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
        let data = std::fs::read(&index).map_err(|e| {
            file_error(format!(
                "{e} (is '{}' the checkpoint prefix?)",
                prefix.display()
            ))
        })?;
        let mut header = None;
        let mut entries = BTreeMap::new();
        for (key, value) in read_table(&data).map_err(file_error)? {
            if key.is_empty() {
                header = Some(
                    BundleHeaderProto::decode(value.as_slice())
                        .map_err(|e| file_error(e.to_string()))?,
                );
                continue;
            }
            let name = String::from_utf8_lossy(&key).into_owned();
            let entry = BundleEntryProto::decode(value.as_slice())
                .map_err(|e| file_error(format!("entry '{name}': {e}")))?;
            entries.insert(name, entry);
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
            shards: Default::default(),
        })
    }

    /// Tensor names in the checkpoint, sorted.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.entries.keys().map(String::as_str)
    }

    /// Where and what a tensor is.
    pub fn entry(&self, key: &str) -> Option<&BundleEntryProto> {
        self.entries.get(key)
    }

    /// Raw bytes of a tensor, checksum verified.
    pub fn raw(&self, key: &str) -> Result<Bytes, CheckpointError> {
        let entry = self
            .entries
            .get(key)
            .ok_or_else(|| CheckpointError::NoKey {
                prefix: self.prefix.clone(),
                key: key.to_string(),
            })?;
        let fail = |message: String| CheckpointError::Tensor {
            prefix: self.prefix.clone(),
            key: key.to_string(),
            message,
        };
        if !entry.slices.is_empty() {
            return Err(fail(
                "partitioned (sliced) variables are not supported yet".into(),
            ));
        }
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
                    let data =
                        Bytes::from(std::fs::read(&shard).map_err(|e| {
                            fail(format!("{}: {e} (missing shard?)", shard.display()))
                        })?);
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
            string_checksum(
                &bytes,
                dims_of(entry.shape.as_ref())
                    .map(|d| d.iter().product())
                    .unwrap_or(0),
            )
        } else {
            Some(masked_crc32c(&bytes))
        };
        if checksum != Some(entry.crc32c) {
            return Err(fail(format!(
                "checksum mismatch in {}; the file is corrupted",
                shard.display()
            )));
        }
        Ok(bytes)
    }

    /// A tensor's value as a TensorProto. Numeric contents are a slice of the shard buffer
    /// (no copy), so freezing a large model holds its weights once.
    pub fn read_proto(&self, key: &str) -> Result<TensorProto, CheckpointError> {
        let entry = self
            .entries
            .get(key)
            .ok_or_else(|| CheckpointError::NoKey {
                prefix: self.prefix.clone(),
                key: key.to_string(),
            })?;
        let fail = |message: String| CheckpointError::Tensor {
            prefix: self.prefix.clone(),
            key: key.to_string(),
            message,
        };
        let raw = self.raw(key)?;
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
        Tensor::from_proto(&proto).map_err(|e| CheckpointError::Tensor {
            prefix: self.prefix.clone(),
            key: key.to_string(),
            message: e.to_string(),
        })
    }
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
