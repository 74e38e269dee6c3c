"""parity's architecture registry: one entry per name, an unknown name refused naming the known ones,
and every registered architecture answering what generic parity code asks of it."""

from __future__ import annotations

import pytest

from convert.runtime.errors import TfportError
from parity import arch


def test_a_name_registers_once():
    with pytest.raises(ValueError, match="'mobilenet_v2' registered twice"):
        arch.register("mobilenet_v2")(type("Again", (), {}))


def test_an_unknown_name_is_bad_input_naming_the_known_ones():
    known = ", ".join(sorted(arch.ARCHITECTURES))  # every registered one (mobilenet_v2, ..., resnet50)
    with pytest.raises(TfportError, match=f"'inception_v3' is unknown to parity; known: {known}$"):
        arch.get("inception_v3")


def test_a_checkpoint_without_arch_is_mobilenet_v2():
    assert arch.get(None) is arch.ARCHITECTURES["mobilenet_v2"]


@pytest.mark.parametrize("name", sorted(arch.ARCHITECTURES), ids=sorted(arch.ARCHITECTURES))
def test_points_have_unique_names_and_end_with_the_output(name):
    a = arch.get(name)
    points = a.points({"alpha": 0.35, "num_classes": 10}, "avg", output=True)
    names = [p.name for p in points]
    assert len(names) == len(set(names)) and names[-1] == "output" and "pool" in names
    assert a.input_point in names
    assert {p.suffix for p in points} <= {":bn", ":act", ":out", ":pool", "", "pool", "output"}
