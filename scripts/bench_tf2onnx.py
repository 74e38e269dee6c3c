"""The tf2onnx baseline: `python -m tf2onnx.convert ARGS`, ended the way tfport's CLIs end.

tfport's CLIs end with `os._exit` once their output is flushed (convert/runtime/fast_exit.py): with TF
loaded, the interpreter's teardown costs 1.5-2.5 s that the operating system does better. A baseline
that paid it would flatter every ratio against it, so this runner calls tf2onnx's own entry point
(its `main()`, arguments unchanged) and ends the same way. `scripts/bench.py` times it against
`python -m convert tf2torch --via onnx`.

    python scripts/bench_tf2onnx.py --input SRC.pb --inputs x:0 --outputs y:0 --output OUT.onnx
"""

from __future__ import annotations

import sys

from convert.runtime import guard as _guard  # noqa: F401  (as tfport's CLIs start: OpenBLAS held to one thread)
from convert.runtime.entry import start
from convert.runtime.fast_exit import exit_now


def main(argv: list[str]) -> int:
    from tf2onnx import convert

    sys.argv = ["tf2onnx.convert", *argv]
    convert.main()
    return 0


if __name__ == "__main__":
    start(owned=False)  # starts as tfport's CLIs start (scripts/bench.py: fair baselines)
    exit_now(main(sys.argv[1:]))
