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

from convert.model.options import DEFAULT_PROBES
from convert.runtime.errors import fail
from convert.runtime.files import sha256_file


def _mmdnn_state_dict(code: Path, slots) -> dict:
    """MMdnn's emitted weights (PyTorch layouts: its emitter transposes HWIO -> OIHW) in execution order."""
    from convert.compat.mmdnn import read_weights

    weights_path = code.with_suffix(".npy")
    if not weights_path.exists():
        raise fail(f"{code}: MMdnn's weights file {weights_path.name} is not beside the emitted code")
    entries = list(read_weights(weights_path).values())
    tensors: list[tuple[str, dict]] = []
    for e in entries:
        if "mean" in e and "var" in e:
            tensors.append(("bn", e))
        elif "weights" in e and e["weights"].ndim in (2, 4):
            tensors.append(("w", e))
    sd: dict[str, torch.Tensor] = {}
    if len(tensors) != len(slots):
        raise fail(f"{code}: MMdnn's weights hold {len(tensors)} layers, a MobileNetV2 of this source has {len(slots)}")
    for (kind, e), slot in zip(tensors, slots, strict=False):
        if slot.kind == "bn":
            if kind != "bn":
                raise fail(f"{code}: expected BatchNorm weights for {slot.key}")
            c = slot.shape[0]
            sd[slot.key + ".weight"] = torch.from_numpy(np.asarray(e.get("scale", np.ones(c)), np.float32))
            sd[slot.key + ".bias"] = torch.from_numpy(np.asarray(e.get("bias", np.zeros(c)), np.float32))
            sd[slot.key + ".running_mean"] = torch.from_numpy(np.asarray(e["mean"], np.float32))
            sd[slot.key + ".running_var"] = torch.from_numpy(np.asarray(e["var"], np.float32))
            sd[slot.key + ".num_batches_tracked"] = torch.tensor(0)
        else:
            w = np.asarray(e["weights"], np.float32)
            if slot.kind == "dense" and w.ndim == 4:  # slim's 1x1 logits conv
                w = w[:, :, 0, 0]
            sd[slot.key + ".weight"] = torch.from_numpy(np.ascontiguousarray(w))
            if slot.kind == "dense":
                sd[slot.key + ".bias"] = torch.from_numpy(np.asarray(e.get("bias", np.zeros(w.shape[0])), np.float32))
    return sd


def repair(ported: str | Path, output: str | Path, source_path: str | Path | None = None, probes: int = DEFAULT_PROBES,
           progress=lambda s: None, trust_code: bool = False):
    """Returns (agreements, output path or None). Writes only when the repaired port reproduces TF."""
    from convert.model.agreement import agreement
    from convert.model.probe import probe_inputs
    from convert.model.tolerance import REL_TOL
    from convert.paths.worker import torch_outputs
    from convert.pipeline import provenance
    from convert.port import checkpoint
    from convert.port.build import build
    from convert.port.canonical import slots_of, to_torchvision
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
    slots = slots_of(prescribed.meta)
    if sd is None:
        sd = _mmdnn_state_dict(ported, slots)
    model = build(prescribed.meta)
    sd = {**prescribed.head_state, **sd}  # a head of the source's own that the candidate lacks comes from the source
    try:
        model.load_state_dict(sd, strict=True)
    except RuntimeError as e:
        raise fail(f"{ported}: weights do not fit the source's MobileNetV2 ({str(e).splitlines()[0][:160]})") from None
    model.eval()
    progress("verifying the repaired port against TF")
    x = probe_inputs(probes, source.spec.input_shape[:2], source.spec.input_range)
    runner = source.runner()
    try:
        (ref,) = runner.run(x, [source.info.output])
    finally:
        runner.close()
    out = torch_outputs(model, x)["output"]
    agreements = [agreement("repaired vs TF: output", out, ref, logits=True)]
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
