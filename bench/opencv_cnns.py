"""Real OpenCV 4.10 on graphopt's legalized output of the five Keras 3 CNNs (issue 10).

Issue 10 measured OpenCV rejecting graphopt's output of all five Keras 3 CNNs; the committed
OpenCV judge (tests/consumers/check_opencv.py) runs only the small fixtures. This runs the real
architectures. From the repository root, in the fixture virtualenv (tensorflow-cpu and
opencv-python-headless==4.10.0.84), with graphopt's release binary built:

    cargo build --release -p graphopt-cli
    /tmp/tfvenv/bin/python bench/opencv_cnns.py --graphopt target/release/graphopt \
        [--models mobilenet_v2,resnet50,inception_v3,efficientnet_b0,densenet121] \
        [--work target/tmp/compare_tf] [--json OUT.json]

The models are bench/compare_tf.py's (Keras 3 applications, random weights, `model.export`,
frozen with `graphopt freeze`) at --work/NAME.pb, made as bench/compare_grappler.py makes them
when missing; nothing is committed. For each model and each pipeline

  standard        compare_tf.py's standard pipeline, then legalize(target=opencv)
  @deploy         @deploy legalize(target=opencv)

each without and with fix_input_shapes(shape="1,S,S,3") first (S the model's image size), it

- runs `graphopt transform` (output left in --work as NAME.opencv_<pipeline>.pb) and
  `graphopt check --target=opencv` on the output;
- loads the output with cv2.dnn.readNetFromTensorflow and runs it, in a child process
  (check_opencv.run_opencv: a crash is a result; the NHWC input fed as OpenCV's NCHW blob), on
  one input drawn from a standard normal distribution with numpy seed 0, batch 1
  (compare_grappler.seeded_feeds);
- runs the ORIGINAL frozen graph in TensorFlow on the same input (record_grappler.run_as_is:
  TensorFlow's own graph rewrites off) and compares, with check_opencv.compare (every element
  within |opencv - tf| <= ATOL + RTOL * |tf|, RTOL 1e-4, ATOL 1e-5), the output (the softmax:
  with random weights it is near uniform and says little) and the logits (the input of the
  graph's one Softmax, found by op as compare_grappler.logits does, in each graph; in OpenCV the
  layer of that name, or of the MatMul its bias add was fused into). The logits of these
  random-weight models can be far smaller than ATOL, so they are also compared with ATOL 0;
  a graph matches when all three comparisons pass;
- records whether `check` agreed with OpenCV: check exits 0 exactly when OpenCV loads.

It prints a Markdown table (docs/benchmarks.md, "Real OpenCV on the five Keras CNNs") and every
failure with OpenCV's message.
"""
import argparse
import datetime
import json
import os
import pathlib
import platform
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.dont_write_bytecode = True  # no __pycache__ beside the imported scripts
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT / "tests" / "fixtures"))
sys.path.insert(0, str(ROOT / "tests" / "consumers"))

import check_opencv  # noqa: E402  (run_opencv, compare, RTOL, ATOL; imports no OpenCV itself)
import compare_grappler  # noqa: E402  (frozen_model, seeded_feeds, logits, read_graph)
import compare_tf  # noqa: E402  (MODELS: image sizes; STANDARD)
import record_grappler  # noqa: E402  (run_as_is; imports TensorFlow)

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

FIVE_CNNS = "mobilenet_v2,resnet50,inception_v3,efficientnet_b0,densenet121"
LEGALIZE = "legalize(target=opencv)"
PIPELINES = {
    "standard": f"{compare_tf.STANDARD} {LEGALIZE}",
    "deploy": f"@deploy {LEGALIZE}",
}


def fix_shape(size):
    return f'fix_input_shapes(shape="1,{size},{size},3")'


def pipelines(size):
    """{label: transforms}: each pipeline as it is, and with the input shape fixed first."""
    out = {}
    for label, transforms in PIPELINES.items():
        out[label] = transforms
        out[f"{label}_fixed"] = f"{fix_shape(size)} {transforms}"
    return out


def logits_layer(graph_def):
    """The logits as an OpenCV layer name for check_opencv's LOADER: the node feeding the one
    Softmax, or (`|`) the node before it when that is a bias add OpenCV fuses into its MatMul."""
    name = compare_grappler.logits(graph_def)
    if name is None:
        return None
    node = next(n for n in graph_def.node if n.name == name)
    if node.op in ("BiasAdd", "Add", "AddV2") and node.input:
        return f"{name}|{node.input[0].split(':')[0]}"
    return name


