//! Debug aid: which node of a GraphDef tract-tensorflow's builders reject, then each phase.
use tract_tensorflow::prelude::*;
fn main() -> TractResult<()> {
    let path = std::env::args().nth(1).unwrap();
    let tf = tract_tensorflow::tensorflow();
    let graph = tf.read_frozen_from_path(&path)?;
    let ctx = tract_tensorflow::model::ParsingContext::default();
    for node in &graph.node {
        if let Some(b) = tf.op_register.0.get(&node.op) {
            if let Err(e) = b(&ctx, node) {
                eprintln!("{} {}: {e:?}", node.op, node.name);
            }
        }
    }
    let model = tf.model_for_path(&path)?;
    eprintln!("parsed");
    let analysed = model.into_typed()?;
    eprintln!("typed: {} nodes", analysed.nodes().len());
    let decl = analysed.into_decluttered()?;
    eprintln!("decluttered: {} nodes", decl.nodes().len());
    let opt = decl.into_optimized()?;
    eprintln!("optimized: {} nodes", opt.nodes().len());
    Ok(())
}
