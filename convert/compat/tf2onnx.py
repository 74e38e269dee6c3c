"""tf2onnx's internals as tfport uses them (tf2onnx 1.17.0): its optimizer tables and its converter core.

tf2onnx has no public switch to keep BatchNormalization unfused, no hook between optimizer passes, and
its public `from_graph_def` re-freezes a graph tfport has already frozen and checked; these are the three
places tfport reaches inside it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from convert.compat.pinned import Private

VERSION = "1.17.0"
# back-to-back optimizer: {(op type, op type): rewrite}; ("Conv", "BatchNormalization") folds BN into the conv
BACK_TO_BACK = Private("tf2onnx", VERSION, "tf2onnx.optimizer.back_to_back_optimizer", "_func_map")
# optimize_graph's passes: {name: optimizer class}, each pass run on a deep copy of the graph
OPTIMIZERS = Private("tf2onnx", VERSION, "tf2onnx.optimizer", "_optimizers")
# what from_graph_def calls after freezing: frozen GraphDef -> (ModelProto, external tensor storage)
CONVERT_COMMON = Private("tf2onnx", VERSION, "tf2onnx.convert", "_convert_common")


@contextlib.contextmanager
def keep_batchnorm() -> Iterator[None]:
    """Leave out tf2onnx's Conv+BatchNormalization fusion for the duration of one conversion."""
    table = BACK_TO_BACK.get()
    key = ("Conv", "BatchNormalization")
    handler = table.pop(key, None)
    try:
        yield
    finally:
        if handler is not None:
            table[key] = handler


@contextlib.contextmanager
def collect_between_optimizers() -> Iterator[None]:
    """Free each discarded graph copy before tf2onnx's next optimizer pass.

    tf2onnx's optimize_graph deep-copies the whole graph (weights included) before every optimizer;
    the copies it drops hold reference cycles, so they wait for a full collection that rarely comes and
    add hundreds of MB to conversion's peak at 224 px (scripts/bench: peak RSS). Objects alive before
    the conversion (TF's modules) are frozen out of the collector meanwhile, which keeps each
    collection cheap: the conversion gets faster, not slower."""
    import gc

    table = OPTIMIZERS.get()
    originals = dict(table)

    def collected(factory):
        def make():
            gc.collect()
            return factory()
        return make

    gc.collect()
    gc.freeze()
    for name, factory in originals.items():
        table[name] = collected(factory)
    try:
        yield
    finally:
        table.clear()
        table.update(originals)
        gc.unfreeze()


def convert_frozen(frozen, *, name: str, opset: int, input_names: list[str], output_names: list[str]):
    """tf2onnx's converter on an already frozen and optimised GraphDef: the ONNX ModelProto."""
    model, _ = CONVERT_COMMON.get()(frozen, name=name, continue_on_error=False, opset=opset,
                                    input_names=input_names, output_names=output_names)
    return model
