"""Probe points inside a candidate whose module paths are not torchvision's (MMdnn's emitted model, the
module onnx2torch builds): its torch.fx graph, read by structure, never by name.

A torchvision-layout port is probed with hooks on module paths (parity.capture). MMdnn's code calls its
activations and adds as functions (`F.relu6`, `a + b`), which no hook sees; onnx2torch's graph names
nodes after the TF ops. Both trace to an fx graph, where every tensor is a node. The architecture's
points are found there by what the ops are: the k-th batch norm (module or `F.batch_norm`, in graph
order) is the k-th `:bn` point; the activation that is its only consumer its `:act`; a block's
output (`:out`) the add that is its only consumer (or, where nothing adds to it, the batch norm
itself; after the add's activation where the architecture's blocks end in one). A point whose tensor
the graph does not have is not compared there, so the first divergent point is where a fault acts:
ReLU for ReLU6 shows at an `:act` point, as for a torchvision-layout port.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass
from typing import Any

import numpy as np

from parity.capture import AllCaptured, Sink, source_order
from parity.points import Point


def _kinds() -> tuple[dict[Any, str], dict[str, str], tuple[tuple[type, str], ...]]:
    """What an fx node computes, by the function, method or module type it calls (a registry, not names)."""
    import torch
    import torch.nn.functional as F
    from torch import nn

    from convert.layers.batchnorm import BATCHNORM_TYPES

    functions: dict[Any, str] = {F.batch_norm: "bn", torch.batch_norm: "bn", operator.add: "add", torch.add: "add"}
    for fn in (F.relu, F.relu6, F.hardtanh, F.leaky_relu, F.elu, F.gelu, F.silu, F.hardswish, F.sigmoid, F.tanh,
               torch.relu, torch.clamp, torch.clip, torch.sigmoid, torch.tanh):
        functions[fn] = "act"
    methods = {"add": "add", "__add__": "add", **{m: "act" for m in ("relu", "relu_", "clamp", "clamp_", "clip",
                                                                      "sigmoid", "tanh")}}
    modules = ((BATCHNORM_TYPES, "bn"),
               ((nn.ReLU, nn.ReLU6, nn.Hardtanh, nn.LeakyReLU, nn.ELU, nn.GELU, nn.SiLU, nn.Hardswish, nn.Sigmoid,
                 nn.Tanh), "act"))
    return functions, methods, modules  # type: ignore[return-value]


def kind_of(gm: Any, node: Any) -> str | None:
    """"bn", "act", "add" or None for an fx node of `gm`."""
    import torch

    functions, methods, modules = _kinds()
    if node.op == "call_function":
        return functions.get(node.target)
    if node.op == "call_method":
        return methods.get(node.target)
    if node.op != "call_module":
        return None
    mod = gm.get_submodule(node.target)
    for types, kind in modules:
        if isinstance(mod, types):
            return kind
    # onnx2torch's binary operation modules carry the torch function they apply
    return "add" if getattr(mod, "math_op_function", None) is torch.add else None


@dataclass(frozen=True)
class Traced:
    """A candidate's fx graph and, per probe point it has, the node whose output the point is."""

    graph: Any  # torch.fx.GraphModule
    nodes: dict[str, str]  # point name -> node name
    n_bn: int  # batch norms the graph computes

    def points(self, points: list[Point]) -> list[Point]:
        """The points this graph has, in the architecture's order."""
        return [p for p in points if p.name in self.nodes]


