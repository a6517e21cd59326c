//! Graph transforms: the [`Transform`] trait, the [`Registry`] of named transforms, typed access
//! to parameters, and [`run`], which applies a parsed transform list like `transform_graph`.
//!
//! Adding a transform is one file in this folder plus one line in [`Registry::with_builtins`].

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::graph;
use crate::late_weights::{Deferred, LateWeights};
use crate::proto::{DataType, GraphDef};

pub mod spec;

mod add_default_attributes;
mod add_shapes;
mod backport_concatv2;
mod backport_tensor_array_v3;
mod convert_to_nchw;
mod deploy;
mod fix_input_shapes;
mod flatten_atrous_conv;
mod fold_batch_norms;
mod fold_constants;
mod fold_old_batch_norms;
mod fold_scale_axis;
mod fuse_convolutions;
mod inline_partitionedcall;
mod insert_logging;
mod legalize;
mod merge_duplicate_nodes;
mod obfuscate_names;
mod quantize_weights;
mod remove_attribute;
mod remove_control_dependencies;
mod remove_device;
mod remove_leftovers;
mod remove_nodes;
mod remove_training_nodes;
mod rename_attribute;
mod rename_node;
mod rename_op;
mod round_weights;
mod set_device;
mod simplify_arithmetic;
mod sort_by_execution_order;
mod strip_unused_nodes;

pub use spec::{parse, SpecError, TransformSpec};

/// A named graph rewrite. Implementations edit the graph in place and return a typed error
/// naming the node concerned; the runner validates the graph afterwards.
pub trait Transform: Send + Sync {
    /// The name used in transform strings, e.g. `remove_device`.
    fn name(&self) -> &str;
    /// One line saying what the transform does (shown by `graphopt transform --help`).
    fn summary(&self) -> &str;
    /// The parameter names this transform accepts (besides `ignore_errors`); `None` accepts any.
    fn params(&self) -> Option<&[&str]> {
        Some(&[])
    }
    /// Each optional parameter's default as written in a transform string, for `graphopt
    /// transforms` to show (`num_steps=256`). For built-in transforms a test checks that these
    /// are the defaults `apply` uses.
    fn param_defaults(&self) -> &[(&str, &str)] {
        &[]
    }
    /// The version of what this transform computes, for caches of its results: change it
    /// whenever the transform's output changes. graphopt-build keys its cache on the name and
    /// version of every application transform a model uses, and does not cache a model whose
    /// transform list uses one without a version (`None`, the default). Built-in transforms
    /// have none: graphopt-core's source fingerprint ([`crate::SOURCE_SHA256`]) covers them.
    fn version(&self) -> Option<&str> {
        None
    }
    /// Applies the transform.
    fn apply(&self, graph: &mut GraphDef, context: &TransformContext<'_>) -> Result<()>;
    /// Whether `apply` leaves the graph exactly as it was whenever it returns an error. The
    /// runner then keeps no copy of the graph for `ignore_errors=true` (a copy of a large
    /// graph's nodes, attributes and library costs about as much memory as decoding it).
    fn keeps_graph_on_error(&self) -> bool {
        false
    }
    /// Whether `apply` may be given a graph that holds late weights (Consts whose content is
    /// their unscaled source until written, see [`crate::late_weights`]): only a transform
    /// that reads no Const's value and renames or copies no Const, or one that reads them
    /// through [`TransformContext::late_weights`], says yes. The runner computes every late
    /// weight before any other transform.
    fn accepts_late_weights(&self) -> bool {
        false
    }
}

/// What a transform sees besides the graph: the declared inputs/outputs and its parameters.
/// Made by the runner only; fields may be added.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct TransformContext<'a> {
    /// The transform's name, for error messages.
    pub transform: &'a str,
    /// `--inputs`, as given (may carry `:N`).
    pub inputs: &'a [String],
    /// `--outputs`, as given (may carry `:N`).
    pub outputs: &'a [String],
    pub params: Params<'a>,
    /// Where [`TransformContext::warn`] collects messages for the run's outcome.
    pub warnings: &'a std::cell::RefCell<Vec<String>>,
    /// Where [`TransformContext::renamed`] records renamed nodes, in order.
    pub renames: &'a std::cell::RefCell<Vec<(String, String)>>,
    /// The graph's late weights; empty unless the transform accepts them
    /// ([`Transform::accepts_late_weights`]).
    pub late_weights: &'a std::cell::RefCell<LateWeights>,
}

