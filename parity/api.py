"""The Python API of `python -m parity check`: a candidate and its source in, a `ParityReport` out.

    import parity
    report = parity.check(port, keras_model)   # or paths; or port.module (an nn.Module with .tfport_meta)
    bool(report), str(report)                  # the verdict, its one-line summary
    report                                     # in a notebook: the same page as --html, plot inlined
    report.write_json("r.json"); report.write_junit("r.xml"); report.write_html("report/")
    report.write_certificate()                 # beside the checkpoint checked, on a pass

An in-memory source is written by the tool that holds it to a private temporary file (convert.api.source_file)
and read like a file: the same config scan (a Lambda needs trust_code=True), the same bounds.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from convert.runtime.errors import fail
from parity import results, tolerances

CANDIDATES = "a path (ported.pth/.safetensors, a state dict, MMdnn's .py, an .onnx), a convert.Port, or an " \
             "nn.Module with .tfport_meta (what backbones.load returns)"


@dataclass(frozen=True)
class ParityReport(results.ParityReport):
    """parity.results.ParityReport with what a notebook asks of it: truthy iff it passed, `str` its one
    line, `_repr_html_` the `--html` page, and the reports and certificate written on request."""

    def __str__(self) -> str:
        return self.summary()

    def _repr_html_(self) -> str:
        from parity import report as reports
        from parity.html_report import render

        with tempfile.TemporaryDirectory(prefix="tfport-report-") as tmp:
            png = Path(tmp) / "per_layer_error.png"
            reports.plot(self, png)
            return render(self, png)  # the plot is inlined: the page needs no file beside it

    def write_json(self, path: str | os.PathLike) -> Path:
        from parity import report as reports

        reports.write_json(self, path)
        return Path(path)

    def write_junit(self, path: str | os.PathLike) -> Path:
        from parity import report as reports

        reports.write_junit(self, path)
        return Path(path)

    def write_html(self, folder: str | os.PathLike) -> Path:
        """`folder/index.html` beside `per_layer_error.png`, as `--html` writes them; returns the page."""
        from parity import report as reports

        return reports.write_html(self, folder)

    def write_certificate(self, checkpoint: str | os.PathLike | None = None) -> Path:
        """The parity certificate beside `checkpoint` (default: the checkpoint checked), which must be the very
        bytes checked (its sha256) and a tfport port; only a passing report certifies."""
        from convert.runtime.files import sha256_file
        from parity import certificate

        if not self.passed:
            raise fail(f"{self.candidate.path}: parity failed; a failing report certifies nothing ({self.summary()})")
        if self.candidate.kind != "ported":
            raise fail(f"{self.candidate.path}: a {self.candidate.kind} candidate gets no certificate; only a tfport "
                       "port does (convert repair makes one)")
        target = Path(checkpoint) if checkpoint is not None else Path(self.candidate.path)
        if not target.is_file() or sha256_file(target) != self.candidate.sha256:
            raise fail(f"{target}: not the checkpoint this report checked (sha256 differs or missing); run "
                       "parity.check on it")
        return certificate.write(self, target)

    @classmethod
    def of(cls, report: results.ParityReport) -> ParityReport:
        return cls(**{f.name: getattr(report, f.name) for f in fields(report)})


def check(candidate: Any, source: Any = None, *, against: tuple[str, ...] = results.REFERENCES,
          atol: float = tolerances.EVAL_ATOL, rtol: float = tolerances.EVAL_RTOL, probes: int = 8, seed: int = 0,
          trust_code: bool = False, timeout: float | None = None, input_size: tuple[int, int] | None = None,
          progress: Callable[[str], None] | None = None) -> ParityReport:
    """Layer-by-layer parity of `candidate` against its TF source (what `python -m parity check` does).

    candidate: CANDIDATES. A Port is checked as converted (its checkpoint, exports beside it); a module is
        written to a temporary checkpoint first (no export beside it: the ONNX Runtime reference is skipped,
        and the report says so).
    source: None (the path the candidate's metadata records, verified by sha256), a path (verified the same
        way), or an in-memory model (convert.api.IN_MEMORY). Keras stamps the save time into a `.keras`, so
        an in-memory source's fresh bytes may not match the sha256 recorded; the comparison itself then
        decides, and the report's notes say so.
    against: references among parity.results.REFERENCES; atol, rtol: per-point tolerance (the defaults are
        the least the trainer's gate accepts); probes, seed: the probe inputs; trust_code: run code the source
        carries; timeout: seconds per stage, on the main thread (convert.api.bound); input_size: (H, W) at
        which a source whose graph leaves its size open is compared (default: the one the candidate records).

    Writes nothing (reports and certificate on request). Raises TfportError, one line, on bad input."""
    for given, missing in ((candidate, "no such file"), (source, "source not found")):  # before torch and TF load
        if isinstance(given, str | os.PathLike) and not os.path.exists(given):
            raise fail(f"{given}: {missing}")  # what parity.candidates and parity.references say
    from convert.api import bound
    from convert.runtime.bounds import stage
    from parity.metrics import Tolerance
    from parity.run import ParityConfig, run

    say = progress or (lambda s: None)
    cfg = ParityConfig(tol=Tolerance(atol=atol, rtol=rtol), probes=probes, seed=seed, against=tuple(against))
    bad = [a for a in cfg.against if a not in results.REFERENCES]
    if bad or not cfg.against:
        raise fail(f"against: unknown reference(s) {bad}; choose from {', '.join(results.REFERENCES)}")
    with tempfile.TemporaryDirectory(prefix="tfport-check-") as tmp:
        where = source if isinstance(source, str | os.PathLike) else _where(candidate)
        with bound(timeout, where):
            say(f"loading candidate {_where(candidate)}")
            with stage("load"):  # MMdnn's .py and onnx2torch run code or convert while loading
                cand = _candidate(candidate, Path(tmp))
            say("loading source")
            with stage("load"):
                src, note = _source(cand, source, Path(tmp) / "source", trust_code, input_size)
            with stage("parity"):
                rep = run(cand, src, cfg, say)
    if note:
        rep.notes.append(note)
    return ParityReport.of(rep)


def _where(candidate: Any) -> str:
    if isinstance(candidate, str | os.PathLike):
        return str(candidate)
    path = getattr(candidate, "path", None)
    return str(path) if path is not None else type(candidate).__name__


def _candidate(candidate: Any, tmp: Path):
    from convert.api import Port
    from parity.candidates import load_candidate

    if isinstance(candidate, str | os.PathLike):
        return load_candidate(candidate)
    if isinstance(candidate, Port):
        return load_candidate(candidate.path)
    meta = getattr(candidate, "tfport_meta", None)
    if hasattr(candidate, "state_dict") and isinstance(meta, dict):
        from convert.port import checkpoint

        target = tmp / "module.pth"
        checkpoint.save(target, candidate.state_dict(), meta)
        return load_candidate(target)
    raise fail(f"candidate: a {type(candidate).__module__}.{type(candidate).__qualname__} is not {CANDIDATES}")


def _source(cand, source: Any, folder: Path, trust_code: bool, input_size: tuple[int, int] | None = None):
    """The source and a note ("" where none): a path through parity's own resolution (sha256 against the
    candidate's record), an in-memory model through its temporary file."""
    from convert.api import source_file
    from convert.runtime.files import sha256_file
    from convert.sources import load_source
    from parity.references import resolve_source

    if source is None or isinstance(source, str | os.PathLike):
        return resolve_source(cand, source, trust_code=trust_code, input_size=input_size), ""
    path = source_file(source, folder)
    size = input_size or cand.meta.get("input_size")
    loaded = load_source(path, tuple(size) if size else None, trust_code)
    recorded = (cand.meta.get("source") or {}).get("sha256")
    if recorded and (path.is_dir() or sha256_file(path) != recorded):
        return loaded, (f"source given in memory ({type(source).__name__}, written to a temporary file): its bytes "
                        "are not the ones the candidate records, so the comparison alone ties them")
    return loaded, ""
