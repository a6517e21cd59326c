"""Side-by-side timings of graphopt and TensorFlow's own tools on large CNNs (issue 12).

Run from the repository root in the fixture virtualenv (TensorFlow installed), with graphopt's
release binary built:

    cargo build --release -p graphopt-cli
    /tmp/tfvenv/bin/python bench/compare_tf.py --graphopt target/release/graphopt \
        [--models resnet50,inception_v3] [--runs 3] [--work target/tmp/compare_tf] \
        [--graphopt-dev target/debug/graphopt] [--no-eval] [--eval-only] [--json OUT.json]

For each model it generates, on demand and not committed (cached under --work), a Keras 3
SavedModel (Keras applications, or for `bert_base` a BERT encoder of BERT-base's sizes built
from Keras layers; random weights, `model.export`), then measures in this one
run, each tool in a fresh process of its own so peak RSS is that tool's alone:

- freeze: graphopt's whole `freeze --saved_model_dir` process (wall time, peak RSS) against
  TensorFlow's `saved_model.load` + `convert_variables_to_constants_v2` + `as_graph_def`,
  timed in-call (Python and TensorFlow import not counted);
- transform: graphopt's whole `transform` process (reading, transforming, writing with fsync)
  for the standard pipeline and for `@deploy`, each run writing a new file (the last run's
  output removed before the timer starts), and for the standard pipeline also replacing the
  last run's output (the file system frees the old file's blocks in the renaming process:
  about 15-25 ms for 100 MB on ext4), against the Graph Transform Tool's in-call
  `TransformGraphWithStringInputs` time on the standard pipeline (compute only: reading and
  writing files is not counted for GTT). GTT has no `@deploy`; that row is compared with
  GTT's standard pipeline, the nearest thing TensorFlow offers;
- inference (unless --no-eval): graphopt's evaluator per inference at batch 1 on the
  standard pipeline's output (`cargo bench -p graphopt-core --features threads --bench eval`),
  with its matrix products on one thread and on every core, against TensorFlow's own
  `Session.run` per inference on the same graph (default threads). --eval-only measures only
  this (the models: resnet50, inception_v3, mobilenet_v2, efficientnet_b0, densenet121; not
  bert_base).

Ratios are TF time / graphopt time (above 1: graphopt faster) and graphopt peak RSS / file
size. Figures are medians over --runs runs.
"""
import argparse
import json
import os
import pathlib
import resource
import statistics
import subprocess
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]

STANDARD = ("strip_unused_nodes remove_nodes(op=Identity, op=CheckNumerics) "
            "fold_constants(ignore_errors=true) fold_batch_norms fold_old_batch_norms "
            "sort_by_execution_order")

MODELS = {
    # name: (Keras application or graphopt's own builder, image size for the inference run)
    "resnet50": ("ResNet50", 224),
    "inception_v3": ("InceptionV3", 299),
    "mobilenet_v2": ("MobileNetV2", 224),
    "efficientnet_b0": ("EfficientNetB0", 224),
    "densenet121": ("DenseNet121", 224),
    # BERT-base's sizes (110M weights, 420 MiB frozen); no inference comparison (not an image).
    "bert_base": ("bert_base", None),
}

# BERT-base: vocabulary, sequence length, width, layers, heads, feed-forward width.
BERT_BASE = (30522, 128, 768, 12, 12, 3072)


