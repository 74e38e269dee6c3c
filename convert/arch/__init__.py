"""The architecture registry: what differs between backbones lives in one module per architecture.

Every layer of tfport asks this registry instead of knowing MobileNetV2: the readers which architecture
a graph's op census is (`recognise`), the canonical mapping which widths to try and which torchvision
model's slots to fill (`variants`, `torchvision`), the checkpoint loader how to rebuild it from metadata
(`variant_of`, `body`, `classifier`), the sample generator which Keras application to build. The key
(`name`) is what checkpoint metadata stores as `arch`.

Adding an architecture (ResNet50, VGG16, ...) means adding modules, not editing if-chains:
  - `convert/arch/NAME.py`: a class decorated with `@register`, providing every member of
    :class:`Architecture` below (imports of torch/torchvision inside its methods: the CLIs import this
    package while building `--help`);
  - `parity/arch/NAME.py`: its probe points and their alignment with the TF graph (parity.arch);
  - import it at the bottom of this file (and of parity/arch/__init__.py), so it registers.
"""

from convert.arch import mobilenet_v2, mobilenet_v3, resnet50, vgg16  # noqa: F401  (registers)
from convert.arch.registry import (  # noqa: F401
    ARCHITECTURES,
    DEFAULT,
    Architecture,
    get,
    in_torchvision_order,
    of,
    recognise,
    recognise_weights,
    register,
    structure,
)
