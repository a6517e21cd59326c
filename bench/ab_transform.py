"""Alternating whole-process timings of two graphopt binaries (or two environments) on one
`transform`, each run writing a new output file: the A/B comparison behind the before and after
figures in docs/benchmarks.md.

    python3 bench/ab_transform.py --model target/tmp/compare_tf/resnet50.pb \
        --config before=/tmp/graphopt-before --config after=target/release/graphopt [--runs 21]
    python3 bench/ab_transform.py --model target/tmp/compare_tf/resnet50.pb \
        --config plain=target/release/graphopt \
        --config 'tuned=target/release/graphopt GLIBC_TUNABLES=glibc.malloc.trim_threshold=1073741824'

A config is LABEL=BINARY, optionally followed by NAME=VALUE environment settings. Runs
alternate between the configs; the output is removed before each run, outside the timing.
Prints median wall and CPU (user + system) milliseconds and the largest peak RSS per config.
No Python packages are needed; `compare_tf.py` generates the models (under target/tmp/compare_tf).
"""
import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

STANDARD = ("strip_unused_nodes remove_nodes(op=Identity, op=CheckNumerics) "
            "fold_constants(ignore_errors=true) fold_batch_norms fold_old_batch_norms "
            "sort_by_execution_order")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--config", action="append", required=True,
                        help="LABEL=BINARY [NAME=VALUE ...]")
    parser.add_argument("--inputs", default="keras_tensor")
    parser.add_argument("--outputs", default="output_0")
    parser.add_argument("--transforms", default=STANDARD)
    parser.add_argument("--runs", type=int, default=21)
    args = parser.parse_args()
    if not os.path.isfile(args.model):
        sys.exit(f"{args.model}: no such model (bench/compare_tf.py generates them)")
    configs = []
    for config in args.config:
        label, _, rest = config.partition("=")
        words = rest.split()
        if not label or not words:
            sys.exit(f"--config {config!r}: expected LABEL=BINARY [NAME=VALUE ...]")
        env = dict(os.environ)
        for setting in words[1:]:
            name, eq, value = setting.partition("=")
            if not eq:
                sys.exit(f"--config {config!r}: {setting!r} is not NAME=VALUE")
            env[name] = value
        configs.append((label, words[0], env))
    results = {label: [] for label, _, _ in configs}
    with tempfile.TemporaryDirectory(dir=os.path.dirname(os.path.abspath(args.model))) as work:
        out = os.path.join(work, "out.pb")
        for _ in range(args.runs):
            for label, binary, env in configs:
                if os.path.exists(out):
                    os.unlink(out)
                command = [binary, "transform", f"--in_graph={args.model}", f"--out_graph={out}",
                           f"--inputs={args.inputs}", f"--outputs={args.outputs}",
                           f"--transforms={args.transforms}"]
                start = time.perf_counter()
                child = subprocess.Popen(command, stdout=subprocess.DEVNULL,
                                         stderr=subprocess.PIPE, env=env)
                _, status, usage = os.wait4(child.pid, 0)
                wall = time.perf_counter() - start
                err = child.stderr.read().decode()
                if os.waitstatus_to_exitcode(status) != 0:
                    sys.exit(f"{label}: {' '.join(command)} failed:\n{err[-2000:]}")
                results[label].append((wall * 1000, (usage.ru_utime + usage.ru_stime) * 1000,
                                       usage.ru_maxrss / 1024))
    for label, runs in results.items():
        print(f"{label:<24} wall median {statistics.median(r[0] for r in runs):7.1f} ms  "
              f"cpu median {statistics.median(r[1] for r in runs):7.1f} ms  "
              f"peak {max(r[2] for r in runs):5.0f} MiB  ({len(runs)} runs)")


if __name__ == "__main__":
    main()
