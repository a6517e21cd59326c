//! Shared pieces of graphopt's fuzz targets: the budget every target runs under, a splitter for
//! inputs made of several files, a scratch directory per process, and a structural generator of
//! small GraphDefs (see [`gen`]) so that fuzzing reaches the kernels, shape inference and the
//! transforms with attributes of the right types.

use std::path::PathBuf;

use graphopt_core::budget::Budget;

pub mod bundle;
pub mod gen;

/// Memory a target may ask the budget for: over it is a refusal (an `Err`), far below
/// libFuzzer's `-rss_limit_mb=2048`, so an out-of-memory report means something was allocated
/// without asking.
pub const MEMORY: u64 = 512 << 20;

/// Work (element operations) per input: the CLI's default minimum, a few seconds at worst.
pub const WORK: u64 = 1 << 27;

/// The budget one fuzz input runs under.
pub fn budget() -> Budget {
    Budget::new(MEMORY, WORK)
}

/// Memory for the targets that generate graphs (eval, pipeline): a generated graph reaches a
/// legitimate 500 MB computation in a few bytes, and running it to the end is slow without
/// finding anything that a refusal at 64 MiB does not.
pub const GENERATED_MEMORY: u64 = 64 << 20;

/// Work for the targets that generate graphs.
pub const GENERATED_WORK: u64 = 1 << 24;

/// The budget a generated graph runs under.
pub fn generated_budget() -> Budget {
    Budget::new(GENERATED_MEMORY, GENERATED_WORK)
}

/// Whether `GRAPHOPT_FUZZ_DEBUG` is set: the targets then print what each input did (to see
/// how far generated inputs get, e.g. running a corpus with `-runs=0`).
pub fn debug() -> bool {
    static DEBUG: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *DEBUG.get_or_init(|| std::env::var_os("GRAPHOPT_FUZZ_DEBUG").is_some())
}

/// The ops of `graph`, in order, for debug output (`GRAPHOPT_FUZZ_DEBUG=inputs`: with their
/// inputs).
pub fn ops(graph: &graphopt_core::proto::GraphDef) -> String {
    let inputs = std::env::var("GRAPHOPT_FUZZ_DEBUG").is_ok_and(|v| v == "inputs");
    let ops: Vec<String> = graph
        .node
        .iter()
        .map(|n| {
            if inputs {
                format!("{}={}({})", n.name, n.op, n.input.join(","))
            } else {
                n.op.clone()
            }
        })
        .collect();
    ops.join(" ")
}

/// Splits `data` into at most `max` files: each but the last is a little-endian u32 length
/// followed by that many bytes (cut short at the end of the input); the last takes the rest.
pub fn sections(data: &[u8], max: usize) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut rest = data;
    while out.len() + 1 < max && rest.len() >= 4 {
        let len = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        let body = &rest[4..];
        let len = len.min(body.len());
        out.push(&body[..len]);
        rest = &body[len..];
    }
    out.push(rest);
    out
}

/// The inverse of [`sections`], for writing seeds.
pub fn join_sections(files: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, file) in files.iter().enumerate() {
        if i + 1 < files.len() {
            out.extend_from_slice(&(file.len() as u32).to_le_bytes());
        }
        out.extend_from_slice(file);
    }
    out
}

/// A directory of this process's own for the files a target writes (in memory when
/// `/dev/shm` exists), created on first use and emptied by the caller as needed.
pub fn scratch_dir(target: &str) -> PathBuf {
    let base = if std::path::Path::new("/dev/shm").is_dir() {
        PathBuf::from("/dev/shm")
    } else {
        std::env::temp_dir()
    };
    let dir = base.join(format!("graphopt-fuzz-{target}-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    dir
}

/// Writes `bytes` to `path`, or removes `path` when there are none.
pub fn put(path: &std::path::Path, bytes: Option<&[u8]>) {
    match bytes {
        Some(bytes) => {
            if let Some(parent) = path.parent() {
                let _ = std::fs::create_dir_all(parent);
            }
            std::fs::write(path, bytes).expect("writing a scratch file");
        }
        None => {
            let _ = std::fs::remove_file(path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sections_round_trip() {
        let files: [&[u8]; 3] = [b"index", b"", b"data bytes"];
        assert_eq!(sections(&join_sections(&files), 3), files.to_vec());
        assert_eq!(sections(b"ab", 3), vec![&b"ab"[..]]);
        assert_eq!(sections(&[9, 0, 0, 0, 1, 2], 2), vec![&[1, 2][..], &[][..]]);
    }
}

/// How far the generator's graphs get: of the graphs made from the committed `eval` corpus and
/// from 10,000 seeded random inputs of 64 bytes to 4 KiB, the share that passes validation
/// (about one attribute in 16 is left out on purpose) and the share the evaluator runs to the
/// end. Run with `cargo test --release -- --nocapture generated_graphs`.
#[cfg(test)]
mod generator_tests {
    use std::collections::BTreeMap;

    use arbitrary::Unstructured;
    use graphopt_core::tensor::Tensor;

    /// (generated, valid, evaluated) over `inputs`, as the `eval` target drives them.
    fn reach(inputs: impl Iterator<Item = Vec<u8>>) -> [usize; 3] {
        let mut counts = [0; 3];
        for data in inputs {
            let mut u = Unstructured::new(&data);
            let Ok(generated) = crate::gen::graph(&mut u) else {
                continue;
            };
            counts[0] += 1;
            let feeds = crate::gen::feeds(&mut u, &generated).unwrap_or_default();
            crate::generated_budget().enter(|| {
                if graphopt_core::graph::validate(&generated.graph).is_err() {
                    return;
                }
                counts[1] += 1;
                let feeds: BTreeMap<String, Tensor> = feeds
                    .iter()
                    .filter_map(|(name, proto)| {
                        Some((name.clone(), Tensor::from_proto(proto).ok()?))
                    })
                    .collect();
                let options = graphopt_core::eval::Options::default();
                let result = graphopt_core::eval::evaluate(
                    &generated.graph,
                    &feeds,
                    &generated.outputs,
                    options,
                );
                counts[2] += usize::from(result.is_ok());
            });
        }
        counts
    }

    #[test]
    fn generated_graphs_mostly_validate() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus/eval");
        let corpus = std::fs::read_dir(&dir)
            .expect("the committed eval corpus")
            .map(|entry| std::fs::read(entry.expect("a corpus entry").path()).expect("a unit"));
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let random = (0..10_000).map(|_| {
            let len = 64 + (next() % 4032) as usize;
            (0..len).map(|_| next() as u8).collect::<Vec<u8>>()
        });
        for (what, [generated, valid, evaluated]) in
            [("corpus", reach(corpus)), ("random", reach(random))]
        {
            println!("{what}: {generated} graphs, {valid} validate, {evaluated} evaluate");
            assert!(generated > 1000, "{what}: {generated} graphs");
            assert!(
                valid * 5 >= generated * 4,
                "{what}: {valid} of {generated} validate"
            );
        }
    }
}
