//! `Model::build`: read, key, look up the cache, optimize, write the artifacts, report.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Instant;

use graphopt_core::budget::{self, Settings};
use graphopt_core::freeze::{self, SavedModelOptions};
use graphopt_core::proto::{FunctionDef, GraphDef, NodeDef};
use graphopt_core::targets::{self, Target};
use graphopt_core::transforms::{self, TransformSpec};
use graphopt_core::verify::{self, VerifyOptions};
use graphopt_core::{graph, io};

use crate::cache::{self, KeyBuilder};
use crate::dependencies;
use crate::error::Error;
use crate::fingerprint::Memo;
use crate::index;
use crate::interface::{op_counts, tensor_manifest};
use crate::manifest::Manifest;
use crate::model::{BuiltModel, CacheStatus, Model};

/// Prints a `cargo::warning` ([`warning_line`]).
macro_rules! cargo_warning {
    ($($message:tt)*) => {
        println!("{}", warning_line(&format!($($message)*)))
    };
}

/// The `cargo::warning` directive for `message`, made one line first: a node name, or an
/// error quoting one, can then neither end the line nor start a directive of its own.
fn warning_line(message: &str) -> String {
    format!("cargo::warning={}", graphopt_core::error::one_line(message))
}

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
    /// The file's SHA-256 (its cache-key content), and its bytes when they were read to hash
    /// it (an unchanged file is not read until a cache miss needs it).
    Graph {
        sha256: String,
        bytes: Option<Vec<u8>>,
    },
    /// The directory's digest (its cache-key content).
    SavedModel(Vec<u8>),
}

impl Source {
    fn key_content(&self) -> &[u8] {
        match self {
            Source::Graph { sha256, .. } => sha256.as_bytes(),
            Source::SavedModel(listing) => listing,
        }
    }

    /// SHA-256 over the source's bytes: the file's, or that of the directory's listing.
    fn sha256(&self) -> String {
        match self {
            Source::Graph { sha256, .. } => sha256.clone(),
            Source::SavedModel(listing) => cache::sha256_hex(listing),
        }
    }
}

fn env_path(name: &'static str) -> Result<PathBuf, Error> {
    std::env::var_os(name)
        .map(PathBuf::from)
        .ok_or(Error::NotInBuildScript(name))
}

/// Whether `name` can name the module `include_model!(name)` declares: an ASCII identifier
/// that is not `_` and not a keyword of any edition (`include_model!(type)` does not parse).
fn is_identifier(name: &str) -> bool {
    const KEYWORDS: &[&str] = &[
        "as", "async", "await", "break", "const", "continue", "crate", "dyn", "else", "enum",
        "extern", "false", "fn", "for", "gen", "if", "impl", "in", "let", "loop", "match", "mod",
        "move", "mut", "pub", "ref", "return", "self", "Self", "static", "struct", "super",
        "trait", "true", "try", "type", "unsafe", "use", "where", "while", "abstract", "become",
        "box", "do", "final", "macro", "override", "priv", "typeof", "unsized", "virtual", "yield",
    ];
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && name != "_"
        && !KEYWORDS.contains(&name)
}

/// The directories holding the symlinks on the way to the model at `path` (relative to
/// `base` unless absolute), for cargo to watch as well. cargo follows links when it checks
/// whether a path changed, and takes only its modification time: a link retargeted to an
/// older file (`current.pb -> v1.pb` after `v2.pb`, a rollback) changes neither, so the
/// build script did not run and the old artifact stayed. Retargeting a link changes the
/// directory holding it. A directory holding `out_dir` is left out: it changes in every build,
/// so cargo would run the build script every time; so is one outside the workspace `within`
/// (a home directory), which cargo would scan whole on every build.
fn link_directories(base: &Path, path: &Path, out_dir: &Path, within: &Path) -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    let mut prefix = if path.is_absolute() {
        PathBuf::new()
    } else {
        base.to_path_buf()
    };
    for component in path.components() {
        prefix.push(component);
        let is_link = std::fs::symlink_metadata(&prefix).is_ok_and(|m| m.file_type().is_symlink());
        let Some(parent) = prefix.parent().filter(|_| is_link) else {
            continue;
        };
        let watchable = parent.starts_with(within) && !out_dir.starts_with(parent);
        if watchable && !dirs.iter().any(|d| d == parent) {
            dirs.push(parent.to_path_buf());
        }
    }
    dirs
}