def check(graphopt, graph):
    run = subprocess.run([graphopt, "check", "--target=opencv", str(graph)],
                         capture_output=True, text=True)
    lines = [l for l in (run.stdout + run.stderr).splitlines() if l.strip()]
    return run.returncode, lines


def judge(graphopt, work, name, label, transforms, inputs, outputs, x_npy, wanted):
    """One pipeline on one model: transform, check, OpenCV; the record."""
    out = work / f"{name}.opencv_{label}.pb"
    record = {"transforms": transforms}
    run = subprocess.run([graphopt, "transform", f"--in_graph={work / (name + '.pb')}",
                          f"--out_graph={out}", f"--inputs={','.join(inputs)}",
                          f"--outputs={','.join(outputs)}", f"--transforms={transforms}"],
                         capture_output=True, text=True)
    if run.returncode != 0:
        record["transform_error"] = run.stderr.strip().splitlines()[-1:]
        return record
    record["transform_warnings"] = [l for l in run.stderr.splitlines() if l.strip()]
    graph_def = compare_grappler.read_graph(out)
    record["nodes"] = len(graph_def.node)
    record["check_exit"], record["check_report"] = check(graphopt, out)
    layer = logits_layer(graph_def)
    got_path = work / f"{name}.opencv_{label}.npz"
    record["loaded"], error = check_opencv.run_opencv(out, x_npy, got_path,
                                                      [layer] if layer else [])
    record["check_agrees"] = (record["check_exit"] == 0) == record["loaded"]
    if error is not None:
        record["opencv_error"] = error
        return record
    got = np.load(got_path)
    got_path.unlink()
    record["output"] = check_opencv.compare(got["arr_0"], wanted[0])
    record["logits"] = check_opencv.compare(got["arr_1"], wanted[1]) if layer else None
    if layer:
        # With random weights the logits can be far below ATOL, which then passes anything.
        # So also: the logits over TensorFlow's largest |logit| (the same criterion at unit
        # scale, ATOL then relative to that largest logit), and with no absolute floor at all.
        scale = max(float(np.abs(wanted[1]).max()), np.finfo(np.float64).tiny)
        record["logits_max_abs"] = scale
        record["logits_normalized"] = check_opencv.compare(
            got["arr_1"].astype(np.float64) / scale, wanted[1].astype(np.float64) / scale)
        record["logits_atol0"] = check_opencv.compare(got["arr_1"], wanted[1], atol=0.0)
    return record


def model(graphopt, work, name):
    size = compare_tf.MODELS[name][1]
    frozen = compare_grappler.frozen_model(graphopt, work, name)
    summary = json.loads(subprocess.run([graphopt, "summarize", str(frozen), "--json"],
                                        capture_output=True, text=True, check=True).stdout)
    inputs = [i["name"] for i in summary["inputs"]]
    outputs = [o["name"] for o in summary["outputs"]]
    assert len(inputs) == 1 and len(outputs) == 1, f"{name}: one input and one output expected"
    original = compare_grappler.read_graph(frozen)
    feeds = compare_grappler.seeded_feeds(original, inputs)
    assert feeds[0].shape == (1, size, size, 3), f"{name}: input {feeds[0].shape}"
    x_npy = work / f"{name}.opencv_input.npy"
    np.save(x_npy, feeds[0])
    logits = compare_grappler.logits(original)
    assert logits, f"{name}: no single Softmax to read the logits before"
    wanted = record_grappler.run_as_is(original, inputs, outputs + [logits], feeds)
    assert all(np.all(np.isfinite(w)) for w in wanted), f"{name}: a non-finite original value"
    results = {}
    for label, transforms in pipelines(size).items():
        print(f"[{name}] {label}: {transforms}", flush=True)
        results[label] = judge(graphopt, work, name, label, transforms, inputs, outputs, x_npy,
                               wanted)
        print(f"[{name}] {label}: {json.dumps(results[label])[:2000]}", flush=True)
    x_npy.unlink()
    return results


def mismatched(*comparisons):
    """'a / b / c': each comparison's count of mismatched elements, or its error."""
    return " / ".join("-" if c is None else c.get("error") or
                      f"{c['mismatched_elements']}" for c in comparisons)


def rel(value):
    return "NaN" if value is None else f"{value:.1e}"