impl TransformContext<'_> {
    /// A transform error naming this transform.
    pub fn error(&self, message: impl Into<String>) -> Error {
        Error::transform(self.transform, message)
    }

    /// Node names of --inputs and --outputs (ports and `^` stripped): nodes a transform must
    /// neither remove nor rename.
    pub fn protected_names(&self) -> std::collections::HashSet<String> {
        self.inputs
            .iter()
            .chain(self.outputs)
            .map(|n| graph::node_name(n).to_string())
            .collect()
    }

    /// [`Self::protected_names`], and when no outputs are declared the graph's ends (nodes
    /// nothing reads), which are then its outputs: a transform that removes unread nodes must
    /// not take the final node for a leftover.
    pub fn protected_names_or_ends(&self, graph: &GraphDef) -> HashSet<String> {
        let mut protected = self.protected_names();
        if self.outputs.is_empty() {
            let read: HashSet<&str> = graph
                .node
                .iter()
                .flat_map(|n| n.input.iter())
                .map(|input| graph::node_name(input))
                .collect();
            protected.extend(
                graph
                    .node
                    .iter()
                    .filter(|n| !read.contains(n.name.as_str()))
                    .map(|n| n.name.clone()),
            );
        }
        protected
    }

    /// Node names of --inputs: nodes whose value is fed, not computed (a Const named there
    /// is not constant).
    pub fn input_names(&self) -> HashSet<String> {
        self.inputs
            .iter()
            .map(|n| graph::node_name(n).to_string())
            .collect()
    }

    /// Records something the user should know that does not stop the transform.
    pub fn warn(&self, message: impl Into<String>) {
        self.warnings.borrow_mut().push(message.into());
    }

    /// Records that node `old` is now called `new`: a declared input or output of that name
    /// follows it, for the transforms after this one and in the run's outcome.
    pub fn renamed(&self, old: &str, new: &str) {
        self.renames
            .borrow_mut()
            .push((old.to_string(), new.to_string()));
    }
}

/// `tensor` ("node", "node:N" or "^node") with its node renamed as `renames` say, in order.
pub fn renamed_tensor(tensor: &str, renames: &[(String, String)]) -> String {
    let parsed = graph::InputRef::parse(tensor);
    let mut node = parsed.node.to_string();
    for (old, new) in renames {
        if node == *old {
            node.clone_from(new);
        }
    }
    if node == parsed.node {
        tensor.to_string()
    } else if parsed.control {
        format!("^{node}")
    } else if tensor.len() > parsed.node.len() {
        // The port was written out: keep writing it.
        format!("{node}:{}", parsed.port)
    } else {
        node
    }
}

/// Typed access to a transform's parameters, with TensorFlow's rules: an absent parameter
/// takes its default, a repeated one is an error where a single value is expected.
#[derive(Debug, Clone, Copy)]
pub struct Params<'a> {
    transform: &'a str,
    values: &'a BTreeMap<String, Vec<String>>,
    /// Where the defaults `apply` falls back to are noted, to test them against
    /// [`Transform::param_defaults`].
    defaults_used: Option<&'a std::cell::RefCell<BTreeMap<String, String>>>,
}

impl<'a> Params<'a> {
    pub fn new(transform: &'a str, values: &'a BTreeMap<String, Vec<String>>) -> Self {
        Params {
            transform,
            values,
            defaults_used: None,
        }
    }

    fn note_default(&self, name: &str, default: impl std::fmt::Display) {
        if let Some(used) = self.defaults_used {
            used.borrow_mut()
                .insert(name.to_string(), default.to_string());
        }
    }

