//! `legalize(target=NAME)`: rewrites a graph into the forms a deployment target's importer
//! loads, composed from the shared rewrite layer, and reports (as warnings, node by node, with
//! the target's check) what no rewrite can fix; `graphopt check --target=NAME` lists those as
//! errors. Run it last, after the
//! optimization pipeline (`@deploy legalize(target=opencv)`).
//!
//! `opencv`, `tract`, `tvm` and `tensorrt` first get every constant subgraph folded (values up
//! to 10 MiB; after inlining, for tract; PlaceholderWithDefault kept), so that ops computed
//! from constants alone, which their importers may lack, need not load. Per target, besides leftover removal (identity-like ops, CheckNumerics, idle NoOps, control
//! edges that order nothing) and the stripping of the attributes its profile rejects (where the
//! attribute holds its default or is unused at inference; the others are reported), which every
//! target gets:
//! - `opencv`: TF1 atrous patterns become dilated convolutions, then every dilated convolution
//!   becomes the atrous pattern in the form OpenCV reads right (its Conv2D ignores `dilations`;
//!   its fusion of the pattern pads symmetrically by the paddings before and ignores the
//!   crops), a `SYMMETRIC` MirrorPad becomes slices and concats (OpenCV pads every MirrorPad as
//!   `REFLECT`), every Const's values move to `tensor_content` (OpenCV reads some Consts only
//!   there) but a scalar's and those OpenCV reads from `int_val` (axes; their int32 values all
//!   go there), which is spelled out when TensorFlow's shorthand leaves it empty
//!   (OpenCV reads a ConcatV2 axis as its first `int_val`), and a Const a Pack shares with
//!   other readers gets a copy of its own (OpenCV fails running the shared one), and
//!   `data_format` attributes left to their default are written out (OpenCV infers an input's
//!   layout from them);
//! - `tract`: fused batch norms become Mul and Add (tract has no FusedBatchNormV3),
//!   PlaceholderWithDefault becomes Placeholder (an Identity of its default when --inputs leave
//!   it out: it is never fed), ResourceGather becomes GatherV2, and every
//!   constant `Pad` goes (tract-tensorflow 0.23's Pad only runs when its input is constant):
//!   into the convolutions after it as `SAME` padding where that is the same zeros, else into
//!   `ConcatV2`s with constant blocks (which needs the input's static shape: fix input shapes
//!   first); a dilated Conv2D becomes SpaceToBatchND -> Conv2D -> BatchToSpaceND (tract's
//!   Conv2D ignores `dilations`); SpaceToBatchND/BatchToSpaceND paddings and crops become a Pad
//!   (then concats) and a StridedSlice (tract fuses the atrous pattern into a dilated
//!   convolution that ignores them);
//!   negative ConcatV2 and Pack axes count from the front (tract casts them to unsigned);
//!   function calls are inlined (tract has no PartitionedCall), Unpack becomes StridedSlices
//!   (tract has no Unpack), and Consts in TensorFlow's
//!   value shorthands spell their values out (tract reads one value or all of them);
//! - `tvm`: ResourceGather becomes GatherV2, `_output_shapes` written (fix input shapes first);
//! - `tensorrt`: AddV2 becomes Add, inference FusedBatchNormV2/V3 become FusedBatchNorm (after
//!   leftover removal, whatever feeds their parameters);
//! - `ascend`, `graphopt`: leftover removal only.
//!
//! For every target but `tvm` (which gets them all written), `_output_shapes` already in the
//! graph are rewritten with the shapes inferred after the rewrites. A Const named in --inputs
//! (fed by the app) stands as a Placeholder while the rewrites run, so that none takes its
//! value for a constant.

use std::collections::HashSet;

use super::{Transform, TransformContext};
use crate::error::Result;
use crate::graph::attrs;
use crate::graph::inline;
use crate::proto::GraphDef;
use crate::proto::NodeDef;
use crate::rewrite::constants::{fold, FoldOptions, DEFAULT_MAX_FOLDED_BYTES};
use crate::rewrite::{atrous, leftovers, legalize, static_shapes};
use crate::targets::{self, Constraint, Target};

