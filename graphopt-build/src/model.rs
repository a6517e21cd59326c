//! `Model`: what a build script declares, and `build()`: hash, cache, optimize, write.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use graphopt_core::analysis::shapes;
use graphopt_core::freeze::{self, SavedModelOptions};
use graphopt_core::graph::attrs;
use graphopt_core::proto::{GraphDef, NodeDef};
use graphopt_core::transforms::{self, Registry};
use graphopt_core::{graph, io};

use crate::cache::{self, KeyBuilder};
use crate::error::Error;
use crate::index;
use crate::manifest::{Manifest, TensorManifest};

/// The version that goes into every cache key: a new graphopt never reuses an old artifact.
const TOOL_VERSION: &str = concat!("graphopt-build ", env!("CARGO_PKG_VERSION"));

/// SHA-256 of graphopt-build's own sources, from its build script.
const BUILD_SOURCE_SHA256: &str = env!("GRAPHOPT_BUILD_SOURCE_SHA256");

/// A fingerprint of all the code that produces an artifact: graphopt-core's, graphopt-build's
/// and graphopt-types' sources, so graphopt from git or a path with changed code at an
/// unchanged version never reuses an old artifact.
fn code_fingerprint() -> String {
    let mut key = KeyBuilder::default();
    key.part("graphopt-core", graphopt_core::SOURCE_SHA256.as_bytes())
        .part("graphopt-build", BUILD_SOURCE_SHA256.as_bytes())
        .part("graphopt-types", graphopt_types::SOURCE.as_bytes());
    key.finish()
}

/// Where a model comes from: a GraphDef file, or a SavedModel directory to freeze.
enum Source {
    /// The file's bytes (also its cache-key content).
    Graph(Vec<u8>),
    /// The directory's digest (its cache-key content).
    SavedModel(Vec<u8>),
}

impl Source {
    fn key_content(&self) -> &[u8] {
        match self {
            Source::Graph(bytes) | Source::SavedModel(bytes) => bytes,
        }
    }
}

/// A model to optimize at build time.
#[derive(Debug, Clone)]
pub struct Model {
    name: String,
    path: PathBuf,
    inputs: Vec<String>,
    outputs: Vec<String>,
    transforms: String,
    signature: Option<String>,
    tag_set: Option<String>,
    lock_file: Option<PathBuf>,
    registry: Registry,
    /// Names of the application transforms registered with [`Model::transform`].
    custom: Vec<String>,
}

/// What `build()` produced.
#[derive(Debug, Clone)]
pub struct BuiltModel {
    /// `$OUT_DIR/graphopt/NAME.pb`.
    pub graph_path: PathBuf,
    /// `$OUT_DIR/graphopt/NAME.json`.
    pub manifest_path: PathBuf,
    pub manifest: Manifest,
}

impl Model {
    /// A model whose module will be called `name`, read from `path` (relative paths are
    /// relative to the package's `CARGO_MANIFEST_DIR`).
    pub fn new(name: impl Into<String>, path: impl Into<PathBuf>) -> Self {
        Model {
            name: name.into(),
            path: path.into(),
            inputs: Vec::new(),
            outputs: Vec::new(),
            transforms: String::new(),
            signature: None,
            tag_set: None,
            lock_file: None,
            registry: Registry::with_builtins(),
            custom: Vec::new(),
        }
    }

    /// Input node names (`name` or `name:0`).
    pub fn inputs<I, S>(mut self, names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.inputs = names.into_iter().map(Into::into).collect();
        self
    }

    /// Output node names.
    pub fn outputs<I, S>(mut self, names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.outputs = names.into_iter().map(Into::into).collect();
        self
    }

    /// The transform list, in `transform_graph`'s grammar.
    pub fn transforms(mut self, transforms: impl Into<String>) -> Self {
        self.transforms = transforms.into();
        self
    }

    /// SavedModel signature key (for SavedModel directories).
    pub fn signature(mut self, key: impl Into<String>) -> Self {
        self.signature = Some(key.into());
        self
    }

