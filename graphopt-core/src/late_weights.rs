//! Weights whose bytes are computed as they are written.
//!
//! Batch-norm folding scales nearly every weight of a CNN (94 MB of ResNet-50's 98 MB). Scaled
//! into new buffers, those weights cost fresh memory, which the kernel must zero before the
//! scaling overwrites it (a fifth of a whole `transform` run in `perf`), and then a copy into
//! the page cache when written. A late weight instead stays, until it is written, the Const of
//! its *unscaled* source bytes plus an entry here saying how to scale them; the binary writer
//! computes it into one small reused buffer as it writes it.
//!
//! Meanwhile the Const holds the wrong bytes, so the rule is strict: only code that knows
//! this table may see such a graph. The transform runner computes every late weight before
//! any transform that does not accept them (all but the batch-norm folds and reordering), at
//! the end of `transforms::run`, and whenever a [`Deferred`] graph is taken; only the binary
//! writer reads a [`Deferred`] as it is.
//!
//! Every byte is the one eager scaling gives: each step multiplies in `f64` and rounds to
//! `f32`, in the order the folds applied them, exactly as scaling the bytes twice would.
//!
//! A source is read again from the input file when its weight is computed
//! ([`crate::pages::copy_out`]); should the file have shrunk since, that is an error
//! ([`LateWeightError`], naming the Const and the file) from every computation here, on
//! whichever thread, never a read of the mapping past the file's end.

use std::collections::{BTreeMap, HashSet};
use std::io;
use std::sync::Arc;

use bytes::Bytes;

use crate::proto::attr_value::Value;
use crate::proto::{GraphDef, NodeDef, TensorProto};

/// Contents smaller than this are scaled at once: the writer streams only large contents on
/// their own, and a small buffer costs next to nothing.
pub const LATE_FROM: usize = 64 << 10;

/// A late weight that could not be computed: its source could not be read again (the input
/// file shrank or became unreadable since it was read), or the thread computing it failed.
#[derive(Debug, thiserror::Error)]
#[error("Const '{node}': cannot compute its scaled weights: {source}")]
pub struct LateWeightError {
    /// The Const that holds the weight.
    pub node: String,
    pub source: io::Error,
}

impl LateWeightError {
    /// `source`, met computing the late weight of Const `node`.
    pub fn new(node: impl Into<String>, source: io::Error) -> Self {
        LateWeightError {
            node: node.into(),
            source,
        }
    }

    /// As an `io::Error` of the same kind, for writers.
    pub fn into_io(self) -> io::Error {
        io::Error::new(self.source.kind(), self)
    }
}

/// One multiplication of float32 weights laid out as rows: element `i` is multiplied by
/// `scale[i / row]` when `per_row` (the rows are the channels: MatMul with `transpose_b`), else
/// by `scale[i % row]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    row: usize,
    per_row: bool,
    scale: Arc<[f64]>,
}

impl Step {
    /// A step over rows of `row` elements; `None` unless `scale` fits that layout (one value
    /// per column, or any number of rows when `per_row`).
    pub fn new(row: usize, per_row: bool, scale: &[f64]) -> Option<Self> {
        if row == 0 || !per_row && scale.len() != row {
            return None;
        }
        Some(Step {
            row,
            per_row,
            scale: scale.into(),
        })
    }

    /// Whether the step lays out `elements` values exactly: whole rows, and one scale per row
    /// when `per_row` (a row without its scale would silently be left as it is).
    fn fits(&self, elements: usize) -> bool {
        elements % self.row == 0 && (!self.per_row || elements / self.row == self.scale.len())
    }

    /// Scales the float32 values of `values`, the elements from `first` on, in place: a run
    /// of one row at a time, so no element pays for a division.
    fn apply(&self, first: usize, values: &mut [u8]) {
        let (mut row, mut column) = (first / self.row, first % self.row);
        let mut rest = values;
        while rest.len() >= 4 {
            let run = (self.row - column).min(rest.len() / 4);
            let (now, later) = rest.split_at_mut(run * 4);
            let now = now.chunks_exact_mut(4);
            if self.per_row {
                let s = self.scale.get(row).copied().unwrap_or(1.0);
                now.for_each(|value| scale_in_place(value, s));
            } else {
                // `new` made the scale one value per column.
                let scales = self.scale.get(column..column + run).unwrap_or_default();
                now.zip(scales)
                    .for_each(|(value, &s)| scale_in_place(value, s));
            }
            rest = later;
            row += 1;
            column = 0;
        }
    }
}

