//! The artifact manifest `$OUT_DIR/graphopt/NAME.json` that `include_model!` reads.

use serde::{Deserialize, Serialize};

/// One input or output tensor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct TensorManifest {
    /// Node name, e.g. `image`.
    pub name: String,
    /// Tensor name, e.g. `image:0`.
    pub tensor: String,
    /// TensorFlow's type name, e.g. `float`.
    pub dtype: String,
    /// Dimensions, -1 where unknown; `None` when even the rank is unknown.
    pub shape: Option<Vec<i64>>,
}

/// Everything about a built model an app or a reviewer needs. Fields are in a fixed order
/// and maps are sorted, so the file is stable.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Manifest {
    /// Module name given to `Model::new`.
    pub name: String,
    /// SHA-256 of the optimized GraphDef bytes (the `.pb` next to this file).
    pub sha256: String,
    /// Size of those bytes.
    pub size_bytes: u64,
    /// SHA-256 over every input byte (the source model).
    pub source_sha256: String,
    /// Size of the source: the file, or every file of a SavedModel directory.
    pub source_size_bytes: u64,
    /// Nodes of the main graph before the transforms (after freezing, for a SavedModel).
    pub source_node_count: usize,
    /// The cache key.
    pub key: String,
    pub tool_version: String,
    /// Fingerprint of the code that built the artifact (graphopt's own sources).
    pub code_sha256: String,
    /// Digest of the crates graphopt is built from, as the app's Cargo.lock resolved them;
    /// empty when no lock file was found (the model is then not cached).
    #[serde(default)]
    pub dependencies_sha256: String,
    /// The transform list in canonical form.
    pub transforms: String,
    pub inputs: Vec<TensorManifest>,
    pub outputs: Vec<TensorManifest>,
    /// Nodes of the optimized main graph.
    pub node_count: usize,
    /// Op types of the optimized main graph and how often they occur, by name.
    pub ops: std::collections::BTreeMap<String, usize>,
    /// The library functions the main graph calls (While/If/Case bodies), sorted; the others
    /// are not shipped.
    pub functions: Vec<String>,
    /// Nodes in those functions' bodies.
    pub function_node_count: usize,
    /// Op types in those functions' bodies, apart from the main graph's.
    pub function_ops: std::collections::BTreeMap<String, usize>,
    /// The consumer given to `Model::target`, if any.
    #[serde(default)]
    pub target: Option<String>,
    /// Nodes of the optimized graph (main graph, then the functions it calls) that graphopt's
    /// own evaluator cannot run, as `node (op): why`. `include_model!` refuses such a model
    /// when the app has the `eval` feature, unless it was built for another target.
    #[serde(default)]
    pub evaluator_cannot_run: Vec<String>,
    /// `hit` when the artifact came from the cache, `miss` when it was built, `off (...)`
    /// when the model is not cached.
    pub cache: String,
}

#[cfg(test)]
impl Manifest {
    /// The manifest of the artifact `bytes` of model `name` under cache key `key`, with an
    /// empty interface, for tests.
    pub(crate) fn of_bytes(name: &str, key: &str, bytes: &[u8]) -> Manifest {
        Manifest {
            name: name.into(),
            sha256: crate::cache::sha256_hex(bytes),
            size_bytes: bytes.len() as u64,
            source_sha256: String::new(),
            source_size_bytes: 0,
            source_node_count: 0,
            key: key.into(),
            tool_version: String::new(),
            code_sha256: String::new(),
            dependencies_sha256: String::new(),
            transforms: String::new(),
            inputs: Vec::new(),
            outputs: Vec::new(),
            node_count: 0,
            ops: Default::default(),
            functions: Vec::new(),
            function_node_count: 0,
            function_ops: Default::default(),
            target: None,
            evaluator_cannot_run: Vec::new(),
            cache: "miss".into(),
        }
    }
}