    /// Every value given for `name` (empty if absent).
    pub fn list(&self, name: &str) -> &'a [String] {
        self.values.get(name).map_or(&[], Vec::as_slice)
    }

    /// The single value of `name`, if given.
    pub fn optional(&self, name: &str) -> Result<Option<&'a str>> {
        match self.list(name) {
            [] => Ok(None),
            [one] => Ok(Some(one.as_str())),
            many => Err(Error::transform(
                self.transform,
                format!(
                    "expected a single '{name}' parameter, but found {} occurrences",
                    many.len()
                ),
            )),
        }
    }

    /// The single value of `name`, which must be given.
    pub fn required(&self, name: &str) -> Result<&'a str> {
        self.optional(name)?.ok_or_else(|| {
            Error::transform(
                self.transform,
                format!(
                    "the parameter '{name}' is required, e.g. {}({name}=...)",
                    self.transform
                ),
            )
        })
    }

    /// `name` as a string, or `default`.
    pub fn string(&self, name: &str, default: &'a str) -> Result<&'a str> {
        self.note_default(name, default);
        Ok(self.optional(name)?.unwrap_or(default))
    }

    /// `name` as a bool (`true`, `false`, `1`, `0`, any case), or `default`.
    pub fn bool(&self, name: &str, default: bool) -> Result<bool> {
        self.typed(name, default, "true or false", parse_bool)
    }

    /// `name` as an integer, or `default`.
    pub fn int(&self, name: &str, default: i64) -> Result<i64> {
        self.typed(name, default, "an integer", |v| v.parse().ok())
    }

    /// `name` as a float, or `default`.
    pub fn float(&self, name: &str, default: f64) -> Result<f64> {
        self.typed(name, default, "a number", |v| v.parse().ok())
    }

    fn typed<T>(
        &self,
        name: &str,
        default: T,
        expected: &str,
        parse: impl Fn(&str) -> Option<T>,
    ) -> Result<T>
    where
        T: std::fmt::Display,
    {
        self.note_default(name, &default);
        match self.optional(name)? {
            None => Ok(default),
            Some(v) => parse(v).ok_or_else(|| {
                Error::transform(
                    self.transform,
                    format!("parameter '{name}' must be {expected}, not '{v}'"),
                )
            }),
        }
    }
}

impl Params<'_> {
    /// A TensorFlow type name as a parameter value: `float`, `DT_FLOAT`, `int32`, `float32`.
    pub fn parse_type(&self, text: &str) -> Result<DataType> {
        let upper = text.to_ascii_uppercase();
        let candidates = [format!("DT_{upper}"), upper.clone()];
        let alias = match upper.as_str() {
            "FLOAT32" => Some("DT_FLOAT"),
            "FLOAT64" => Some("DT_DOUBLE"),
            "FLOAT16" => Some("DT_HALF"),
            _ => None,
        };
        candidates
            .iter()
            .map(String::as_str)
            .chain(alias)
            .find_map(DataType::from_str_name)
            .ok_or_else(|| {
                Error::transform(
                    self.transform,
                    format!("'{text}' is not a TensorFlow type (e.g. float, int32, uint8)"),
                )
            })
    }

    /// A shape as a parameter value: `"1,224,224,3"`, `?` or `-1` for an unknown dimension,
    /// empty for a scalar.
    pub fn parse_shape(&self, text: &str) -> Result<Vec<i64>> {
        if text.trim().is_empty() {
            return Ok(Vec::new());
        }
        text.split(',')
            .map(|d| match d.trim() {
                "?" | "-1" => Ok(-1),
                d => d.parse::<i64>().ok().filter(|v| *v >= 0).ok_or_else(|| {
                    Error::transform(
                        self.transform,
                        format!("'{text}' is not a shape like \"1,224,224,3\""),
                    )
                }),
            })
            .collect()
    }
}

fn parse_bool(value: &str) -> Option<bool> {
    match value.to_ascii_lowercase().as_str() {
        "true" | "1" => Some(true),
        "false" | "0" => Some(false),
        _ => None,
    }
}