/// What a model's cache key holds besides the model's own declarations.
struct KeyInputs<'a> {
    /// The memory and work limits in force.
    budget: &'a str,
    code: &'a str,
    dependencies: &'a str,
    custom_versions: &'a [String],
    canonical: &'a str,
    source: &'a Source,
}

impl Model {
    fn fail(&self, message: impl Into<String>) -> Error {
        Error::Model {
            model: self.name.clone(),
            message: message.into(),
        }
    }

    fn core(&self, source: graphopt_core::Error) -> Error {
        Error::Core {
            model: self.name.clone(),
            source: crate::error::CoreError(Box::new(source)),
        }
    }

    fn io(&self, path: &Path, source: std::io::Error) -> Error {
        Error::Io {
            model: self.name.clone(),
            path: path.to_path_buf(),
            source,
        }
    }

    /// The tag set and signature a SavedModel is frozen with: the declared ones, else the
    /// defaults.
    fn saved_model_options(&self) -> SavedModelOptions {
        let defaults = SavedModelOptions::default();
        SavedModelOptions {
            tag_set: self.tag_set.clone().unwrap_or(defaults.tag_set),
            signature: self.signature.clone().unwrap_or(defaults.signature),
        }
    }

    /// The cache key: everything that decides the artifact's bytes and manifest.
    fn cache_key(&self, inputs: &KeyInputs<'_>) -> String {
        let options = match inputs.source {
            Source::SavedModel(_) => self.saved_model_options(),
            Source::Graph { .. } => SavedModelOptions {
                tag_set: String::new(),
                signature: String::new(),
            },
        };
        let mut key = KeyBuilder::default();
        key.part("tool", TOOL_VERSION.as_bytes())
            .part("budget", inputs.budget.as_bytes())
            .part("code", inputs.code.as_bytes())
            .part("dependencies", inputs.dependencies.as_bytes())
            .list("application transforms", inputs.custom_versions)
            .part("name", self.name.as_bytes())
            .part("transforms", inputs.canonical.as_bytes())
            .list("inputs", &self.inputs)
            .list("outputs", &self.outputs)
            // The options the freezer uses, however spelled; a GraphDef reads none.
            .part("signature", options.signature.as_bytes())
            .part("tag_set", options.tag_set.as_bytes())
            .part(
                "verify",
                self.verify
                    .map(|t| format!("{t:e}"))
                    .unwrap_or_default()
                    .as_bytes(),
            )
            .part("target", self.target.as_deref().unwrap_or("").as_bytes())
            .part("source", inputs.source.key_content());
        key.finish()
    }

