//! Atrous convolutions: [`flatten_atrous_convolutions`] turns TF1's atrous convolutions, `BatchToSpaceND(conv(SpaceToBatchND(
//! x, block, paddings), filter), block, crops)`, back into one dilated convolution on `x` (the `flatten_atrous_conv` transform).
//!
//! - Conv2D gets `dilations` and the padding the pattern implied (SAME, VALID or EXPLICIT);
//!   DepthwiseConv2dNative, whose CPU kernel in TensorFlow rejects dilations, gets a
//!   zero-dilated filter instead, as TensorFlow's transform does for both.
//! - TensorFlow's transform forces SAME padding whatever the paddings and crops were; graphopt
//!   derives the padding from them (paddings minus crops) and leaves the pattern alone when no
//!   padding reproduces it.
//! - The inner convolution must be stride 1, VALID, NHWC; block shape, paddings and crops must
//!   be Consts (run `fold_constants` first); the two block shapes must agree.
//! - The new convolution takes the BatchToSpaceND's name.

use std::collections::HashSet;

use crate::graph::attrs;
use crate::graph::edit::{const_value, data_inputs, Edits, Uses};

use crate::proto::{attr_value, AttrValue, GraphDef};
use crate::tensor::Tensor;

/// Flattens every atrous pattern that one dilated convolution reproduces; `protected` nodes
/// keep their names.
pub fn flatten_atrous_convolutions(graph: &mut GraphDef, protected: &HashSet<String>) {
    let uses = Uses::new(graph);
    let mut edits = Edits::new(graph, protected);
    for i in 0..graph.node.len() {
        if graph.node[i].op == "BatchToSpaceND" && edits.free(&[i]) {
            let at = crate::graph::node_label(&graph.node[i]);
            crate::budget::at(at, || flatten(graph, &uses, &mut edits, protected, i));
        }
    }
    edits.finish(graph);
}

fn ints(graph: &GraphDef, uses: &Uses, input: &str) -> Option<Vec<i64>> {
    let value = const_value(&graph.node[uses.producer(input)?])?;
    crate::eval::cast_tensor(&value, crate::proto::DataType::DtInt64)
        .ok()
        .and_then(|t| match t.into_data() {
            crate::tensor::Data::I64(a) => Some(a.iter().copied().collect()),
            _ => None,
        })
}

fn int_list(values: &[i64]) -> AttrValue {
    AttrValue {
        value: Some(attr_value::Value::List(Box::new(
            crate::proto::attr_value::ListValue {
                i: values.to_vec(),
                ..Default::default()
            },
        ))),
    }
}