/// One little-endian float32 multiplied in `f64` and rounded back, in place.
fn scale_in_place(value: &mut [u8], s: f64) {
    let v = f32::from_le_bytes([value[0], value[1], value[2], value[3]]);
    value.copy_from_slice(&((f64::from(v) * s) as f32).to_le_bytes());
}

/// A float32 weight to be computed: its source bytes (little-endian, as `tensor_content`) and
/// the steps that scale them, in order.
#[derive(Debug, Clone, PartialEq)]
pub struct ScaledWeight {
    source: Bytes,
    steps: Vec<Step>,
}

/// Scaled weights at least this large are computed on two threads.
const SPLIT_FROM: usize = 1 << 20;

/// Elements computed at a time when scanning or writing.
const CHUNK_BYTES: usize = 256 << 10;

impl ScaledWeight {
    /// `source` (float32 contents) scaled by `step`; `None` if it is not whole float32 values
    /// or not whole rows of the step (with one scale per row when the step has them).
    pub fn new(source: Bytes, step: Step) -> Option<Self> {
        (source.len() % 4 == 0 && step.fits(source.len() / 4)).then(|| ScaledWeight {
            source,
            steps: vec![step],
        })
    }

    /// This weight scaled once more, by `step`; `None` if `step` does not fit it (as for
    /// [`ScaledWeight::new`]).
    pub fn then(&self, step: Step) -> Option<Self> {
        if !step.fits(self.source.len() / 4) {
            return None;
        }
        let mut steps = self.steps.clone();
        steps.push(step);
        Some(ScaledWeight {
            source: self.source.clone(),
            steps,
        })
    }

    /// The unscaled bytes the late Const holds until it is computed.
    pub fn source(&self) -> &Bytes {
        &self.source
    }

    /// Length in bytes, the source's.
    pub fn len(&self) -> usize {
        self.source.len()
    }

    /// Whether there are no bytes at all.
    pub fn is_empty(&self) -> bool {
        self.source.is_empty()
    }