    /// SavedModel tag set, comma-separated (for SavedModel directories).
    pub fn tag_set(mut self, tags: impl Into<String>) -> Self {
        self.tag_set = Some(tags.into());
        self
    }

    /// Record source and artifact hashes in this JSON file (relative to the manifest dir) and
    /// fail the build when an artifact would differ from the one recorded.
    pub fn lock_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.lock_file = Some(path.into());
        self
    }

    /// Registers an application transform next to graphopt's built-in ones (replacing one of
    /// the same name), for use by name in [`Model::transforms`]. It implements
    /// `graphopt_core::transforms::Transform`: add `graphopt-core` at graphopt-build's version
    /// to `[build-dependencies]`.
    ///
    /// The cache key holds the name and [`version`](graphopt_core::transforms::Transform::version)
    /// of every application transform the model uses: change the version whenever the
    /// transform's output changes. A model that uses an application transform without a
    /// version is not cached; it is rebuilt whenever the build script runs.
    pub fn transform(
        mut self,
        transform: impl graphopt_core::transforms::Transform + 'static,
    ) -> Self {
        let name = transform.name().to_string();
        self.registry.register(transform);
        if !self.custom.contains(&name) {
            self.custom.push(name);
        }
        self
    }

    fn fail(&self, message: impl Into<String>) -> Error {
        Error::Model {
            model: self.name.clone(),
            message: message.into(),
        }
    }

    fn core(&self, source: graphopt_core::Error) -> Error {
        Error::Core {
            model: self.name.clone(),
            source: Box::new(source),
        }
    }

    /// Optimizes the model (or takes it from the cache) and writes the artifacts to OUT_DIR.
    pub fn build(self) -> Result<BuiltModel, Error> {
        let out_dir = env_path("OUT_DIR")?;
        let manifest_dir = env_path("CARGO_MANIFEST_DIR")?;
        if !is_identifier(&self.name) {
            return Err(Error::BadName {
                model: self.name.clone(),
                name: self.name.clone(),
            });
        }
        let dir = out_dir.join("graphopt");
        index::begin(&dir, &self.name).map_err(|e| match e {
            index::BeginError::Duplicate => Error::Duplicate {
                model: self.name.clone(),
            },
            index::BeginError::Io(source) => Error::Io {
                model: self.name.clone(),
                path: dir.clone(),
                source,
            },
        })?;
        let source = if self.path.is_absolute() {
            self.path.clone()
        } else {
            manifest_dir.join(&self.path)
        };
        println!("cargo::rerun-if-changed={}", source.display());
        println!("cargo::rerun-if-env-changed=GRAPHOPT_CACHE_DIR");
        println!("cargo::rerun-if-env-changed=GRAPHOPT_UPDATE_LOCK");
        // A SavedModel directory is keyed by every file in it, so a retrained checkpoint
        // invalidates the cache even when saved_model.pb is unchanged.
        let source_kind = if source.is_dir() {
            let digest = cache::directory_digest(&source).map_err(|(path, e)| Error::Io {
                model: self.name.clone(),
                path,
                source: e,
            })?;
            Source::SavedModel(digest)
        } else {
            let bytes = std::fs::read(&source).map_err(|e| Error::Io {
                model: self.name.clone(),
                path: self.path.clone(),
                source: e,
            })?;
            Source::Graph(bytes)
        };

        let specs = transforms::parse(&self.transforms).map_err(|e| self.core(e.into()))?;
        let registry = &self.registry;
        registry.check(&specs).map_err(|e| self.core(e))?;
        let canonical = transforms::spec::canonical(&specs);
        let source_sha256 = cache::sha256_hex(source_kind.key_content());

        // Application transforms the list uses: their names and versions are part of the key;
        // one without a version turns the cache off for this model.
        let mut unversioned = None;
        let mut custom_versions = Vec::new();
        for spec in &specs {
            if !self.custom.contains(&spec.name) {
                continue;
            }
            match registry.get(&spec.name).and_then(|t| t.version()) {
                Some(version) => custom_versions.push(format!("{}={version}", spec.name)),
                None => unversioned = Some(spec.name.clone()),
            }
        }
        let code = code_fingerprint();
        let mut key = KeyBuilder::default();
        key.part("tool", TOOL_VERSION.as_bytes())
            .part("code", code.as_bytes())
            .part(
                "application transforms",
                custom_versions.join(",").as_bytes(),
            )
            .part("name", self.name.as_bytes())
            .part("transforms", canonical.as_bytes())
            .part("inputs", self.inputs.join(",").as_bytes())
            .part("outputs", self.outputs.join(",").as_bytes())
            .part(
                "signature",
                self.signature.as_deref().unwrap_or("").as_bytes(),
            )
            .part("tag_set", self.tag_set.as_deref().unwrap_or("").as_bytes())
            .part("source", source_kind.key_content());
        let key = key.finish();

        let cache_dir = cache::cache_dir(&out_dir);
        let cached = match cache::lookup(&cache_dir, &key) {
            _ if unversioned.is_some() => None,
            Ok(entry) => entry,
            Err(warning) => {
                println!("cargo::warning=graphopt: model '{}': {warning}", self.name);
                None
            }
        };
        let (model_bytes, mut manifest) = match cached {
            Some((model_bytes, mut manifest)) => {
                manifest.cache = "hit".into();
                (model_bytes, manifest)
            }
            None => {
                let (model_bytes, mut manifest) = self.optimize(
                    &source,
                    source_kind,
                    &specs,
                    registry,
                    &canonical,
                    &source_sha256,
                    &key,
                )?;
                manifest.code_sha256 = code.clone();
                if let Some(transform) = &unversioned {
                    // Not cached: the transform cannot say when its output changes.
                    manifest.cache = format!("off (transform '{transform}' has no version)");
                } else if let Err(e) = cache::store(&cache_dir, &key, &model_bytes, &manifest) {
                    println!(
                        "cargo::warning=graphopt: model '{}': could not write the cache at {}: {e}",
                        self.name,
                        cache_dir.display()
                    );
                }
                (model_bytes, manifest)
            }
        };
        if manifest.name != self.name {
            manifest.name = self.name.clone();
        }
        if let Some(lock) = &self.lock_file {
            self.check_lock(&manifest_dir.join(lock), &manifest)?;
        }

        std::fs::create_dir_all(&dir).map_err(|e| Error::Io {
            model: self.name.clone(),
            path: dir.clone(),
            source: e,
        })?;
        let graph_path = dir.join(format!("{}.pb", self.name));
        let manifest_path = dir.join(format!("{}.json", self.name));
        let io_error = |path: &Path, e: std::io::Error| Error::Io {
            model: self.name.clone(),
            path: path.to_path_buf(),
            source: e,
        };
        cache::write_atomically(&graph_path, &model_bytes).map_err(|e| io_error(&graph_path, e))?;
        let json = serde_json::to_string_pretty(&manifest).map_err(|e| self.fail(e.to_string()))?;
        cache::write_atomically(&manifest_path, json.as_bytes())
            .map_err(|e| io_error(&manifest_path, e))?;
        index::record(&dir, &self.name).map_err(|e| io_error(&dir, e))?;
        Ok(BuiltModel {
            graph_path,
            manifest_path,
            manifest,
        })
    }

    #[allow(clippy::too_many_arguments)]
    fn optimize(
        &self,
        source: &Path,
        source_kind: Source,
        specs: &[transforms::TransformSpec],
        registry: &Registry,
        canonical: &str,
        source_sha256: &str,
        key: &str,
    ) -> Result<(Vec<u8>, Manifest), Error> {
        let display = self.path.clone();
        let (mut graph, inputs, outputs, declared_shapes) = match source_kind {
            Source::Graph(bytes) => {
                let (graph, _) =
                    io::decode_graph(bytes.into(), &display).map_err(|e| self.core(e))?;
                (
                    graph,
                    self.inputs.clone(),
                    self.outputs.clone(),
                    BTreeMap::new(),
                )
            }
            Source::SavedModel(_) => {
                let defaults = SavedModelOptions::default();
                let options = SavedModelOptions {
                    tag_set: self.tag_set.clone().unwrap_or(defaults.tag_set),
                    signature: self.signature.clone().unwrap_or(defaults.signature),
                };
                let frozen = freeze::freeze_saved_model(source, &options).map_err(|e| {
                    self.fail(format!("freezing SavedModel {}: {e}", display.display()))
                })?;
                // Declared names win; otherwise the signature's own keys are the interface.
                let pick = |declared: &Vec<String>, signature: Vec<String>| {
                    if declared.is_empty() {
                        signature
                    } else {
                        declared.clone()
                    }
                };
                let inputs = pick(&self.inputs, frozen.inputs);
                let outputs = pick(&self.outputs, frozen.outputs);
                (frozen.graph, inputs, outputs, frozen.shapes)
            }
        };
        graph::validate(&graph)
            .map_err(|e| self.core(graphopt_core::Error::invalid_graph(&display, e)))?;
        let index = graph::GraphIndex::new(&graph);
        for (flag, names) in [("inputs", &inputs), ("outputs", &outputs)] {
            if let Some(missing) = names
                .iter()
                .find(|n| index.node(graph::node_name(n)).is_none())
            {
                return Err(self.fail(format!(
                    "{flag} names '{missing}', which is not a node of {}",
                    source.display()
                )));
            }
        }
        if outputs.is_empty() {
            return Err(self.fail("declare the model's outputs with .outputs([...])"));
        }
        let outcomes = transforms::run(registry, &mut graph, specs, &inputs, &outputs)
            .map_err(|e| self.core(e))?;
        for outcome in &outcomes {
            for warning in &outcome.warnings {
                println!(
                    "cargo::warning=graphopt: model '{}': {}: {warning}",
                    self.name, outcome.transform
                );
            }
            if let Some(error) = &outcome.ignored_error {
                println!(
                    "cargo::warning=graphopt: model '{}': {} skipped: {error}",
                    self.name, outcome.transform
                );
            }
        }
        // Functions nothing calls any more (a SavedModel's save and restore functions, calls
        // that were inlined) are not shipped.
        graph::functions::prune_library(&mut graph);
        let functions: &[graphopt_core::proto::FunctionDef] =
            graph.library.as_ref().map_or(&[], |l| &l.function);
        let function_nodes: Vec<&NodeDef> = functions.iter().flat_map(|f| &f.node_def).collect();
        let model_bytes = io::encode_graph(&graph);
        let manifest = Manifest {
            name: self.name.clone(),
            sha256: cache::sha256_hex(&model_bytes),
            size_bytes: model_bytes.len() as u64,
            source_sha256: source_sha256.to_string(),
            key: key.to_string(),
            tool_version: TOOL_VERSION.into(),
            code_sha256: String::new(),
            transforms: canonical.to_string(),
            inputs: inputs
                .iter()
                .map(|n| tensor_manifest(&graph, n, &declared_shapes))
                .collect::<Result<_, _>>()
                .map_err(|m| self.fail(m))?,
            outputs: outputs
                .iter()
                .map(|n| tensor_manifest(&graph, n, &declared_shapes))
                .collect::<Result<_, _>>()
                .map_err(|m| self.fail(m))?,
            node_count: graph.node.len(),
            ops: op_counts(graph.node.iter()),
            functions: functions
                .iter()
                .filter_map(|f| f.signature.as_ref().map(|s| s.name.clone()))
                .collect::<std::collections::BTreeSet<_>>()
                .into_iter()
                .collect(),
            function_node_count: function_nodes.len(),
            function_ops: op_counts(function_nodes.into_iter()),
            cache: "miss".into(),
        };
        Ok((model_bytes, manifest))
    }

    fn check_lock(&self, lock: &Path, manifest: &Manifest) -> Result<(), Error> {
        println!("cargo::rerun-if-changed={}", lock.display());
        let mut entries: BTreeMap<String, BTreeMap<String, String>> =
            match std::fs::read_to_string(lock) {
                Ok(text) => serde_json::from_str::<serde_json::Value>(&text)
                    .ok()
                    .and_then(|v| serde_json::from_value(v.get("models")?.clone()).ok())
                    .ok_or_else(|| {
                        self.fail(format!("{} is not a graphopt lock file", lock.display()))
                    })?,
                Err(_) => BTreeMap::new(),
            };
        let update = std::env::var_os("GRAPHOPT_UPDATE_LOCK").is_some_and(|v| v == "1");
        if let Some(recorded) = entries.get(&self.name) {
            if recorded.get("sha256") == Some(&manifest.sha256)
                && recorded.get("source_sha256") == Some(&manifest.source_sha256)
            {
                return Ok(());
            }
            if !update {
                return Err(Error::LockMismatch {
                    model: self.name.clone(),
                    lock: lock.to_path_buf(),
                    expected: recorded.get("sha256").cloned().unwrap_or_default(),
                    actual: manifest.sha256.clone(),
                });
            }
        }
        let entry = BTreeMap::from([
            ("sha256".to_string(), manifest.sha256.clone()),
            ("source_sha256".to_string(), manifest.source_sha256.clone()),
        ]);
        entries.insert(self.name.clone(), entry);
        let json = serde_json::to_string_pretty(&serde_json::json!({ "models": entries }))
            .map_err(|e| self.fail(e.to_string()))?;
        cache::write_atomically(lock, format!("{json}\n").as_bytes()).map_err(|e| Error::Io {
            model: self.name.clone(),
            path: lock.to_path_buf(),
            source: e,
        })
    }
}