pub struct Legalize;

/// What legalization does for one target.
#[derive(Debug, Clone, Copy, Default)]
struct Plan {
    fold_constants: bool,
    flatten_atrous: bool,
    symmetric_atrous: bool,
    symmetric_mirror_pads: bool,
    tensor_content: bool,
    decompose_batch_norms: bool,
    downgrade_batch_norms: bool,
    add_v2_to_add: bool,
    placeholders_without_defaults: bool,
    resource_gathers: bool,
    output_shapes: bool,
    pads: bool,
    explicit_values: bool,
    private_pack_constants: bool,
    explicit_data_formats: bool,
    inline_calls: bool,
}

/// The targets `legalize` knows, with their plans.
const TARGETS: &[&str] = &["ascend", "graphopt", "opencv", "tensorrt", "tract", "tvm"];

fn plan(target: &str) -> Option<Plan> {
    let none = Plan::default();
    Some(match target {
        "opencv" => Plan {
            fold_constants: true,
            flatten_atrous: true,
            symmetric_atrous: true,
            symmetric_mirror_pads: true,
            tensor_content: true,
            explicit_values: true,
            private_pack_constants: true,
            explicit_data_formats: true,
            ..none
        },
        "tract" => Plan {
            fold_constants: true,
            decompose_batch_norms: true,
            placeholders_without_defaults: true,
            resource_gathers: true,
            pads: true,
            explicit_values: true,
            inline_calls: true,
            ..none
        },
        "tvm" => Plan {
            fold_constants: true,
            resource_gathers: true,
            output_shapes: true,
            ..none
        },
        "tensorrt" => Plan {
            fold_constants: true,
            add_v2_to_add: true,
            downgrade_batch_norms: true,
            ..none
        },
        "ascend" | "graphopt" => none,
        _ => return None,
    })
}

impl Transform for Legalize {
    fn name(&self) -> &str {
        "legalize"
    }

    fn summary(&self) -> &str {
        "rewrite into the forms a target's importer loads (target=opencv, tract, tvm, tensorrt, ascend, graphopt)"
    }

    fn params(&self) -> Option<&[&str]> {
        Some(&["target"])
    }

