"""tf2onnx run with its dropped graph copies collected between optimizer passes, and left as found."""

import gc

import pytest

from convert.compat.tf2onnx import collect_between_optimizers


def test_collect_between_optimizers_frees_copies_and_restores_tf2onnx():
    from tf2onnx import optimizer

    before = dict(optimizer._optimizers)
    freed = []
    with collect_between_optimizers():
        assert gc.get_freeze_count() > 0  # what lived before is out of the collector's way
        assert all(optimizer._optimizers[k] is not before[k] for k in before)

        class Cycle:  # a dropped graph copy: garbage only a full collection finds
            def __init__(self):
                self.me = self

            def __del__(self):
                freed.append(1)

        Cycle()
        gc.disable()  # only the wrapper's own collection may free it
        try:
            next(iter(optimizer._optimizers.values()))()
        finally:
            gc.enable()
        assert freed, "the optimizer factory ran without collecting the dropped copies first"
    assert optimizer._optimizers == before
    assert gc.get_freeze_count() == 0


def test_restores_tf2onnx_when_conversion_fails():
    from tf2onnx import optimizer

    before = dict(optimizer._optimizers)
    with pytest.raises(RuntimeError), collect_between_optimizers():
        raise RuntimeError("tf2onnx failed")
    assert optimizer._optimizers == before and gc.get_freeze_count() == 0
