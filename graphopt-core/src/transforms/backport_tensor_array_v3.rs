//! `backport_tensor_array_v3`: rewrites the TensorArray*V3 ops as their V2 forms for old
//! runtimes. TensorArrayV3 (and TensorArrayGradV3) have a second output, the flow scalar, that
//! V2 lacks: readers of it get a Const 1.0 named `NODE/replacement_flow_node`, as TensorFlow's
//! transform does. The V3-only `identical_element_shapes` attribute is dropped.

use std::collections::HashMap;

use super::{Transform, TransformContext};
use crate::error::Result;
use crate::graph::edit::{const_node, NameReserver};
use crate::graph::InputRef;
use crate::proto::GraphDef;
use crate::tensor::{Data, Tensor};

pub struct BackportTensorArrayV3;

const RENAMES: &[(&str, &str)] = &[
    ("TensorArrayV3", "TensorArrayV2"),
    ("TensorArrayGradV3", "TensorArrayGradV2"),
    ("TensorArrayWriteV3", "TensorArrayWriteV2"),
    ("TensorArrayReadV3", "TensorArrayReadV2"),
    ("TensorArrayGatherV3", "TensorArrayGatherV2"),
    ("TensorArrayScatterV3", "TensorArrayScatterV2"),
    ("TensorArrayConcatV3", "TensorArrayConcatV2"),
    ("TensorArraySplitV3", "TensorArraySplitV2"),
    ("TensorArraySizeV3", "TensorArraySizeV2"),
    ("TensorArrayCloseV3", "TensorArrayCloseV2"),
];

impl Transform for BackportTensorArrayV3 {
    fn name(&self) -> &str {
        "backport_tensor_array_v3"
    }

    fn summary(&self) -> &str {
        "rewrite TensorArray*V3 ops as V2 for old runtimes"
    }

    fn apply(&self, graph: &mut GraphDef, _context: &TransformContext<'_>) -> Result<()> {
        let renames: HashMap<&str, &str> = RENAMES.iter().copied().collect();
        let mut flow_sources = HashMap::new();
        let mut flows = Vec::new();
        // The graph may have a node of that name already (made only where a flow is needed).
        let mut names: Option<NameReserver> = None;
        for i in 0..graph.node.len() {
            let Some(v2) = renames.get(graph.node[i].op.as_str()) else {
                continue;
            };
            if matches!(
                graph.node[i].op.as_str(),
                "TensorArrayV3" | "TensorArrayGradV3"
            ) {
                let names = names.get_or_insert_with(|| NameReserver::new(graph));
                let node = &graph.node[i];
                let name = names.reserve(&format!("{}/replacement_flow_node", node.name));
                flow_sources.insert(node.name.clone(), name.clone());
                let one = Tensor::from_data(Data::F32(ndarray::arr0(1.0f32).into_dyn()));
                flows.push(const_node(name, node.device.clone(), &one));
            }
            let node = &mut graph.node[i];
            node.op = (*v2).to_string();
            node.attr.remove("identical_element_shapes");
        }
        let mut used = std::collections::HashSet::new();
        for node in &mut graph.node {
            for input in &mut node.input {
                let parsed = InputRef::parse(input);
                if parsed.control || parsed.port != 1 {
                    continue;
                }
                if let Some(flow) = flow_sources.get(parsed.node) {
                    *input = flow.clone();
                    used.insert(flow.clone());
                }
            }
        }
        graph
            .node
            .extend(flows.into_iter().filter(|n| used.contains(&n.name)));
        Ok(())
    }
}
