"""The parity-overhead baseline: bare forward passes of every backend `parity check` runs, plus imports.

What `python -m parity check PORTED --probes N` (eval + train, against tf,onnx,torchvision) has to
run at the very least, written the shortest way, in the same order and batching:
  TF        the frozen source graph on N probes (eval), then the graph with every FusedBatchNorm in
            training mode (train);
  torch     four MobileNetV2 forwards on N probes with the port's weights (candidate eval, plain
            torchvision, torchvision with the declared semantics, candidate train mode);
  ORT       the `.onnx` export beside the port on N probes.
No hooks, no comparisons, no checks, no reports. `scripts/bench.py` times this process's wall clock
(imports included) against parity's, side by side.

    python scripts/bench_forward.py SOURCE.pb PORTED.pth PORTED.onnx [--probes 8]
"""

from __future__ import annotations

import argparse
import json
import time

from convert.runtime import guard as _guard  # noqa: F401  (before TF/torch: hides triton, which segfaults after TF)
from convert.runtime.fast_exit import exit_now


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="bench_forward.py")
    ap.add_argument("source")
    ap.add_argument("ported")
    ap.add_argument("onnx")
    ap.add_argument("--probes", type=int, default=8)
    args = ap.parse_args(argv)
    phases: dict[str, float] = {}
    t = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal t
        now = time.perf_counter()
        phases[name] = now - t
        t = now

    import numpy as np
    import onnxruntime as ort
    import tensorflow as tf
    import torch
    import torchvision

    lap("imports")
    gd = tf.compat.v1.GraphDef()
    with open(args.source, "rb") as f:
        gd.ParseFromString(f.read())
    ph = next(n for n in gd.node if n.op == "Placeholder")
    shape = [d.size for d in ph.attr["shape"].shape.dim]
    batch = shape[0] if shape[0] > 0 else args.probes
    h, w = shape[1], shape[2]
    x = np.random.default_rng(0).uniform(-1, 1, (args.probes, h, w, 3)).astype(np.float32)
    out_name = _output(gd)

    def tf_forward(graph_def) -> None:
        g = tf.Graph()
        with g.as_default():
            tf.compat.v1.import_graph_def(graph_def, name="")
        with tf.compat.v1.Session(graph=g) as sess:
            for i in range(0, len(x), batch):
                sess.run(out_name, {ph.name + ":0": x[i : i + batch]})

    tf_forward(gd)
    lap("tf_eval")
    for node in gd.node:
        if node.op.startswith("FusedBatchNorm"):
            node.attr["is_training"].b = True
    tf_forward(gd)
    lap("tf_train")

    payload = torch.load(args.ported, map_location="cpu", weights_only=True)
    sd, meta = payload["state_dict"], json.loads(payload["metadata"])
    classes = int(sd["classifier.1.weight"].shape[0])
    model = torchvision.models.mobilenet_v2(width_mult=float(meta["alpha"]), num_classes=classes)
    model.load_state_dict(sd)
    xt = torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))
    for mode in ("eval", "eval", "eval", "train"):  # candidate, plain, declared, candidate in train mode
        model.train(mode == "train")
        with torch.no_grad():
            for i in range(0, len(xt), batch):
                model(xt[i : i + batch])
    lap("torch_x4")

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    sess = ort.InferenceSession(args.onnx, opts, providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    ob = sess.get_inputs()[0].shape[0]
    step = ob if isinstance(ob, int) else batch
    for i in range(0, len(x), step):
        sess.run(None, {name: x[i : i + step]})
    lap("ort")
    print(json.dumps({"phases": phases, "batch": batch, "probes": args.probes}))
    return 0


def _output(gd) -> str:
    """The graph's final tensor: the one node nothing consumes (Softmax/Identity)."""
    consumed = {i.lstrip("^").split(":")[0] for n in gd.node for i in n.input}
    ends = [n for n in gd.node if n.name not in consumed and n.op not in ("Const", "NoOp")]
    return ends[-1].name + ":0"


if __name__ == "__main__":
    exit_now(main())  # ends as tfport's CLIs end: no teardown (scripts/bench.py: fair baselines)