fn flatten(
    graph: &mut GraphDef,
    uses: &Uses,
    edits: &mut Edits,
    protected: &HashSet<String>,
    b2s: usize,
) {
    let b2s_inputs: Vec<String> = data_inputs(&graph.node[b2s])
        .iter()
        .map(|s| s.to_string())
        .collect();
    let [conv_out, block2, crops_input] = b2s_inputs.as_slice() else {
        return;
    };
    let Some(conv) = uses.producer(conv_out) else {
        return;
    };
    if !matches!(
        graph.node[conv].op.as_str(),
        "Conv2D" | "DepthwiseConv2dNative"
    ) || uses.count(conv) != 1
        || protected.contains(&graph.node[conv].name)
    {
        return;
    }
    let conv_node = &graph.node[conv];
    let strides = attrs::ints(conv_node, "strides").unwrap_or_default();
    let dilations = attrs::ints(conv_node, "dilations").unwrap_or_else(|| vec![1; 4]);
    let nhwc = attrs::string(conv_node, "data_format").is_none_or(|f| f == "NHWC");
    if attrs::string(conv_node, "padding").as_deref() != Some("VALID")
        || strides.iter().any(|&s| s != 1)
        || dilations.iter().any(|&d| d != 1)
        || !nhwc
    {
        return;
    }
    let conv_inputs: Vec<String> = data_inputs(conv_node)
        .iter()
        .map(|s| s.to_string())
        .collect();
    let [s2b_out, filter_input] = conv_inputs.as_slice() else {
        return;
    };
    let Some(s2b) = uses.producer(s2b_out) else {
        return;
    };
    if graph.node[s2b].op != "SpaceToBatchND"
        || uses.count(s2b) != 1
        || protected.contains(&graph.node[s2b].name)
    {
        return;
    }
    let s2b_inputs: Vec<String> = data_inputs(&graph.node[s2b])
        .iter()
        .map(|s| s.to_string())
        .collect();
    let [x, block1, paddings_input] = s2b_inputs.as_slice() else {
        return;
    };
    let (Some(block), Some(block_again), Some(pads), Some(crops)) = (
        ints(graph, uses, block1),
        ints(graph, uses, block2),
        ints(graph, uses, paddings_input),
        ints(graph, uses, crops_input),
    ) else {
        return;
    };
    if block.len() != 2
        || block != block_again
        || pads.len() != 4
        || crops.len() != 4
        || block.iter().any(|&b| b < 1)
    {
        return;
    }
    // Padding the dilated convolution needs: the SpaceToBatch padding minus what is cropped
    // (both from the model: checked).
    let Some(explicit) = pads
        .iter()
        .zip(&crops)
        .map(|(p, c)| p.checked_sub(*c))
        .collect::<Option<Vec<i64>>>()
    else {
        return;
    };
    if explicit.iter().any(|&p| p < 0) {
        return;
    }
    let Some(filter) = uses
        .producer(filter_input)
        .and_then(|f| const_value(&graph.node[f]).map(|v| (f, v)))
    else {
        return;
    };
    let (filter_node, filter_value) = filter;
    let [kh, kw, ..] = filter_value.shape() else {
        return;
    };
    // The dilated filter's extent, `(k - 1) * block`, plus 1; `None` past i64.
    let extent = |k: usize, b: i64| {
        i64::try_from(k)
            .ok()?
            .checked_sub(1)?
            .checked_mul(b)?
            .checked_add(1)
    };
    let effective = [extent(*kh, block[0]), extent(*kw, block[1])];
    let same = (0..2).all(|d| {
        let total = explicit[2 * d].checked_add(explicit[2 * d + 1]);
        // SAME with stride 1 pads effective - 1 in total, the smaller half first.
        total.is_some_and(|total| {
            effective[d].is_some_and(|e| total == e - 1) && explicit[2 * d] == total / 2
        })
    });
    let padding = if explicit.iter().all(|&p| p == 0) {
        "VALID"
    } else if same {
        "SAME"
    } else {
        "EXPLICIT"
    };
    let depthwise = graph.node[conv].op == "DepthwiseConv2dNative";
    let mut involved = vec![b2s, conv, s2b, filter_node];
    involved.extend(
        [block1, block2, paddings_input, crops_input]
            .iter()
            .filter_map(|i| uses.producer(i)),
    );
    if !edits.free(&involved) {
        return;
    }
    if depthwise && padding == "EXPLICIT" {
        return;
    }
    let new_filter = if depthwise {
        dilate_filter(&filter_value, block[0] as usize, block[1] as usize)
    } else {
        None
    };
    if depthwise && new_filter.is_none() {
        return;
    }
    edits.touch(&involved);
    if let Some(filter) = new_filter {
        edits.set_input_value(graph, uses, conv, 1, filter_node, &filter);
    }
    let name = graph.node[b2s].name.clone();
    let controls: Vec<String> = graph.node[b2s]
        .input
        .iter()
        .chain(&graph.node[s2b].input)
        .filter(|i| i.starts_with('^'))
        .cloned()
        .collect();
    let node = &mut graph.node[conv];
    node.name = name;
    if let Some(first) = node.input.first_mut() {
        *first = x.clone();
    }
    node.input.extend(controls);
    node.attr.insert(
        "padding".into(),
        AttrValue {
            value: Some(attr_value::Value::S(bytes::Bytes::from(
                padding.as_bytes().to_vec(),
            ))),
        },
    );
    if !depthwise {
        node.attr
            .insert("dilations".into(), int_list(&[1, block[0], block[1], 1]));
    }
    if padding == "EXPLICIT" {
        node.attr.insert(
            "explicit_paddings".into(),
            int_list(&[
                0,
                0,
                explicit[0],
                explicit[1],
                explicit[2],
                explicit[3],
                0,
                0,
            ]),
        );
    }
    edits.removed.insert(b2s);
    edits.removed.insert(s2b);
}

/// A [kh, kw, in, m] filter spread out by `bh`, `bw` with zeros between the taps.
fn dilate_filter(filter: &Tensor, bh: usize, bw: usize) -> Option<Tensor> {
    let crate::tensor::Data::F32(a) = filter.data() else {
        return None;
    };
    let [kh, kw, c, m] = a.shape() else {
        return None;
    };
    // The block sizes come from the model: checked, and the filter asked of the budget.
    let spread = |k: usize, b: usize| k.checked_sub(1)?.checked_mul(b)?.checked_add(1);
    let (h, w) = (spread(*kh, bh)?, spread(*kw, bw)?);
    let count = crate::analysis::geometry::element_count(&[h, w, *c, *m])
        .ok()
        .filter(|&n| isize::try_from(n).is_ok())?;
    crate::budget::alloc_items(count, std::mem::size_of::<f32>(), "the dilated filter").ok()?;
    let mut out = ndarray::ArrayD::<f32>::zeros(ndarray::IxDyn(&[h, w, *c, *m]));
    for ((y, x, ci, mi), &v) in a
        .view()
        .into_dimensionality::<ndarray::Ix4>()
        .ok()?
        .indexed_iter()
    {
        out[[y * bh, x * bw, ci, mi]] = v;
    }
    Some(Tensor::from_data(crate::tensor::Data::F32(out)))
}
