"""tf2torch: source -> path(s) -> canonical backbone, verified against TF before anything is written."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from convert.argtypes import DEFAULT_PROBES
from convert.errors import fail

TOOL_VERSION = "0.1.0"
# float32 through ~50 layers: measured ports agree to ~2e-6; 1e-5 leaves headroom, catches any real fault
REL_TOL = 1e-5

Progress = Callable[[str], None]


@dataclass
class PathResult:
    """One conversion path's canonical backbone and how well it reproduces TF."""

    via: str
    canonical: Any  # convert.canonical.Canonical
    agreements: list = field(default_factory=list)  # list[probe.Agreement]
    artifacts: dict[str, bytes] = field(default_factory=dict)  # extra files to write (name suffix -> bytes)
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(a.ok(REL_TOL) for a in self.agreements)


@dataclass
class ConversionResult:
    source: Any  # convert.sources.Source
    paths: list[PathResult]
    output: Path | None = None
    cross: list = field(default_factory=list)  # agreements between paths (--via both)

    @property
    def ok(self) -> bool:
        return all(p.ok for p in self.paths) and all(a.ok(1e-6) for a in self.cross)


def _torch_outputs(model, x_nhwc: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(pooled features, logits) of a torchvision MobileNetV2 for NHWC inputs."""
    from convert.torch_side import torch_outputs

    return torch_outputs(model, x_nhwc)


def _canonical_module(canonical):
    return canonical.module()


def with_source_semantics(path_spec, source_spec):
    """Carry what only the source knows (BN decay, input range) onto a path's reading of the model.

    A conversion path sees weights; BN decay lives in Keras's layer config, not in any graph."""
    import dataclasses

    from convert.spec import BNSpec

    src_bns = source_spec.bns
    path_bns = [x for x in path_spec.layers if isinstance(x, BNSpec)]
    if len(src_bns) == len(path_bns):
        decays = iter(b.decay for b in src_bns)
        path_spec.layers = [dataclasses.replace(x, decay=next(decays)) if isinstance(x, BNSpec) else x
                            for x in path_spec.layers]
    path_spec.input_range = source_spec.input_range
    return path_spec


def _via_onnx(source, x: np.ndarray, ref: Mapping[str, np.ndarray], progress: Progress, side) -> PathResult:
    from convert import onnx_path
    from convert.probe import agreement
    from convert.torch_side import CanonicalRef

    t0 = time.perf_counter()
    progress("tf2onnx: converting the frozen graph")
    model = onnx_path.tf_to_onnx(source.graph_def, source.info.input, source.info.output)
    progress("onnx.checker")
    onnx_path.check_onnx(model)
    data = model.SerializeToString()
    progress("ONNX -> canonical torchvision layout, run on the probe inputs")
    spec = with_source_semantics(onnx_path.read_onnx(model, str(source.path), source.spec.input_shape[:2]), source.spec)
    pending = side.submit("canonical_outputs", "onnx", spec, str(source.path), x)  # the worker runs it meanwhile
    progress("ONNX Runtime on the probe inputs")
    ort = onnx_path.OrtRunner(data)
    (out,) = ort.run(x, [ort.sess.get_outputs()[0].name])
    meta, pooled, logits = pending()
    result = PathResult("onnx", CanonicalRef("onnx", meta), artifacts={".onnx": data})
    result.outputs = (pooled, logits)  # type: ignore[attr-defined]
    result.agreements.append(agreement("ONNX Runtime vs TF: output", out, ref["output"], logits=True))
    result.seconds = time.perf_counter() - t0
    if meta["bn_folded"]:
        result.notes.append("tf2onnx folded BatchNorm statistics away (decomposed BN in the source graph): "
                            "the port is faithful in eval mode only")
    return result


def _via_mmdnn(source, x: np.ndarray, ref: Mapping[str, np.ndarray], progress: Progress, side) -> PathResult:
    try:
        from convert import mmdnn_path
    except ImportError:
        raise fail("--via mmdnn: the MMdnn path is not available in this build")
    return mmdnn_path.convert_path(source, x, ref, progress, side)


VIAS: dict[str, Callable[..., PathResult]] = {"onnx": _via_onnx, "mmdnn": _via_mmdnn}


def convert(src: str | Path, output: str | Path, via: str = "onnx", input_size: tuple[int, int] | None = None,
            probes: int = DEFAULT_PROBES, seed: int = 0, progress: Progress = lambda s: None) -> ConversionResult:
    """Convert, verify every path against TF on seeded probes, and only then write the outputs."""
    from convert.torch_side import open_side

    output = Path(output)
    if not output.parent.is_dir():
        raise fail(f"{output}: output folder {output.parent} does not exist")
    vias = ["onnx", "mmdnn"] if via == "both" else [via]
    if any(v not in VIAS for v in vias):
        raise fail(f"unknown --via {via!r}; choose onnx, mmdnn or both")
    side = open_side()  # first: a worker imports torch while TF loads here
    try:
        return _convert(src, output, vias, input_size, probes, seed, progress, side)
    finally:
        side.close()


def _convert(src, output: Path, vias: list[str], input_size, probes: int, seed: int, progress: Progress,
             side) -> ConversionResult:
    from convert.probe import agreement, probe_inputs
    from convert.sources import load_source
    from convert.tfgraph import TFRunner

    progress(f"loading {src}")
    source = load_source(src, input_size)
    x = probe_inputs(probes, source.spec.input_shape[:2], source.spec.input_range, seed)
    progress(f"TF reference on {probes} probe inputs, alongside the conversion")
    fetch = {"output": source.info.output, "pooled": source.info.pooled, "logits": source.info.logits}
    fetch = {k: v for k, v in fetch.items() if v}

    def reference() -> dict[str, np.ndarray]:
        runner = TFRunner(source.graph_def, source.info)
        try:
            return dict(zip(fetch, runner.run(x, list(fetch.values()))))
        finally:
            runner.close()

    # TF runs natively, off the GIL, while tf2onnx / MMdnn (mostly Python) convert in this thread
    with ThreadPoolExecutor(1, thread_name_prefix="tf-reference") as pool:
        tf_out = _Pending(pool.submit(reference))
        paths = [_path(v, source, x, tf_out, progress, side) for v in vias]
    result = ConversionResult(source, paths)
    if len(paths) == 2:
        a, b = paths
        result.cross.append(agreement("canonical via onnx vs via mmdnn: pooled", a.outputs[0], b.outputs[0]))  # type: ignore[attr-defined]
        result.cross.append(agreement("canonical via onnx vs via mmdnn: logits", a.outputs[1], b.outputs[1], logits=True))  # type: ignore[attr-defined]
    if result.ok:
        _write(result, output, side)
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


def _path(v: str, source, x: np.ndarray, tf_out: Mapping[str, np.ndarray], progress: Progress, side) -> PathResult:
    """One conversion path, then the canonical backbone's agreement with TF."""
    from convert.probe import agreement

    res = VIAS[v](source, x, tf_out, progress, side)
    pooled, logits = res.outputs  # type: ignore[attr-defined]
    if "pooled" in tf_out:
        res.agreements.append(agreement("canonical vs TF: pooled features", pooled, tf_out["pooled"]))
    if "logits" in tf_out and res.canonical.meta["head"]:
        res.agreements.append(agreement("canonical vs TF: logits", logits, tf_out["logits"], logits=True))
    return res


def _metadata(result: ConversionResult, chosen: PathResult, output: Path) -> dict[str, Any]:
    src = result.source
    meta = dict(chosen.canonical.meta)
    meta.update({
        "format_version": 1,
        "tool": {"name": "tfport", "version": TOOL_VERSION},
        "source": {"path": str(Path(src.path).resolve()), "sha256": src.sha256, "form": src.form,
                   "input": src.info.input, "output": src.info.output},
        "path": chosen.via,
        "paths_checked": [p.via for p in result.paths],
        "conversion_check": {a.what: {"rel": a.rel, "max_abs": a.max_abs, "top1_agree": a.top1_agree}
                             for p in result.paths for a in p.agreements},
        "notes": [n for p in result.paths for n in p.notes],
    })
    # files written beside the checkpoint, by name (parity finds the ONNX export through this)
    meta["artifacts"] = {p.via + suffix: _artifact_path(output, suffix).name for p in result.paths for suffix in p.artifacts}
    return meta


def _artifact_path(output: Path, suffix: str) -> Path:
    return output.parent / (output.stem + suffix)


def _write(result: ConversionResult, output: Path, side) -> None:
    """Write the extra artifacts and the checkpoint; on any failure remove what this run wrote."""
    from convert.atomic import write_bytes

    # prefer the path that keeps BN statistics: mmdnn, else onnx
    chosen = next((p for p in result.paths if not p.canonical.meta["bn_folded"]), result.paths[0])
    written: list[Path] = []
    try:
        for p in result.paths:
            for suffix, data in p.artifacts.items():
                target = _artifact_path(output, suffix)
                write_bytes(target, data)
                written.append(target)
        side.save(chosen.canonical.key, str(output), _metadata(result, chosen, output))
        result.output = output
    except BaseException:
        for f in written:
            with contextlib.suppress(OSError):
                f.unlink()
        raise