def bert_encoder(keras, vocab, length, width, layers, heads, ffn):
    """A BERT encoder in Keras 3 layers: token, segment and position embeddings, post-norm
    attention blocks with GELU feed-forwards, and the tanh pooler on the first token."""
    class PositionEmbedding(keras.layers.Layer):
        def build(self, shape):
            self.table = self.add_weight(shape=(shape[1], shape[2]), name="table")

        def call(self, x):
            return x + self.table

    ids = keras.Input((length,), dtype="int32", name="input_ids")
    segments = keras.Input((length,), dtype="int32", name="segment_ids")
    x = keras.layers.Add()([keras.layers.Embedding(vocab, width)(ids),
                            keras.layers.Embedding(2, width)(segments)])
    x = keras.layers.LayerNormalization(epsilon=1e-12)(PositionEmbedding()(x))
    for _ in range(layers):
        attention = keras.layers.MultiHeadAttention(heads, width // heads)(x, x)
        x = keras.layers.LayerNormalization(epsilon=1e-12)(keras.layers.Add()([x, attention]))
        hidden = keras.layers.Dense(ffn, activation="gelu")(x)
        x = keras.layers.LayerNormalization(epsilon=1e-12)(
            keras.layers.Add()([x, keras.layers.Dense(width)(hidden)]))
    pooled = keras.layers.Dense(width, activation="tanh")(x[:, 0])
    return keras.Model([ids, segments], [x, pooled])


# --- workers: each runs in a fresh Python process and prints one JSON line -------------------

def _quiet_tf():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf  # noqa: PLC0415
    return tf


def _peak_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def worker_export(name, out):
    _quiet_tf()
    import keras  # noqa: PLC0415
    keras.utils.set_random_seed(0)
    if name == "bert_base":
        model = bert_encoder(keras, *BERT_BASE)
    else:
        model = getattr(keras.applications, MODELS[name][0])(weights=None)
    model.export(out)
    return {}


def worker_tf_freeze(saved_model):
    tf = _quiet_tf()
    from tensorflow.python.framework import convert_to_constants  # noqa: PLC0415
    start, start_cpu = time.perf_counter(), time.process_time()
    loaded = tf.saved_model.load(saved_model)
    function = loaded.signatures["serving_default"]
    frozen = convert_to_constants.convert_variables_to_constants_v2(function)
    graph_def = frozen.graph.as_graph_def()
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "cpu_seconds": time.process_time() - start_cpu,
            "peak_mib": _peak_mib(), "nodes": len(graph_def.node)}


def worker_gtt(graph, inputs, outputs, transforms, runs):
    _quiet_tf()
    from tensorflow.python.util import _pywrap_transform_graph as gtt  # noqa: PLC0415
    data = pathlib.Path(graph).read_bytes()
    times, cpu = [], []
    size = 0
    for _ in range(int(runs)):
        start, start_cpu = time.perf_counter(), time.process_time()
        out = gtt.TransformGraphWithStringInputs(data, inputs, outputs, transforms)
        times.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
        size = len(out)
        del out
    return {"seconds": times, "cpu_seconds": cpu, "peak_mib": _peak_mib(), "out_bytes": size}


def worker_tf_run(graph, inputs, outputs, size, runs):
    tf = _quiet_tf()
    import numpy as np  # noqa: PLC0415
    graph_def = tf.compat.v1.GraphDef()
    graph_def.ParseFromString(pathlib.Path(graph).read_bytes())
    g = tf.Graph()
    with g.as_default():
        tf.compat.v1.import_graph_def(graph_def, name="")
    feed_name = inputs.split(",")[0] + ":0"
    fetch = [o + ":0" for o in outputs.split(",")]
    x = np.random.default_rng(0).standard_normal((1, int(size), int(size), 3)).astype(np.float32)
    with tf.compat.v1.Session(graph=g) as session:
        for _ in range(2):
            session.run(fetch, {feed_name: x})
        times = []
        for _ in range(int(runs)):
            start = time.perf_counter()
            session.run(fetch, {feed_name: x})
            times.append(time.perf_counter() - start)
    return {"seconds": times, "peak_mib": _peak_mib()}


WORKERS = {
    "export": worker_export,
    "tf_freeze": worker_tf_freeze,
    "gtt": worker_gtt,
    "tf_run": worker_tf_run,
}