    /// Computes the bytes from byte `offset` on into `out` (`offset` and `out.len()` multiples
    /// of 4, within the weight). An error if the source cannot be read (an input file that
    /// shrank since it was mapped: see [`crate::pages::copy_out`]).
    pub fn compute_at(&self, offset: usize, out: &mut [u8]) -> io::Result<()> {
        let end = offset.saturating_add(out.len());
        let Some(source) = self.source.get(offset..end) else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "bytes {offset}..{end} asked of a weight of {} bytes",
                    self.source.len()
                ),
            ));
        };
        // Read around the input's mapping, then scaled where the bytes are (in cache).
        crate::pages::copy_out(source, out)?;
        for step in &self.steps {
            step.apply(offset / 4, out);
        }
        Ok(())
    }

    /// The one value every element has, as bytes, if they are all the same (compared as
    /// bytes, as `Tensor::to_proto` does). Stops at the first difference: for real weights
    /// that is within the first few elements, so the first read is one page and each next
    /// one twice the last, up to a chunk (a whole first chunk per weight was 13 MB of reading
    /// and scaling on ResNet-50, 3% of its standard pipeline).
    pub fn uniform(&self) -> io::Result<Option<[u8; 4]>> {
        const FIRST_READ: usize = 4 << 10;
        let mut chunk = Vec::new();
        let mut first = None;
        let mut offset = 0;
        let mut window = FIRST_READ;
        while offset < self.source.len() {
            let len = window.min(self.source.len() - offset);
            chunk.resize(len, 0);
            let out = &mut chunk[..];
            self.compute_at(offset, out)?;
            offset += len;
            window = (window * 2).min(CHUNK_BYTES);
            for value in out.chunks_exact(4) {
                let value = [value[0], value[1], value[2], value[3]];
                match first {
                    None => first = Some(value),
                    Some(f) if f != value => return Ok(None),
                    Some(_) => {}
                }
            }
        }
        Ok(first)
    }

    /// All the bytes, computed into new memory (two threads for large weights: every element
    /// is computed the same way whichever thread does it).
    pub fn compute(&self) -> io::Result<Bytes> {
        let mut buffer = crate::pages::zeroed(self.source.len());
        let content = &mut buffer[..];
        let mid = content.len() / 8 * 4;
        if content.len() < SPLIT_FROM || mid == 0 {
            self.compute_at(0, content)?;
        } else {
            let (first, second) = content.split_at_mut(mid);
            // The second half, for the helper thread or, if none can be had, for this one.
            let pending = std::sync::Mutex::new(Some(second));
            let compute_second = || {
                let half = pending.lock().unwrap_or_else(|e| e.into_inner()).take();
                match half {
                    Some(out) => self.compute_at(mid, out),
                    None => Ok(()),
                }
            };
            std::thread::scope(|scope| {
                let helper = std::thread::Builder::new()
                    .spawn_scoped(scope, compute_second)
                    .ok();
                let first = self.compute_at(0, first);
                // Joined here, so that a panic there is an error rather than this thread's.
                let second = helper.map_or(Ok(()), |helper| {
                    helper.join().unwrap_or_else(|_| Err(helper_panicked()))
                });
                first.and(second)
            })?;
            compute_second()?;
        }
        Ok(buffer.freeze())
    }

    /// Writes the bytes to `out` through `buffers`, a chunk at a time. A large weight's
    /// chunks are computed on a second thread while this one writes the one before. An error
    /// computing them is a [`LateWeightError`] naming `node`, the Const that holds the weight.
    pub fn write_to(
        &self,
        node: &str,
        out: &mut impl std::io::Write,
        buffers: &mut ChunkBuffers,
    ) -> std::io::Result<()> {
        let compute_at = |offset: usize, chunk: &mut [u8]| {
            self.compute_at(offset, chunk)
                .map_err(|e| LateWeightError::new(node, e).into_io())
        };
        let mut chunks = (0..self.source.len()).step_by(CHUNK_BYTES);
        let chunk_len = |offset: usize| CHUNK_BYTES.min(self.source.len() - offset);
        if self.source.len() >= SPLIT_FROM {
            if let Some(written) = self.write_computed_aside(out, &compute_at, buffers) {
                return written;
            }
        }
        let mut scratch = buffers.take();
        let written = chunks.try_for_each(|offset| {
            let chunk = &mut scratch[..chunk_len(offset)];
            compute_at(offset, chunk)?;
            out.write_all(chunk)
        });
        buffers.give_back(scratch);
        written
    }

    /// [`ScaledWeight::write_to`] with each chunk computed on a helper thread, two buffers
    /// passed back and forth; `None` if no thread could be had (nothing written then). The
    /// helper's error (or panic) is the result's, and so is a helper that stopped early: every
    /// byte is written or the result is an error.
    fn write_computed_aside(
        &self,
        out: &mut impl std::io::Write,
        compute_at: &(impl Fn(usize, &mut [u8]) -> io::Result<()> + Sync),
        buffers: &mut ChunkBuffers,
    ) -> Option<std::io::Result<()>> {
        use std::sync::mpsc::sync_channel;
        let (computed, to_write) = sync_channel::<Vec<u8>>(1);
        let (recycle, to_fill) = sync_channel::<Vec<u8>>(2);
        for _ in 0..2 {
            recycle.send(buffers.take()).ok()?;
        }
        std::thread::scope(|scope| {
            // The helper hands its end of the recycling channel back, buffers and all.
            let compute = move || -> (io::Result<()>, std::sync::mpsc::Receiver<Vec<u8>>) {
                for offset in (0..self.source.len()).step_by(CHUNK_BYTES) {
                    // Either side gone: the writer failed and stopped.
                    let Ok(mut buffer) = to_fill.recv() else {
                        return (Ok(()), to_fill);
                    };
                    buffer.resize(CHUNK_BYTES.min(self.source.len() - offset), 0);
                    // An error drops `computed`: the writer stops after the chunks before.
                    if let Err(e) = compute_at(offset, &mut buffer) {
                        return (Err(e), to_fill);
                    }
                    if computed.send(buffer).is_err() {
                        return (Ok(()), to_fill);
                    }
                }
                (Ok(()), to_fill)
            };
            let helper = std::thread::Builder::new()
                .spawn_scoped(scope, compute)
                .ok()?;
            // Every chunk arrives in order; the helper ends after the last.
            let mut total = 0usize;
            let written = to_write.iter().try_for_each(|buffer| {
                out.write_all(&buffer)?;
                total = total.saturating_add(buffer.len());
                // The helper may have finished: a buffer it no longer needs is dropped.
                let _ = recycle.send(buffer);
                Ok(())
            });
            // Both ends the helper may wait on go before it is joined: a failed write stops it.
            drop((to_write, recycle));
            let computed = match helper.join() {
                Ok((computed, to_fill)) => {
                    to_fill
                        .try_iter()
                        .for_each(|buffer| buffers.give_back(buffer));
                    computed
                }
                Err(_) => Err(helper_panicked()),
            };
            Some(written.and(computed).and_then(|()| {
                if total == self.source.len() {
                    Ok(())
                } else {
                    Err(io::Error::other(format!(
                        "{total} of the weight's {} bytes were computed",
                        self.source.len()
                    )))
                }
            }))
        })
    }
}

