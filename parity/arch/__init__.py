"""Architectures parity knows, one registered module each (onnx2torch's converter registry, for networks).

Generic parity code (capture, stages, references, checks) never names a MobileNetV2 module path: it asks
`get(name)` with the checkpoint metadata's `arch` (DEFAULT where absent) and reads the answer.

A new architecture is a module in this package, imported below, whose class carries
`@register("<name>")` (a name registered twice raises; `get` of an unknown name raises naming the known
ones). It must provide what `Architecture` lists; `layout.TorchvisionLayout` answers `canonical`,
`tf_tensors`, `with_source_semantics`, `backbone_state`, `units` and `convs` the way every torchvision-laid-out
network does, so an architecture class extends it and overrides only where its network differs:

- `canonical(spec, where, tensors=True)`: the source described in torchvision's layout (convert's canonical mapping);
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
  inputs are scaled, in words;
- optionally `block_output_activated = True` where a block's output (`:out`) is the activation after its
  residual add (ResNet's), not the add itself (MobileNetV2's): how `:out` is found in the traced graph of a
  candidate not laid out like torchvision (parity.traced); False where absent.
"""

from __future__ import annotations

from parity.arch import mobilenet_v2, mobilenet_v3, resnet50, vgg16  # noqa: F401  (register themselves)
from parity.arch.registry import ARCHITECTURES, DEFAULT, Architecture, get, register

__all__ = ["ARCHITECTURES", "DEFAULT", "Architecture", "get", "register"]
