"""Probes real OpenCV for the facts graphopt-core/src/targets/profiles/opencv.json states beyond
what its source shows, and fails when one no longer holds:

- every op of the profile's `layer_registry` list (ops outside the importer's dispatch table
  whose name is also an OpenCV layer type) loads and matches TensorFlow within 1e-5;
- ops named in the profile's notes as failing (no same-name layer) do not load;
- Minimum(x, Const) -> Maximum(., Const) loads (the ClipByValue fusion);
- tf.nn.batch_normalization's arithmetic (Rsqrt included) loads as OpenCV's BatchNormSubgraph
  when its scale is Mul(Rsqrt, gamma), and fails when it is Mul(gamma, Rsqrt): the matcher
  accepts both orders but wires the fused node's inputs by pattern position; it fails too when
  the Rsqrt is also read outside the pattern (the subgraph replay of fused_subgraphs);
- a ConcatV2 axis stored in int_val loads, the same axis in tensor_content does not (4.10.0.84
  crashes with a segmentation fault);
- an input-less NoOp used as a control input fails in removePhaseSwitches;
- a Conv2D's `dilations` are ignored (a dilated Conv2D loads and computes wrong values);
- a MirrorPad pads as REFLECT whatever its mode (REFLECT matches, SYMMETRIC does not);
- SpaceToBatchND -> Conv2D -> BatchToSpaceND is read as one dilated convolution padded on both
  sides by the paddings before: right when the convolution's SAME padding is symmetric, wrong
  when it is not (an even dilated kernel).

Each graph is built with TensorFlow and loaded in a child process, so a crash is a result.

    /tmp/tfvenv/bin/python tests/consumers/probe_opencv_profile.py

Needs opencv-python-headless==4.10.0.84 and tensorflow-cpu.
"""
import json
import pathlib
import subprocess
import sys

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[2]
PROFILE = ROOT / "graphopt-core" / "src" / "targets" / "profiles" / "opencv.json"
SHOULD_FAIL = ["Rsqrt", "Neg", "Log1p", "Expm1", "Erfc"]

LOADER = r"""
import sys, numpy as np, cv2
graph = open(sys.argv[1], "rb").read()
x = np.load(sys.argv[2])
net = cv2.dnn.readNetFromTensorflow(graph)
net.setInput(x.transpose(0, 3, 1, 2) if x.ndim == 4 else x)
y = net.forward()
np.save(sys.argv[3], y.transpose(0, 2, 3, 1) if y.ndim == 4 else y)
"""


def build(body, shape=(1, 2, 3, 4), edit=None):
    import tensorflow as tf
    tf.compat.v1.disable_eager_execution()
    g = tf.Graph()
    with g.as_default():
        x = tf.compat.v1.placeholder(tf.float32, shape, name="input")
        tf.identity(body(x), name="out")
    graph_def = g.as_graph_def()
    if edit:
        edit(graph_def)
    x = (np.random.RandomState(0).rand(*shape) * 0.8 + 0.1).astype(np.float32)
    with tf.compat.v1.Session(graph=g) as session:
        expected = session.run("out:0", {"input:0": x})
    return graph_def.SerializeToString(), x, expected


def opencv(graph, x, tmp):
    (tmp / "g.pb").write_bytes(graph)
    np.save(tmp / "x.npy", x)
    run = subprocess.run([sys.executable, "-c", LOADER, str(tmp / "g.pb"), str(tmp / "x.npy"),
                          str(tmp / "y.npy")], capture_output=True, text=True)
    if run.returncode != 0:
        lines = run.stderr.strip().splitlines() or ["no message (the process crashed)"]
        return None, f"exit {run.returncode}: {lines[-1][:160]}"
    return np.load(tmp / "y.npy"), ""