def run_worker(kind, *args):
    """Runs a worker in a fresh interpreter; returns its JSON result."""
    command = [sys.executable, __file__, "--worker", kind, *map(str, args)]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        sys.exit(f"worker {kind} failed:\n{result.stderr[-4000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


# --- measuring graphopt processes ---------------------------------------------------------------

def measure(command):
    """(wall seconds, peak MiB, CPU seconds) of `command`: wall time from here, peak RSS and
    user + system CPU time from wait4."""
    start = time.perf_counter()
    child = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(child.pid, 0)
    seconds = time.perf_counter() - start
    err = child.stderr.read().decode() if child.stderr else ""
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode != 0:
        sys.exit(f"{' '.join(map(str, command))} failed ({child.returncode}):\n{err[-4000:]}")
    return seconds, usage.ru_maxrss / 1024, usage.ru_utime + usage.ru_stime


def median_measure(command, runs, fresh=None):
    """Median wall seconds, max peak MiB, median CPU seconds, all wall times. With `fresh`, a
    path removed before each run, outside the timing: the run writes a new file instead of
    replacing the last run's."""
    results = []
    for _ in range(runs):
        if fresh is not None:
            fresh.unlink(missing_ok=True)
        results.append(measure(command))
    return (statistics.median(r[0] for r in results), max(r[1] for r in results),
            statistics.median(r[2] for r in results), [r[0] for r in results])


def eval_bench(graph, inputs, outputs, runs, threads):
    """graphopt's evaluator per inference (median seconds) through the eval bench, its matrix
    products on `threads` threads."""
    command = ["cargo", "bench", "-q", "-p", "graphopt-core", "--features", "threads",
               "--bench", "eval", "--",
               str(graph), "--inputs", inputs, "--outputs", outputs, "--runs", str(runs)]
    env = dict(os.environ, MATMUL_NUM_THREADS=str(threads))
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False,
                            env=env)
    if result.returncode != 0:
        sys.exit(f"eval bench failed:\n{result.stderr[-4000:]}")
    for line in result.stdout.splitlines():
        if line.startswith("json: "):
            return json.loads(line[len("json: "):])
    sys.exit(f"eval bench printed no result:\n{result.stdout[-2000:]}")


# --- the comparison ------------------------------------------------------------------------------