/// Chunk buffers kept from one weight to the next while a graph is written: a fresh pair per
/// weight was memory the kernel had to map and zero again each time.
#[derive(Debug, Default)]
pub struct ChunkBuffers {
    spare: Vec<Vec<u8>>,
}

impl ChunkBuffers {
    /// A buffer of [`CHUNK_BYTES`]: a kept one, else a new one.
    fn take(&mut self) -> Vec<u8> {
        let mut buffer = self.spare.pop().unwrap_or_default();
        buffer.resize(CHUNK_BYTES, 0);
        buffer
    }

    /// Keeps `buffer` for later; two are all a weight uses at once.
    fn give_back(&mut self, buffer: Vec<u8>) {
        if self.spare.len() < 2 {
            self.spare.push(buffer);
        }
    }
}

fn helper_panicked() -> io::Error {
    io::Error::other("the thread computing the weights panicked")
}

/// The late weights of one graph, by the name of the Const that holds each.
#[derive(Debug, Clone, Default)]
pub struct LateWeights {
    by_name: BTreeMap<String, ScaledWeight>,
}

impl LateWeights {
    /// Whether no weight is late.
    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }

    /// How many weights are late.
    pub fn len(&self) -> usize {
        self.by_name.len()
    }

    /// Makes Const `name`, which holds `weight.source()` as its `value`'s content, late.
    pub fn insert(&mut self, name: String, weight: ScaledWeight) {
        self.by_name.insert(name, weight);
    }

    /// The late weight `node` holds: an entry for its name whose source is the very bytes
    /// (same memory, same length) its `value` holds. Anything else, a node renamed or given
    /// other contents since, is not late.
    pub fn of(&self, node: &NodeDef) -> Option<&ScaledWeight> {
        if self.by_name.is_empty() || node.op != "Const" {
            return None;
        }
        let weight = self.by_name.get(&node.name)?;
        let content = &value_tensor(node)?.tensor_content;
        (content.as_ptr() == weight.source.as_ptr() && content.len() == weight.source.len())
            .then_some(weight)
    }

    /// Drops the entries of Consts no longer in `graph` (a fold removed them), so that no
    /// later node of the same name can be taken for one.
    pub fn forget_missing(&mut self, graph: &GraphDef) {
        if self.by_name.is_empty() {
            return;
        }
        let live: HashSet<&str> = graph.node.iter().map(|n| n.name.as_str()).collect();
        self.by_name.retain(|name, _| live.contains(name.as_str()));
    }

    /// Computes every late weight into its Const; afterwards none is late. On an error the
    /// weights computed so far hold their values, the others are still late.
    pub fn compute_all(&mut self, graph: &mut GraphDef) -> Result<(), LateWeightError> {
        if self.by_name.is_empty() {
            return Ok(());
        }
        for node in &mut graph.node {
            let Some(weight) = self.of(node) else {
                continue;
            };
            let computed = weight
                .compute()
                .map_err(|e| LateWeightError::new(&node.name, e))?;
            if let Some(tensor) = value_tensor_mut(node) {
                tensor.tensor_content = computed;
            }
        }
        self.by_name.clear();
        Ok(())
    }
}

