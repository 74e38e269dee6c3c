"""Choices and defaults the CLIs offer, as plain data (no numpy: read while `--help` is built)."""

from __future__ import annotations

FORMS = ("slim_pb", "keras2_h5", "keras2_pb", "keras3", "savedmodel", "transfer_h5")


# probe inputs `tf2torch` verifies on: a wrong mapping moves every probe, so 16 catch what 64 did (the
# fault tests) at a quarter of the forward passes; `parity check` is the deep, layer-by-layer test
DEFAULT_PROBES = 16
# `convert sample --alpha`: Keras Applications' MobileNetV2 widths (convert.arch.mobilenet_v2 reads them
# from here: the sample command's choices are built for --help, before any architecture module loads)
MOBILENET_V2_ALPHAS = (0.35, 0.5, 0.75, 1.0, 1.3, 1.4)
# `convert sample --arch`: the registered architectures (convert.arch) a sample can be built of, as CLI data
# (the registry loads no architecture module while --help is built); tests/convert/test_resnet50.py checks
# it names every registered one
SAMPLE_ARCHS = ("mobilenet_v2", "resnet50")
SAMPLE_ARCHS += ("mobilenet_v3_large", "mobilenet_v3_small")  # convert.arch.mobilenet_v3
SAMPLE_ARCHS += ("vgg16",)  # convert.arch.vgg16
# the forms only MobileNetV2 has a writer for (TF-slim's graph is MobileNetV2's own)
MOBILENET_V2_ONLY_FORMS = ("slim_pb",)
