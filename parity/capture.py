"""Capturing probe points: forward hooks on torch models, and TF's values in the candidate's layout."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from parity.points import Point

# plain torchvision models' last feature module (MobileNetV2's `features`, ResNet's `layer4`): their
# forward() pools after it, so the `pool` point is taken there
PLAIN_LAST_FEATURES = ("features", "layer4")
NOTHING = np.empty((0,), np.float32)  # what a point never captured compares as: it fails (metrics.compare)


# where a point's value goes when it is compared as it is produced, (point, value of probes lo.., lo): a
# view of the tensor, valid only during the call (the ops that follow may work in place)
Sink = Callable[[str, np.ndarray, int], None]


class AllCaptured(Exception):
    """Raised from the hook of the last point a forward pass was needed for: the rest is not run."""


class Capture:
    """Forward hooks on a torchvision-structured model collecting every probe point in one pass.

    `stop_early`: once every point has a value, the hook raises AllCaptured, so a forward pass wanted
    for the first points only does not compute the rest. `sink`: each value goes to it as it is produced
    (a view, no copy) and nothing is kept; parity compares there, so a point is never held twice (its
    source's value and the candidate's). Comparing inside the hooks, between the model's ops, costs what
    comparing afterwards does once idle OpenMP workers yield (convert.runtime.threads; with spinning
    workers it once cost ~7x on 2 cores)."""

    def __init__(self, model, points: list[Point], stop_early: bool = False, sink: Sink | None = None) -> None:
        import torch

        self.values: dict[str, list] = {p.name: [] for p in points}
        self.left = set(self.values) if stop_early else None
        self.sink = sink
        self.lo = 0  # the first probe of the batch running (what the sink is told)
        self.handles = []
        modules = dict(model.named_modules())
        for p in points:
            if p.suffix == "output":
                mod, hook = model, self._output_hook(p.name)  # the whole module's return value
            elif p.suffix == "pool" and p.module not in modules:  # plain torchvision: pools in forward()
                last = next((modules[m] for m in PLAIN_LAST_FEATURES if m in modules), None)
                mod, hook = last, self._pool_hook(p.name, torch)
            else:
                mod, hook = modules.get(p.module), self._hook(p.name)
            if mod is not None:
                self.handles.append(mod.register_forward_hook(hook))

    def _add(self, name: str, value) -> None:
        if self.sink is not None:
            self.sink(name, value, self.lo)
        else:
            self.values[name].append(value if value.flags.owndata else value.copy(order="K"))
        if self.left is not None:
            self.left.discard(name)
            if not self.left:
                raise AllCaptured

    def _hook(self, name: str):
        def hook(_mod, _inp, out):
            self._add(name, out.detach().numpy())
        return hook

    def _output_hook(self, name: str):
        """The return value as the runners give the source's output (convert.runners.tf.per_probe): a 1x1 map,
        an unpooled 32 px feature extractor's, flattened to (n, C), else it fits no reference."""
        def hook(_mod, _inp, out):
            v = out.detach().numpy()
            self._add(name, v.reshape(len(v), -1) if v.ndim == 4 and v.shape[2:] == (1, 1) else v)
        return hook

    def _pool_hook(self, name: str, torch):
        def hook(_mod, _inp, out):
            self._add(name, torch.nn.functional.adaptive_avg_pool2d(out, 1).flatten(1).detach().numpy().copy())
        return hook

    def close(self) -> None:
        for h in self.handles:
            h.remove()

    def result(self) -> dict[str, np.ndarray]:
        return {k: v[0] if len(v) == 1 else np.concatenate(v) for k, v in self.values.items() if v}


def nchw(a: np.ndarray) -> np.ndarray:
    return a.transpose(0, 3, 1, 2) if a.ndim == 4 else a


