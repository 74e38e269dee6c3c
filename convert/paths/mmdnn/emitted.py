"""MMdnn's emitted PyTorch model, as MMdnn users load it, minus the pickle; and its outputs on the probes."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from convert.runtime.errors import fail


def load_emitted(code_path: str | Path, weights_path: str | Path):
    """MMdnn's emitted PyTorch model (`KitModel`), in eval mode, as MMdnn users load it, minus the pickle.

    The emitted file is Python that MMdnn generated (by this tool, or by MMdnn wherever the user ran
    it): importing it runs it, exactly as MMdnn's own instructions do (`imp.load_source`, here on
    importlib). Only load code you generated or trust. Its `load_weights` would unpickle the weights
    with `np.load(allow_pickle=True)`; it is replaced before the model is built by the restricted
    reader, so the weights file itself can never run code."""
    import torch

    from convert.compat.mmdnn import load_source, read_weights

    code_path, weights_path = Path(code_path), Path(weights_path)
    try:
        code = code_path.read_bytes()
    except OSError as e:
        raise fail(f"{code_path}: cannot read ({e.strerror})") from e
    weights = read_weights(weights_path)  # checked before any emitted code runs
    name = "tfport_mmdnn_" + hashlib.sha256(code).hexdigest()[:16]
    try:
        module = load_source(name, code_path)
    except SyntaxError as e:
        raise fail(f"{code_path}: not MMdnn-emitted Python (SyntaxError at line {e.lineno})") from e
    if not hasattr(module, "KitModel") or not hasattr(module, "load_weights"):
        raise fail(f"{code_path}: not an MMdnn PyTorch model (no KitModel / load_weights)")
    module.load_weights = lambda weight_file: weights  # the generated module's own loader unpickles
    try:
        model = module.KitModel(str(weights_path))
    except (KeyError, RuntimeError, ValueError, TypeError) as e:
        detail = str(e).splitlines()[0][:160] if str(e) else ""
        raise fail(f"{weights_path}: weights do not fit {code_path.name} ({type(e).__name__}: {detail})") from e
    if not isinstance(model, torch.nn.Module):
        raise fail(f"{code_path}: KitModel is not a torch.nn.Module")
    return model.eval()


def emitted_outputs(model, x_nhwc: np.ndarray, batch: int = 1, forward=None) -> tuple[np.ndarray, np.ndarray]:
    """(logits, output) of MMdnn's emitted model for NHWC inputs.

    Batch 1: the emitted forward is straight-line code whose locals keep every intermediate tensor
    alive until it returns (~80 MB per 224 image), so its peak memory grows with the batch; it runs in
    `convert`'s torch worker beside the TF process, and the two peaks add (scripts/bench
    memory_convert_mmdnn_ratio: batch 4 peaked the worker at 0.81 GB, batch 1 at 0.53-0.55 GB).

    The emitted forward returns only the graph's output (softmax); the logits are the output of the
    last conv/linear module it runs (slim: the 1x1 classifier conv; Keras: the Dense). `forward`: how the
    model is called (default: as it is), e.g. with its failures named as MMdnn's."""
    import torch

    last: list[torch.Tensor] = []

    def keep(_mod, _inp, out) -> None:
        last[:] = [out]

    weighted = (torch.nn.Conv2d, torch.nn.Linear)
    hooks = [m.register_forward_hook(keep) for m in model.modules() if isinstance(m, weighted)]
    logits, outputs = [], []
    try:
        with torch.no_grad():
            for i in range(0, len(x_nhwc), batch):
                chunk = x_nhwc[i : i + batch]
                y = (forward or model)(torch.from_numpy(np.ascontiguousarray(chunk.transpose(0, 3, 1, 2))))
                if y.ndim == 4:  # a feature map (a feature extractor's output): compared in TF's NHWC order
                    y = y.permute(0, 2, 3, 1)
                outputs.append(y.reshape(len(chunk), -1).numpy())  # MMdnn's squeeze drops a batch of 1
                logits.append(last[0].reshape(len(chunk), -1).numpy())
    finally:
        for h in hooks:
            h.remove()
    return np.concatenate(logits), np.concatenate(outputs)


def emitted_bn_momenta(model) -> dict[str, float]:
    """Every BatchNorm momentum in MMdnn's emitted model, by module name."""
    from convert.layers.batchnorm import batchnorms

    return {name: m.momentum for name, m in batchnorms(model)}