def verdict(r):
    if "transform_error" in r:
        return "transform failed"
    if not r["loaded"]:
        return "OpenCV does not load it"
    if "opencv_error" in r:
        return "OpenCV loads it, fails to run it"
    ok = all((r.get(k) or {}).get("matches_tensorflow") for k in ("output", "logits",
                                                                  "logits_normalized"))
    return "matches TensorFlow" if ok else "loads, DIFFERS from TensorFlow"


def versions(graphopt):
    cv2_version = subprocess.run([sys.executable, "-c", "import cv2; print(cv2.__version__)"],
                                 capture_output=True, text=True, check=True).stdout.strip()
    ours = subprocess.run([graphopt, "--version"], capture_output=True, text=True).stdout.strip()
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo")
                if l.startswith("model name")), platform.processor())
    return {"date": datetime.date.today().isoformat(), "opencv": cv2_version,
            "tensorflow": tf.__version__, "numpy": np.__version__,
            "python": platform.python_version(), "graphopt": ours,
            "machine": f"{cpu}, {os.cpu_count()} cores, {platform.system()} {platform.release()}"}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--graphopt", required=True, help="graphopt release binary")
    parser.add_argument("--models", default=FIVE_CNNS)
    parser.add_argument("--work", default=str(ROOT / "target/tmp/compare_tf"))
    parser.add_argument("--json", help="also write the records to this file")
    args = parser.parse_args()

    graphopt = str(pathlib.Path(args.graphopt).resolve())
    work = pathlib.Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    about = versions(graphopt)
    if not about["opencv"].startswith(check_opencv.OPENCV_RELEASE):
        sys.exit(f"judges with OpenCV {check_opencv.OPENCV_RELEASE}x, found {about['opencv']}")
    results = {name: model(graphopt, work, name) for name in args.models.split(",")}

    print()
    print("; ".join(f"{k} {v}" for k, v in about.items()))
    print(f"standard: {PIPELINES['standard']}")
    print(f"deploy: {PIPELINES['deploy']}; *_fixed: fix_input_shapes(shape=\"1,S,S,3\") first")
    print(f"element-wise: |opencv - tf| <= {check_opencv.ATOL:g} + {check_opencv.RTOL:g} * |tf|, "
          "TensorFlow running the original frozen graph")
    print()
    print("logits mismatched: elements over ATOL + RTOL * |tf|: as they are / over TensorFlow's "
          "largest |logit| / with ATOL 0. Worst element: |opencv - tf| / |tf| at the element "
          "nearest its bound (normalized logits) / the largest over all elements (ATOL 0). "
          "max rel: largest |difference| over largest |tf|.")
    print()
    print("| model | pipeline | nodes | `check` exit | OpenCV loads | `check` agrees "
          "| largest abs logit | logits mismatched | logits worst element rel error "
          "| logits max rel | softmax mismatched, max rel | verdict |")
    print("|---|---|---:|---:|---|---|---:|---|---|---:|---|---|")
    for name, by_label in results.items():
        for label, r in by_label.items():
            if "transform_error" in r:
                print(f"| {name} | {label} | | | | | | | | | | transform failed |")
                continue
            row = [name, label, r["nodes"], r["check_exit"], "yes" if r["loaded"] else "no",
                   "yes" if r["check_agrees"] else "NO"]
            if r.get("logits") and "error" not in r["logits"]:
                n, z = r["logits_normalized"], r["logits_atol0"]
                row += [f"{r['logits_max_abs']:.2g}",
                        mismatched(r["logits"], n, z),
                        f"{rel(n['worst_element_rel_error'])} / "
                        f"{rel(z['worst_element_rel_error'])}",
                        rel(r["logits"]["max_rel_error"])]
            else:
                row += ["-", mismatched(r.get("logits")), "-", "-"]
            o = r.get("output")
            row += ["-" if o is None else o.get("error") or
                    f"{o['mismatched_elements']}, {rel(o['max_rel_error'])}", verdict(r)]
            print("| " + " | ".join(str(c) for c in row) + " |")
    print()
    for name, by_label in results.items():
        for label, r in by_label.items():
            if "transform_error" in r:
                print(f"{name} {label}: graphopt transform: {r['transform_error']}")
            if "opencv_error" in r:
                print(f"{name} {label}: OpenCV: {r['opencv_error']}")
            if r.get("check_exit"):
                print(f"{name} {label}: check: " + " / ".join(r["check_report"][:4]))
    if args.json:
        pathlib.Path(args.json).write_text(
            json.dumps({"about": about, "models": results}, indent=1, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
