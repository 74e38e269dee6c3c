"""convert.model.tolerance: which of a port's outputs carry single feature-map elements (looser tolerance)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from convert.model.tolerance import loose_output, pools_single_elements


@pytest.mark.parametrize("size,pool,single", [
    ((32, 32), "avg", True),   # the last map is 1x1: its average is one element
    ((32, 64), "avg", False),  # 1x2: two elements averaged
    ((33, 33), "avg", False),  # SAME padding: ceil(33 / 32) = 2
    ((96, 96), "avg", False),
    ((224, 224), "max", True),  # global max pooling keeps one element per channel, at any size
    ((32, 32), None, False),  # a feature extractor has no pooled features
])
def test_pools_single_elements(size, pool, single):
    spec = SimpleNamespace(input_shape=(*size, 3), pool=pool, head=[])
    assert pools_single_elements(spec) is single
    assert loose_output(spec) is (single or pool is None)  # unpooled: the output is the map's own elements
