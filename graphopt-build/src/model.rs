//! `Model`: what a build script declares, and `BuiltModel`: what building it produced.

use std::path::{Path, PathBuf};

use graphopt_core::budget::Settings;
use graphopt_core::transforms::{Registry, Transform};

/// A TensorFlow model to optimize at build time, declared with a builder and built with
/// [`Model::build`].
///
/// ```no_run
/// # fn main() -> Result<(), graphopt_build::Error> {
/// graphopt_build::Model::new("digits", "models/digits.pb")
///     .inputs(["image"])
///     .outputs(["probs"])
///     .transforms("strip_unused_nodes fold_constants fold_batch_norms")
///     .build()?;
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
#[must_use = "a Model does nothing until .build() is called"]
pub struct Model {
    pub(crate) name: String,
    pub(crate) path: PathBuf,
    pub(crate) inputs: Vec<String>,
    pub(crate) outputs: Vec<String>,
    pub(crate) transforms: String,
    pub(crate) signature: Option<String>,
    pub(crate) tag_set: Option<String>,
    pub(crate) lock_file: Option<PathBuf>,
    pub(crate) registry: Registry,
    /// Names of the application transforms registered with [`Model::transform`].
    pub(crate) custom: Vec<String>,
    /// Largest relative error the optimized graph may show against the original.
    pub(crate) verify: Option<f64>,
    /// The deployment target the artifact must load in.
    pub(crate) target: Option<String>,
    /// Budget overrides (the environment's, else defaults scaled to the model, otherwise).
    pub(crate) budget: Settings,
}

impl Model {
    /// A model whose module will be called `name` (a Rust identifier), read from `path`: a
    /// binary or text GraphDef, or a SavedModel directory. A relative path is relative to the
    /// package's `CARGO_MANIFEST_DIR`.
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
            verify: None,
            target: None,
            budget: Settings::default(),
        }
    }

    /// The input nodes (`name`, or `name:N` for another output of the node). For a
    /// SavedModel, the signature's input keys unless given here.
    pub fn inputs<I, S>(mut self, names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.inputs = names.into_iter().map(Into::into).collect();
        self
    }

    /// The output nodes, which every transform keeps. Required for a GraphDef; for a
    /// SavedModel, the signature's output keys unless given here.
    pub fn outputs<I, S>(mut self, names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.outputs = names.into_iter().map(Into::into).collect();
        self
    }

    /// The transforms to apply, in order, in the grammar of TensorFlow's `transform_graph`:
    /// `strip_unused_nodes remove_nodes(op=Identity, op=CheckNumerics) fold_constants`, where
    /// `@deploy` stands for graphopt's recommended inference pipeline (`graphopt transforms`
    /// summarizes its steps). None by default: the model is embedded as it is.
    pub fn transforms(mut self, transforms: impl Into<String>) -> Self {
        self.transforms = transforms.into();
        self
    }

    /// The SavedModel signature to freeze (`serving_default` by default).
    pub fn signature(mut self, key: impl Into<String>) -> Self {
        self.signature = Some(key.into());
        self
    }

    /// The SavedModel tag set, comma-separated (`serve` by default).
    pub fn tag_set(mut self, tags: impl Into<String>) -> Self {
        self.tag_set = Some(tags.into());
        self
    }

    /// Records the source's and the artifact's SHA-256 in this JSON file (relative to the
    /// package's manifest directory) and fails the build when a later artifact differs from
    /// the recorded one; `GRAPHOPT_UPDATE_LOCK=1` records the new one instead.
    pub fn lock_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.lock_file = Some(path.into());
        self
    }

    /// Fails the build when the optimized graph computes something else than the original:
    /// both run through graphopt's evaluator on the same seeded inputs (as `graphopt verify`
    /// does: values in [-1, 1), unknown dimensions 1), and any output whose largest error,
    /// relative to the output's largest magnitude, is over `tolerance` (say `1e-5`), or any
    /// integer output that differs at all, is an error naming the output. Runs only when the
    /// model is optimized, not on a cache hit (the tolerance is part of the cache key).
    pub fn verify(mut self, tolerance: f64) -> Self {
        self.verify = Some(tolerance);
        self
    }

    /// The consumer the artifact is for (`opencv`, `tract`, `tvm`, `tensorrt`, `ascend`, or
    /// `graphopt` for the `eval` feature; `graphopt targets` lists them with their versions):
    /// `legalize(target=NAME)` runs after the transforms, then the build fails when the result
    /// still has nodes the target cannot load, listing them, as `graphopt check
    /// --target=NAME` would.
    pub fn target(mut self, name: impl Into<String>) -> Self {
        self.target = Some(name.into());
        self
    }

    /// The memory the model's optimization may hold at once, in bytes (default:
    /// `$GRAPHOPT_MEMORY_BUDGET`, else the larger of 256 MiB and 8 times the model's size).
    /// Past it, the build fails with an error naming the node, rather than exhausting the
    /// machine on a hostile model.
    pub fn memory_budget(mut self, bytes: u64) -> Self {
        self.budget.memory = Some(bytes);
        self
    }

    /// The element operations the model's optimization may do (constant folding, evaluation
    /// for [`Model::verify`]); default `$GRAPHOPT_WORK_BUDGET`, else the larger of 2^27 and
    /// 256 per byte of the model.
    pub fn work_budget(mut self, operations: u64) -> Self {
        self.budget.work = Some(operations);
        self
    }

    /// Registers an application transform next to graphopt's built-in ones (replacing one of
    /// the same name), for use by name in [`Model::transforms`]. It implements
    /// [`crate::transform::Transform`] (see the [`transform`](crate::transform) module).
    ///
    /// The cache key holds the name and [`version`](Transform::version) of every application
    /// transform the model uses: change the version whenever the transform's output changes.
    /// A model that uses an application transform without a version is not cached; it is
    /// rebuilt whenever the build script runs.
    pub fn transform(mut self, transform: impl Transform + 'static) -> Self {
        let name = transform.name().to_string();
        self.registry.register(transform);
        if !self.custom.contains(&name) {
            self.custom.push(name);
        }
        self
    }
}

