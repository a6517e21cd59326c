//! A checkpoint (tensor bundle): the input is the index and up to two data shards (see
//! `graphopt_fuzz::sections`), written to a scratch directory, opened with
//! `freeze::checkpoint::Checkpoint` and read back every way graphopt reads one: raw bytes,
//! TensorProto, Tensor, partitioned slices, and freezing a TF1 graph of its variables.
#![no_main]

use graphopt_core::freeze::{self, checkpoint::Checkpoint};
use graphopt_core::proto::tensor_slice_proto::extent::HasLength;
use graphopt_core::proto::{attr_value, AttrValue, GraphDef, NodeDef};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let files = graphopt_fuzz::sections(data, 3);
    let dir = graphopt_fuzz::scratch_dir("checkpoint");
    let prefix = dir.join("ckpt");
    let shard = |i: usize, n: usize| dir.join(format!("ckpt.data-{i:05}-of-{n:05}"));
    graphopt_fuzz::put(&dir.join("ckpt.index"), files.first().copied());
    graphopt_fuzz::put(&shard(0, 1), files.get(1).copied());
    graphopt_fuzz::put(&shard(0, 2), files.get(1).copied());
    graphopt_fuzz::put(&shard(1, 2), files.get(2).copied());
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