def trace(module: Any, points: list[Point], block_output_activated: bool = False,
          source_bns: list[str] | None = None) -> Traced | None:
    """`module`'s fx graph with its probe points found (None where the forward cannot be traced: data-
    dependent control flow in the candidate's own code). Batch norms are the `:bn` points in graph order,
    or in the source's BN order (`source_bns`) where their module names are the source's node names: MMdnn
    emits ResNet's projection shortcut before the block's first conv, torchvision's order has it last."""
    import torch.fx

    if isinstance(module, torch.fx.GraphModule):
        gm = module
    else:
        try:
            gm = torch.fx.symbolic_trace(module)
        except Exception:  # noqa: BLE001 - the candidate's own forward, run on proxies: any failure means "not traceable"
            return None
    nodes = list(gm.graph.nodes)
    kinds = {n: kind_of(gm, n) for n in nodes}
    bns = [n for n in nodes if kinds[n] == "bn"]
    if source_bns and all(n.op == "call_module" for n in bns):
        order = source_order([str(n.target) for n in bns], source_bns)
        bns = bns if order is None else [bns[k] for k in order]

    def only_user(n, kind: str):
        users = list(n.users)
        return users[0] if len(users) == 1 and kinds[users[0]] == kind else None

    found: dict[str, str] = {}
    bn_points = [p for p in points if p.suffix == ":bn"]
    bn_of_slot = {p.slot_index: bns[k] for k, p in enumerate(bn_points) if k < len(bns)}
    for p in points:
        bn = bn_of_slot.get(p.slot_index)
        if bn is None:
            continue
        if p.suffix == ":bn":
            found[p.name] = bn.name
        elif p.suffix == ":act" and (act := only_user(bn, "act")) is not None:
            found[p.name] = act.name
        elif p.suffix == ":out":
            out = only_user(bn, "add") or bn
            if block_output_activated and out is not bn:
                out = only_user(out, "act")
            if out is not None:
                found[p.name] = out.name
    if any(p.suffix == "output" for p in points):
        (ret,) = [n for n in nodes if n.op == "output"]
        found["output"] = ret.name
    return Traced(gm, found, len(bns))


def capture_traced(traced: Traced, model: Any, points: list[Point], x: np.ndarray, batch: int,
                   stop_early: bool = False, channels_last: bool = False, sink: Sink | None = None
                   ) -> dict[str, np.ndarray]:
    """Every point's value (`model`: the traced graph or a copy of it, e.g. in train mode) on `x` in the
    candidate's own input layout, concatenated over batches; the output as the runners give the
    source's (a 1x1 map flattened; a channels-last candidate's feature map in its declared NHWC, turned
    to NCHW like TF's). `stop_early` (one batch): the run ends once every point has its value. `sink`:
    each value goes there as it is produced, nothing is kept (parity.capture.Capture)."""
    import torch
    import torch.fx

    wanted: dict[str, list[str]] = {}
    for p in points:
        if p.name in traced.nodes:
            wanted.setdefault(traced.nodes[p.name], []).append(p.name)
    values: dict[str, list[np.ndarray]] = {p: [] for names in wanted.values() for p in names}
    left = set(values) if stop_early and len(x) <= batch else None
    at = [0]  # the first probe of the batch running

    class Recorder(torch.fx.Interpreter):
        def run_node(self, n):
            out = super().run_node(n)
            names = wanted.get(n.name, ())
            for name in names:
                v = out[0] if n.op == "output" and isinstance(out, (tuple, list)) else out
                v = _as_point(v.detach().numpy(), n.op == "output", channels_last)
                if sink is not None:
                    sink(name, v, at[0])
                else:
                    values[name].append(v.copy())
            if left is not None and names:
                left.difference_update(names)
                if not left:
                    raise AllCaptured
            return out

    try:
        with torch.no_grad():
            for i in range(0, len(x), batch):
                at[0] = i
                Recorder(model).run(torch.from_numpy(np.ascontiguousarray(x[i : i + batch])))
    except AllCaptured:
        pass
    return {k: v[0] if len(v) == 1 else np.concatenate(v) for k, v in values.items() if v}


def _as_point(v: np.ndarray, output: bool, channels_last: bool) -> np.ndarray:
    if not output or v.ndim != 4:
        return v
    if v.shape[1:3] == (1, 1) if channels_last else v.shape[2:] == (1, 1):
        return v.reshape(len(v), -1)
    return v.transpose(0, 3, 1, 2) if channels_last else v