def tf_values(runner, x: np.ndarray, tensors: dict[str, str], points: list[Point]) -> dict[str, np.ndarray]:
    """TF's value of each named point in the candidate's layout: a block's feature maps NCHW (a 1x1 map
    late in a small input included); pooled features and logits flat (a pooling that kept its dims, a
    slim graph's 1x1-conv logits: N x 1 x 1 x C); the source's output as the runner gives it."""
    from convert.runners.tf import per_probe

    suffix = {p.name: p.suffix for p in points}
    names = list(tensors)
    vals = runner.run(x, [tensors[n] for n in names], maps=True)
    out = {}
    for n, v in zip(names, vals, strict=True):
        kind = suffix.get(n, "output")
        if kind in ("pool", ""):
            out[n] = v.reshape(len(v), -1)
        else:
            out[n] = nchw(per_probe(v, len(v)) if kind == "output" else v)
    return out


def capture_torch(model, points: list[Point], x_nchw: np.ndarray, batch: int, stop_early: bool = False,
                  sink: Sink | None = None) -> dict[str, np.ndarray]:
    """Every point's value, concatenated over batches (none where `sink` takes them: Capture).
    `stop_early` (one batch): the forward pass ends once every point has its value."""
    import torch

    cap = Capture(model, points, stop_early=stop_early and len(x_nchw) <= batch, sink=sink)
    try:
        with torch.no_grad():
            for i in range(0, len(x_nchw), batch):
                cap.lo = i
                model(torch.from_numpy(np.ascontiguousarray(x_nchw[i : i + batch])))
    except AllCaptured:
        pass
    finally:
        cap.close()
    return cap.result()


def capture_generic(model: Any, x: np.ndarray, batch: int) -> tuple[list[np.ndarray], np.ndarray, list[str]]:
    """Modules not laid out like torchvision: BN outputs in call order, the final output, and the module
    path of each BN call."""
    import torch

    from convert.layers.batchnorm import batchnorms

    calls: list[list[np.ndarray]] = []
    names: list[str] = []
    outs = []
    bns = batchnorms(model)
    for i in range(0, len(x), batch):
        seen: list[np.ndarray] = []
        called: list[str] = []

        def hook(_m, _i, o, name, seen=seen, called=called):
            seen.append(o.detach().numpy().copy())
            called.append(name)

        hs = [m.register_forward_hook(lambda m_, i_, o, name=name: hook(m_, i_, o, name)) for name, m in bns]
        try:
            with torch.no_grad():
                out = model(torch.from_numpy(np.ascontiguousarray(x[i : i + batch])))
        finally:
            for h in hs:
                h.remove()
        calls.append(seen)
        names = names or called
        outs.append(out.detach().numpy().reshape(len(out), -1))
    per_bn = [np.concatenate([c[k] for c in calls]) for k in range(min(len(c) for c in calls))] if calls else []
    return per_bn, np.concatenate(outs), names[: len(per_bn)]


def source_order(called: list[str], source_bns: list[str]) -> list[int] | None:
    """Indices into `called` (a candidate's BN module names in call order) in the source's BN order
    (torchvision's), where the candidate's module names are the source's node names (MMdnn names each
    module after the TF node: `a/b_bn/FusedBatchNormV3` -> `a_b_bn_FusedBatchNormV3`); else None. Call order
    is the source graph's, which for branches (ResNet's projection shortcut run first) is not torchvision's."""
    import re

    key = lambda name: re.sub(r"\W", "_", name.split("#")[0])  # noqa: E731
    at = {key(n): k for k, n in enumerate(called)}
    if len(at) != len(called) or len(source_bns) != len(called) or any(key(n) not in at for n in source_bns):
        return None
    return [at[key(n)] for n in source_bns]


def by_source_name(per_bn: list[np.ndarray], called: list[str], source_bns: list[str]) -> list[np.ndarray]:
    """The candidate's BN outputs in the source's BN order where its names say it (source_order), else in
    call order."""
    order = source_order(called, source_bns)
    return per_bn if order is None else [per_bn[k] for k in order]