fn value_tensor(node: &NodeDef) -> Option<&TensorProto> {
    match node.attr.get("value")?.value.as_ref()? {
        Value::Tensor(tensor) => Some(tensor),
        _ => None,
    }
}

fn value_tensor_mut(node: &mut NodeDef) -> Option<&mut TensorProto> {
    match node.attr.get_mut("value")?.value.as_mut()? {
        Value::Tensor(tensor) => Some(tensor),
        _ => None,
    }
}

/// A graph that may hold late weights, with their table: what `transforms::run_deferred`
/// gives. The graph can be taken only computed ([`Deferred::into_graph`]); the binary writer
/// (`io::write_deferred`) reads it as it is and computes each late weight as it writes it.
#[derive(Debug, Clone, Default)]
pub struct Deferred {
    graph: GraphDef,
    late: LateWeights,
}

impl Deferred {
    /// `graph` with its late weights `late`.
    pub fn new(graph: GraphDef, late: LateWeights) -> Self {
        Deferred { graph, late }
    }

    /// The graph with every weight computed.
    pub fn into_graph(mut self) -> Result<GraphDef, LateWeightError> {
        self.late.compute_all(&mut self.graph)?;
        Ok(self.graph)
    }

    /// Nodes of the main graph.
    pub fn node_count(&self) -> usize {
        self.graph.node.len()
    }

    /// Functions in the graph's library.
    pub fn function_count(&self) -> usize {
        self.graph.library.as_ref().map_or(0, |l| l.function.len())
    }

    /// How many weights are still late.
    pub fn late_count(&self) -> usize {
        self.late.len()
    }

    /// The graph as it is and its table, for the writer only.
    pub(crate) fn parts(&self) -> (&GraphDef, &LateWeights) {
        (&self.graph, &self.late)
    }
}

