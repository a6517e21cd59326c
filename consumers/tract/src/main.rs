//! Judges graphopt's legalized graphs with a real consumer: tract-tensorflow 0.23, the
//! pure-Rust runtime that reads TensorFlow GraphDefs.
//!
//! For each case below, runs the case's pipeline on the fixture with graphopt-core (in-process,
//! exactly what `graphopt transform` does), loads the encoded graph with tract-tensorflow's
//! importer, optimizes and runs it on TensorFlow's recorded inputs, and compares with
//! TensorFlow's recorded outputs. Writes tests/fixtures/expected/tract.json with, per case,
//! the pipeline, the SHA-256 of the graph judged, whether tract loaded and ran it, the errors,
//! and the largest absolute and relative errors. `graphopt-core/tests/consumers.rs` re-runs each
//! recorded pipeline and fails when the bytes differ from the judged ones, so the record always
//! speaks of today's output.
//!
//! ```sh
//! cargo run --release --manifest-path consumers/tract/Cargo.toml [-- CASE...]
//! ```
//!
//! With case names, judges only those and prints the results without writing the record.
//! `GRAPHOPT_TRACT_DUMP=DIR` also writes each judged graph to `DIR/NAME.pb`.

use std::collections::BTreeMap;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use graphopt_core::proto::TensorProto;
use graphopt_core::tensor::{Data, Tensor as GraphoptTensor};
use graphopt_core::transforms::{self, Registry};
use prost::Message;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use tract_tensorflow::prelude::*;

/// The element-wise criterion, as numpy's `allclose` and the OpenCV judge
/// (`tests/consumers/check_opencv.py`): |tract - TensorFlow| <= ATOL + RTOL * |TensorFlow|.
const RTOL: f64 = 1e-4;
const ATOL: f64 = 1e-5;
const STANDARD: &str = "strip_unused_nodes remove_nodes(op=Identity, op=CheckNumerics) \
     fold_constants(ignore_errors=true) fold_batch_norms fold_old_batch_norms \
     sort_by_execution_order";
const FIX_BATCH: &str = r#"fix_input_shapes(shape="1,32,32,3")"#;

/// Every fixture that is a CNN or whose ops tract registers, with the pipelines a user would
/// run for tract: the standard pipeline, or `@deploy`, then `legalize(target=tract)`.
fn cases() -> Vec<(String, String)> {
    let standard = |name: &str| {
        (
            name.to_string(),
            format!("{STANDARD} legalize(target=tract)"),
        )
    };
    let deploy = |name: &str| {
        (
            format!("{name}@deploy"),
            "@deploy legalize(target=tract)".to_string(),
        )
    };
    vec![
        standard("keras_cnn"),
        standard("tf1_conv_bn"),
        standard("bn_patterns"),
        standard("resize_pad_conv"),
        standard("atrous_conv"),
        // The same network with its atrous convolutions as dilated Conv2Ds (as Keras writes
        // dilated convolutions): tract's Conv2D ignores `dilations`, legalize rewrites them.
        (
            "atrous_conv@dilated".into(),
            format!("{STANDARD} flatten_atrous_conv legalize(target=tract)"),
        ),
        standard("densenet_block"),
        standard("dense_mlp"),
        standard("while_rnn"),
        standard("transformer_block"),
        standard("bert_encoder"),
        standard("function_calls"),
        deploy("training_leftovers"),
        (
            "efficientnet_block".into(),
            format!("{FIX_BATCH} {STANDARD} legalize(target=tract)"),
        ),
        deploy("keras_cnn"),
        deploy("tf1_conv_bn"),
        deploy("densenet_block"),
        (
            "efficientnet_block@deploy".into(),
            format!("@deploy {FIX_BATCH} @deploy legalize(target=tract)"),
        ),
    ]
}

/// The version of tract-tensorflow this crate's Cargo.lock pins; the record names it.
fn tract_version() -> Result<String> {
    let lock = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.lock"))?;
    let mut lines = lock.lines();
    while let Some(line) = lines.next() {
        if line == r#"name = "tract-tensorflow""# {
            if let Some(version) = lines.next().and_then(|l| l.strip_prefix("version = ")) {
                return Ok(version.trim_matches('"').to_string());
            }
        }
    }
    bail!("tract-tensorflow not in Cargo.lock")
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn fixtures() -> PathBuf {
    root().join("tests/fixtures")
}

