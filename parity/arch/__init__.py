"""Architectures parity knows, one registered module each (onnx2torch's converter registry, for networks).

Generic parity code (capture, stages, references, checks) never names a MobileNetV2 module path: it asks
`get(name)` with the checkpoint metadata's `arch` (DEFAULT where absent) and reads the answer.

A new architecture is a module in this package, imported below, whose class carries
`@register("<name>")` (a name registered twice raises; `get` of an unknown name raises naming the known
ones). It must provide what `Architecture` lists:

- `canonical(spec, where)`: the source described in torchvision's layout (convert's canonical mapping);
  its `meta` feeds the methods below;
- `points(meta, pool, output)`: every probe point in execution order, named by torchvision's module
  paths with their `:bn` / `:act` / `:out` suffixes, `pool`, the classifier, `output` where asked;
- `tf_tensors(points, taps, pooled)`: each point's TF tensor, aligned through the source's per-layer taps;
- `torchvision(state_dict, meta)`: stock torchvision with the candidate's weights (the plain reference);
  `with_source_semantics(meta)`: torchvision with the source's semantics (padding, eps, input affine,
  head), its tensors not yet loaded; `backbone_state(state_dict)`: the keys the stock model has;
- `units(model)`: the backbone's units in order, by path (where padding differs first, numerically);
- `convs(model)`: the convolutions in the order of the source's `spec.convs`;
- `point_of_conv(path)`: the probe point a finding at that convolution localises to;
- `wrong_activations(model)`: (path, type name) of each activation that is not `activation`;
  `activation` / `tf_activation`: its name in torch and in TF; `activation_fault`: what a wrong one does;
- `input_point`: the first point the input contract shows at; `input_convention`: how the source's
  inputs are scaled, in words.
"""

from __future__ import annotations

from typing import Any, Protocol

from parity.arch import mobilenet_v2  # noqa: F401  (registers itself)
from parity.arch.registry import ARCHITECTURES, DEFAULT, get, register
from parity.points import Point


class Architecture(Protocol):
    """What parity needs to know about one network family (see the module docstring for each)."""

    activation: str
    tf_activation: str
    activation_fault: str
    input_point: str
    input_convention: str

    def canonical(self, spec: Any, where: str) -> Any: ...
    def points(self, meta: dict[str, Any], pool: str | None, output: bool) -> list[Point]: ...
    def tf_tensors(self, points: list[Point], taps: dict[int, dict[str, str]],
                   pooled: str | None) -> dict[str, str]: ...
    def torchvision(self, state_dict: dict[str, Any], meta: dict[str, Any]) -> Any: ...
    def with_source_semantics(self, meta: dict[str, Any]) -> Any: ...
    def backbone_state(self, state_dict: dict[str, Any]) -> dict[str, Any]: ...
    def units(self, model: Any) -> list[tuple[str, Any]]: ...
    def convs(self, model: Any) -> list[tuple[str, Any]]: ...
    def point_of_conv(self, path: str) -> str: ...
    def wrong_activations(self, model: Any) -> list[tuple[str, str]]: ...

__all__ = ["ARCHITECTURES", "DEFAULT", "Architecture", "get", "register"]
