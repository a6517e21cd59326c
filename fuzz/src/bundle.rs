//! Writing checkpoint (tensor bundle) indexes: TensorFlow's SSTable format with its block
//! checksums, so that the checkpoint target can hand the reader well-formed tables whose keys
//! and entries the fuzzer chose (random bytes almost never pass a CRC).

use graphopt_core::freeze::checkpoint::masked_crc32c;
use graphopt_core::proto::{BundleEntryProto, DataType};
use prost::Message;

/// The table magic in the last 8 bytes of the footer.
const MAGIC: u64 = 0xdb47_7524_8b80_fb57;

fn varint(mut value: u64, out: &mut Vec<u8>) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// A block of `entries` (no key prefix sharing, one restart point).
fn block(entries: &[(Vec<u8>, Vec<u8>)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (key, value) in entries {
        varint(0, &mut out);
        varint(key.len() as u64, &mut out);
        varint(value.len() as u64, &mut out);
        out.extend_from_slice(key);
        out.extend_from_slice(value);
    }
    out.extend_from_slice(&0u32.to_le_bytes());
    out.extend_from_slice(&1u32.to_le_bytes());
    out
}

/// Appends `contents` as a block (snappy-compressed if asked) with its trailer; returns its
/// handle.
fn write_block(file: &mut Vec<u8>, contents: &[u8], snappy: bool) -> (u64, u64) {
    let (kind, stored) = match snappy {
        true => (
            1u8,
            snap::raw::Encoder::new()
                .compress_vec(contents)
                .unwrap_or_default(),
        ),
        false => (0u8, contents.to_vec()),
    };
    let offset = file.len() as u64;
    file.extend_from_slice(&stored);
    let mut checked = stored.clone();
    checked.push(kind);
    file.push(kind);
    file.extend_from_slice(&masked_crc32c(&checked).to_le_bytes());
    (offset, stored.len() as u64)
}

/// How [`table`] lays the entries out.
#[derive(Debug, Clone, Copy, Default)]
pub struct Layout {
    /// Compress the data blocks with snappy.
    pub snappy: bool,
    /// One data block per entry instead of one for all.
    pub block_per_entry: bool,
}

/// An SSTable holding `entries` in the order given.
pub fn table(entries: &[(Vec<u8>, Vec<u8>)], layout: Layout) -> Vec<u8> {
    let mut file = Vec::new();
    let groups: Vec<&[(Vec<u8>, Vec<u8>)]> = if layout.block_per_entry {
        entries.chunks(1).collect()
    } else {
        vec![entries]
    };
    let mut index = Vec::new();
    for group in groups {
        let (offset, size) = write_block(&mut file, &block(group), layout.snappy);
        let mut handle = Vec::new();
        varint(offset, &mut handle);
        varint(size, &mut handle);
        let last = group.last().map(|(k, _)| k.clone()).unwrap_or_default();
        index.push((last, handle));
    }
    let metaindex = write_block(&mut file, &block(&[]), false);
    let index = write_block(&mut file, &block(&index), false);
    let mut footer = Vec::new();
    for value in [metaindex.0, metaindex.1, index.0, index.1] {
        varint(value, &mut footer);
    }
    footer.resize(40, 0);
    footer.extend_from_slice(&MAGIC.to_le_bytes());
    file.extend_from_slice(&footer);
    file
}

/// `entry` (an encoded BundleEntryProto) with the checksum of the bytes it points at in
/// `shard`, when it decodes and points inside it; unchanged otherwise.
pub fn with_checksum(entry: &[u8], shard: &[u8]) -> Vec<u8> {
    let Ok(mut decoded) = BundleEntryProto::decode(entry) else {
        return entry.to_vec();
    };
    let start = usize::try_from(decoded.offset).unwrap_or(usize::MAX);
    let len = usize::try_from(decoded.size).unwrap_or(usize::MAX);
    let Some(bytes) = start.checked_add(len).and_then(|end| shard.get(start..end)) else {
        return entry.to_vec();
    };
    let checksum = if decoded.dtype == DataType::DtString as i32 {
        let count = decoded.shape.as_ref().map_or(Some(1), |s| {
            s.dim
                .iter()
                .try_fold(1u64, |n, d| n.checked_mul(u64::try_from(d.size).ok()?))
        });
        count.and_then(|count| string_checksum(bytes, count))
    } else {
        Some(masked_crc32c(bytes))
    };
    if let Some(checksum) = checksum {
        decoded.crc32c = checksum;
    }
    decoded.encode_to_vec()
}

/// The checksum TensorFlow stores for a string tensor: over the element lengths (as u32 where
/// they fit), then the CRC of the lengths stored after them, then the bytes.
fn string_checksum(raw: &[u8], count: u64) -> Option<u32> {
    let mut rest = raw;
    let mut crc = 0u32;
    for _ in 0..count {
        let len = prost::encoding::decode_varint(&mut rest).ok()?;
        crc = match u32::try_from(len) {
            Ok(short) => crc32c::crc32c_append(crc, &short.to_le_bytes()),
            Err(_) => crc32c::crc32c_append(crc, &len.to_le_bytes()),
        };
    }
    let pos = raw.len() - rest.len();
    crc = crc32c::crc32c_append(crc, raw.get(pos..pos.checked_add(4)?)?);
    crc = crc32c::crc32c_append(crc, raw.get(pos + 4..)?);
    Some(crc.rotate_right(15).wrapping_add(0xa282_ead8))
}
