"""The parity-overhead baseline: bare forward passes of every backend `parity check` runs, plus imports.

What `python -m parity check PORTED --probes N` (eval + train, against tf,onnx,torchvision) has to
run at the very least, written the shortest way, in the same order and batching:
  TF        the frozen source graph on N probes (eval), then the graph with every FusedBatchNorm in
            training mode (train);
  torch     four forwards on N probes of the port's architecture (`meta["arch"]`, default MobileNetV2),
            built by torchvision's own builder (`torchvision.models.get_model`) and holding the port's
            weights: the candidate in eval mode, plain torchvision, torchvision with the declared
            semantics (parity.references.torchvision_references builds both for every architecture with
            a torchvision layout: MobileNetV2, ResNet50, MobileNetV3, VGG16), the candidate in train mode;
  ORT       the `.onnx` export beside the port on N probes.
TF's sessions are configured as parity's (convert.runners.tf.session_config: the graph as written,
Grappler off), so the baseline does the same TF work, done the same way. No hooks, no comparisons, no
checks, no reports. One torch model serves all four forwards, where
parity builds three (candidate, plain, declared): building the other two is counted as parity's cost.
The model runs channels-last, as parity runs torchvision-laid-out candidates and their references
(parity.prober.channels_last: torch's CPU convolutions are 12-16 % faster so), so the forwards cost both
sides the same. The candidate's and the declared reference's forwards stride where the source does (`meta["stride"]`:
ResNet50 v1's 1x1, not torchvision v1.5's 3x3), plain torchvision's where torchvision does; TF SAME's
one-sided padding (MobileNet's stride-2 convs) is left symmetric: the same arithmetic, one row apart.
The probes are parity's own (convert.model.probe.probe_inputs, seed 0) in the range the source declares
and the port records (`meta["input_range"]`: MobileNet's [-1, 1], ResNet50's caffe range, MobileNetV3's
0..255 pixels), so both sides run the same numbers through the same graphs. A source that fixes its
input size (the bench's keras2_pb samples) gets no second-size padding check in parity, so none here.
`scripts/bench.py` times this process's wall clock (imports included) against parity's, side by side.

    python scripts/bench_forward.py SOURCE.pb PORTED.pth PORTED.onnx [--probes 8]
"""

from __future__ import annotations

import argparse
import json
import time

from convert.runtime import guard as _guard  # noqa: F401  (before TF/torch: hides triton, which segfaults after TF)
from convert.runtime.entry import start
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

    from convert.runners.tf import session_config  # TF run as parity runs it (Grappler off), not slower

    lap("imports")
    payload = torch.load(args.ported, map_location="cpu", weights_only=True)
    sd, meta = payload["state_dict"], json.loads(payload["metadata"])
    gd = tf.compat.v1.GraphDef()
    with open(args.source, "rb") as f:
        gd.ParseFromString(f.read())
    ph = next(n for n in gd.node if n.op == "Placeholder")
    shape = [d.size for d in ph.attr["shape"].shape.dim]
    batch = shape[0] if shape[0] > 0 else args.probes
    h, w = shape[1], shape[2]
    x = probes(meta, args.probes, (h, w))
    out_name = _output(gd)

    def tf_forward(graph_def) -> None:
        g = tf.Graph()
        with g.as_default():
            tf.compat.v1.import_graph_def(graph_def, name="")
        with tf.compat.v1.Session(graph=g, config=session_config()) as sess:
            for i in range(0, len(x), batch):
                sess.run(out_name, {ph.name + ":0": x[i : i + batch]})

    tf_forward(gd)
    lap("tf_eval")
    for node in gd.node:
        if node.op.startswith("FusedBatchNorm"):
            node.attr["is_training"].b = True
    tf_forward(gd)
    lap("tf_train")

    model = torch_model(sd, meta).to(memory_format=torch.channels_last)  # as parity.prober runs it
    source, stock = strides(model, meta)
    xt = torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))
    # candidate, plain torchvision, declared, candidate in train mode
    for mode, stride in (("eval", source), ("eval", stock), ("eval", source), ("train", source)):
        set_strides(model, stride)
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


def probes(meta: dict, n: int, hw: tuple[int, int]):
    """parity's probes (convert.model.probe, ParityConfig's seed 0) in the input range the port records
    from its source (MobileNetV2's [-1, 1] where none is recorded)."""
    from convert.model.probe import probe_inputs

    lo, hi = meta.get("input_range") or (-1.0, 1.0)
    return probe_inputs(n, hw, (float(lo), float(hi)), seed=0)


# torchvision's last classifier Linear per architecture, its rows the class count (convert/arch/*.py: the
# dense slot, `classifier`'s last Linear; 0 rows in a feature extractor's port)
CLASSIFIER_WEIGHT = {"mobilenet_v2": "classifier.1.weight", "resnet50": "fc.weight",
                     "mobilenet_v3_large": "classifier.3.weight", "mobilenet_v3_small": "classifier.3.weight",
                     "vgg16": "classifier.6.weight"}


def torch_model(state_dict: dict, meta: dict):
    """The port's architecture from torchvision's own builder, the port's weights loaded strictly."""
    import warnings

    import torchvision

    arch = meta.get("arch") or "mobilenet_v2"
    if arch not in CLASSIFIER_WEIGHT:
        raise SystemExit(f"error: architecture {arch!r} has no bench baseline; known: {', '.join(CLASSIFIER_WEIGHT)}")
    weight = state_dict.get(CLASSIFIER_WEIGHT[arch])
    kw = {"width_mult": float(meta.get("alpha", 1.0))} if arch == "mobilenet_v2" else {}
    with warnings.catch_warnings():  # a feature extractor's 0-class Linear: torch warns its init is a no-op
        warnings.filterwarnings("ignore", "Initializing zero-element tensors is a no-op")
        model = torchvision.models.get_model(arch, num_classes=0 if weight is None else int(weight.shape[0]), **kw)
    model.load_state_dict(state_dict)
    return model


def strides(model, meta: dict) -> tuple[dict, dict]:
    """(the source's stride per conv, torchvision's) where they differ (`meta["stride"]`, as
    convert.port.build sets them): ResNet50 v1 strides the first 1x1 of a downsampling block, torchvision's
    v1.5 the 3x3. The candidate and the declared reference run the source's; plain torchvision its own."""
    modules = dict(model.named_modules())
    source = {k: (int(s), int(s)) for k, s in (meta.get("stride") or {}).items()}
    return source, {k: modules[k].stride for k in source}


def set_strides(model, stride: dict) -> None:
    modules = dict(model.named_modules())
    for k, s in stride.items():
        modules[k].stride = s


def _output(gd) -> str:
    """The graph's final tensor: the one node nothing consumes (Softmax/Identity)."""
    consumed = {i.lstrip("^").split(":")[0] for n in gd.node for i in n.input}
    ends = [n for n in gd.node if n.name not in consumed and n.op not in ("Const", "NoOp")]
    return ends[-1].name + ":0"


if __name__ == "__main__":
    start(owned=False)  # starts as tfport's CLIs start (scripts/bench.py: fair baselines)
    exit_now(main())  # ends as tfport's CLIs end: no teardown (scripts/bench.py: fair baselines)