    /// Optimizes the model, or takes it from the cache, and writes `$OUT_DIR/graphopt/NAME.pb`
    /// and `NAME.json` for `include_model!`. Prints one line about it (shown by `cargo build
    /// -vv`) and tells cargo to re-run the build script when the model or a variable it read
    /// changes. Errors are one line naming the model.
    pub fn build(self) -> Result<BuiltModel, Error> {
        let started = Instant::now();
        let out_dir = env_path("OUT_DIR")?;
        let manifest_dir = env_path("CARGO_MANIFEST_DIR")?;
        if !is_identifier(&self.name) {
            return Err(Error::BadName {
                model: self.name.clone(),
            });
        }
        // Declarations are checked before any work.
        if let Some(tolerance) = self.verify {
            if !(tolerance.is_finite() && tolerance >= 0.0) {
                return Err(self.fail(format!(
                    ".verify({tolerance}): the tolerance is a finite relative error of at least 0, such as 1e-5"
                )));
            }
        }
        if let Some(target) = &self.target {
            Target::by_name(target)
                .map_err(|e| self.fail(format!(".target(\"{target}\"): {e}")))?;
        }
        let dir = out_dir.join("graphopt");
        index::begin(&dir, &self.name).map_err(|e| match e {
            index::BeginError::Duplicate => Error::Duplicate {
                model: self.name.clone(),
            },
            index::BeginError::SameFiles(other) => Error::SameFiles {
                model: self.name.clone(),
                other,
            },
            index::BeginError::Io(source) => self.io(&dir, source),
        })?;
        let source = if self.path.is_absolute() {
            self.path.clone()
        } else {
            manifest_dir.join(&self.path)
        };
        println!("cargo::rerun-if-changed={}", source.display());
        let workspace = crate::dependencies::workspace_root(&manifest_dir);
        for dir in link_directories(&manifest_dir, &self.path, &out_dir, &workspace) {
            println!("cargo::rerun-if-changed={}", dir.display());
        }
        for var in [
            budget::MEMORY_ENV,
            budget::WORK_ENV,
            "GRAPHOPT_CACHE_DIR",
            "GRAPHOPT_UPDATE_LOCK",
            cache::MAX_SIZE_VAR,
            cache::MAX_AGE_VAR,
        ] {
            println!("cargo::rerun-if-env-changed={var}");
        }
        let limits = cache::Limits::from_env().map_err(Error::CacheLimits)?;
        if source.file_name().is_some_and(|n| n == "saved_model.pb") && source.is_file() {
            return Err(Error::SavedModelFile {
                model: self.name.clone(),
                path: self.path.clone(),
                // A bare `saved_model.pb` is in the package's own directory.
                dir: self
                    .path
                    .parent()
                    .filter(|p| !p.as_os_str().is_empty())
                    .map_or_else(|| PathBuf::from("."), Path::to_path_buf),
            });
        }
        // Unchanged files are not read again: their hashes come from the fingerprint memo.
        let mut memo = Memo::load(out_dir.join("graphopt-fingerprints.json"));
        // A SavedModel directory is keyed by every file in it, so a retrained checkpoint
        // invalidates the cache even when saved_model.pb is unchanged.
        let (source_kind, source_size) = if source.is_dir() {
            self.check_saved_model_dir(&source)?;
            let (digest, size) = cache::directory_digest(&source, &mut memo)
                .map_err(|(path, e)| self.io(&path, e))?;
            (Source::SavedModel(digest), size)
        } else {
            let hashed = memo
                .hash_file(&source, true)
                .map_err(|e| self.source_error(&source, e))?;
            let source = Source::Graph {
                sha256: hashed.sha256,
                bytes: hashed.bytes,
            };
            (source, hashed.size)
        };

        let mut specs = transforms::parse(&self.transforms).map_err(|e| Error::Transforms {
            model: self.name.clone(),
            transforms: self.transforms.clone(),
            message: e.to_string(),
        })?;
        if let Some(target) = &self.target {
            specs.push(TransformSpec {
                name: "legalize".into(),
                params: [("target".to_string(), vec![target.clone()])].into(),
                column: 0,
            });
        }
        self.registry.check(&specs).map_err(|e| self.core(e))?;
        let canonical = transforms::spec::canonical(&specs);
        let source_sha256 = source_kind.sha256();

        // Application transforms the list uses: their names and versions are part of the key;
        // one without a version turns the cache off for this model.
        let mut unversioned = None;
        let mut custom_versions = Vec::new();
        for spec in &specs {
            if !self.custom.contains(&spec.name) {
                continue;
            }
            match self.registry.get(&spec.name).and_then(|t| t.version()) {
                Some(version) => {
                    custom_versions.push(spec.name.clone());
                    custom_versions.push(version.to_string());
                }
                None => unversioned = Some(spec.name.clone()),
            }
        }
        let code = code_fingerprint();
        // Without the lock file the dependencies are unknown: no cache, rather than a stale one.
        let (dependencies, no_lock) = match dependencies::digest(&manifest_dir, &out_dir, &mut memo)
        {
            Ok(digest) => (digest, None),
            Err(e) => {
                cargo_warning!(
                    "graphopt: model '{}': not cached, as the versions of graphopt's dependencies are unknown: {e}",
                    self.name
                );
                (String::new(), Some(e))
            }
        };
        // Why the model is not cached, if it is not.
        let cache_off = match (&unversioned, &no_lock) {
            (Some(transform), _) => Some(format!("transform '{transform}' has no version")),
            (None, Some(e)) => Some(format!("dependency versions unknown: {e}")),
            (None, None) => None,
        };
        // One budget for the whole optimization: Model's settings, else the environment's,
        // else defaults scaled to what the readers open (not to everything the directory
        // holds). The limits in force are part of the key: a step that `ignore_errors=true`
        // skipped for want of memory must not be handed to a build with more. The defaults
        // follow from the blocks the source occupies, which identical bytes need not share (a
        // sparse copy), so the key holds the limits themselves.
        let budget = Settings::from_env()
            .map_err(|e| self.fail(e.to_string()))?
            .overridden_by(self.budget)
            .budget_for(graphopt_core::io::input_size(&source));
        let limits_in_force = format!("{} {}", budget.memory_limit(), budget.work_limit());
        let key = self.cache_key(&KeyInputs {
            budget: &limits_in_force,
            code: &code,
            dependencies: &dependencies,
            custom_versions: &custom_versions,
            canonical: &canonical,
            source: &source_kind,
        });

        let cache_dir = cache::cache_dir(&out_dir, &workspace);
        let cached = if cache_off.is_some() {
            None
        } else {
            cache::lookup(&cache_dir, &key, &mut memo).unwrap_or_else(|warning| {
                cargo_warning!("graphopt: model '{}': {warning}", self.name);
                None
            })
        };
        std::fs::create_dir_all(&dir).map_err(|e| self.io(&dir, e))?;
        let graph_path = dir.join(format!("{}.pb", self.name));
        let manifest_path = dir.join(format!("{}.json", self.name));
        let place_error = |e| self.io(&graph_path, e);
        let hit = match cached {
            Some((entry_model, manifest)) => {
                match index::place_linked(&dir, &format!("{}.pb", self.name), &entry_model) {
                    Ok(()) => Some(manifest),
                    // Pruned by a concurrent build between the lookup and the link: a miss.
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
                    Err(e) => return Err(place_error(e)),
                }
            }
            None => None,
        };
        let (manifest, status) = match hit {
            Some(mut manifest) => {
                manifest.cache = "hit".into();
                (manifest, CacheStatus::Hit)
            }
            None => {
                let listing = match &source_kind {
                    Source::SavedModel(listing) => Some(listing.clone()),
                    Source::Graph { .. } => None,
                };
                let (model_bytes, mut manifest) =
                    budget.enter(|| self.optimize(&source, source_kind, &specs, &canonical))?;
                // Freezing read the directory again after it was keyed: an export that was
                // still being written must not be cached under the key of what it was before.
                if let Some(listing) = listing {
                    let (now, _) = cache::directory_digest(&source, &mut memo)
                        .map_err(|(path, e)| self.io(&path, e))?;
                    if now != listing {
                        return Err(self.changed_while_built());
                    }
                }
                manifest.source_sha256 = source_sha256;
                manifest.source_size_bytes = source_size;
                manifest.key = key.clone();
                manifest.code_sha256 = code;
                manifest.dependencies_sha256 = dependencies;
                let stored = if let Some(reason) = &cache_off {
                    // Not cached: a transform that cannot say when its output changes, or
                    // dependencies that cannot be told apart.
                    manifest.cache = format!("off ({reason})");
                    None
                } else {
                    match cache::store(&cache_dir, &key, &model_bytes, &manifest) {
                        Ok(entry_model) => {
                            memo.written(&entry_model, &manifest.sha256);
                            Some(entry_model)
                        }
                        Err(e) => {
                            cargo_warning!(
                                "graphopt: model '{}': could not write the cache at {}: {e}",
                                self.name,
                                cache_dir.display()
                            );
                            None
                        }
                    }
                };
                let file_name = format!("{}.pb", self.name);
                // The bytes are at hand: an entry pruned by a concurrent build before it could
                // be linked (or a link that fails otherwise) is written from them instead.
                stored
                    .and_then(|entry_model| {
                        index::place_linked(&dir, &file_name, &entry_model).ok()
                    })
                    .map_or_else(|| index::place_bytes(&dir, &file_name, &model_bytes), Ok)
                    .map_err(place_error)?;
                let status = if cache_off.is_some() {
                    CacheStatus::Off
                } else {
                    CacheStatus::Miss
                };
                (manifest, status)
            }
        };
        memo.save();
        cache::prune(&cache_dir, limits);
        if let Some(lock) = &self.lock_file {
            self.check_lock(&manifest_dir.join(lock), &manifest)?;
        }
        let json = serde_json::to_string_pretty(&manifest).map_err(|e| self.fail(e.to_string()))?;
        index::place_bytes(&dir, &format!("{}.json", self.name), json.as_bytes())
            .map_err(|e| self.io(&manifest_path, e))?;
        index::record(&dir, &self.name).map_err(|e| self.io(&dir, e))?;

        // One line per model; cargo shows a build script's output with -vv.
        let what = match status {
            CacheStatus::Hit => "taken from the cache".to_string(),
            CacheStatus::Miss => "optimized (cache miss)".to_string(),
            CacheStatus::Off => format!("optimized (not cached: {})", manifest.cache),
        };
        println!(
            "graphopt: model '{}': {what} in {:.2} s: {} nodes, {} -> {} nodes, {}; {}",
            self.name,
            started.elapsed().as_secs_f64(),
            manifest.source_node_count,
            budget::size(manifest.source_size_bytes),
            manifest.node_count,
            budget::size(manifest.size_bytes),
            graph_path.display()
        );
        Ok(BuiltModel {
            name: self.name.clone(),
            graph_path,
            manifest_path,
            sha256: manifest.sha256,
            size_bytes: manifest.size_bytes,
            node_count: manifest.node_count,
            source_size_bytes: manifest.source_size_bytes,
            source_node_count: manifest.source_node_count,
            cache: status,
        })
    }