    fn apply(&self, graph: &mut GraphDef, context: &TransformContext<'_>) -> Result<()> {
        let target = context.params.required("target")?;
        let plan = plan(target).ok_or_else(|| {
            context.error(format!(
                "unknown target '{target}'; targets: {}",
                TARGETS.join(", ")
            ))
        })?;
        let protected = context.protected_names();
        // A Const named in --inputs holds what the app feeds: no rewrite may take its value
        // for a constant (fold it into weights or paddings, copy it, rewrite it). It stands as
        // a Placeholder of its type and shape while they run, and is put back at the end.
        let fed_consts = fed_consts_as_placeholders(graph, context.inputs);
        if plan.inline_calls {
            inline::inline_all_calls(graph, inline::Limits::default())
                .map_err(|e| context.error(e.to_string()))?;
        }
        if plan.fold_constants {
            // What is computed from constants alone need not load at all (a batch norm's
            // Rsqrt of its variance in a graph not folded before, inside inlined calls too).
            // A PlaceholderWithDefault stays: the app may feed it. Folding that fails changes
            // nothing; a budget refusal still ends the command, as everywhere.
            let folding = FoldOptions {
                exclude_ops: ["PlaceholderWithDefault".to_string()].into(),
                ..FoldOptions::around(context.inputs, context.outputs, DEFAULT_MAX_FOLDED_BYTES)
            };
            if let Err(error) = fold(graph, &folding) {
                context.warn(format!("constant folding skipped: {error}"));
            }
        }
        if plan.flatten_atrous {
            atrous::flatten_atrous_convolutions(graph, &protected);
        }
        if plan.symmetric_atrous {
            legalize::dilated_convolutions_as_symmetric_atrous(graph);
        }
        if plan.symmetric_mirror_pads {
            legalize::symmetric_mirror_pads_as_slices(graph, &protected);
        }
        if plan.decompose_batch_norms {
            legalize::decompose_batch_norms(graph, "AddV2", &protected);
        }
        if plan.placeholders_without_defaults {
            // Declared inputs say which ones the app feeds; the others keep their default.
            let fed: Option<HashSet<String>> = (!context.inputs.is_empty()).then(|| {
                context
                    .inputs
                    .iter()
                    .map(|n| crate::graph::node_name(n).to_string())
                    .collect()
            });
            legalize::placeholders_without_defaults(graph, fed.as_ref());
        }
        if plan.resource_gathers {
            legalize::resource_gathers_to_gather_v2(graph);
        }
        if plan.pads {
            legalize::dilated_convolutions_as_space_to_batch(graph);
            legalize::space_to_batch_paddings_apart(graph, &protected);
            legalize::pads_into_convolutions(graph, &protected);
            legalize::pads_as_concats(graph, &protected);
            let fed: HashSet<String> = context
                .inputs
                .iter()
                .map(|n| crate::graph::node_name(n).to_string())
                .collect();
            legalize::non_negative_axes(graph, &protected, &fed);
            legalize::unpacks_as_slices(graph);
        }
        legalize::remove_check_numerics(graph, &protected);
        leftovers::remove_leftovers(graph, &protected);
        if plan.decompose_batch_norms {
            // Norms whose parameters were Consts only behind the Identities just removed (an
            // unfolded TF1 graph); a no-op after the standard pipeline, which folds them all.
            legalize::decompose_batch_norms(graph, "AddV2", &protected);
        }
        if plan.downgrade_batch_norms {
            legalize::downgrade_batch_norms(graph);
        }
        if plan.add_v2_to_add {
            legalize::rename_ops(graph, "AddV2", "Add");
        }
        let profile = Target::by_name(target).map_err(|e| context.error(e.to_string()))?;
        strip_rejected_attributes(graph, profile, context);
        if plan.tensor_content {
            // What the target reads from `int_val` stays there (an ExpandDims axis of shape
            // [1] moved to tensor_content made a loadable graph unloadable), and gets it.
            let int_val = consts_read_from_int_val(graph, profile);
            legalize::constants_as_tensor_content(graph, &int_val)?;
            legalize::constants_in_int_val(graph, &int_val)?;
        }
        if plan.explicit_values {
            legalize::constants_with_explicit_values(graph)?;
        }
        if plan.explicit_data_formats {
            legalize::explicit_data_formats(graph);
        }
        if plan.private_pack_constants {
            legalize::constants_private_to_packs(graph)?;
        }
        if plan.output_shapes {
            static_shapes::add_output_shapes(graph)?;
        } else {
            // The rewrites change what some nodes output (a dilated convolution now reads a
            // SpaceToBatchND): `_output_shapes` written before would contradict the graph,
            // which TensorFlow refuses to import.
            static_shapes::refresh_output_shapes(graph)?;
        }
        restore_fed_consts(graph, fed_consts);
        report_what_remains(graph, profile, context);
        Ok(())
    }
}

/// Turns every Const named in `inputs` into a Placeholder of its dtype and shape (keeping its
/// device and control inputs) and returns the Consts, for [`restore_fed_consts`].
fn fed_consts_as_placeholders(graph: &mut GraphDef, inputs: &[String]) -> Vec<NodeDef> {
    let fed: HashSet<&str> = inputs.iter().map(|n| crate::graph::node_name(n)).collect();
    let mut saved = Vec::new();
    for node in graph
        .node
        .iter_mut()
        .filter(|n| n.op == "Const" && fed.contains(n.name.as_str()))
    {
        let value = attrs::tensor(node, "value");
        let dtype = value.map_or_else(
            || attrs::dtype(node, "dtype").map_or(0, |d| d as i32),
            |v| v.dtype,
        );
        let shape = value.and_then(|v| v.tensor_shape.clone());
        let mut stand_in = crate::graph::edit::placeholder(node.name.clone(), dtype, shape);
        stand_in.device = node.device.clone();
        stand_in.input = node.input.clone();
        saved.push(std::mem::replace(node, stand_in));
    }
    saved
}

