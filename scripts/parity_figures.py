"""How far correct ports are from TF, per mode: the figures README's `parity check` section quotes and
parity/tolerances.py's margins are argued from, measured, written to docs/parity_figures.json.

    source scripts/_venv.sh && "$PY" scripts/parity_figures.py [--work DIR] [--out docs/parity_figures.json]

Per sample model (alpha 1.0; keras2_h5 at 96 and 224, the TF-slim graph at 224): converted through the
ONNX path, then `parity check` at its defaults (8 probes, eval and train); per mode, the largest
max|cand − TF| / max|TF| over the TF points and where. tests/parity/test_cli.py reads the JSON: the
README must quote its maxima, and a correct port measured in the test must stay within them.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import convert  # noqa: E402, F401  (import-order guard)

CASES = [("keras2_h5", 96), ("keras2_h5", 224), ("slim_pb", 224)]
OUT = ROOT / "docs" / "parity_figures.json"


def ratios(report: dict, mode: str) -> tuple[float, str]:
    """The largest max|Δ| / max|ref| over a report's TF points in `mode` (max|ref| from each point's bound =
    atol + rtol·max|ref|), and its point."""
    cfg = report["config"]
    atol, rtol = (cfg["atol"], cfg["rtol"]) if mode == "eval" else (cfg["train_atol"], cfg["train_rtol"])
    pts = [(p["max_abs"] / ((p["bound"] - atol) / rtol), p["point"]) for p in report["points"]
           if p["reference"] == "tf" and p["mode"] == mode]
    return max(pts)


def measure(form: str, size: int, work: Path) -> dict:
    from convert import pipeline
    from convert.sample import SampleSpec, write_samples
    from parity import report as reports
    from parity.candidates import load_candidate
    from parity.run import ParityConfig, resolve_source, run

    spec = SampleSpec(alpha=1.0, size=(size, size))
    (src,) = write_samples(work / spec.tag, spec, (form,)).values()
    out = work / f"{form}-{size}" / "ported.pth"
    out.parent.mkdir(parents=True, exist_ok=True)
    t = time.time()
    assert pipeline.convert(src, out, via="onnx").ok, f"{form} {size}: the sample did not convert"
    cand = load_candidate(out)
    rep = reports.to_json(run(cand, resolve_source(cand, None), ParityConfig()))
    assert rep["passed"], rep["summary"]
    (ev, ev_at), (tr, tr_at) = ratios(rep, "eval"), ratios(rep, "train")
    return {"form": form, "size": size, "probes": rep["config"]["probes"], "eval": ev, "eval_point": ev_at,
            "train": tr, "train_point": tr_at, "seconds": round(time.time() - t, 1)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", type=Path, default=None, help="where samples and ports are written (default: a temp dir)")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="tfport-figures-") as tmp:
        work = args.work or Path(tmp)
        cases = []
        for form, size in CASES:
            cases.append(measure(form, size, work))
            c = cases[-1]
            print(f"{form:10} {size:4}  eval {c['eval']:.3g} at {c['eval_point']:24}  train {c['train']:.3g} at "
                  f"{c['train_point']:24}  {c['seconds']} s", flush=True)
    figures = {"cases": cases, "eval_max": max(c["eval"] for c in cases), "train_max": max(c["train"] for c in cases)}
    args.out.write_text(json.dumps(figures, indent=2, sort_keys=True) + "\n")
    print(f"eval ≤ {figures['eval_max']:.3g}·max|ref|, train ≤ {figures['train_max']:.3g}·max|ref| -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