def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--graphopt", required=True, help="graphopt release binary")
    parser.add_argument("--graphopt-dev", help="graphopt built with the dev profile (opt-level 0)")
    parser.add_argument("--models", default="resnet50,inception_v3")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--work", default=str(ROOT / "target/tmp/compare_tf"))
    parser.add_argument("--no-eval", action="store_true", help="skip the inference comparison")
    parser.add_argument("--no-freeze", action="store_true", help="skip the freeze comparison")
    parser.add_argument("--eval-only", action="store_true",
                        help="only the inference comparison (no freeze, GTT or transform timing)")
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args()

    graphopt = str(pathlib.Path(args.graphopt).resolve())
    work = pathlib.Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    rows = []
    figures = {}
    for name in args.models.split(","):
        size = MODELS[name][1]
        saved_model = work / f"{name}_savedmodel"
        if not (saved_model / "saved_model.pb").exists():
            print(f"[{name}] exporting a Keras SavedModel (random weights) ...", flush=True)
            run_worker("export", name, saved_model)
        frozen = work / f"{name}.pb"
        if not frozen.exists():
            subprocess.run([graphopt, "freeze", f"--saved_model_dir={saved_model}",
                            f"--out_graph={frozen}"], check=True)
        file_mib = frozen.stat().st_size / 1048576
        summary = json.loads(subprocess.run([graphopt, "summarize", str(frozen), "--json"],
                                            capture_output=True, text=True, check=True).stdout)
        inputs = ",".join(i["name"] for i in summary["inputs"])
        outputs = ",".join(o["name"] for o in summary["outputs"])
        model = {"file_mib": file_mib, "inputs": inputs, "outputs": outputs}
        figures[name] = model
        print(f"[{name}] {frozen} {file_mib:.1f} MiB, inputs {inputs}, outputs {outputs}", flush=True)

        standard_out = work / f"{name}.standard.pb"
        if args.eval_only:
            if not standard_out.exists():
                subprocess.run([graphopt, "transform", f"--in_graph={frozen}",
                                f"--out_graph={standard_out}", f"--inputs={inputs}",
                                f"--outputs={outputs}", f"--transforms={STANDARD}"], check=True)
        elif not args.no_freeze:
            out = work / f"{name}.refrozen.pb"
            g_time, g_peak, g_cpu, _ = median_measure(
                [graphopt, "freeze", f"--saved_model_dir={saved_model}", f"--out_graph={out}"],
                args.runs)
            tf_runs = [run_worker("tf_freeze", saved_model) for _ in range(args.runs)]
            tf_time = statistics.median(r["seconds"] for r in tf_runs)
            tf_cpu = statistics.median(r["cpu_seconds"] for r in tf_runs)
            tf_peak = max(r["peak_mib"] for r in tf_runs)
            model["freeze"] = {"graphopt": [g_time, g_peak, g_cpu], "tf": [tf_time, tf_peak, tf_cpu]}
            rows.append((name, "freeze (SavedModel)", g_time, g_cpu, g_peak,
                         "load+convert_variables_to_constants_v2", tf_time, tf_cpu, tf_peak,
                         file_mib))

        binaries = [("release", graphopt)]
        if args.graphopt_dev:
            binaries.append(("dev opt-level 0", str(pathlib.Path(args.graphopt_dev).resolve())))
        if args.eval_only:
            binaries = []
        else:
            gtt = run_worker("gtt", frozen, inputs, outputs, STANDARD, args.runs)
            gtt_time = statistics.median(gtt["seconds"])
            gtt_cpu = statistics.median(gtt["cpu_seconds"])
            model["gtt"] = gtt
        for label, binary in binaries:
            for pipeline, transforms, out, replacing in (
                    ("standard", STANDARD, standard_out, False),
                    ("standard", STANDARD, standard_out, True),
                    ("@deploy", "@deploy", work / f"{name}.deploy.pb", False)):
                if label != "release":
                    out = out.with_suffix(".dev.pb")
                command = [binary, "transform", f"--in_graph={frozen}", f"--out_graph={out}",
                           f"--inputs={inputs}", f"--outputs={outputs}",
                           f"--transforms={transforms}"]
                if replacing:
                    # The last run's output is there: renaming over it frees its blocks,
                    # which the file system does in the renaming process.
                    if not out.exists():
                        subprocess.run(command, capture_output=True, check=True)
                    what = f"{pipeline} ({label}), replacing"
                    g_time, g_peak, g_cpu, all_times = median_measure(command, args.runs)
                else:
                    what = f"{pipeline} ({label})"
                    g_time, g_peak, g_cpu, all_times = median_measure(command, args.runs, out)
                model[f"{what}"] = {"seconds": all_times, "peak_mib": g_peak,
                                    "cpu_seconds": g_cpu}
                rows.append((name, f"transform {what}", g_time, g_cpu, g_peak,
                             "GTT standard, compute only", gtt_time, gtt_cpu, gtt["peak_mib"],
                             file_mib))

        if not args.no_eval and size is not None:
            tf_run = run_worker("tf_run", standard_out, inputs, outputs, size, max(args.runs, 10))
            tf_time = statistics.median(tf_run["seconds"])
            model["inference"] = {"tf": tf_run}
            cores = os.cpu_count() or 1
            for threads in sorted({1, cores}):
                ours = eval_bench(standard_out, inputs, outputs, max(args.runs, 3), threads)
                model["inference"][f"graphopt {threads} threads"] = ours
                rows.append((name, f"inference, batch 1, {threads} thr", ours["median_seconds"],
                             float("nan"), ours["peak_mib"], "TF Session.run (default threads)",
                             tf_time, float("nan"), tf_run["peak_mib"], file_mib))

    print()
    print("wall: median wall time; cpu: median user + system CPU time; peak: max RSS; "
          "xfile: graphopt peak / file size; TF/graphopt: wall ratio (cpu ratio)")
    print(f"{'model':<13} {'graphopt':<34} {'wall s':>7} {'cpu s':>6} {'peak MiB':>8} {'xfile':>5}  "
          f"{'TensorFlow':<39} {'wall s':>7} {'cpu s':>6} {'peak MiB':>8}  {'TF/graphopt':>16}")
    for (name, what, g_time, g_cpu, g_peak, tf_what, tf_time, tf_cpu, tf_peak,
         file_mib) in rows:
        cpu_ratio = tf_cpu / g_cpu if g_cpu == g_cpu and g_cpu > 0 else float("nan")
        print(f"{name:<13} {what:<34} {g_time:>7.3f} {g_cpu:>6.2f} {g_peak:>8.0f} "
              f"{g_peak / file_mib:>5.2f}  {tf_what:<39} {tf_time:>7.3f} {tf_cpu:>6.2f} "
              f"{tf_peak:>8.0f}  {tf_time / g_time:>6.2f}x ({cpu_ratio:>5.2f}x)")
    if args.json:
        pathlib.Path(args.json).write_text(json.dumps(figures, indent=1))


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--worker":
        print(json.dumps(WORKERS[sys.argv[2]](*sys.argv[3:])))
    else:
        main()
