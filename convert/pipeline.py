"""tf2torch: source -> path(s) -> canonical backbone, verified against TF before anything is written."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from convert.model.options import DEFAULT_PROBES
from convert.model.tolerance import CROSS_PATH_TOL, class_scores, dense_scale, loose_output, pools_single_elements
from convert.paths.base import Progress
from convert.paths.result import PathResult
from convert.port.provenance import provenance
from convert.runtime.errors import fail

FORMAT_VERSION = 2  # metadata: 2 adds head/preprocess/dropped (portnet); 1 had a classifier or nothing

@dataclass
class ConversionResult:
    source: Any  # convert.sources.Source
    paths: list[PathResult]
    output: Path | None = None
    cross: list = field(default_factory=list)  # agreements between paths (--via both)

    @property
    def ok(self) -> bool:
        return bool(self.paths) and all(p.ok for p in self.paths) and all(a.ok(CROSS_PATH_TOL) for a in self.cross)


def convert(src: str | Path, output: str | Path, via: str = "onnx", input_size: tuple[int, int] | None = None,
            probes: int = DEFAULT_PROBES, seed: int = 0, progress: Progress = lambda s: None,
            trust_code: bool = False) -> ConversionResult:
    """Convert, verify every path against TF on seeded probes, and only then write the outputs."""
    from convert import paths
    from convert.paths.worker import open_torch

    output = Path(output)
    if not output.parent.is_dir():
        raise fail(f"{output}: output folder {output.parent} does not exist")
    vias = list(paths.PATHS) if via == "both" else [via]
    for v in vias:
        paths.get(v)  # an unknown name is one line before any work
    torch_half = open_torch()  # first: a worker imports torch while TF loads here
    try:
        return _convert(src, output, vias, input_size, probes, seed, progress, torch_half, trust_code)
    finally:
        torch_half.close()


def _convert(src, output: Path, vias: list[str], input_size, probes: int, seed: int, progress: Progress,
             torch_half, trust_code: bool = False) -> ConversionResult:
    from convert.model.probe import probe_inputs
    from convert.runtime.bounds import stage
    from convert.sources import load_source

    progress(f"loading {src}")
    with stage("load"):
        source = load_source(src, input_size, trust_code)
    x = probe_inputs(probes, source.spec.input_shape[:2], source.spec.input_range, seed)
    progress(f"TF reference on {probes} probe inputs, alongside the conversion")
    fetch = {"output": source.info.output, "pooled": source.info.pooled, "logits": source.info.logits}
    fetch = {k: v for k, v in fetch.items() if v}

    def reference() -> dict[str, np.ndarray]:
        runner = source.runner()
        try:
            return dict(zip(fetch, runner.run(x, list(fetch.values())), strict=False))
        finally:
            runner.close()

    # TF runs natively, off the GIL, while tf2onnx / MMdnn (mostly Python) convert in this thread
    with ThreadPoolExecutor(1, thread_name_prefix="tf-reference") as pool:
        tf_out = _Pending(pool.submit(reference))
        results = [_path(v, source, x, tf_out, progress, torch_half) for v in vias]
        with stage("TF reference"):
            tf_out.future.result()
    result = ConversionResult(source, results)
    if len(results) == 2:
        result.cross.append(cross_agreement(*(r.outputs for r in results), scores=class_scores(source.spec)))
    if result.ok:
        _write(result, output, torch_half)
    return result


class _Pending(Mapping):
    """The TF reference outputs, waited for where first read (a Mapping over a Future)."""

    def __init__(self, future: Future) -> None:
        self.future = future

    def __getitem__(self, key: str) -> np.ndarray:
        return self.future.result()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.future.result())

    def __len__(self) -> int:
        return len(self.future.result())


def _path(v: str, source, x: np.ndarray, tf_out: Mapping[str, np.ndarray], progress: Progress,
          torch_half) -> PathResult:
    """One conversion path, then the canonical port's agreement with TF: its whole output always (the
    source's own function, fed the source's own input), pooled features and logits where both have them."""
    from convert import paths

    res = paths.get(v)(source, x, tf_out, progress, torch_half)
    res.agreements.extend(verify(source.spec, res.outputs, tf_out))
    return res


def verify(spec, port: Mapping[str, np.ndarray], tf_out: Mapping[str, np.ndarray]) -> list:
    """How the canonical port's outputs on the probes (convert.paths.worker.torch_outputs) reproduce TF's,
    each kind with its own tolerance class (convert.model.tolerance); a PathResult holding them is `ok` when
    all pass. Public so that the tolerances are tested from the refusing side on real ports' outputs
    (tests/convert/test_tolerance_edges.py)."""
    from convert.model.agreement import agreement

    ew = pools_single_elements(spec)
    out = [agreement("canonical vs TF: output", port["output"], tf_out["output"], logits=class_scores(spec),
                     elementwise=loose_output(spec), scale=dense_scale(spec, tf_out.get("pooled"), output=True))]
    if "pooled" in tf_out and "pooled" in port:
        out.append(agreement("canonical vs TF: pooled features", port["pooled"], tf_out["pooled"], elementwise=ew))
    if "logits" in tf_out and "logits" in port:
        out.append(agreement("canonical vs TF: logits", port["logits"], tf_out["logits"], logits=True,
                             elementwise=ew or len(spec.head) > 1, scale=dense_scale(spec, tf_out.get("pooled"))))
    return out


def cross_agreement(a: Mapping[str, np.ndarray], b: Mapping[str, np.ndarray], scores: bool = True):
    """`--via both`: the two paths' canonical ports (outputs as `verify` takes them) on the same probes. They
    are the same torchvision model with the same weights, whatever the output kind (a classifier's softmax,
    pooled features, a feature map): held to CROSS_PATH_TOL on every kind, not to a feature map's looser
    tolerance against TF. `scores`: the output ranks classes (top-1 reported)."""
    import dataclasses

    from convert.model.agreement import agreement

    measured = agreement("canonical via onnx vs via mmdnn: output", a["output"], b["output"], logits=scores)
    return dataclasses.replace(measured, tol=CROSS_PATH_TOL)


def _metadata(result: ConversionResult, chosen: PathResult, output: Path) -> dict[str, Any]:
    src = result.source
    meta = dict(chosen.canonical.meta)
    meta.update(provenance(src, chosen.via, [a for p in result.paths for a in p.agreements]))
    meta.update({
        "paths_checked": [p.via for p in result.paths],
        "notes": list(src.notes) + [n for p in result.paths for n in p.notes],
    })
    # files written beside the checkpoint, by name (parity finds the ONNX export through this)
    meta["artifacts"] = {
        p.via + suffix: _artifact_path(output, suffix).name for p in result.paths for suffix in p.artifacts
    }
    return meta


def _artifact_path(output: Path, suffix: str) -> Path:
    return output.parent / (output.stem + suffix)


def _write(result: ConversionResult, output: Path, torch_half) -> None:
    """Write the extra artifacts and the checkpoint; on any failure remove what this run wrote."""
    from convert.paths.worker import save
    from convert.runtime.files import write_bytes

    # the first path (in --via order: onnx, then mmdnn) that keeps BN statistics, else the first
    chosen = next((p for p in result.paths if not p.canonical.meta["bn_folded"]), result.paths[0])
    written: list[Path] = []
    try:
        for p in result.paths:
            for suffix, data in p.artifacts.items():
                target = _artifact_path(output, suffix)
                write_bytes(target, data)
                written.append(target)
        torch_half.call(save, chosen.canonical.key, str(output), _metadata(result, chosen, output))
        result.output = output
    except BaseException:
        for f in written:
            with contextlib.suppress(OSError):
                f.unlink()
        raise