/// Puts back the Consts [`fed_consts_as_placeholders`] stood in for, where their stand-ins are
/// now (they are protected: no rewrite removes or renames them).
fn restore_fed_consts(graph: &mut GraphDef, saved: Vec<NodeDef>) {
    if saved.is_empty() {
        return;
    }
    let mut saved: std::collections::HashMap<String, NodeDef> =
        saved.into_iter().map(|n| (n.name.clone(), n)).collect();
    for node in &mut graph.node {
        if node.op == "Placeholder" {
            if let Some(original) = saved.remove(&node.name) {
                *node = original;
            }
        }
    }
}

/// Warns about every node the target still cannot load once the rewrites are done (what
/// `graphopt check` would refuse), then says how many and where to go from there.
fn report_what_remains(graph: &GraphDef, profile: &Target, context: &TransformContext<'_>) {
    let problems = targets::check(graph, profile);
    let nodes = targets::blocking_nodes(&problems).len();
    if nodes == 0 {
        return;
    }
    for problem in problems.iter().filter(|p| p.blocking) {
        context.warn(format!("left for {}: {problem}", profile.name));
    }
    let dynamic = graph
        .node
        .iter()
        .filter(|n| n.op == "Placeholder" && !has_static_shape(n))
        .map(|n| n.name.as_str())
        .collect::<Vec<_>>();
    let hint = if dynamic.is_empty() {
        String::new()
    } else {
        format!(
            "; inputs of unknown shape ({}) keep shape arithmetic and padding that fix_input_shapes before legalize lets fold",
            dynamic.join(", ")
        )
    };
    context.warn(format!(
        "{nodes} node(s) that {} {} cannot load remain, which no rewrite of legalize handles{hint}",
        profile.name, profile.version
    ));
}

/// The Consts the profile's `const_int_val` constraints say the target reads from `int_val`.
fn consts_read_from_int_val(graph: &GraphDef, profile: &Target) -> HashSet<String> {
    let mut names = HashSet::new();
    for constraint in &profile.constraints {
        if let Constraint::ConstIntVal {
            inputs, through, ..
        } = constraint
        {
            names.extend(legalize::consts_read_at(graph, inputs, through));
        }
    }
    names
}

/// Whether a Placeholder declares a shape with every dimension known.
fn has_static_shape(node: &NodeDef) -> bool {
    attrs::shape(node, "shape")
        .is_some_and(|s| !s.unknown_rank && s.dim.iter().all(|d| d.size >= 0))
}

/// Strips every attribute the target's profile rejects (its `attrs_absent` constraints) where
/// that keeps the node's meaning, and warns about the ones left.
fn strip_rejected_attributes(
    graph: &mut GraphDef,
    profile: &Target,
    context: &TransformContext<'_>,
) {
    let target = &profile.name;
    for constraint in &profile.constraints {
        let Constraint::AttrsAbsent { ops, attrs, .. } = constraint else {
            continue;
        };
        let ops: Vec<&str> = ops.iter().map(String::as_str).collect();
        let names: Vec<&str> = attrs.iter().map(String::as_str).collect();
        for (node, attr) in legalize::strip_attributes(graph, &ops, &names).kept {
            context.warn(format!(
                "{node}: attribute '{attr}', which {target} rejects, kept: it does not hold its OpDef default (and is read here), so removing it could change the node"
            ));
        }
    }
}
