"""Node counts of graphopt against TensorFlow's Grappler on the five Keras 3 CNNs (issue 14).

The committed fixtures are compared with Grappler by tests/fixtures/record_grappler.py; this
does the same on the real architectures the issue was measured on. Run from the repository
root in the fixture virtualenv (TensorFlow installed), with graphopt's release binary built:

    cargo build --release -p graphopt-cli
    /tmp/tfvenv/bin/python bench/compare_grappler.py --graphopt target/release/graphopt \
        [--models resnet50,inception_v3,mobilenet_v2,efficientnet_b0,densenet121] \
        [--work target/tmp/compare_tf] [--json OUT.json]

The models are bench/compare_tf.py's: Keras 3 applications with random weights (seed 0),
exported with `model.export` and frozen with `graphopt freeze --saved_model_dir` into
--work/NAME.pb. Whatever is missing there is made the way compare_tf.py makes it (its export
worker, then graphopt freeze); nothing is committed. Input and output names are the ones
compare_tf.py uses: those `graphopt summarize --json` reports for the frozen graph.

For each model it reports the main-graph node count of

  original    the frozen graph;
  Grappler    TensorFlow's Grappler with exactly record_grappler.py's configuration (its
              grappler_config() and meta_graph(), imported, not copied: the optimizers pruning,
              common_subgraph_elimination, constfold, shape, arithmetic, loop, dependency), the
              graph's inputs as feeds and outputs as fetches;
  standard    graphopt's standard pipeline (compare_tf.py's STANDARD) plus
              merge_duplicate_nodes before sort_by_execution_order, the pipeline issue 14's
              figures were measured with;
  @deploy     `graphopt transform --transforms=@deploy` (the release CLI);

and, for Grappler's output, the standard pipeline's and @deploy's, the largest relative error
against the original (largest |difference| over the largest |original output|, as
record_grappler.py and graphopt's tests measure it) when TensorFlow runs each, with its own
graph rewrites switched off (record_grappler.run_as_is), on one input drawn from a standard
normal distribution with numpy seed 0, batch 1; of the output, and of the logits (the input
of the graph's one Softmax, found by op in each graph, since with random weights some of
these softmaxes are uniform to 1e-7). Every value must be finite.

It prints a Markdown table (docs/benchmarks.md, "Node counts against Grappler on the five
Keras CNNs"), then per model whether @deploy is larger than Grappler and the difference of
their main-graph op histograms (each op whose counts differ, Grappler's count and @deploy's).
Function-library bodies, if any, are counted apart. The transformed graphs are left in --work
as NAME.standard_merge.pb and NAME.deploy.pb.
"""
import argparse
import collections
import json
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.dont_write_bytecode = True  # no __pycache__ beside the imported scripts
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT / "tests" / "fixtures"))

import compare_tf  # noqa: E402  (MODELS, STANDARD, the export worker)
import record_grappler  # noqa: E402  (Grappler's configuration; imports TensorFlow)

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from tensorflow.core.framework import graph_pb2  # noqa: E402
from tensorflow.python.grappler import tf_optimizer  # noqa: E402

FIVE_CNNS = "resnet50,inception_v3,mobilenet_v2,efficientnet_b0,densenet121"

# The standard pipeline with duplicates merged, as issue 14 measured it.
STANDARD_MERGE = compare_tf.STANDARD.replace(
    "sort_by_execution_order", "merge_duplicate_nodes sort_by_execution_order")
assert STANDARD_MERGE != compare_tf.STANDARD


def read_graph(path):
    graph_def = graph_pb2.GraphDef()
    graph_def.ParseFromString(pathlib.Path(path).read_bytes())
    return graph_def


def counts(graph_def):
    functions = record_grappler.function_node_counts(graph_def)
    return {
        "node_count": len(graph_def.node),
        "function_node_count": sum(functions.values()),
        "op_counts": dict(sorted(collections.Counter(n.op for n in graph_def.node).items())),
    }