fn env_path(name: &'static str) -> Result<PathBuf, Error> {
    std::env::var_os(name)
        .map(PathBuf::from)
        .ok_or(Error::NotInBuildScript(name))
}

fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn output_dtype(node: &NodeDef) -> Option<graphopt_core::proto::DataType> {
    ["dtype", "T", "DstT", "out_type", "Tout"]
        .iter()
        .find_map(|a| attrs::dtype(node, a))
}

/// Static shape of `tensor` with unknown dimensions as -1: the graph is probed with two batch
/// sizes, and dimensions that follow the batch are unknown.
fn static_shape(graph: &GraphDef, tensor: &str) -> Option<Vec<i64>> {
    let parsed = graph::InputRef::parse(tensor);
    let probe = |batch: i64| -> Option<Vec<usize>> {
        let mut g = graph.clone();
        for node in g.node.iter_mut().filter(|n| n.op == "Placeholder") {
            if let Some(graphopt_core::proto::attr_value::Value::Shape(s)) =
                node.attr.get_mut("shape").and_then(|a| a.value.as_mut())
            {
                for d in &mut s.dim {
                    if d.size < 0 {
                        d.size = batch;
                    }
                }
            }
        }
        shapes::infer_graph(&g)
            .get(parsed.node)?
            .get(parsed.port as usize)?
            .clone()
    };
    let (a, b) = (probe(1)?, probe(2)?);
    if a.len() != b.len() {
        return None;
    }
    Some(
        a.iter()
            .zip(&b)
            .map(|(&x, &y)| if x == y { x as i64 } else { -1 })
            .collect(),
    )
}

