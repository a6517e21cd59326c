"""Judges graphopt's legalized graphs with the real consumer: OpenCV's dnn TensorFlow importer.

For every CNN fixture, runs `graphopt transform` with the pipeline below, loads the result with
`cv2.dnn.readNetFromTensorflow`, runs it on TensorFlow's recorded inputs and compares with
TensorFlow's recorded outputs. Writes tests/fixtures/expected/opencv.json with, per fixture, the
pipeline, the SHA-256 of the graph judged, whether it loaded, and the errors. OpenCV matches
TensorFlow when every element does: |opencv - tf| <= ATOL + RTOL * |tf| (compare() below; the
record also keeps the largest error over the largest |tf|, `max_rel_error`). The Rust test
`graphopt-core/tests/consumers.rs` legalizes the fixtures afresh and fails when a judged
graph's bytes no longer match this record, so the record always speaks of today's output.

    cargo build -p graphopt-cli
    /tmp/tfvenv/bin/python tests/consumers/check_opencv.py [path/to/graphopt]

Needs opencv-python-headless==4.10.0.84 and tensorflow-cpu (only to decode the recorded
TensorProtos, in a separate process: OpenCV and TensorFlow each bundle protobuf).
"""
import hashlib
import json
import os
import pathlib
import subprocess
import sys
import tempfile

ROOT = pathlib.Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures"
STANDARD = ("strip_unused_nodes remove_nodes(op=Identity, op=CheckNumerics) "
            "fold_constants(ignore_errors=true) fold_batch_norms fold_old_batch_norms "
            "sort_by_execution_order")
# Every CNN fixture, with the pipeline a user would run for OpenCV. OpenCV's importer has no
# Shape arithmetic, so a graph with an unknown batch gets its input shape fixed first.
CASES = {
    "keras_cnn": f"{STANDARD} legalize(target=opencv)",
    "tf1_conv_bn": f"{STANDARD} legalize(target=opencv)",
    "bn_patterns": f"{STANDARD} legalize(target=opencv)",
    "resize_pad_conv": f"{STANDARD} legalize(target=opencv)",
    "atrous_conv": f"{STANDARD} legalize(target=opencv)",
    "densenet_block": f"{STANDARD} legalize(target=opencv)",
    "efficientnet_block": f'fix_input_shapes(shape="1,32,32,3") {STANDARD} legalize(target=opencv)',
    # The same without fixing the batch: legalize says to fix it, `check` blocks, and OpenCV?
    "efficientnet_block@nofix": f"{STANDARD} legalize(target=opencv)",
    "keras_cnn@deploy": "@deploy legalize(target=opencv)",
    "densenet_block@deploy": "@deploy legalize(target=opencv)",
    "efficientnet_block@deploy": '@deploy fix_input_shapes(shape="1,32,32,3") @deploy legalize(target=opencv)',
    # legalize alone folds what is computed from constants (a batch norm's Rsqrt).
    "keras_cnn@legalize": "legalize(target=opencv)",
    "bn_patterns@legalize": "legalize(target=opencv)",
    "densenet_block@legalize": "legalize(target=opencv)",
    # Each fixture as it is (an empty pipeline): what OpenCV makes of an unprocessed graph, which
    # `check` must predict (OpenCV's own subgraph fusions included).
    **{f"{name}@raw": "" for name in ["keras_cnn", "tf1_conv_bn", "bn_patterns", "resize_pad_conv",
                                       "atrous_conv", "densenet_block", "efficientnet_block"]},
}
# Element-wise: every output element within ATOL + RTOL * |TensorFlow's|. RTOL is the record's
# `tolerance` (the README states it); ATOL covers elements near zero.
RTOL = 1e-4
ATOL = 1e-5
TOLERANCE = RTOL
OPENCV_RELEASE = "4.10."

DECODE = r"""
import sys, numpy as np, os
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
import tensorflow as tf
from tensorflow.core.framework import tensor_pb2
for src, dst in zip(sys.argv[1::2], sys.argv[2::2]):
    t = tensor_pb2.TensorProto(); t.ParseFromString(open(src, "rb").read())
    np.save(dst, tf.make_ndarray(t))
"""

# `LOADER GRAPH X OUT [LAYER...]`: loads GRAPH with OpenCV, feeds the NHWC input X (.npy) as
# OpenCV's NCHW blob and saves forward()'s output to OUT (.npy). With LAYERs, OUT is an .npz:
# arr_0 forward()'s output, arr_k the output of the k-th LAYER, each written `a|b|...` for the
# first of those names OpenCV has a layer of (its importer fuses some nodes into others).
LOADER = r"""
import sys, numpy as np, cv2
net = cv2.dnn.readNetFromTensorflow(sys.argv[1])
print("LOADED", flush=True)
x = np.load(sys.argv[2])
net.setInput(np.transpose(x, (0, 3, 1, 2)) if x.ndim == 4 else x)
layers = sys.argv[4:]
if not layers:
    np.save(sys.argv[3], net.forward())
else:
    known = set(net.getLayerNames())
    chosen = []
    for wanted in layers:
        found = [name for name in wanted.split("|") if name in known]
        if not found:
            sys.exit(f"OpenCV has no layer named {wanted}")
        chosen.append(found[0])
    output = net.forward()
    np.savez(sys.argv[3], output, *net.forward(chosen))
"""