def frozen_model(graphopt, work, name):
    """--work/NAME.pb, exported and frozen as compare_tf.py does if it is not there yet."""
    saved_model = work / f"{name}_savedmodel"
    frozen = work / f"{name}.pb"
    if not frozen.exists():
        if not (saved_model / "saved_model.pb").exists():
            print(f"[{name}] exporting a Keras SavedModel (random weights) ...", flush=True)
            compare_tf.run_worker("export", name, saved_model)
        subprocess.run([graphopt, "freeze", f"--saved_model_dir={saved_model}",
                        f"--out_graph={frozen}"], check=True)
    return frozen


def graphopt_transform(graphopt, frozen, out, inputs, outputs, transforms):
    subprocess.run([graphopt, "transform", f"--in_graph={frozen}", f"--out_graph={out}",
                    f"--inputs={','.join(inputs)}", f"--outputs={','.join(outputs)}",
                    f"--transforms={transforms}"], check=True)
    return read_graph(out)


def seeded_feeds(graph_def, inputs):
    """One standard-normal input per placeholder, numpy seed 0, unknown dims (batch) 1."""
    by_name = {n.name: n for n in graph_def.node}
    rng = np.random.default_rng(0)
    feeds = []
    for name in inputs:
        node = by_name[name]
        shape = [d.size if d.size >= 0 else 1 for d in node.attr["shape"].shape.dim]
        dtype = np.dtype(tf.dtypes.as_dtype(node.attr["dtype"].type).as_numpy_dtype)
        feeds.append(rng.standard_normal(shape).astype(dtype))
    return feeds


def logits(graph_def):
    """The node whose output 0 feeds the graph's one Softmax, else None. With random weights the
    softmax of MobileNetV2 and EfficientNet-B0 is uniform to 1e-7, so comparing it alone would
    show little; the logits are compared too (relative to their own largest value)."""
    softmax = [n for n in graph_def.node if n.op == "Softmax"]
    if len(softmax) != 1:
        return None
    name, _, port = softmax[0].input[0].partition(":")
    return name if port in ("", "0") else None


def max_rel_error(values, wanted):
    """Largest |difference| over the largest |expected|, the worst output."""
    worst = 0.0
    for value, want in zip(values, wanted):
        assert value.shape == want.shape, f"shape {value.shape}, original {want.shape}"
        diff = float(np.max(np.abs(value.astype(np.float64) - want.astype(np.float64))))
        scale = max(float(np.max(np.abs(want))), np.finfo(np.float64).tiny)
        worst = max(worst, diff / scale)
    return worst


def histogram_difference(grappler, ours):
    """{op: (Grappler's count, ours)} for every op whose counts differ."""
    ops = sorted(set(grappler) | set(ours))
    return {op: (grappler.get(op, 0), ours.get(op, 0)) for op in ops
            if grappler.get(op, 0) != ours.get(op, 0)}