/// The manifest entry of an input or output. Its shape is what the SavedModel signature
/// declares (`declared`, by node name), refined by shape inference where the signature leaves
/// a dimension unknown; `None` when neither knows the rank.
fn tensor_manifest(
    graph: &GraphDef,
    name: &str,
    declared: &BTreeMap<String, Option<Vec<i64>>>,
) -> Result<TensorManifest, String> {
    let parsed = graph::InputRef::parse(name);
    let node = graph
        .node
        .iter()
        .find(|n| n.name == parsed.node)
        .ok_or_else(|| {
            format!("'{name}' is not in the optimized graph (did a transform remove or rename it?)")
        })?;
    let dtype = output_dtype(node)
        .map(|d| graphopt_core::dtype::dtype_name(d as i32))
        .unwrap_or_else(|| "unknown".into());
    let inferred = if node.op == "Placeholder" {
        attrs::shape(node, "shape").and_then(graphopt_core::dtype::shape_dims)
    } else {
        static_shape(graph, name)
    };
    let declared = if parsed.port == 0 {
        declared.get(parsed.node).cloned().flatten()
    } else {
        None
    };
    Ok(TensorManifest {
        name: parsed.node.to_string(),
        tensor: format!("{}:{}", parsed.node, parsed.port),
        dtype,
        shape: merge_shapes(declared, inferred),
    })
}