def run_opencv(graph, x_npy, out, layers=()):
    """Loads `graph` with cv2.dnn.readNetFromTensorflow in a child process (OpenCV crashes on
    some graphs, and a crash is a result too; OpenCV and TensorFlow each bundle protobuf) and
    runs it on the NHWC input saved in `x_npy`, fed as an NCHW blob. The output is saved to
    `out` (see LOADER). Returns (loaded, error): error is OpenCV's last message line, or None."""
    run = subprocess.run([sys.executable, "-c", LOADER, str(graph), str(x_npy), str(out),
                          *layers], capture_output=True, text=True)
    loaded = "LOADED" in run.stdout.split()
    if run.returncode == 0:
        return loaded, None
    lines = [l for l in run.stderr.strip().splitlines() if not l.startswith("[")]
    if not lines:
        return loaded, f"the process crashed (exit {run.returncode})"
    return loaded, lines[-1].strip()


def compare(got, want, rtol=RTOL, atol=ATOL):
    """OpenCV's output against TensorFlow's, element by element. Returns a dict: `error` when
    the shapes differ; else `max_abs_error`, `max_rel_error` (largest |difference| over the
    largest |TensorFlow's|, the figure the README quotes), `mismatched_elements` (elements with
    |got - want| > atol + rtol * |want|, NaN included), `worst_element_rel_error`
    (|got - want| / |want| at the element with the largest |got - want| / (atol + rtol * |want|))
    and `matches_tensorflow` (no mismatched element). A figure that is not finite is None (JSON
    has no NaN). A 4-D output of OpenCV is NCHW and is compared as NHWC."""
    import numpy as np
    if got.ndim == 4 and want.ndim == 4:
        got = np.transpose(got, (0, 2, 3, 1))  # OpenCV answers in NCHW
    if got.shape != want.shape:
        return {"error": f"output shape {list(got.shape)}, TensorFlow {list(want.shape)}"}
    got = got.astype(np.float64).ravel()
    want = want.astype(np.float64).ravel()
    if not want.size:
        return {"max_abs_error": 0.0, "max_rel_error": 0.0, "mismatched_elements": 0,
                "worst_element_rel_error": 0.0, "matches_tensorflow": True}
    diff = np.abs(got - want)
    diff[np.isnan(diff)] = np.inf
    bound = atol + rtol * np.abs(want)
    within = diff <= bound
    worst = int(np.argmax(diff / bound))
    tiny = np.finfo(np.float64).tiny
    finite = lambda v: float(v) if np.isfinite(v) else None
    return {
        "max_abs_error": finite(diff.max()),
        "max_rel_error": finite(diff.max() / max(float(np.abs(want).max()), tiny)),
        "mismatched_elements": int(within.size - within.sum()),
        "worst_element_rel_error": finite(diff[worst] / max(abs(want[worst]), tiny)),
        "matches_tensorflow": bool(within.all()),
    }


def io_names(name):
    spec = json.loads((FIXTURES / "expected" / f"{name}.json").read_text())
    return [i["name"] for i in spec["inputs"]], [o["name"] for o in spec["outputs"]]


def main():
    graphopt = sys.argv[1] if len(sys.argv) > 1 else str(ROOT / "target" / "debug" / "graphopt")
    import cv2
    import numpy as np
    # The record and its Rust test speak of one OpenCV release: judging with another would
    # rewrite the record under the wrong version.
    if not cv2.__version__.startswith(OPENCV_RELEASE):
        sys.exit(f"check_opencv.py judges with OpenCV {OPENCV_RELEASE}x, found {cv2.__version__}: "
                 "pip install opencv-python-headless==4.10.0.84")
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = pathlib.Path(tmp)
        for case, pipeline in CASES.items():
            name = case.split("@")[0]
            inputs, outputs = io_names(name)
            # The judge feeds input 0 and compares OpenCV's default output with output 0.
            if len(inputs) != 1 or len(outputs) != 1:
                raise SystemExit(f"{case}: the judge handles one input and one output, "
                                 f"not {inputs} -> {outputs}")
            out = tmp / f"{case}.pb"
            subprocess.run([graphopt, "transform", f"--in_graph={FIXTURES / 'models' / (name + '.pb')}",
                            f"--out_graph={out}", f"--inputs={','.join(inputs)}",
                            f"--outputs={','.join(outputs)}", f"--transforms={pipeline}"],
                           check=True, capture_output=True)
            data = FIXTURES / "data" / name
            files = []
            for k in range(len(inputs)):
                files += [str(data / f"input_{k}.pb"), str(tmp / f"{case}_in{k}.npy")]
            for k in range(len(outputs)):
                files += [str(data / f"output_{k}.pb"), str(tmp / f"{case}_out{k}.npy")]
            subprocess.run([sys.executable, "-c", DECODE, *files], check=True, capture_output=True)
            record = {"pipeline": pipeline, "sha256": hashlib.sha256(out.read_bytes()).hexdigest()}
            # In a child process: OpenCV crashes on some graphs (a ConcatV2 axis stored in
            # tensor_content), and a crash is a result too.
            got_path = tmp / f"{case}_got.npy"
            record["loaded"], error = run_opencv(out, tmp / f"{case}_in0.npy", got_path)
            if error is not None:
                record["error"] = error
            else:
                record.update(compare(np.load(got_path), np.load(tmp / f"{case}_out0.npy")))
            results[case] = record
            print(case, json.dumps(record))
    report = {"opencv_version": cv2.__version__, "tolerance": TOLERANCE, "rtol": RTOL,
              "atol": ATOL, "cases": results}
    (FIXTURES / "expected" / "opencv.json").write_text(json.dumps(report, indent=1, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