def compare(graphopt, work, name):
    frozen = frozen_model(graphopt, work, name)
    summary = json.loads(subprocess.run([graphopt, "summarize", str(frozen), "--json"],
                                        capture_output=True, text=True, check=True).stdout)
    inputs = [i["name"] for i in summary["inputs"]]
    outputs = [o["name"] for o in summary["outputs"]]
    original = read_graph(frozen)
    print(f"[{name}] {frozen}, {len(original.node)} nodes, inputs {','.join(inputs)}, "
          f"outputs {','.join(outputs)}", flush=True)

    grappler = tf_optimizer.OptimizeGraph(
        record_grappler.grappler_config(),
        record_grappler.meta_graph(original, inputs, outputs), verbose=False)
    standard = graphopt_transform(graphopt, frozen, work / f"{name}.standard_merge.pb",
                                  inputs, outputs, STANDARD_MERGE)
    deploy = graphopt_transform(graphopt, frozen, work / f"{name}.deploy.pb",
                                inputs, outputs, "@deploy")

    feeds = seeded_feeds(original, inputs)
    fetches = outputs + ([logits(original)] if logits(original) else [])
    wanted = record_grappler.run_as_is(original, inputs, fetches, feeds)
    assert all(np.all(np.isfinite(w)) for w in wanted), f"{name}: a non-finite original value"
    result = {"inputs": inputs, "outputs": outputs, "original": counts(original)}
    for label, graph_def in (("grappler", grappler), ("standard_merge", standard),
                             ("deploy", deploy)):
        result[label] = counts(graph_def)
        ours = outputs + ([logits(graph_def)] if len(fetches) > len(outputs) else [])
        assert None not in ours, f"{name}: {label} has no single Softmax to read logits before"
        values = record_grappler.run_as_is(graph_def, inputs, ours, feeds)
        for value in values:
            assert np.all(np.isfinite(value)), f"{name}: {label} computes a non-finite value"
        result[label]["max_rel_error"] = max_rel_error(values[:len(outputs)],
                                                       wanted[:len(outputs)])
        result[label]["logits_max_rel_error"] = (
            max_rel_error(values[len(outputs):], wanted[len(outputs):])
            if len(ours) > len(outputs) else None)
    result["deploy_minus_grappler"] = histogram_difference(result["grappler"]["op_counts"],
                                                           result["deploy"]["op_counts"])
    print(f"[{name}] Grappler {result['grappler']['node_count']}, standard + merge "
          f"{result['standard_merge']['node_count']}, @deploy {result['deploy']['node_count']}",
          flush=True)
    return result


def error(figures):
    """'output / logits' max rel errors of one graph, as the table prints them."""
    logits_error = figures["logits_max_rel_error"]
    return (f"{figures['max_rel_error']:.1e} / "
            + (f"{logits_error:.1e}" if logits_error is not None else "-"))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--graphopt", required=True, help="graphopt release binary")
    parser.add_argument("--models", default=FIVE_CNNS)
    parser.add_argument("--work", default=str(ROOT / "target/tmp/compare_tf"))
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args()

    graphopt = str(pathlib.Path(args.graphopt).resolve())
    work = pathlib.Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    results = {name: compare(graphopt, work, name) for name in args.models.split(",")}

    print()
    print(f"TensorFlow {tf.__version__}; Grappler: {', '.join(record_grappler.OPTIMIZERS)}")
    print(f"standard + merge: {STANDARD_MERGE}")
    print("max rel error: largest |difference| / largest |original|, TensorFlow running both on "
          "one seeded input; output (softmax) and logits (the Softmax's input)")
    print()
    print("| model | original | Grappler | graphopt standard + merge | graphopt `@deploy` "
          "| `@deploy` - Grappler | `@deploy` max rel error, output / logits |")
    print("|---|---:|---:|---:|---:|---:|---|")
    for name, r in results.items():
        ours, theirs = r["deploy"]["node_count"], r["grappler"]["node_count"]
        print(f"| {name} | {r['original']['node_count']} | {theirs} | "
              f"{r['standard_merge']['node_count']} | {ours} | {ours - theirs:+d} | "
              f"{error(r['deploy'])} |")
    print()
    for name, r in results.items():
        print(f"{name}: max rel error, output / logits: Grappler {error(r['grappler'])}, "
              f"standard + merge {error(r['standard_merge'])}")
    bodies = {name: (r["original"]["function_node_count"], r["grappler"]["function_node_count"],
                     r["deploy"]["function_node_count"])
              for name, r in results.items() if r["original"]["function_node_count"]}
    for name, (original, grappler, deploy) in bodies.items():
        print(f"{name}: function bodies {original} nodes, Grappler {grappler}, @deploy {deploy}")
    print()
    for name, r in results.items():
        difference = r["deploy_minus_grappler"]
        verdict = ("LARGER than Grappler" if r["deploy"]["node_count"] > r["grappler"]["node_count"]
                   else "no larger than Grappler")
        print(f"{name}: @deploy {verdict}; ops whose counts differ (Grappler, @deploy):")
        for op, (g, d) in difference.items():
            print(f"    {op:<28} {g:>5} {d:>5}  ({d - g:+d})")
    if args.json:
        pathlib.Path(args.json).write_text(json.dumps(results, indent=1, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
