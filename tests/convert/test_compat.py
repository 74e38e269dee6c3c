"""convert.compat: every third-party private name tfport uses is found in the pinned libraries, and one
that is gone is one clear line naming the library, the name and the version it was written for."""

from __future__ import annotations

import importlib
import pkgutil

import pytest

import convert.compat
from convert.compat.pinned import Private, UpstreamChanged


def _wrapped() -> dict[str, Private]:
    found = {}
    for info in pkgutil.iter_modules(convert.compat.__path__):
        module = importlib.import_module(f"convert.compat.{info.name}")
        for attr, value in vars(module).items():
            if isinstance(value, Private):
                found[f"{info.name}.{attr}"] = value
    return found


WRAPPED = _wrapped()


def test_the_private_names_are_all_wrapped_here():
    """The four names issue 20 found used across modules, and TFLite's op list, each wrapped once."""
    names = {f"{p.module}.{p.name}" for p in WRAPPED.values()}
    assert names == {
        "tf2onnx.optimizer.back_to_back_optimizer._func_map", "tf2onnx.optimizer._optimizers",
        "tf2onnx.convert._convert_common",
        "tensorflow.python.framework.convert_to_constants._FunctionConverterDataInEager",
        "tensorflow.python.framework.convert_to_constants._replace_variables_by_constants",
        "tensorflow.lite.python.interpreter.Interpreter._get_ops_details",
    }


@pytest.mark.parametrize("key", sorted(WRAPPED))
def test_each_wrapped_name_exists_in_the_installed_library(key):
    private = WRAPPED[key]
    value = private.get()
    assert value is not None
    from importlib.metadata import version

    assert version(private.library) == private.written_for  # the pinned set is what these were written for


def test_a_name_an_upgrade_removed_is_one_clear_line():
    gone = Private("tf2onnx", "1.17.0", "tf2onnx.optimizer", "_no_such_table")
    with pytest.raises(UpstreamChanged) as e:
        gone.get()
    msg = str(e.value)
    assert "\n" not in msg and "tf2onnx.optimizer._no_such_table" in msg and "1.17.0" in msg
    assert e.value.exit_code == 2


def test_keep_batchnorm_takes_out_the_fusion_and_puts_it_back():
    from convert.compat.tf2onnx import BACK_TO_BACK, keep_batchnorm

    table = BACK_TO_BACK.get()
    key = ("Conv", "BatchNormalization")
    before = table[key]
    with keep_batchnorm():
        assert key not in table
    assert table[key] is before


def test_collect_between_optimizers_restores_the_optimizer_table():
    from convert.compat.tf2onnx import OPTIMIZERS, collect_between_optimizers

    table = OPTIMIZERS.get()
    before = dict(table)
    with collect_between_optimizers():
        assert set(table) == set(before) and all(table[k] is not before[k] for k in table)
    assert table == before
