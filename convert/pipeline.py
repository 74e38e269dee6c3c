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

from convert import TOOL_VERSION
from convert.argtypes import DEFAULT_PROBES
from convert.errors import fail
from convert.path_result import (  # noqa: F401  (REL_TOL: the CLIs')
    REL_TOL, PathResult, dense_scale, loose_output, pools_single_elements, with_source_semantics)

FORMAT_VERSION = 2  # metadata: 2 adds head/preprocess/dropped (portnet); 1 had a classifier or nothing

Progress = Callable[[str], None]


@dataclass
class ConversionResult:
    source: Any  # convert.sources.Source
    paths: list[PathResult]
    output: Path | None = None
    cross: list = field(default_factory=list)  # agreements between paths (--via both)

    @property
    def ok(self) -> bool:
        return bool(self.paths) and all(p.ok for p in self.paths) and all(a.ok(1e-6) for a in self.cross)


def _via_onnx(source, x: np.ndarray, ref: Mapping[str, np.ndarray], progress: Progress, side) -> PathResult:
    from convert import onnx_path
    from convert.bounds import stage
    from convert.probe import agreement
    from convert.torch_side import CanonicalRef

    t0 = time.perf_counter()
    if source.graph_def is None:  # a TFLite flatbuffer: tf2onnx's TFLite front end (checks the model itself)
        from convert.tflite_source import tflite_to_onnx

        progress("tf2onnx: converting the TFLite flatbuffer")
        with stage("tf2onnx"):
            model = tflite_to_onnx(source.path)
    else:
        progress("tf2onnx: converting the frozen graph")
        with stage("tf2onnx"):
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
    with stage("torch side"):
        meta, outputs = pending()
    result = PathResult("onnx", CanonicalRef("onnx", meta), artifacts={".onnx": data}, outputs=outputs)
    result.agreements.append(agreement("ONNX Runtime vs TF: output", out, ref["output"], logits=True,
                                       elementwise=loose_output(source.spec),
                                       scale=dense_scale(source.spec, ref.get("pooled"), output=True)))
    result.seconds = time.perf_counter() - t0
    if meta["bn_folded"]:
        result.notes.append("BN folded into the convolutions at the source (no statistics in its graph, none "
                            "in a Keras model): the port is faithful in eval mode only")
    return result


def _via_mmdnn(source, x: np.ndarray, ref: Mapping[str, np.ndarray], progress: Progress, side) -> PathResult:
    if source.graph_def is None:
        raise fail(f"{source.path}: MMdnn reads TensorFlow graphs, not TFLite flatbuffers; use --via onnx")
    try:
        from convert import mmdnn_path
    except ImportError:
        raise fail("--via mmdnn: the MMdnn path is not available in this build")
    return mmdnn_path.convert_path(source, x, ref, progress, side)


VIAS: dict[str, Callable[..., PathResult]] = {"onnx": _via_onnx, "mmdnn": _via_mmdnn}


def convert(src: str | Path, output: str | Path, via: str = "onnx", input_size: tuple[int, int] | None = None,
            probes: int = DEFAULT_PROBES, seed: int = 0, progress: Progress = lambda s: None,
            trust_code: bool = False) -> ConversionResult:
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
        return _convert(src, output, vias, input_size, probes, seed, progress, side, trust_code)
    finally:
        side.close()


def _convert(src, output: Path, vias: list[str], input_size, probes: int, seed: int, progress: Progress,
             side, trust_code: bool = False) -> ConversionResult:
    from convert.probe import agreement, probe_inputs
    from convert.sources import load_source

    from convert.bounds import stage

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
            return dict(zip(fetch, runner.run(x, list(fetch.values()))))
        finally:
            runner.close()

    # TF runs natively, off the GIL, while tf2onnx / MMdnn (mostly Python) convert in this thread
    with ThreadPoolExecutor(1, thread_name_prefix="tf-reference") as pool:
        tf_out = _Pending(pool.submit(reference))
        paths = [_path(v, source, x, tf_out, progress, side) for v in vias]
        with stage("TF reference"):
            tf_out.future.result()
    result = ConversionResult(source, paths)
    if len(paths) == 2:
        a, b = paths
        result.cross.append(agreement("canonical via onnx vs via mmdnn: output", a.outputs["output"],
                                      b.outputs["output"], logits=True))
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
    """One conversion path, then the canonical port's agreement with TF: its whole output always (the
    source's own function, fed the source's own input), pooled features and logits where both have them."""
    from convert.probe import agreement

    res = VIAS[v](source, x, tf_out, progress, side)
    ew = pools_single_elements(source.spec)
    scale = dense_scale(source.spec, tf_out.get("pooled"))
    res.agreements.append(agreement("canonical vs TF: output", res.outputs["output"], tf_out["output"], logits=True,
                                    elementwise=loose_output(source.spec),
                                    scale=dense_scale(source.spec, tf_out.get("pooled"), output=True)))
    if "pooled" in tf_out and "pooled" in res.outputs:
        res.agreements.append(agreement("canonical vs TF: pooled features", res.outputs["pooled"], tf_out["pooled"],
                                        elementwise=ew))
    if "logits" in tf_out and "logits" in res.outputs:
        res.agreements.append(agreement("canonical vs TF: logits", res.outputs["logits"], tf_out["logits"], logits=True,
                                        elementwise=ew or len(source.spec.head) > 1, scale=scale))
    return res


def provenance(source, path: str, agreements) -> dict[str, Any]:
    """The metadata every checkpoint tfport writes carries about where it came from and how it was
    checked (convert and repair both write it)."""
    return {
        "format_version": FORMAT_VERSION,
        "tool": {"name": "tfport", "version": TOOL_VERSION},
        "source": {"path": str(Path(source.path).resolve()), "sha256": source.sha256, "form": source.form,
                   "input": source.info.input, "output": source.info.output},
        "path": path,
        "conversion_check": {a.what: {"rel": a.rel, "max_abs": a.max_abs, "top1_agree": a.top1_agree}
                             for a in agreements},
    }


def _metadata(result: ConversionResult, chosen: PathResult, output: Path) -> dict[str, Any]:
    src = result.source
    meta = dict(chosen.canonical.meta)
    meta.update(provenance(src, chosen.via, [a for p in result.paths for a in p.agreements]))
    meta.update({
        "paths_checked": [p.via for p in result.paths],
        "notes": list(src.notes) + [n for p in result.paths for n in p.notes],
    })
    # files written beside the checkpoint, by name (parity finds the ONNX export through this)
    meta["artifacts"] = {p.via + suffix: _artifact_path(output, suffix).name for p in result.paths for suffix in p.artifacts}
    return meta


def _artifact_path(output: Path, suffix: str) -> Path:
    return output.parent / (output.stem + suffix)


def _write(result: ConversionResult, output: Path, side) -> None:
    """Write the extra artifacts and the checkpoint; on any failure remove what this run wrote."""
    from convert.atomic import write_bytes

    # the first path (in --via order: onnx, then mmdnn) that keeps BN statistics, else the first
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
