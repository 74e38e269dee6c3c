"""Bench helper: the cost of checking a model file as data before anything in it runs (issue 21).

For each file, what its source form's loader checks (convert.safety): a frozen graph's nodes and
function library, a SavedModel's graphs, a `.keras` zip's members (and the HDF5 inside), a `.h5`'s
links and storage, a `.tflite`'s operator codes; timed in this process, the median of REPS runs.
Prints JSON {path: seconds}.

    python scripts/bench_safety.py [--reps N] PATH [PATH ...]
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path

from convert.runtime import guard as _guard  # noqa: F401  (before TF: as every entry point)


def _check(path: Path) -> None:
    """The safety checks the form's loader runs on this file, nothing else."""
    from convert.safety import archives, graph

    if path.is_dir():
        graph.check_saved_model(path, trust_code=False)
    elif archives.is_zip(path):  # member names, sizes and ratios, and the weights' HDF5 inside
        archives.check_zip_file(path, what=".keras archive")
    elif path.suffix == ".h5":
        archives.check_hdf5(path, str(path))
    else:
        from convert.readers.tf_graph import parse_graph_def

        graph.check_graph_def(parse_graph_def(path.read_bytes(), str(path)), str(path), trust_code=False)


def main(argv: list[str]) -> int:
    reps = 5
    if argv[:1] == ["--reps"]:
        reps, argv = int(argv[1]), argv[2:]
    from convert.runtime.quiet import quiet_frameworks

    quiet_frameworks()
    out = {}
    for name in argv:
        path = Path(name)
        _check(path)  # warm: imports and the first read are not the check's cost
        times = []
        for _ in range(reps):
            t0 = time.perf_counter()
            _check(path)
            times.append(time.perf_counter() - t0)
        out[name] = statistics.median(times)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
