"""Small graphs on the edges of OpenCV's subgraph fusion, judged by real OpenCV.

`check --target=opencv` replays OpenCV's simplifySubgraphs (the profile's `fused_subgraphs`).
This script writes graphs where that replay decides the verdict to tests/fixtures/opencv_probes/,
loads each with `cv2.dnn.readNetFromTensorflow` in a child process (a crash is a verdict too)
and records whether it loaded, with the SHA-256 of the bytes judged, in
tests/fixtures/expected/opencv_probes.json. graphopt-core/tests/targets.rs holds `check` to
that record.

    /tmp/tfvenv/bin/python tests/consumers/opencv_subgraph_probes.py

Needs opencv-python-headless==4.10.0.84 and tensorflow-cpu (for the GraphDef protos only).
"""
import hashlib
import json
import pathlib
import subprocess
import sys

import numpy as np
from tensorflow.core.framework import graph_pb2, types_pb2

ROOT = pathlib.Path(__file__).resolve().parents[2]
OUT = ROOT / "tests" / "fixtures" / "opencv_probes"
RECORD = ROOT / "tests" / "fixtures" / "expected" / "opencv_probes.json"
F32, I32, F64 = types_pb2.DT_FLOAT, types_pb2.DT_INT32, types_pb2.DT_DOUBLE

LOADER = r"""
import sys, cv2
cv2.dnn.readNetFromTensorflow(sys.argv[1])
print("LOADED", flush=True)
"""


class Graph:
    def __init__(self):
        self.g = graph_pb2.GraphDef()

    def node(self, name, op, inputs=(), t=F32, **attrs):
        n = self.g.node.add(name=name, op=op, input=list(inputs))
        if t is not None:
            n.attr["T"].type = t
        for k, v in attrs.items():
            if isinstance(v, int) and k.endswith("mask"):
                n.attr[k].i = v
            else:
                n.attr[k].type = v
        return n

    def placeholder(self, name, dims):
        n = self.node(name, "Placeholder", t=None, dtype=F32)
        for d in dims:
            n.attr["shape"].shape.dim.add(size=d)

    def const(self, name, dtype, dims, content=None, **values):
        n = self.node(name, "Const", t=None, dtype=dtype)
        t = n.attr["value"].tensor
        t.dtype = dtype
        for d in dims:
            t.tensor_shape.dim.add(size=d)
        if content is not None:
            t.tensor_content = content
        for field, v in values.items():
            getattr(t, field).extend(v)


def batch_norm(eps=None, control=None):
    g = Graph()
    g.placeholder("x", [1, 4])
    if eps is None:
        g.const("eps", F32, [], float_val=[1e-3])
    else:
        eps(g)
    for name, v in [("var", 1.5), ("mean", 0.5), ("beta", 0.1), ("gamma", 2.0)]:
        g.const(name, F32, [4], content=np.full(4, v, np.float32).tobytes())
    g.node("bn/add", "AddV2", ["var", "eps"])
    g.node("bn/Rsqrt", "Rsqrt", ["bn/add"])
    g.node("bn/mul", "Mul", ["bn/Rsqrt", "gamma"])
    g.node("bn/mul_1", "Mul", ["x", "bn/mul"])
    g.node("bn/mul_2", "Mul", ["mean", "bn/mul"])
    g.node("bn/sub", "Sub", ["beta", "bn/mul_2"])
    g.node("bn/add_1", "AddV2", ["bn/mul_1", "bn/sub"])
    if control == "identity":
        g.node("anchor", "Identity", ["x"])
    g.node("out", "Relu", ["bn/add_1"] + ([f"^{'anchor' if control == 'identity' else control}"]
                                          if control else []))
    return g.g


def resize_down(dtype):
    """ResizeBilinear by Shape -> StridedSlice -> Cast -> RealDiv(factor) -> Cast, twice."""
    g = Graph()
    g.placeholder("x", [1, 8, 8, 3])
    parts = []
    for k, (begin, factor) in enumerate([(1, "fy"), (2, "fx")]):
        g.node(f"shape{k}", "Shape", ["x"], out_type=I32)
        for suffix, v in [("b", begin), ("e", begin + 1), ("s", 1)]:
            g.const(f"ss{k}/{suffix}", I32, [1], int_val=[v])
        g.node(f"ss{k}", "StridedSlice", [f"shape{k}", f"ss{k}/b", f"ss{k}/e", f"ss{k}/s"],
               t=I32, Index=I32, shrink_axis_mask=1)
        if dtype == F64:
            g.const(factor, F64, [], double_val=[2.0])
        else:
            g.const(factor, F32, [], float_val=[2.0])
        g.node(f"c{k}", "Cast", [f"ss{k}"], t=None, SrcT=I32, DstT=dtype)
        g.node(f"div{k}", "RealDiv", [f"c{k}", factor], t=dtype)
        g.node(f"back{k}", "Cast", [f"div{k}"], t=None, SrcT=dtype, DstT=I32)
        parts.append(f"back{k}")
    pack = g.node("pack", "Pack", parts, t=I32)
    pack.attr["N"].i = 2
    g.node("resize", "ResizeBilinear", ["x", "pack"])
    g.node("out", "Relu", ["resize"])
    return g.g


def splat_eps(g):
    g.const("eps", F32, [4], float_val=[1e-3])


def two_value_eps(g):
    g.const("eps", F32, [2], content=np.full(2, 1e-3, np.float32).tobytes())


PROBES = {
    "bn_plain": batch_norm(),
    "bn_eps_splat": batch_norm(eps=splat_eps),
    "bn_eps_two_values": batch_norm(eps=two_value_eps),
    "bn_control_input": batch_norm(control="x"),
    "bn_control_input_from_identity": batch_norm(control="identity"),
    "resize_down_float32_factors": resize_down(F32),
    "resize_down_float64_factors": resize_down(F64),
}


def main():
    import cv2
    if not cv2.__version__.startswith("4.10."):
        sys.exit(f"judges with OpenCV 4.10, found {cv2.__version__}")
    OUT.mkdir(parents=True, exist_ok=True)
    record = {}
    for name, graph in PROBES.items():
        path = OUT / f"{name}.pb"
        data = graph.SerializeToString()
        path.write_bytes(data)
        run = subprocess.run([sys.executable, "-c", LOADER, str(path)], capture_output=True,
                             text=True)
        lines = [l for l in run.stderr.strip().splitlines() if not l.startswith("[")]
        record[name] = {"sha256": hashlib.sha256(data).hexdigest(),
                        "loaded": "LOADED" in run.stdout.split(), "exit": run.returncode}
        if run.returncode != 0:
            record[name]["error"] = lines[-1].strip() if lines else "the process crashed"
        print(name, json.dumps(record[name]))
    RECORD.write_text(json.dumps({"opencv_version": cv2.__version__, "probes": record},
                                 indent=1, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