/// Named transforms. [`Registry::with_builtins`] has every transform graphopt ships; an
/// application adds its own with [`Registry::register`].
#[derive(Clone, Default)]
pub struct Registry {
    transforms: BTreeMap<String, Arc<dyn Transform>>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.transforms.keys()).finish()
    }
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Every built-in transform.
    pub fn with_builtins() -> Self {
        let mut registry = Registry::new();
        registry.register(add_default_attributes::AddDefaultAttributes);
        registry.register(add_shapes::AddShapes);
        registry.register(backport_concatv2::BackportConcatV2);
        registry.register(backport_tensor_array_v3::BackportTensorArrayV3);
        registry.register(convert_to_nchw::ConvertToNchw);
        registry.register(deploy::Deploy);
        registry.register(fix_input_shapes::FixInputShapes);
        registry.register(flatten_atrous_conv::FlattenAtrousConv);
        registry.register(fold_batch_norms::FoldBatchNorms);
        registry.register(fold_constants::FoldConstants);
        registry.register(fold_old_batch_norms::FoldOldBatchNorms);
        registry.register(fold_scale_axis::FoldScaleAxis);
        registry.register(fuse_convolutions::FusePadAndConv);
        registry.register(fuse_convolutions::FuseResizeAndConv);
        registry.register(fuse_convolutions::FuseResizePadAndConv);
        registry.register(inline_partitionedcall::InlinePartitionedCall);
        registry.register(insert_logging::InsertLogging);
        registry.register(legalize::Legalize);
        registry.register(merge_duplicate_nodes::MergeDuplicateNodes);
        registry.register(obfuscate_names::ObfuscateNames);
        registry.register(quantize_weights::QuantizeWeights);
        registry.register(remove_attribute::RemoveAttribute);
        registry.register(remove_control_dependencies::RemoveControlDependencies);
        registry.register(remove_device::RemoveDevice);
        registry.register(remove_leftovers::RemoveLeftovers);
        registry.register(remove_nodes::RemoveNodes);
        registry.register(remove_training_nodes::RemoveTrainingNodes);
        registry.register(rename_attribute::RenameAttribute);
        registry.register(rename_node::RenameNode);
        registry.register(rename_op::RenameOp);
        registry.register(round_weights::RoundWeights);
        registry.register(set_device::SetDevice);
        registry.register(simplify_arithmetic::SimplifyArithmetic);
        registry.register(sort_by_execution_order::SortByExecutionOrder);
        registry.register(strip_unused_nodes::StripUnusedNodes);
        registry
    }

    /// Adds (or replaces) a transform under its name.
    pub fn register(&mut self, transform: impl Transform + 'static) -> &mut Self {
        self.transforms
            .insert(transform.name().to_string(), Arc::new(transform));
        self
    }

    /// The transform called `name`.
    pub fn get(&self, name: &str) -> Option<&dyn Transform> {
        self.transforms.get(name).map(|t| t.as_ref())
    }

    /// All transforms, sorted by name.
    pub fn iter(&self) -> impl Iterator<Item = &dyn Transform> {
        self.transforms.values().map(|t| t.as_ref())
    }

    /// Checks that every transform in `specs` exists and gets only parameters it knows,
    /// before anything runs.
    pub fn check(&self, specs: &[TransformSpec]) -> Result<()> {
        for spec in specs {
            let Some(transform) = self.get(&spec.name) else {
                let known: Vec<&str> = self.transforms.keys().map(String::as_str).collect();
                return Err(Error::transform(
                    &spec.name,
                    format!(
                        "not a known transform (column {}); known transforms: {}",
                        spec.column,
                        known.join(", ")
                    ),
                ));
            };
            for (param, values) in &spec.params {
                if param == "ignore_errors" {
                    if values.len() != 1 || values.iter().any(|v| parse_bool(v).is_none()) {
                        return Err(Error::transform(
                            &spec.name,
                            "ignore_errors takes a single value, true or false",
                        ));
                    }
                    continue;
                }
                if let Some(accepted) = transform.params() {
                    if !accepted.contains(&param.as_str()) {
                        let expected = if accepted.is_empty() {
                            "it takes no parameters besides ignore_errors".to_string()
                        } else {
                            format!("it takes: {}", accepted.join(", "))
                        };
                        return Err(Error::transform(
                            &spec.name,
                            format!(
                                "unknown parameter '{param}' (column {}); {expected}",
                                spec.column
                            ),
                        ));
                    }
                }
            }
        }
        Ok(())
    }
}

/// What happened to one transform of a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransformOutcome {
    /// Canonical text of the invocation.
    pub transform: String,
    pub nodes_before: usize,
    pub nodes_after: usize,
    /// Set when the transform failed, `ignore_errors=true` was given and its changes were undone.
    pub ignored_error: Option<String>,
    /// What the transform had to say without failing.
    pub warnings: Vec<String>,
    /// Nodes it renamed (old, new), in order; declared inputs and outputs followed them.
    pub renames: Vec<(String, String)>,
}