/// Input and output names of a fixture, from its expectations.
fn io_names(name: &str) -> Result<(Vec<String>, Vec<String>)> {
    let path = fixtures().join(format!("expected/{name}.json"));
    let spec: Value = serde_json::from_str(
        &std::fs::read_to_string(&path).with_context(|| path.display().to_string())?,
    )?;
    let names = |key: &str| -> Result<Vec<String>> {
        spec[key]
            .as_array()
            .ok_or_else(|| anyhow!("{}: no {key}", path.display()))?
            .iter()
            .map(|v| {
                v["name"]
                    .as_str()
                    .map(str::to_string)
                    .ok_or_else(|| anyhow!("{}: unnamed {key}", path.display()))
            })
            .collect()
    };
    Ok((names("inputs")?, names("outputs")?))
}

/// A recorded TensorProto of the fixture's data folder.
fn recorded(name: &str, file: &str) -> Result<GraphoptTensor> {
    let path = fixtures().join(format!("data/{name}/{file}"));
    let bytes = std::fs::read(&path).with_context(|| path.display().to_string())?;
    let proto = TensorProto::decode(bytes.as_slice())?;
    GraphoptTensor::from_proto(&proto).with_context(|| path.display().to_string())
}

/// graphopt's tensor as tract's.
fn to_tract(t: &GraphoptTensor) -> Result<Tensor> {
    let shape = t.shape().to_vec();
    fn array<T: Clone>(
        shape: &[usize],
        a: &ndarray::ArrayD<T>,
    ) -> Result<tract_ndarray::ArrayD<T>> {
        Ok(tract_ndarray::ArrayD::from_shape_vec(
            shape,
            a.iter().cloned().collect(),
        )?)
    }
    Ok(match t.data() {
        Data::F32(a) => array(&shape, a)?.into(),
        Data::F64(a) => array(&shape, a)?.into(),
        Data::I32(a) => array(&shape, a)?.into(),
        Data::I64(a) => array(&shape, a)?.into(),
        Data::U8(a) => array(&shape, a)?.into(),
        Data::Bool(a) => array(&shape, a)?.into(),
        _ => bail!("input of dtype {:?} not supported here", t.dtype()),
    })
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The graph a case judges: the fixture after the case's pipeline, encoded as graphopt writes it.
fn legalized(name: &str, pipeline: &str, inputs: &[String], outputs: &[String]) -> Result<Vec<u8>> {
    let path = fixtures().join(format!("models/{name}.pb"));
    let mut graph = graphopt_core::io::read_graph(&path)
        .with_context(|| path.display().to_string())?
        .graph;
    let specs = transforms::parse(pipeline)?;
    transforms::run(
        &Registry::with_builtins(),
        &mut graph,
        &specs,
        inputs,
        outputs,
    )?;
    Ok(graphopt_core::io::encode_graph(&graph))
}

/// Loads `graph` with tract-tensorflow as its documentation shows (input facts from the
/// inputs' dtypes and shapes, outputs by name), optimizes it and runs it.
fn run_in_tract(
    graph: &[u8],
    inputs: &[Tensor],
    outputs: &[String],
) -> std::result::Result<TVec<TValue>, (bool, TractError)> {
    let load = || -> TractResult<_> {
        let mut model = tract_tensorflow::tensorflow().model_for_read(&mut &*graph)?;
        for (k, x) in inputs.iter().enumerate() {
            model.set_input_fact(k, InferenceFact::dt_shape(x.datum_type(), x.shape()))?;
        }
        model.select_outputs_by_name(outputs)?;
        model.into_optimized()?.into_runnable()
    };
    let runnable = load().map_err(|e| (false, e))?;
    let values = inputs.iter().cloned().map(TValue::from).collect();
    runnable.run(values).map_err(|e| (true, e))
}

/// How one output compares with TensorFlow's, element by element.
#[derive(Default)]
struct Comparison {
    /// Largest |got - want|.
    max_abs: f64,
    /// Largest |want|, which `max_abs` is quoted relative to.
    scale: f64,
    /// Elements outside ATOL + RTOL * |want| (NaN included).
    mismatched: usize,
    /// |got - want| / |want| at the element furthest outside its bound, and that ratio.
    worst_rel: f64,
    worst_ratio: f64,
}

impl Comparison {
    fn add(&mut self, other: Comparison) {
        self.max_abs = self.max_abs.max(other.max_abs);
        self.scale = self.scale.max(other.scale);
        self.mismatched += other.mismatched;
        if other.worst_ratio > self.worst_ratio {
            self.worst_ratio = other.worst_ratio;
            self.worst_rel = other.worst_rel;
        }
    }

    fn max_rel(&self) -> f64 {
        self.max_abs / self.scale.max(f64::MIN_POSITIVE)
    }
}

fn compare(got: &Tensor, want: &GraphoptTensor) -> Result<Comparison> {
    if got.shape() != want.shape() {
        bail!(
            "output shape {:?}, TensorFlow {:?}",
            got.shape(),
            want.shape()
        );
    }
    let got = got.cast_to::<f64>()?;
    let got = got.to_plain_array_view::<f64>()?;
    let want = want
        .floats()
        .ok_or_else(|| anyhow!("output of dtype {:?} not compared", want.dtype()))?;
    let mut result = Comparison::default();
    for (g, w) in got.iter().zip(&want) {
        let diff = match (g - w).abs() {
            d if d.is_nan() => f64::INFINITY,
            d => d,
        };
        let bound = ATOL + RTOL * w.abs();
        result.max_abs = result.max_abs.max(diff);
        result.scale = result.scale.max(w.abs());
        if diff > bound {
            result.mismatched += 1;
        }
        if diff / bound > result.worst_ratio {
            result.worst_ratio = diff / bound;
            result.worst_rel = diff / w.abs().max(f64::MIN_POSITIVE);
        }
    }
    Ok(result)
}

/// A figure for JSON, which has no infinity or NaN.
fn finite(value: f64) -> Value {
    if value.is_finite() {
        json!(value)
    } else {
        Value::Null
    }
}

/// One line of an error message, at most 400 characters (tract's messages can embed a whole
/// model patch).
fn short(message: &str) -> String {
    let line = message.lines().next().unwrap_or_default();
    match line.char_indices().nth(400) {
        Some((at, _)) => format!("{}...", &line[..at]),
        None => line.to_string(),
    }
}

/// Judges one case in this process: prints the pipeline and the graph's SHA-256 as a first
/// JSON line (so that the parent still knows them if tract aborts), then the full record.
fn judge(name: &str, pipeline: &str) -> Result<()> {
    let (input_names, output_names) = io_names(name)?;
    let graph = legalized(name, pipeline, &input_names, &output_names)?;
    if let Some(dir) = std::env::var_os("GRAPHOPT_TRACT_DUMP") {
        std::fs::write(Path::new(&dir).join(format!("{name}.pb")), &graph)?;
    }
    let mut record = BTreeMap::new();
    record.insert("pipeline", json!(pipeline));
    record.insert("sha256", json!(sha256_hex(&graph)));
    println!("{}", json!(record));
    let inputs = (0..input_names.len())
        .map(|k| to_tract(&recorded(name, &format!("input_{k}.pb"))?))
        .collect::<Result<Vec<_>>>()?;
    let wants = (0..output_names.len())
        .map(|k| recorded(name, &format!("output_{k}.pb")))
        .collect::<Result<Vec<_>>>()?;
    match run_in_tract(&graph, &inputs, &output_names) {
        Err((loaded, e)) => {
            let chain: Vec<String> = e.chain().map(|c| short(&c.to_string())).collect();
            record.insert("loaded", json!(loaded));
            record.insert("ran", json!(false));
            record.insert("error", json!(chain.last().cloned().unwrap_or_default()));
            record.insert("errors", json!(chain));
            record.insert("matches_tensorflow", json!(false));
        }
        Ok(got) => {
            record.insert("loaded", json!(true));
            record.insert("ran", json!(true));
            let mut errors = Vec::new();
            let mut all = Comparison::default();
            for (k, want) in wants.iter().enumerate() {
                let Some(got) = got.get(k) else {
                    errors.push(format!("output {k} missing"));
                    continue;
                };
                match compare(got, want) {
                    Ok(comparison) => all.add(comparison),
                    Err(e) => errors.push(format!("output {k}: {e}")),
                }
            }
            if let Some(first) = errors.first() {
                record.insert("error", json!(first));
            } else {
                record.insert("max_abs_error", finite(all.max_abs));
                record.insert("max_rel_error", finite(all.max_rel()));
                record.insert("mismatched_elements", json!(all.mismatched));
                record.insert("worst_element_rel_error", finite(all.worst_rel));
            }
            record.insert(
                "matches_tensorflow",
                json!(errors.is_empty() && all.mismatched == 0),
            );
            record.insert("errors", json!(errors));
        }
    }
    println!("{}", json!(record));
    Ok(())
}

/// Memory one case may use (tract's analysis can grow without bound on a graph it
/// misreads: a negative ConcatV2 axis made it loop over 2^64 dimensions).
fn memory_limit_mib() -> u64 {
    std::env::var("GRAPHOPT_TRACT_MEMORY_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(8192)
}

const CASE_TIMEOUT: Duration = Duration::from_secs(600);

/// Runs `--case CASE` in a child process under a memory limit and a timeout, and returns its
/// record; a child that aborts or is stopped is recorded as not loaded, with why.
fn judge_in_child(case: &str) -> Result<Value> {
    let exe = std::env::current_exe()?;
    let limit = memory_limit_mib();
    let mut command = if cfg!(unix) {
        let mut c = Command::new("sh");
        c.arg("-c")
            .arg(format!(r#"ulimit -v {} && exec "$0" "$@""#, limit * 1024))
            .arg(&exe);
        c
    } else {
        Command::new(&exe)
    };
    let mut child = command
        .args(["--case", case])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    // Drain both pipes while waiting, so a chatty child cannot block on a full pipe.
    let drain = |pipe: Option<Box<dyn std::io::Read + Send>>| {
        std::thread::spawn(move || {
            let mut text = String::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_string(&mut text);
            }
            text
        })
    };
    let stdout = drain(child.stdout.take().map(|p| Box::new(p) as _));
    let stderr = drain(child.stderr.take().map(|p| Box::new(p) as _));
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break Some(status);
        }
        if start.elapsed() > CASE_TIMEOUT {
            child.kill()?;
            child.wait()?;
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let stdout = stdout
        .join()
        .map_err(|_| anyhow!("case {case}: reading its output failed"))?;
    let stderr = stderr
        .join()
        .map_err(|_| anyhow!("case {case}: reading its errors failed"))?;
    let mut lines = stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok());
    let first = lines.next();
    let last = lines.next_back();
    match (status, first, last) {
        (Some(status), _, Some(record)) if status.success() => Ok(record),
        (status, Some(mut record), _) => {
            let why = match status {
                None => format!("no answer within {} s", CASE_TIMEOUT.as_secs()),
                Some(status) if stderr.contains("memory allocation") => {
                    format!("tract ran out of memory (limit {limit} MiB) and aborted ({status})")
                }
                Some(status) => format!(
                    "the judging process failed ({status}): {}",
                    short(stderr.lines().last().unwrap_or_default())
                ),
            };
            let fields = record
                .as_object_mut()
                .ok_or_else(|| anyhow!("case {case}: malformed record"))?;
            fields.insert("loaded".into(), json!(false));
            fields.insert("ran".into(), json!(false));
            fields.insert("error".into(), json!(why));
            fields.insert("errors".into(), json!([why]));
            fields.insert("matches_tensorflow".into(), json!(false));
            Ok(record)
        }
        _ => bail!("case {case}: {}", stderr.trim()),
    }
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let cases = cases();
    if let [flag, case] = args.as_slice() {
        if flag == "--case" {
            let (_, pipeline) = cases
                .iter()
                .find(|(c, _)| c == case)
                .ok_or_else(|| anyhow!("no case {case}"))?;
            let name = case.split('@').next().unwrap_or(case);
            return judge(name, pipeline).with_context(|| format!("case {case}"));
        }
    }
    if let Some(unknown) = args.iter().find(|a| !cases.iter().any(|(c, _)| c == *a)) {
        bail!(
            "no case {unknown}; cases: {}",
            cases
                .iter()
                .map(|(c, _)| c.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    let mut results = serde_json::Map::new();
    for (case, _) in &cases {
        if !args.is_empty() && !args.contains(case) {
            continue;
        }
        let record = judge_in_child(case)?;
        println!("{case} {record}");
        results.insert(case.clone(), record);
    }
    if !args.is_empty() {
        return Ok(());
    }
    let report = json!({
        "tract_version": tract_version()?,
        "tolerance": RTOL,
        "rtol": RTOL,
        "atol": ATOL,
        "cases": results,
    });
    let path = fixtures().join("expected/tract.json");
    std::fs::write(&path, serde_json::to_string_pretty(&report)? + "\n")
        .with_context(|| path.display().to_string())?;
    println!("wrote {}", path.display());
    Ok(())
}