    /// Reads (freezing a SavedModel), checks the interface, runs the transforms and describes
    /// the result. The caller fills in the manifest's source and key fields.
    fn optimize(
        &self,
        source: &Path,
        source_kind: Source,
        specs: &[TransformSpec],
        canonical: &str,
    ) -> Result<(Vec<u8>, Manifest), Error> {
        let display = self.path.clone();
        let (mut graph, inputs, outputs, declared_shapes) = match source_kind {
            Source::Graph { sha256, bytes } => {
                let bytes = match bytes {
                    Some(bytes) => bytes,
                    None => {
                        // Known to the memo, read now that the cache missed.
                        let bytes = io::read_regular(source).map_err(|e| self.io(&display, e))?;
                        if cache::sha256_hex(&bytes) != sha256 {
                            return Err(self.changed_while_built());
                        }
                        bytes
                    }
                };
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
                let options = self.saved_model_options();
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
        self.check_interface(&graph, &inputs, &outputs)?;
        let source_node_count = graph.node.len();
        let original = self.verify.map(|_| graph.clone());
        let outcomes = transforms::run(&self.registry, &mut graph, specs, &inputs, &outputs)
            .map_err(|e| self.core(e))?;
        let renames: Vec<(String, String)> = outcomes
            .iter()
            .flat_map(|o| o.renames.iter().cloned())
            .collect();
        for outcome in &outcomes {
            for warning in &outcome.warnings {
                cargo_warning!(
                    "graphopt: model '{}': {}: {warning}",
                    self.name,
                    outcome.transform
                );
            }
            if let Some(error) = &outcome.ignored_error {
                cargo_warning!(
                    "graphopt: model '{}': {} skipped: {error}",
                    self.name,
                    outcome.transform
                );
            }
        }
        // Functions nothing calls any more (a SavedModel's save and restore functions, calls
        // that were inlined) are not shipped.
        graph::functions::prune_library(&mut graph);
        if let (Some(tolerance), Some(original)) = (self.verify, &original) {
            self.check_outputs(original, &graph, &renames, &inputs, &outputs, tolerance)?;
        }
        // The artifact's interface: declared names that rename_node renamed follow their nodes.
        let follow = |names: &[String]| -> Vec<String> {
            names
                .iter()
                .map(|n| transforms::renamed_tensor(n, &renames))
                .collect()
        };
        let (inputs, outputs) = (follow(&inputs), follow(&outputs));
        let declared_shapes: BTreeMap<String, Option<Vec<i64>>> = declared_shapes
            .into_iter()
            .map(|(name, shape)| (transforms::renamed_tensor(&name, &renames), shape))
            .collect();
        if let Some(target) = &self.target {
            self.check_target(&graph, target)?;
        }
        let evaluator = Target::by_name("graphopt").map_err(|e| self.fail(e.to_string()))?;
        let evaluator_cannot_run = targets::check(&graph, evaluator)
            .into_iter()
            .filter(|p| p.blocking)
            .map(|p| p.to_string())
            .collect();
        let model_bytes = io::encode_graph(&graph);
        let known = graphopt_core::analysis::shapes::infer_graph(&graph);
        let describe = |names: &[String]| -> Result<Vec<_>, Error> {
            names
                .iter()
                .map(|n| tensor_manifest(&graph, &known, n, &declared_shapes))
                .collect::<Result<_, _>>()
                .map_err(|m| self.fail(m))
        };
        let functions: &[FunctionDef] = graph.library.as_ref().map_or(&[], |l| &l.function);
        let function_nodes: Vec<&NodeDef> = functions.iter().flat_map(|f| &f.node_def).collect();
        let manifest = Manifest {
            name: self.name.clone(),
            sha256: cache::sha256_hex(&model_bytes),
            size_bytes: model_bytes.len() as u64,
            source_sha256: String::new(),
            source_size_bytes: 0,
            source_node_count,
            key: String::new(),
            tool_version: TOOL_VERSION.into(),
            code_sha256: String::new(),
            dependencies_sha256: String::new(),
            transforms: canonical.to_string(),
            inputs: describe(&inputs)?,
            outputs: describe(&outputs)?,
            node_count: graph.node.len(),
            ops: op_counts(graph.node.iter()),
            functions: functions
                .iter()
                .filter_map(|f| f.signature.as_ref().map(|s| s.name.clone()))
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect(),
            function_node_count: function_nodes.len(),
            function_ops: op_counts(function_nodes.into_iter()),
            target: self.target.clone(),
            evaluator_cannot_run,
            cache: "miss".into(),
        };
        Ok((model_bytes, manifest))
    }

    /// [`Model::verify`]: the optimized graph's outputs within `tolerance` of the original's.
    /// `optimized` against `original` on seeded inputs (`renames`, what rename_node did, are
    /// undone on a copy so both graphs answer to the declared names).
    fn check_outputs(
        &self,
        original: &GraphDef,
        optimized: &GraphDef,
        renames: &[(String, String)],
        inputs: &[String],
        outputs: &[String],
        tolerance: f64,
    ) -> Result<(), Error> {
        let mut renamed_back;
        let optimized = if renames.is_empty() {
            optimized
        } else {
            renamed_back = optimized.clone();
            for (old, new) in renames.iter().rev() {
                if renamed_back.node.iter().any(|n| n.name == *old) {
                    return Err(self.fail(format!(
                        ".verify(...) cannot compare the graphs: '{old}' was renamed to '{new}' and another node now has its name"
                    )));
                }
                graph::edit::rename_node(&mut renamed_back, new, old);
            }
            &renamed_back
        };
        let options = VerifyOptions {
            inputs: inputs.to_vec(),
            outputs: outputs.to_vec(),
            seed: 0,
            unknown_dim: 1,
        };
        let report = verify::compare(original, optimized, &options).map_err(|e| {
            self.fail(format!(
                ".verify({tolerance:e}) could not compare the graphs: {e}"
            ))
        })?;
        let over = report
            .outputs
            .iter()
            // A NaN error is over any tolerance.
            .find(|o| {
                o.exact_match == Some(false)
                    || o.max_rel_error.is_nan()
                    || o.max_rel_error > tolerance
            });
        match over {
            None => Ok(()),
            Some(output) => Err(Error::Verify {
                model: self.name.clone(),
                output: output.name.clone(),
                error: if output.exact_match == Some(false) {
                    f64::INFINITY
                } else {
                    output.max_rel_error
                },
                tolerance,
            }),
        }
    }

    /// [`Model::target`]: nothing left that the target cannot load.
    fn check_target(&self, graph: &GraphDef, target: &str) -> Result<(), Error> {
        /// Problems the error gives the reason for; the others it names.
        const EXPLAINED: usize = 5;
        let problems = targets::check_target(graph, target)
            .map_err(|e| self.fail(format!(".target(\"{target}\"): {e}")))?;
        let nodes = targets::blocking_nodes(&problems);
        if nodes.is_empty() {
            return Ok(());
        }
        let (explained, named) = nodes.split_at(nodes.len().min(EXPLAINED));
        Err(Error::Target {
            model: self.name.clone(),
            target: target.to_string(),
            problems: explained.iter().map(ToString::to_string).collect(),
            others: named
                .iter()
                .map(|p| format!("{} ({})", p.node, p.op))
                .collect(),
        })
    }

    /// Every declared name is a node, and there are outputs; errors list the likely ones.
    fn check_interface(
        &self,
        graph: &GraphDef,
        inputs: &[String],
        outputs: &[String],
    ) -> Result<(), Error> {
        let index = graph::GraphIndex::new(graph);
        let summary = || graphopt_core::summary::summarize(graph, None);
        for (list, names) in [("inputs", inputs), ("outputs", outputs)] {
            if let Some(missing) = names
                .iter()
                .find(|n| index.node(graph::node_name(n)).is_none())
            {
                let summary = summary();
                let likely = if list == "inputs" {
                    summary.inputs.into_iter().map(|t| t.name).collect()
                } else {
                    summary.outputs.into_iter().map(|t| t.name).collect()
                };
                return Err(Error::UnknownName {
                    model: self.name.clone(),
                    list,
                    name: missing.clone(),
                    path: self.path.clone(),
                    likely,
                });
            }
        }
        if outputs.is_empty() {
            return Err(Error::NoOutputs {
                model: self.name.clone(),
                likely: summary().outputs.into_iter().map(|t| t.name).collect(),
            });
        }
        Ok(())
    }

    /// A directory source is a SavedModel: it holds `saved_model.pb`, checked before every
    /// file under it is hashed for the key (`Model::new("m", ".")` hashed the whole package,
    /// its target directory included, and only then failed to freeze it).
    fn check_saved_model_dir(&self, dir: &Path) -> Result<(), Error> {
        if dir.join("saved_model.pb").is_file() {
            return Ok(());
        }
        Err(Error::NotSavedModel {
            model: self.name.clone(),
            path: self.path.clone(),
        })
    }

    /// The source at `resolved` could not be read: a missing one is told where it was looked
    /// for, since a relative path is taken from the package's directory, not the workspace's.
    fn source_error(&self, resolved: &Path, source: std::io::Error) -> Error {
        if source.kind() == std::io::ErrorKind::NotFound {
            Error::Missing {
                model: self.name.clone(),
                path: self.path.clone(),
                resolved: resolved.to_path_buf(),
            }
        } else {
            self.io(&self.path, source)
        }
    }

    fn changed_while_built(&self) -> Error {
        self.fail(format!(
            "{} changed while it was being built; build again",
            self.path.display()
        ))
    }

    fn check_lock(&self, lock: &Path, manifest: &Manifest) -> Result<(), Error> {
        println!("cargo::rerun-if-changed={}", lock.display());
        let mut entries: BTreeMap<String, BTreeMap<String, String>> =
            match cache::read_small_text(lock, cache::SMALL_FILE) {
                Ok(text) => serde_json::from_str::<serde_json::Value>(&text)
                    .ok()
                    .and_then(|v| serde_json::from_value(v.get("models")?.clone()).ok())
                    .ok_or_else(|| {
                        self.fail(format!("{} is not a graphopt lock file", lock.display()))
                    })?,
                // Only a lock file that is not there yet starts empty: one that cannot be read
                // must not switch the check off (and lose the other models' records).
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
                Err(e) => return Err(self.io(lock, e)),
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
        cache::write_atomically(lock, format!("{json}\n").as_bytes()).map_err(|e| self.io(lock, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_names_are_identifiers_but_not_keywords() {
        for good in ["mobilenet", "_private", "model_2", "Types"] {
            assert!(is_identifier(good), "{good}");
        }
        for bad in [
            "", "_", "2fast", "my-model", "type", "self", "Self", "async", "gen", "é",
        ] {
            assert!(!is_identifier(bad), "{bad}");
        }
    }

    #[test]
    fn a_target_error_gives_the_first_five_reasons_and_names_the_rest() {
        let node = |name: &str, op: &str, input: &[&str]| NodeDef {
            name: name.into(),
            op: op.into(),
            input: input.iter().map(|i| i.to_string()).collect(),
            ..Default::default()
        };
        let mut graph = GraphDef::default();
        graph.node.push(node("x", "Placeholder", &[]));
        for k in 0..7 {
            graph.node.push(node(&format!("svd{k}"), "Svd", &["x"]));
        }
        let model = Model::new("m", "m.pb");
        match model.check_target(&graph, "opencv") {
            Err(Error::Target {
                problems, others, ..
            }) => {
                assert_eq!(problems.len(), 5, "{problems:?}");
                assert!(
                    problems.iter().all(|p| p.contains("(Svd): ")),
                    "{problems:?}"
                );
                assert_eq!(others, ["svd5 (Svd)", "svd6 (Svd)"]);
            }
            other => panic!("{other:?}"),
        }
        // What the README promises.
        let readme = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md"),
        )
        .unwrap()
        .replace("\n  ", " ");
        assert!(readme.contains("naming every one (the first five with the reason"));
    }

    #[cfg(unix)]
    #[test]
    fn the_directories_of_links_on_the_way_to_a_model_are_watched() {
        use std::os::unix::fs::symlink;
        let root = tempfile::tempdir().expect("tempdir");
        let package = root.path().join("package");
        let out_dir = package.join("target/debug/build/app-1/out");
        std::fs::create_dir_all(package.join("versions")).expect("mkdir");
        std::fs::create_dir_all(&out_dir).expect("mkdir");
        std::fs::write(package.join("versions/v1.pb"), b"v1").expect("write");
        symlink(package.join("versions"), package.join("models")).expect("link");
        symlink("v1.pb", package.join("versions/current.pb")).expect("link");
        // `models` is a link in the package directory, which holds OUT_DIR: not watched;
        // `models/current.pb` is one in `versions`, reached through `models`.
        let watched = link_directories(
            &package,
            Path::new("models/current.pb"),
            &out_dir,
            root.path(),
        );
        assert_eq!(watched, [package.join("models")]);
        let absolute = package.join("versions/current.pb");
        assert_eq!(
            link_directories(&package, &absolute, &out_dir, root.path()),
            [package.join("versions")]
        );
        assert!(
            link_directories(&package, Path::new("versions/v1.pb"), &out_dir, root.path())
                .is_empty()
        );
        // With the target directory elsewhere, the package directory is watched too.
        let elsewhere = root.path().join("target/debug/build/app-1/out");
        assert_eq!(
            link_directories(
                &package,
                Path::new("models/current.pb"),
                &elsewhere,
                root.path()
            ),
            [package.clone(), package.join("models")]
        );
        // Outside the workspace, nothing is watched: cargo would scan it whole every build.
        assert!(
            link_directories(&package, &absolute, &out_dir, &package.join("models")).is_empty()
        );
    }

    /// The SavedModel options in force are keyed, not how they were spelled: `.tag_set("serve")`
    /// and `.signature("serving_default")` are the defaults, and a GraphDef reads neither.
    /// (Before: each spelling had a key of its own, so identical builds missed.)
    #[test]
    fn the_key_holds_the_saved_model_options_in_force_not_their_spelling() {
        let graph = Source::Graph {
            sha256: "ab".into(),
            bytes: None,
        };
        let saved_model = Source::SavedModel(b"saved_model.pb 5 ab\n".to_vec());
        let key = |model: &Model, source: &Source| {
            model.cache_key(&KeyInputs {
                budget: "1 2",
                code: "c",
                dependencies: "d",
                custom_versions: &[],
                canonical: "",
                source,
            })
        };
        let plain = Model::new("m", "m");
        let spelled = Model::new("m", "m")
            .tag_set("serve")
            .signature("serving_default");
        let other = Model::new("m", "m").signature("classify");
        for source in [&graph, &saved_model] {
            assert_eq!(key(&plain, source), key(&spelled, source));
        }
        assert_eq!(key(&plain, &graph), key(&other, &graph));
        assert_ne!(key(&plain, &saved_model), key(&other, &saved_model));
        let tags = Model::new("m", "m").tag_set("serve,gpu");
        assert_ne!(key(&plain, &saved_model), key(&tags, &saved_model));
    }

    #[test]
    fn a_directory_without_saved_model_pb_is_refused_before_it_is_hashed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let model = Model::new("pkg", ".");
        let error = model
            .check_saved_model_dir(dir.path())
            .expect_err("no saved_model.pb")
            .to_string();
        assert_eq!(
            error,
            "graphopt: model 'pkg': . is a directory without a saved_model.pb, so not a SavedModel; give Model::new a GraphDef file or a SavedModel directory"
        );
        std::fs::write(dir.path().join("saved_model.pb"), b"").expect("write");
        assert!(model.check_saved_model_dir(dir.path()).is_ok());
    }

    #[test]
    fn a_missing_model_says_where_it_was_looked_for() {
        let model = Model::new("gone", "models/gone.pb");
        let missing = std::io::Error::from(std::io::ErrorKind::NotFound);
        assert_eq!(
            model.source_error(Path::new("/app/models/gone.pb"), missing).to_string(),
            "graphopt: model 'gone': models/gone.pb does not exist (looked for /app/models/gone.pb: a relative path is taken from the package's directory); give Model::new the path of a GraphDef file or a SavedModel directory"
        );
        let denied = std::io::Error::from(std::io::ErrorKind::PermissionDenied);
        let error = model.source_error(Path::new("/app/models/gone.pb"), denied);
        assert!(matches!(error, Error::Io { .. }), "{error}");
    }

    /// A lock file that is a device is an error naming it, not a read without end.
    #[cfg(unix)]
    #[test]
    fn a_lock_file_that_is_a_device_is_an_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let lock = dir.path().join("graphopt.lock");
        std::os::unix::fs::symlink("/dev/zero", &lock).expect("link");
        let manifest = Manifest::of_bytes("m", "", b"graph");
        let error = Model::new("m", "m.pb")
            .check_lock(&lock, &manifest)
            .expect_err("refused")
            .to_string();
        assert!(
            error.starts_with("graphopt: model 'm': ") && error.contains("graphopt.lock: a device"),
            "{error}"
        );
    }

    #[test]
    fn a_warning_quoting_a_hostile_name_stays_one_directive() {
        let line =
            warning_line("left for opencv: svd\ncargo::rustc-env=INJECTED=1 (Svd)\r\u{1b}[2J");
        assert_eq!(line.lines().count(), 1, "{line}");
        assert_eq!(
            line,
            "cargo::warning=left for opencv: svd\\ncargo::rustc-env=INJECTED=1 (Svd)\\r\\u{1b}[2J"
        );
    }
}