/// Applies `specs` to `graph` in order, validating the graph after each. A transform that fails
/// aborts the run, unless it was given `ignore_errors=true`: then its changes are undone and the
/// error is recorded in its outcome.
///
/// Runs under the current [`budget`](crate::budget) (a default one for the graph's size when
/// none is entered). A transform during which the budget refused anything fails, even if it
/// worked around the refusal: a transform's result never depends on the budget.
pub fn run(
    registry: &Registry,
    graph: &mut GraphDef,
    specs: &[TransformSpec],
    inputs: &[String],
    outputs: &[String],
) -> Result<Vec<TransformOutcome>> {
    let late = std::cell::RefCell::new(LateWeights::default());
    let outcomes = run_budgeted(registry, graph, specs, inputs, outputs, &late);
    // Whatever happened, the caller gets a graph of final values (or, should a weight's
    // source be unreadable by now, an error).
    let computed = late.into_inner().compute_all(graph);
    let outcomes = outcomes?;
    computed?;
    Ok(outcomes)
}

/// [`run`] for a graph about to be written: the weights batch-norm folding scales (when no
/// later transform reads them) are computed only as the binary writer writes them
/// (`io::write_deferred`), into one reused buffer instead of new memory for each. The bytes
/// written are those of [`run`]'s graph.
pub fn run_deferred(
    registry: &Registry,
    mut graph: GraphDef,
    specs: &[TransformSpec],
    inputs: &[String],
    outputs: &[String],
) -> Result<(Deferred, Vec<TransformOutcome>)> {
    let late = std::cell::RefCell::new(LateWeights::default());
    let outcomes = run_budgeted(registry, &mut graph, specs, inputs, outputs, &late)?;
    Ok((Deferred::new(graph, late.into_inner()), outcomes))
}

fn run_budgeted(
    registry: &Registry,
    graph: &mut GraphDef,
    specs: &[TransformSpec],
    inputs: &[String],
    outputs: &[String],
    late: &std::cell::RefCell<LateWeights>,
) -> Result<Vec<TransformOutcome>> {
    use prost::Message as _;
    let size = graph.encoded_len() as u64;
    crate::budget::enter_or_default(
        || size,
        || run_in(registry, graph, specs, inputs, outputs, late),
    )
}

