"""Writes the three TF1 while-loop graphs of tests/loop_frames.rs (run from the repository root
with TensorFlow installed: /tmp/tfvenv/bin/python graphopt-core/tests/loops/generate.py).

  chain.pbtxt  a loop whose body computes v = (v * 2) * 3: simplify_arithmetic folds the two
               constants into one new Const inside the loop body
  bias.pbtxt   a loop whose body computes v = tanh(v @ W + b): fold_batch_norms gives the add a
               new bias Const inside the loop body
  conv.pbtxt   an NHWC convolution before a loop whose body computes v = relu(conv(v, W)):
               convert_to_nchw must not make the body read a Const of the outermost frame

Both are lowered control flow (Enter, Merge, Switch, NextIteration, Exit), and every Const in
the body carries TensorFlow's frame anchor (^while/Identity). expected.json holds
TensorFlow's output y for the input x of each.
"""
import json
import os
import pathlib

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

HERE = pathlib.Path(__file__).resolve().parent
tf1 = tf.compat.v1
tf1.disable_eager_execution()
tf1.disable_control_flow_v2()


def chain():
    x = tf1.placeholder(tf.float32, [3], name="x")

    def body(i, v):
        return i + 1, (v * tf.constant(2.0)) * tf.constant(3.0)

    _, v = tf1.while_loop(lambda i, v: i < 3, body, [tf.constant(0), x])
    tf.identity(v, name="y")
    return np.float32([1, 2, 3])


def bias():
    weights = np.random.RandomState(0).randn(3, 3).astype(np.float32) * 0.3
    x = tf1.placeholder(tf.float32, [1, 3], name="x")

    def body(i, v):
        return i + 1, tf.tanh(tf.matmul(v, tf.constant(weights)) + tf.constant([0.1, 0.2, 0.3]))

    _, v = tf1.while_loop(lambda i, v: i < 3, body, [tf.constant(0), x])
    tf.identity(v, name="y")
    return np.float32([[1, 2, 3]])


def conv():
    rs = np.random.RandomState(0)
    outside = rs.randn(3, 3, 2, 2).astype(np.float32) * 0.3
    inside = rs.randn(3, 3, 2, 2).astype(np.float32) * 0.3
    x = tf1.placeholder(tf.float32, [1, 4, 4, 2], name="x")
    h = tf.nn.conv2d(x, tf.constant(outside), [1, 1, 1, 1], "SAME")

    def body(i, v):
        return i + 1, tf.nn.relu(tf.nn.conv2d(v, tf.constant(inside), [1, 1, 1, 1], "SAME"))

    _, v = tf1.while_loop(lambda i, v: i < 2, body, [tf.constant(0), h])
    tf.identity(v, name="y")
    return rs.randn(1, 4, 4, 2).astype(np.float32)


def main():
    expected = {}
    for name, build in [("chain", chain), ("bias", bias), ("conv", conv)]:
        graph = tf.Graph()
        with graph.as_default():
            x = build()
            with tf1.Session(graph=graph) as session:
                y = session.run("y:0", {"x:0": x})
        tf.io.write_graph(graph.as_graph_def(), str(HERE), f"{name}.pbtxt", as_text=True)
        expected[name] = {"x": x.tolist(), "y": np.asarray(y).tolist(), "shape": list(x.shape)}
    (HERE / "expected.json").write_text(json.dumps(expected, indent=1) + "\n")


if __name__ == "__main__":
    main()
