"""`convert repair`: any candidate's weights + the semantics the source prescribes = the canonical backbone.

The weights come from the candidate (a tfport checkpoint, a plain torchvision state dict, or MMdnn's
emitted weights file, read without running MMdnn's code or any pickle); everything a parity check can
prescribe — BN eps, momentum = 1 − decay, TF SAME padding, eval mode, the input range — comes from the
TF source. Weights themselves are never "fixed": a port whose weights differ from the source fails
the verification here and nothing is written.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from convert import arch as architectures
from convert.model.options import DEFAULT_PROBES
from convert.runtime.errors import fail
from convert.runtime.files import sha256_file


def _mmdnn_layers(entries: dict[str, dict], reads: dict[str, str | None]) -> list:
    """MMdnn's weight entries (file order: its IR's execution order) as spec layers holding the candidate's
    arrays: a BN where there are statistics, a dense layer for a 2-D weight and for a 1x1 4-D weight after
    the last BN (slim's 1x1 logits), else a conv (with its bias where MMdnn kept one: ResNet's Keras convs).
    MMdnn names each entry by the TF node it came from, so where the source's graph has that node its data
    flow comes along (`ConvSpec.reads`: which conv reads which, for architectures that branch)."""
    from convert.model.spec import BNSpec, ConvSpec, DenseSpec

    items = [(k, e) for k, e in entries.items() if ("mean" in e and "var" in e) or
             ("weights" in e and np.ndim(e["weights"]) in (2, 4))]
    last_bn = max((i for i, (_, e) in enumerate(items) if "mean" in e), default=-1)
    layers: list = []
    f32 = lambda a: np.asarray(a, np.float32)  # noqa: E731
    for i, (key, e) in enumerate(items):
        if "mean" in e:
            c = np.shape(e["mean"])[0]
            layers.append(BNSpec(key, f32(e.get("scale", np.ones(c))), f32(e.get("bias", np.zeros(c))),
                                 f32(e["mean"]), f32(e["var"]), 0.0))
            continue
        w = f32(e["weights"])  # PyTorch layouts: MMdnn's emitter transposed HWIO -> OIHW
        bias = f32(e["bias"]).reshape(-1) if "bias" in e else None
        if w.ndim == 2 or (i > last_bn >= 0 and w.shape[2:] == (1, 1)):  # VGG16 has no BN: its convs stay convs
            w = w[:, :, 0, 0] if w.ndim == 4 else w
            layers.append(DenseSpec(key, np.ascontiguousarray(w), bias if bias is not None else np.zeros(w.shape[0],
                                                                                                    np.float32)))
        else:
            depthwise = w.shape[1] == 1 and w.shape[2] > 1
            layers.append(ConvSpec(key, w, 1, depthwise, (0, 0, 0, 0), False, bias, reads=reads.get(key)))
    return layers


def _mmdnn_state_dict(code: Path, prescribed, arch, reads: dict[str, str | None]) -> dict:
    """MMdnn's emitted weights mapped onto torchvision's slots in the architecture's module order, and onto
    the source's own head (`head.N.*`) where it has one beyond torchvision's classifier; a conv bias before
    its BN (ResNet50) folds into that BN's running mean (mean - b: the candidate's own b). The first Dense
    after a Flatten keeps TF's NHWC columns in MMdnn's weights (its emitted model's flatten bug): permuted
    into the NCHW order the port flattens in, as a conversion does."""
    import dataclasses

    from convert.compat.mmdnn import read_weights
    from convert.model.layouts import flatten_columns
    from convert.model.spec import BNSpec, ConvSpec
    from convert.port.canonical import slots_of

    slots = slots_of(prescribed.meta)
    weights_path = code.with_suffix(".npy")
    if not weights_path.exists():
        raise fail(f"{code}: MMdnn's weights file {weights_path.name} is not beside the emitted code")
    layers = _mmdnn_layers(read_weights(weights_path), reads)
    body = [x for x in layers if isinstance(x, (ConvSpec, BNSpec))]
    order = arch.execution_order(body)
    denses = [x for x in layers if not isinstance(x, (ConvSpec, BNSpec))]
    flatten = prescribed.meta.get("flatten")
    if flatten and denses and flatten.get("source_order", "NCHW") != "NCHW":
        w = denses[0].weight
        if w.ndim == 2 and w.shape[1] == int(np.prod(flatten["shape"])):
            denses[0] = dataclasses.replace(denses[0], weight=flatten_columns(
                w, tuple(flatten["shape"]), flatten["source_order"], "NCHW"))
    n_head = sum(k.endswith(".weight") for k in prescribed.head_state)
    head, denses = (denses[len(denses) - n_head:], denses[: len(denses) - n_head]) if n_head else ([], denses)
    layers = [body[i] for i in order] + denses
    if len(layers) != len(slots) or len(head) != n_head:
        raise fail(f"{code}: MMdnn's weights hold {len(layers) + len(head)} layers, a {arch.title} of this source "
                   f"has {len(slots) + n_head}")
    t = lambda a: torch.from_numpy(np.ascontiguousarray(a, np.float32))  # noqa: E731
    sd: dict[str, torch.Tensor] = {}
    for i, dense in enumerate(head):
        want = tuple(prescribed.head_state[f"head.{i}.weight"].shape)
        if tuple(dense.weight.shape) != want:
            raise fail(f"{code}: dense '{dense.name}' {tuple(dense.weight.shape)} does not fit head.{i} {want}")
        sd[f"head.{i}.weight"], sd[f"head.{i}.bias"] = t(dense.weight), t(dense.bias)
    bias = None  # the conv bias the next BN absorbs
    for layer, slot in zip(layers, slots, strict=True):
        if slot.kind == "bn":
            if not isinstance(layer, BNSpec):
                raise fail(f"{code}: expected BatchNorm weights for {slot.key}, found '{layer.name}'")
            mean = layer.mean if bias is None else layer.mean.astype(np.float64) - bias
            bias = None
            for name, arr in (("weight", layer.gamma), ("bias", layer.beta), ("running_mean", mean),
                              ("running_var", layer.var)):
                sd[f"{slot.key}.{name}"] = t(arr)
            sd[slot.key + ".num_batches_tracked"] = torch.tensor(0)
        elif isinstance(layer, BNSpec):
            raise fail(f"{code}: BatchNorm '{layer.name}' where {slot.key} needs {slot.kind} weights")
        else:
            sd[slot.key + ".weight"] = t(layer.weight)
            if slot.kind == "dense" or slot.bias:  # a Linear's, or a conv bias torchvision keeps (SE units)
                sd[slot.key + ".bias"] = t(layer.bias if layer.bias is not None else np.zeros(slot.shape[0]))
            elif layer.bias is not None and np.any(layer.bias != 0):
                if not arch.folds_conv_bias:
                    raise fail(f"{code}: conv '{layer.name}' has a bias; {arch.title} convs have none (BN follows)")
                bias = layer.bias.astype(np.float64)
    return sd


def repair(ported: str | Path, output: str | Path, source_path: str | Path | None = None, probes: int = DEFAULT_PROBES,
           progress=lambda s: None, trust_code: bool = False):
    """Returns (agreements, output path or None). Writes only when the repaired port reproduces TF."""
    import dataclasses

    from convert.model.probe import probe_inputs
    from convert.model.tolerance import REL_TOL
    from convert.paths.worker import torch_outputs
    from convert.pipeline import verify
    from convert.port import checkpoint
    from convert.port.build import build
    from convert.port.canonical import to_torchvision
    from convert.port.provenance import provenance
    from convert.sources import load_source

    ported, output = Path(ported), Path(output)
    if not ported.exists():
        raise fail(f"{ported}: no such file")
    if not output.parent.is_dir():
        raise fail(f"{output}: output folder {output.parent} does not exist")
    meta_in: dict = {}
    sd = None
    if ported.suffix != ".py":
        sd, meta_in = checkpoint.load_any(ported)
    recorded = (meta_in.get("source") or {}).get("path")
    src = source_path or recorded
    if not src:
        raise fail(f"{ported}: records no source; give --source SRC")
    if recorded and source_path is None and meta_in.get("source", {}).get("sha256"):
        if sha256_file(src) != meta_in["source"]["sha256"]:
            raise fail(f"{src}: sha256 differs from the one recorded in {ported.name}")
    progress(f"loading source {src}")
    source = load_source(src, tuple(meta_in["input_size"]) if meta_in.get("input_size") else None, trust_code)
    prescribed = to_torchvision(source.spec, str(source.path))
    if sd is None:
        reads = {c.name: c.reads for c in source.spec.convs}
        sd = _mmdnn_state_dict(ported, prescribed, architectures.get(source.spec.arch), reads)
    model = build(prescribed.meta)
    sd = {**prescribed.head_state, **sd}  # a head of the source's own that the candidate lacks comes from the source
    try:
        model.load_state_dict(sd, strict=True)
    except RuntimeError as e:
        raise fail(f"{ported}: weights do not fit the source's {architectures.get(source.spec.arch).title} "
                   f"({str(e).splitlines()[0][:160]})") from None
    model.eval()
    progress("verifying the repaired port against TF")
    x = probe_inputs(probes, source.spec.input_shape[:2], source.spec.input_range)
    fetch = {k: v for k, v in (("output", source.info.output), ("pooled", source.info.pooled),
                               ("logits", source.info.logits)) if v}
    runner = source.runner()
    try:
        ref = dict(zip(fetch, runner.run(x, list(fetch.values())), strict=True))
    finally:
        runner.close()
    # as tf2torch verifies a port: the output, and the pooled features and logits where both have them (a
    # softmax that caffe-range inputs saturate, ResNet50's, proves little alone)
    agreements = [dataclasses.replace(a, what=a.what.replace("canonical", "repaired"))
                  for a in verify(source.spec, torch_outputs(model, x), ref)]
    if not all(a.ok(REL_TOL) for a in agreements):
        return agreements, None
    meta = dict(prescribed.meta)
    meta.update(provenance(source, f"repair of {ported.name}", agreements))
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    for key in state:
        if key.endswith("num_batches_tracked"):
            state[key] = torch.tensor(0)
    checkpoint.save(output, state, meta)
    return agreements, output