fn run_in(
    registry: &Registry,
    graph: &mut GraphDef,
    specs: &[TransformSpec],
    inputs: &[String],
    outputs: &[String],
    late: &std::cell::RefCell<LateWeights>,
) -> Result<Vec<TransformOutcome>> {
    registry.check(specs)?;
    let mut outcomes = Vec::with_capacity(specs.len());
    // Declared names, following the nodes a transform renames.
    let (mut inputs, mut outputs) = (inputs.to_vec(), outputs.to_vec());
    for spec in specs {
        let Some(transform) = registry.get(&spec.name) else {
            continue; // `check` has ruled this out.
        };
        let ignore_errors = spec
            .params
            .get("ignore_errors")
            .and_then(|v| v.first())
            .and_then(|v| parse_bool(v))
            .unwrap_or(false);
        let warnings = std::cell::RefCell::new(Vec::new());
        let renames = std::cell::RefCell::new(Vec::new());
        let context = TransformContext {
            transform: &spec.name,
            inputs: &inputs,
            outputs: &outputs,
            params: Params::new(&spec.name, &spec.params),
            warnings: &warnings,
            renames: &renames,
            late_weights: late,
        };
        // Only a transform that knows of late weights may see them.
        if !transform.accepts_late_weights() {
            late.borrow_mut().compute_all(graph).map_err(|error| {
                Error::transform(
                    &spec.name,
                    format!("computing the weights earlier folds scaled, before it ran: {error}"),
                )
            })?;
        }
        let nodes_before = graph.node.len();
        // Only a run that may have to be undone pays for a copy (weights are shared, not
        // copied); a transform that fails without changing anything needs none.
        let keeps_graph = transform.keeps_graph_on_error();
        let backup = (ignore_errors && !keeps_graph).then(|| graph.clone());
        // The late weights go back with the graph (an undone fold's entries would name
        // Consts that no longer hold their source).
        let late_backup = ignore_errors.then(|| late.borrow().clone());
        // In a graph with while loops, the Consts a transform adds are given their readers'
        // frame afterwards; only such a graph pays for the list of names.
        let existed: Option<HashSet<String>> = graph::has_loop_frames(graph)
            .then(|| graph.node.iter().map(|n| n.name.clone()).collect());
        let _ = crate::budget::take_failure();
        let applied = transform.apply(graph, &context).map(|()| {
            if let Some(existed) = &existed {
                graph::anchor_new_constants(graph, existed);
            }
            // A node the transform removed may be one others were colocated with.
            graph::edit::drop_dangling_colocations(graph);
        });
        let untouched = keeps_graph && applied.is_err();
        let result = applied
            .and_then(|()| match crate::budget::take_failure() {
                Some(refused) => Err(Error::transform(&spec.name, refused.to_string())),
                None => Ok(()),
            })
            .map_err(|error| match error {
                Error::Budget { .. } => {
                    let _ = crate::budget::take_failure();
                    Error::transform(&spec.name, error.to_string())
                }
                other => other,
            })
            .and_then(|()| {
                graph::validate(graph).map_err(|source| Error::TransformBrokeGraph {
                    transform: spec.name.clone(),
                    source: Box::new(source),
                })
            });
        let ignored_error = match (result, backup) {
            (Ok(()), _) => None,
            (Err(error), Some(backup)) => {
                *graph = backup;
                Some(error.to_string())
            }
            (Err(error), None) if ignore_errors && untouched => Some(error.to_string()),
            (Err(error), None) => return Err(error),
        };
        if let (Some(_), Some(late_backup)) = (&ignored_error, late_backup) {
            *late.borrow_mut() = late_backup;
        }
        // An undone transform renamed nothing.
        let renames = match ignored_error {
            Some(_) => Vec::new(),
            None => renames.into_inner(),
        };
        if !renames.is_empty() {
            for name in inputs.iter_mut().chain(outputs.iter_mut()) {
                *name = renamed_tensor(name, &renames);
            }
        }
        outcomes.push(TransformOutcome {
            transform: spec.to_string(),
            nodes_before,
            nodes_after: graph.node.len(),
            ignored_error,
            warnings: warnings.into_inner(),
            renames,
        });
    }
    Ok(outcomes)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What each built-in transform needs to get past its required parameters.
    fn required(name: &str) -> &'static [(&'static str, &'static str)] {
        match name {
            "legalize" => &[("target", "opencv")],
            "remove_attribute" => &[("attribute_name", "_class")],
            "rename_attribute" => &[
                ("old_attribute_name", "data_format"),
                ("new_attribute_name", "layout"),
            ],
            "rename_node" => &[("old_node_name", "probs"), ("new_node_name", "p")],
            "rename_op" => &[("old_op_name", "Relu"), ("new_op_name", "Relu6")],
            "remove_nodes" => &[("op", "Identity")],
            "fix_input_shapes" => &[("shape", "1,16,16,3")],
            "insert_logging" => &[("op", "Relu")],
            _ => &[],
        }
    }

    /// `graphopt transforms` shows `param_defaults`: each must be the default `apply` falls
    /// back to, and every default `apply` uses must be declared.
    #[test]
    fn declared_parameter_defaults_are_the_ones_apply_uses() {
        let bytes = include_bytes!("../../../tests/fixtures/models/tf1_conv_bn.pb");
        let registry = Registry::with_builtins();
        let mut mismatches = Vec::new();
        for transform in registry.iter() {
            let name = transform.name();
            let mut graph =
                <GraphDef as prost::Message>::decode(&bytes[..]).expect("the fixture decodes");
            let values: BTreeMap<String, Vec<String>> = required(name)
                .iter()
                .map(|(k, v)| (k.to_string(), vec![v.to_string()]))
                .collect();
            let used = std::cell::RefCell::new(BTreeMap::new());
            let warnings = std::cell::RefCell::new(Vec::new());
            let inputs = vec!["input".to_string()];
            let outputs = vec!["probs".to_string()];
            let context = TransformContext {
                transform: name,
                inputs: &inputs,
                outputs: &outputs,
                params: Params {
                    defaults_used: Some(&used),
                    ..Params::new(name, &values)
                },
                warnings: &warnings,
                renames: &std::cell::RefCell::new(Vec::new()),
                late_weights: &std::cell::RefCell::new(LateWeights::default()),
            };
            if let Err(e) = transform.apply(&mut graph, &context) {
                mismatches.push(format!("{name} failed: {e}"));
                continue;
            }
            let declared: BTreeMap<String, String> = transform
                .param_defaults()
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            if used.into_inner() != declared {
                mismatches.push(format!("{name}: declared {declared:?}"));
            }
        }
        assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
    }
}