/// How often each op occurs among `nodes`.
fn op_counts<'a>(nodes: impl Iterator<Item = &'a NodeDef>) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for node in nodes {
        *counts.entry(node.op.clone()).or_insert(0) += 1;
    }
    counts
}

/// A declared shape with its unknown dimensions filled from an inferred one of the same rank.
fn merge_shapes(declared: Option<Vec<i64>>, inferred: Option<Vec<i64>>) -> Option<Vec<i64>> {
    match (declared, inferred) {
        (Some(declared), Some(inferred)) if declared.len() == inferred.len() => Some(
            declared
                .iter()
                .zip(&inferred)
                .map(|(&d, &i)| if d >= 0 { d } else { i })
                .collect(),
        ),
        (Some(declared), _) => Some(declared),
        (None, inferred) => inferred,
    }
}

/// Builds every model declared under `[package.metadata.graphopt.models.NAME]` in the
/// package's Cargo.toml.
pub fn build_from_manifest() -> Result<Vec<BuiltModel>, Error> {
    let manifest_dir = env_path("CARGO_MANIFEST_DIR")?;
    let toml = manifest_dir.join("Cargo.toml");
    println!("cargo::rerun-if-changed={}", toml.display());
    let metadata_error = |message: String| Error::Metadata {
        path: toml.clone(),
        message,
    };
    let metadata = cargo_metadata::MetadataCommand::new()
        .manifest_path(&toml)
        .no_deps()
        .exec()
        .map_err(|e| metadata_error(e.to_string()))?;
    let package = metadata
        .packages
        .iter()
        .find(|p| p.manifest_path.as_std_path() == toml)
        .ok_or_else(|| metadata_error("package not found by cargo metadata".into()))?;
    let models = package
        .metadata
        .get("graphopt")
        .and_then(|g| g.get("models"))
        .and_then(|m| m.as_object());
    let Some(models) = models else {
        return Err(metadata_error(
            "no [package.metadata.graphopt.models.NAME] tables".into(),
        ));
    };
    let strings = |v: &serde_json::Value, key: &str, name: &str| -> Result<Vec<String>, Error> {
        match v.get(key) {
            None => Ok(Vec::new()),
            Some(serde_json::Value::Array(items)) => items
                .iter()
                .map(|i| {
                    i.as_str().map(str::to_string).ok_or_else(|| {
                        metadata_error(format!("models.{name}.{key} must be a list of strings"))
                    })
                })
                .collect(),
            Some(_) => Err(metadata_error(format!(
                "models.{name}.{key} must be a list of strings"
            ))),
        }
    };
    let mut built = Vec::new();
    for (name, table) in models {
        let path = table
            .get("path")
            .and_then(|p| p.as_str())
            .ok_or_else(|| metadata_error(format!("models.{name}.path is required")))?;
        let mut model = Model::new(name.clone(), path)
            .inputs(strings(table, "inputs", name)?)
            .outputs(strings(table, "outputs", name)?)
            .transforms(
                table
                    .get("transforms")
                    .and_then(|t| t.as_str())
                    .unwrap_or_default(),
            );
        if let Some(s) = table.get("signature").and_then(|s| s.as_str()) {
            model = model.signature(s);
        }
        if let Some(t) = table.get("tag_set").and_then(|t| t.as_str()) {
            model = model.tag_set(t);
        }
        built.push(model.build()?);
    }
    Ok(built)
}