def main():
    import tempfile
    import tensorflow as tf
    raw = tf.raw_ops
    profile = json.loads(PROFILE.read_text())
    registry = next(l["ops"] for l in profile["op_lists"] if l["name"] == "layer_registry")
    features = {"Selu", "Softplus", "Softsign"}

    def unary(op):
        shift = 1.0 if op == "Acosh" else 0.0
        return lambda t: getattr(raw, op)(**{("features" if op in features else "x"): t + shift})

    def axis_in_content(graph_def):
        for n in graph_def.node:
            if n.name == "axis":
                t = n.attr["value"].tensor
                del t.int_val[:]
                t.tensor_content = np.array(0, np.int32).tobytes()

    def noop(t):
        with tf.control_dependencies([tf.no_op(name="noop")]):
            return tf.nn.relu(t)

    rng = np.random.RandomState(1)
    filters = lambda *shape: tf.constant((rng.rand(*shape) - 0.5).astype(np.float32))
    dilated = lambda t: tf.nn.conv2d(t, filters(3, 3, 4, 2), 1, "SAME", dilations=2)
    mirror = lambda mode: lambda t: raw.MirrorPad(
        input=t, paddings=[[0, 0], [2, 1], [1, 2], [0, 0]], mode=mode)

    def atrous(rate, kernel):
        def body(t):
            w = filters(*kernel, 4, 2)
            return tf.compat.v1.nn.with_space_to_batch(
                t, dilation_rate=rate, padding="SAME", filter_shape=kernel,
                op=lambda x, num_spatial_dims, padding: tf.nn.conv2d(x, w, 1, padding))
        return body

    # Axis 0 (batch) means the same in NHWC and NCHW, so the layouts cannot confuse the test.
    concat = lambda t: raw.ConcatV2(values=[t, t], axis=tf.constant(0, name="axis"))
    def batch_norm(swapped=False, shared=False):
        def body(t):
            c = lambda v, name: tf.constant(np.full(4, v, np.float32), name=name)
            rsqrt = raw.Rsqrt(x=raw.AddV2(x=c(1.5, "var"), y=tf.constant(1e-3, name="eps")))
            gamma = c(2.0, "gamma")
            scale = raw.Mul(x=gamma, y=rsqrt) if swapped else raw.Mul(x=rsqrt, y=gamma)
            shift = raw.Sub(x=c(0.1, "beta"), y=raw.Mul(x=c(0.5, "mean"), y=scale))
            out = raw.AddV2(x=raw.Mul(x=t, y=scale), y=shift)
            return raw.AddV2(x=out, y=raw.Relu(features=rsqrt)) if shared else out
        return body

    clip = lambda t: raw.Maximum(x=raw.Minimum(x=t, y=tf.constant(0.6)), y=tf.constant(0.3))
    cases = [(op, build(unary(op)), True) for op in registry]
    cases += [(op, build(unary(op)), False) for op in SHOULD_FAIL]
    cases += [("ClipByValue fusion", build(clip), True),
              ("batch norm, Mul(Rsqrt, gamma)", build(batch_norm()), True),
              ("batch norm, Mul(gamma, Rsqrt)", build(batch_norm(swapped=True)), False),
              ("batch norm, Rsqrt read outside", build(batch_norm(shared=True)), False),
              ("ConcatV2 axis in int_val", build(concat), True),
              ("ConcatV2 axis in tensor_content", build(concat, edit=axis_in_content), False),
              ("input-less NoOp control input", build(noop), False),
              ("Conv2D with dilations", build(dilated, shape=(1, 7, 8, 4)), False),
              ("MirrorPad REFLECT", build(mirror("REFLECT"), shape=(1, 5, 6, 4)), True),
              ("MirrorPad SYMMETRIC", build(mirror("SYMMETRIC"), shape=(1, 5, 6, 4)), False),
              ("atrous pattern, symmetric SAME", build(atrous([2, 2], [3, 3]), shape=(1, 7, 8, 4)),
               True),
              ("atrous pattern, asymmetric SAME", build(atrous([3, 2], [2, 3]), shape=(1, 7, 8, 4)),
               False)]
    wrong = []
    with tempfile.TemporaryDirectory() as d:
        for name, (graph, x, expected), should_load in cases:
            y, error = opencv(graph, x, pathlib.Path(d))
            ok = y is not None and y.shape == expected.shape and \
                float(np.max(np.abs(y - expected))) <= 1e-5
            if y is not None and not ok:
                error = (f"loads, output shape {list(y.shape)} (TensorFlow {list(expected.shape)})"
                         if y.shape != expected.shape else
                         f"loads, differs by {float(np.max(np.abs(y - expected))):.3g}")
            print(f"{name:34} {'loads and matches' if ok else 'fails: ' + error}")
            if ok != should_load:
                wrong.append(name)
    if wrong:
        sys.exit(f"the profile's facts no longer hold for: {', '.join(wrong)}")
    print(f"all {len(cases)} facts hold")


if __name__ == "__main__":
    main()
