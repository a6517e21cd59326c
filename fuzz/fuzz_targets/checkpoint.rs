//! A checkpoint (tensor bundle), written to a scratch directory, opened with
//! `freeze::checkpoint::Checkpoint` and read back every way graphopt reads one: raw bytes,
//! TensorProto, Tensor, partitioned slices, and freezing a TF1 graph of its variables.
//!
//! The first byte chooses how the input makes the files (see `graphopt_fuzz::sections`):
//! below 0x80, the index and up to two data shards as they are; from 0x80, the data shard and
//! then key/value pairs (BundleEntryProtos; a header is added unless a key is empty) that
//! `graphopt_fuzz::bundle` writes as a well-formed index, so the reader gets past the block
//! checksums. Its bits: 1 recomputes each entry's checksum over the bytes it points at, 2
//! compresses the blocks with snappy, 4 puts each entry in a block of its own, 8 sorts the keys.
#![no_main]

use graphopt_core::freeze::{self, checkpoint::Checkpoint};
use graphopt_core::proto::tensor_slice_proto::extent::HasLength;
use graphopt_core::proto::{attr_value, AttrValue, BundleHeaderProto, GraphDef, NodeDef};
use graphopt_fuzz::bundle;
use libfuzzer_sys::fuzz_target;
use prost::Message;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let (index, shards) = if mode < 0x80 {
        let files = graphopt_fuzz::sections(rest, 3);
        let shards: Vec<&[u8]> = files.iter().skip(1).copied().collect();
        (files[0].to_vec(), shards)
    } else {
        let parts = graphopt_fuzz::sections(rest, 33);
        let shard = parts[0];
        let mut entries: Vec<(Vec<u8>, Vec<u8>)> = parts[1..]
            .chunks(2)
            .map(|pair| {
                let value = pair.get(1).copied().unwrap_or_default();
                let value = match mode & 1 {
                    1 => bundle::with_checksum(value, shard),
                    _ => value.to_vec(),
                };
                (pair[0].to_vec(), value)
            })
            .collect();
        if !entries.iter().any(|(key, _)| key.is_empty()) {
            let header = BundleHeaderProto {
                num_shards: 1,
                ..Default::default()
            };
            entries.insert(0, (Vec::new(), header.encode_to_vec()));
        }
        if mode & 8 != 0 {
            entries.sort();
        }
        let layout = bundle::Layout {
            snappy: mode & 2 != 0,
            block_per_entry: mode & 4 != 0,
        };
        (bundle::table(&entries, layout), vec![shard])
    };
    let dir = graphopt_fuzz::scratch_dir("checkpoint");
    let prefix = dir.join("ckpt");
    let shard = |i: usize, n: usize| dir.join(format!("ckpt.data-{i:05}-of-{n:05}"));
    graphopt_fuzz::put(&dir.join("ckpt.index"), Some(&index));
    graphopt_fuzz::put(&shard(0, 1), shards.first().copied());
    graphopt_fuzz::put(&shard(0, 2), shards.first().copied());
    graphopt_fuzz::put(&shard(1, 2), shards.get(1).copied());
    graphopt_fuzz::budget().enter(|| {
        let Ok(checkpoint) = Checkpoint::open(&prefix) else {
            return;
        };
        let keys: Vec<String> = checkpoint.keys().take(8).map(str::to_string).collect();
        let mut graph = GraphDef::default();
        for key in &keys {
            let _ = checkpoint.raw(key);
            let _ = checkpoint.read_proto(key);
            let _ = checkpoint.read(key);
            let Some(entry) = checkpoint.entry(key) else {
                continue;
            };
            let rank = entry.shape.as_ref().map_or(0, |s| s.dim.len().min(8));
            let _ = checkpoint.read_slice(key, &vec![(0, -1); rank]);
            for slice in entry.slices.iter().take(4) {
                let extents: Vec<(i64, i64)> = slice
                    .extent
                    .iter()
                    .map(|e| match e.has_length {
                        Some(HasLength::Length(length)) => (e.start, length),
                        None => (e.start, -1),
                    })
                    .collect();
                let _ = checkpoint.read_slice(key, &extents);
            }
            let mut variable = NodeDef {
                name: key.clone(),
                op: "VariableV2".into(),
                ..Default::default()
            };
            variable.attr.insert(
                "dtype".into(),
                AttrValue {
                    value: Some(attr_value::Value::Type(entry.dtype)),
                },
            );
            graph.node.push(variable);
        }
        let _ = freeze::freeze_graph(&graph, &checkpoint, &keys);
    });
});
