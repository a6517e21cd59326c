"""Trains the digits example's model with TensorFlow and writes what the example bundles.

Data: scikit-learn's 8x8 handwritten digits (shipped inside the scikit-learn package), split
into a training set and a held-out test set. Model: a small Keras 3 CNN with batch norm,
trained for real, then frozen. Writes (all committed):

  models/digits.pb          the frozen GraphDef (input "image" [N,8,8,1] float, output "probs")
  data/test_images.bin      held-out images, uint8 pixels 0-16, 8x8 each, row-major
  data/test_labels.bin      their labels, one uint8 each
  data/tensorflow.json      TensorFlow's accuracy on that test set, for comparison

    python3 -m venv /tmp/tfvenv && /tmp/tfvenv/bin/pip install tensorflow-cpu scikit-learn
    /tmp/tfvenv/bin/python examples/digits/train.py
"""
import json
import os
import pathlib

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np
import tensorflow as tf
from sklearn.datasets import load_digits
from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

HERE = pathlib.Path(__file__).resolve().parent
SEED = 20261122


def main():
    keras.utils.set_random_seed(SEED)
    digits = load_digits()
    images = digits.images.astype(np.uint8)  # 0..16
    labels = digits.target.astype(np.uint8)
    order = np.random.default_rng(SEED).permutation(len(images))
    test, train = order[:360], order[360:]

    def prepare(x):
        return (x.astype(np.float32) / 16.0)[..., None]

    inputs = keras.Input((8, 8, 1), name="image")
    x = keras.layers.Conv2D(16, 3, padding="same", use_bias=False)(inputs)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.ReLU()(x)
    x = keras.layers.Conv2D(32, 3, strides=2, padding="same", use_bias=False)(x)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.ReLU()(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = keras.layers.Dropout(0.2)(x)
    outputs = keras.layers.Dense(10, activation="softmax")(x)
    model = keras.Model(inputs, outputs)
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(prepare(images[train]), labels[train], epochs=40, batch_size=64, verbose=0)
    _, accuracy = model.evaluate(prepare(images[test]), labels[test], verbose=0)

    spec = tf.TensorSpec((None, 8, 8, 1), tf.float32, name="image")
    fn = tf.function(lambda image: {"probs": model(image, training=False)}).get_concrete_function(spec)
    frozen = convert_variables_to_constants_v2(fn)
    graph_def = frozen.graph.as_graph_def()
    # Name the output after what it is.
    output = frozen.outputs[0].name.split(":")[0]
    for node in graph_def.node:
        if node.name == output:
            node.name = "probs"
        node.input[:] = ["probs" if i == output else i for i in node.input]
    (HERE / "models").mkdir(exist_ok=True)
    (HERE / "data").mkdir(exist_ok=True)
    (HERE / "models" / "digits.pb").write_bytes(graph_def.SerializeToString())
    (HERE / "data" / "test_images.bin").write_bytes(images[test].tobytes())
    (HERE / "data" / "test_labels.bin").write_bytes(labels[test].tobytes())

    # TensorFlow's accuracy with the frozen graph itself.
    graph = tf.Graph()
    with graph.as_default():
        tf.compat.v1.import_graph_def(graph_def, name="")
    with tf.compat.v1.Session(graph=graph) as sess:
        probs = sess.run("probs:0", {"image:0": prepare(images[test])})
    frozen_accuracy = float(np.mean(np.argmax(probs, axis=1) == labels[test]))
    report = {"tensorflow_version": tf.__version__, "test_images": int(len(test)),
              "keras_accuracy": float(accuracy), "frozen_graph_accuracy": frozen_accuracy,
              "nodes": len(graph_def.node)}
    (HERE / "data" / "tensorflow.json").write_text(json.dumps(report, indent=1) + "\n")
    print(report)


if __name__ == "__main__":
    main()
