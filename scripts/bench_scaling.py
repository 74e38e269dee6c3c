"""Scaling rows for `scripts/bench.py`: conversion and parity time per model, in one process.

Imports are paid once, before the first model, so each row shows what grows with the model (input
size, alpha) rather than the constant start-up of TF and torch. Per model: `convert.pipeline.convert`
(--via onnx, P probes, the checkpoint and .onnx written), then `parity.run.run` on that checkpoint
(Q probes, eval + train, against the given references). One JSON line per model on stdout, with
the process's peak RSS during that model's conversion + parity (reset between models where Linux
allows) and its RSS before it: the difference is what that model needs on top of what stays loaded.

    python scripts/bench_scaling.py OUT_DIR --convert-probes 8 --parity-probes 2 --against tf SRC [SRC ...]
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

from convert.runtime import guard as _guard  # noqa: F401  (before TF/torch: hides triton, which segfaults after TF)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="bench_scaling.py")
    ap.add_argument("out", type=Path)
    ap.add_argument("sources", nargs="+")
    ap.add_argument("--convert-probes", type=int, default=8)
    ap.add_argument("--parity-probes", type=int, default=2)
    ap.add_argument("--against", default="tf")
    ap.add_argument("--reps", type=int, default=2, help="conversions and parity runs per model; the fastest counts")
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    from convert.cli import quiet_frameworks

    quiet_frameworks()
    t0 = time.perf_counter()
    import tensorflow  # noqa: F401
    import torch  # noqa: F401

    from convert.pipeline import convert
    from parity.candidates import load_candidate
    from parity.run import ParityConfig, resolve_source, run

    print(json.dumps({"imports_s": time.perf_counter() - t0}), flush=True)
    # warm-up, untimed: first-call costs (tf2onnx's lazy imports, oneDNN kernel set-up) would
    # otherwise land on whichever model comes first and read as growth
    convert(args.sources[0], args.out / "warm-up.pth", via="onnx", probes=1)
    for src in args.sources:
        _reset_peak()
        rss_before = _rss_mb()
        out = args.out / (Path(src).stem + ".pth")
        conv_s = parity_s = float("inf")
        for _ in range(args.reps):  # fastest of reps: in one long process, noise only adds
            t = time.perf_counter()
            res = convert(src, out, via="onnx", probes=args.convert_probes)
            conv_s = min(conv_s, time.perf_counter() - t)
            t = time.perf_counter()
            cand = load_candidate(out)
            rep = run(cand, resolve_source(cand, None), ParityConfig(probes=args.parity_probes,
                                                                     against=tuple(args.against.split(","))))
            parity_s = min(parity_s, time.perf_counter() - t)
        print(json.dumps({"source": src, "convert_s": conv_s, "convert_ok": res.ok, "parity_s": parity_s,
                          "parity_passed": rep.passed, "points": len(rep.results),
                          "maxrss_mb": _peak_mb(), "rss_before_mb": rss_before}), flush=True)
    return 0


def _reset_peak() -> None:
    """Linux: writing 5 to clear_refs resets the process's peak RSS (VmHWM), so each model gets its own."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _peak_mb() -> float:
    """Peak RSS since the last reset (VmHWM), else the process's peak so far (ru_maxrss)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


if __name__ == "__main__":
    sys.exit(main())