/// Whether [`Model::build`] found its artifact in the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CacheStatus {
    /// Taken from the cache; no transform ran.
    Hit,
    /// Built and stored in the cache.
    Miss,
    /// Built and not cached: the model uses an application transform without a version.
    Off,
}

/// What [`Model::build`] produced: where the artifacts are and what they hold.
#[derive(Debug, Clone)]
pub struct BuiltModel {
    pub(crate) name: String,
    pub(crate) graph_path: PathBuf,
    pub(crate) manifest_path: PathBuf,
    pub(crate) sha256: String,
    pub(crate) size_bytes: u64,
    pub(crate) node_count: usize,
    pub(crate) source_size_bytes: u64,
    pub(crate) source_node_count: usize,
    pub(crate) cache: CacheStatus,
}

impl BuiltModel {
    /// The module name given to [`Model::new`].
    pub fn name(&self) -> &str {
        &self.name
    }

    /// `$OUT_DIR/graphopt/NAME.pb`, the optimized GraphDef.
    pub fn graph_path(&self) -> &Path {
        &self.graph_path
    }

    /// `$OUT_DIR/graphopt/NAME.json`, the manifest `include_model!` reads.
    pub fn manifest_path(&self) -> &Path {
        &self.manifest_path
    }

    /// Hex SHA-256 of the optimized GraphDef.
    pub fn sha256(&self) -> &str {
        &self.sha256
    }

    /// Size of the optimized GraphDef in bytes.
    pub fn size_bytes(&self) -> u64 {
        self.size_bytes
    }

    /// Nodes of the optimized main graph.
    pub fn node_count(&self) -> usize {
        self.node_count
    }

    /// Size of the source: the file, or every file of a SavedModel directory.
    pub fn source_size_bytes(&self) -> u64 {
        self.source_size_bytes
    }

    /// Nodes of the main graph before the transforms (after freezing, for a SavedModel).
    pub fn source_node_count(&self) -> usize {
        self.source_node_count
    }

    /// Whether the artifact came from the cache.
    pub fn cache(&self) -> CacheStatus {
        self.cache
    }
}