impl From<GraphDef> for Deferred {
    fn from(graph: GraphDef) -> Self {
        Deferred::new(graph, LateWeights::default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::{attr_value, AttrValue, DataType};

    fn floats(values: &[f32]) -> Bytes {
        values.iter().flat_map(|v| v.to_le_bytes()).collect()
    }

    fn as_floats(bytes: &[u8]) -> Vec<f32> {
        bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect()
    }

    fn const_node(name: &str, content: Bytes) -> NodeDef {
        let tensor = TensorProto {
            dtype: DataType::DtFloat as i32,
            tensor_content: content,
            ..TensorProto::default()
        };
        NodeDef {
            name: name.into(),
            op: "Const".into(),
            attr: [(
                "value".to_string(),
                AttrValue {
                    value: Some(attr_value::Value::Tensor(Box::new(tensor))),
                },
            )]
            .into(),
            ..NodeDef::default()
        }
    }

    #[test]
    fn steps_round_to_f32_after_each_and_follow_the_layout() {
        let source = floats(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
        let columns = Step::new(3, false, &[0.1, 10.0, -1.0]).unwrap();
        let rows = Step::new(3, true, &[1.0 / 3.0, 7.0]).unwrap();
        let weight = ScaledWeight::new(source.clone(), columns)
            .unwrap()
            .then(rows)
            .unwrap();
        let expected: Vec<f32> = as_floats(&source)
            .iter()
            .enumerate()
            .map(|(i, &v)| {
                let once = (f64::from(v) * [0.1, 10.0, -1.0][i % 3]) as f32;
                (f64::from(once) * [1.0 / 3.0, 7.0][i / 3]) as f32
            })
            .collect();
        assert_eq!(as_floats(&weight.compute().unwrap()), expected);
        // Any chunk computed on its own gives the same bytes as the whole.
        let mut tail = vec![0u8; 12];
        weight.compute_at(12, &mut tail).unwrap();
        assert_eq!(as_floats(&tail), expected[3..]);
        assert_eq!(weight.uniform().unwrap(), None);
    }

    #[test]
    fn large_weights_split_over_threads_give_the_same_bytes() {
        let values: Vec<f32> = (0..(SPLIT_FROM / 4 * 3 + 7))
            .map(|i| i as f32 * 0.37)
            .collect();
        let scale: Vec<f64> = (0..values.len()).map(|i| 1.0 + i as f64 * 1e-3).collect();
        let weight =
            ScaledWeight::new(floats(&values), Step::new(1, true, &scale).unwrap()).unwrap();
        let expected: Vec<f32> = values
            .iter()
            .zip(&scale)
            .map(|(&v, &s)| (f64::from(v) * s) as f32)
            .collect();
        assert_eq!(as_floats(&weight.compute().unwrap()), expected);
        let mut written = Vec::new();
        weight
            .write_to("w", &mut written, &mut ChunkBuffers::default())
            .unwrap();
        assert_eq!(as_floats(&written), expected);
    }

    /// A writer that fails once it has taken `room` bytes.
    struct FullDisk {
        room: usize,
    }

    impl std::io::Write for FullDisk {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            if self.room == 0 {
                return Err(std::io::Error::other("no space left"));
            }
            let n = buf.len().min(self.room);
            self.room -= n;
            Ok(n)
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_failed_write_is_reported_and_stops_the_helper() {
        let values: Vec<f32> = (0..SPLIT_FROM).map(|i| i as f32).collect();
        let weight = ScaledWeight::new(
            floats(&values),
            Step::new(1, true, &vec![0.5; values.len()]).unwrap(),
        )
        .unwrap();
        for room in [0, 1, CHUNK_BYTES, 3 * CHUNK_BYTES + 5] {
            let error = weight
                .write_to("w", &mut FullDisk { room }, &mut ChunkBuffers::default())
                .unwrap_err();
            assert_eq!(error.to_string(), "no space left");
        }
    }

    /// A large weight whose source, in a mapped input, is gone from the file when it is
    /// written: the helper thread's read fails, and that is the write's error, naming the
    /// Const and the file, after the chunks before it; no byte of the mapping past the file's
    /// end is read (SIGBUS), and every thread ends.
    #[cfg(all(unix, feature = "mmap"))]
    #[test]
    fn a_source_gone_from_its_file_is_an_error_on_either_thread() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("weights.bin");
        let values: Vec<f32> = (0..SPLIT_FROM).map(|i| i as f32).collect();
        std::fs::write(&path, floats(&values)).unwrap();
        let file = std::fs::File::open(&path).unwrap();
        let mapped = crate::pages::map(&file, &path).unwrap();
        let weight = ScaledWeight::new(
            mapped.clone(),
            Step::new(1, true, &vec![0.5; values.len()]).unwrap(),
        )
        .unwrap();
        // Cut within the third chunk: two chunks are written before the error.
        std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .and_then(|f| f.set_len((2 * CHUNK_BYTES + 100) as u64))
            .unwrap();
        let mut written = Vec::new();
        let error = weight
            .write_to("conv/w", &mut written, &mut ChunkBuffers::default())
            .unwrap_err();
        let message = error.to_string();
        assert!(message.contains("Const 'conv/w'"), "{message}");
        assert!(message.contains("weights.bin"), "{message}");
        assert_eq!(written.len(), 2 * CHUNK_BYTES);
        let error = weight.compute().unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::UnexpectedEof, "{error}");
    }

    #[test]
    fn uniform_means_every_computed_byte_alike() {
        let zeroing = Step::new(2, false, &[0.0, 0.0]).unwrap();
        let weight = ScaledWeight::new(floats(&[1.0, -2.0, 3.0, 4.0]), zeroing).unwrap();
        // 0 * -2 is -0: the bytes differ, so the weight is not uniform.
        assert_eq!(weight.uniform().unwrap(), None);
        let halving = Step::new(2, false, &[0.5, 0.5]).unwrap();
        let weight = ScaledWeight::new(floats(&[4.0, 4.0, 4.0, 4.0]), halving).unwrap();
        assert_eq!(weight.uniform().unwrap(), Some(2.0f32.to_le_bytes()));
    }

    /// The growing reads cover every element: a weight of several chunks alike but for one
    /// element at the start of a later read, or at the very end, is not uniform.
    #[test]
    fn uniform_reads_every_element_of_a_large_weight() {
        let elements = (3 * CHUNK_BYTES + 16) / 4;
        let doubling = || Step::new(2, false, &[2.0, 2.0]).unwrap();
        let alike = vec![1.5f32; elements];
        let weight = ScaledWeight::new(floats(&alike), doubling()).unwrap();
        assert_eq!(weight.uniform().unwrap(), Some(3.0f32.to_le_bytes()));
        // Element offsets where a read starts (4 KiB, 4+8 KiB, ...), one past, and the last.
        for odd in [1024, 3072, 3073, CHUNK_BYTES / 4, elements - 1] {
            let mut values = alike.clone();
            values[odd] = 1.25;
            let weight = ScaledWeight::new(floats(&values), doubling()).unwrap();
            assert_eq!(weight.uniform().unwrap(), None, "element {odd}");
        }
    }

    #[test]
    fn a_node_is_late_only_while_it_holds_the_very_source() {
        let source = floats(&[1.0, 2.0]);
        let weight =
            ScaledWeight::new(source.clone(), Step::new(2, false, &[2.0, 3.0]).unwrap()).unwrap();
        let mut late = LateWeights::default();
        late.insert("w".into(), weight);
        let holder = const_node("w", source.clone());
        assert!(late.of(&holder).is_some());
        // Equal bytes elsewhere, or the same bytes under another name, are not late.
        assert!(late.of(&const_node("w", floats(&[1.0, 2.0]))).is_none());
        assert!(late.of(&const_node("v", source.clone())).is_none());
        let mut graph = GraphDef {
            node: vec![holder, const_node("v", source)],
            ..GraphDef::default()
        };
        late.compute_all(&mut graph).unwrap();
        assert!(late.is_empty());
        let content = |n: &NodeDef| as_floats(&value_tensor(n).unwrap().tensor_content);
        assert_eq!(content(&graph.node[0]), [2.0, 6.0]);
        assert_eq!(
            content(&graph.node[1]),
            [1.0, 2.0],
            "another reader's weights"
        );
    }

    #[test]
    fn entries_of_removed_consts_are_forgotten() {
        let source = floats(&[1.0]);
        let mut late = LateWeights::default();
        let step = Step::new(1, false, &[2.0]).unwrap();
        late.insert("gone".into(), ScaledWeight::new(source, step).unwrap());
        late.forget_missing(&GraphDef::default());
        assert!(late.is_empty());
    }

    #[test]
    fn steps_refuse_layouts_their_scale_does_not_fit() {
        assert!(Step::new(0, true, &[1.0]).is_none());
        assert!(Step::new(3, false, &[1.0, 2.0]).is_none());
        assert!(ScaledWeight::new(
            Bytes::from_static(&[0; 6]),
            Step::new(1, true, &[1.0]).unwrap()
        )
        .is_none());
        // Rows without a scale, or a part of a row, would be left unscaled: refused.
        let six = floats(&[1.0; 6]);
        let one_scale_two_rows = Step::new(3, true, &[2.0]).unwrap();
        assert!(ScaledWeight::new(six.clone(), one_scale_two_rows.clone()).is_none());
        let rows_of_four = Step::new(4, false, &[2.0; 4]).unwrap();
        assert!(ScaledWeight::new(six.clone(), rows_of_four.clone()).is_none());
        let fits = ScaledWeight::new(six, Step::new(3, false, &[2.0; 3]).unwrap()).unwrap();
        assert!(fits.then(one_scale_two_rows).is_none());
        assert!(fits.then(rows_of_four).is_none());
        assert!(fits.then(Step::new(2, true, &[1.0; 3]).unwrap()).is_some());
    }
}
