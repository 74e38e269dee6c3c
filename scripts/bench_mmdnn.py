"""The MMdnn baseline: MMdnn 0.3.1's own TF -> PyTorch conversion, through tfport's compatibility layer only.

What `mmconvert -sf tensorflow --frozen_pb SRC -df pytorch` does, minus its CLI: TensorflowParser2
(frozen graph -> IR), PytorchEmitter (IR -> code + weights), then the emitted model is built with
its weights (mmconvert's `mmtomodel` step; weights read by the restricted reader, not unpickled).
No source description, no probes, no TF reference, no canonical mapping, no checks.
`scripts/bench.py` times this process's wall clock against `python -m convert tf2torch --via mmdnn`.

    python scripts/bench_mmdnn.py SOURCE.pb OUT_DIR INPUT_NODE OUTPUT_NODE H W
"""

from __future__ import annotations

import contextlib
import io
import sys
from pathlib import Path

from convert.runtime import guard as _guard  # noqa: F401  (before TF/torch: hides triton, which segfaults after TF)
from convert.runtime.entry import start
from convert.runtime.fast_exit import exit_now


def main(argv: list[str]) -> int:
    src, out, inp, outp, h, w = argv
    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    from convert.cli import quiet_frameworks

    quiet_frameworks()
    from convert.compat.mmdnn import mmdnn_compat
    from convert.paths.mmdnn.emitted import load_emitted

    ir, code, weights = str(out_dir / "ir"), out_dir / "model.py", out_dir / "model.npy"
    with mmdnn_compat(), contextlib.redirect_stdout(io.StringIO()):
        from mmdnn.conversion.pytorch.pytorch_emitter import PytorchEmitter
        from mmdnn.conversion.tensorflow.tensorflow_frozenparser import TensorflowParser2

        TensorflowParser2(src, [[int(h), int(w), 3]], [inp.split(":")[0]], [outp.split(":")[0]]).run(ir)
        PytorchEmitter((ir + ".pb", ir + ".npy")).run(str(code), str(weights), "test")
    load_emitted(code, weights)
    return 0


if __name__ == "__main__":
    start(owned=False)  # starts as tfport's CLIs start (scripts/bench.py: fair baselines)
    exit_now(main(sys.argv[1:]))  # ends as tfport's CLIs end: no teardown (scripts/bench.py: fair baselines)
