"""The Python API of `python -m convert tf2torch`: a path or an in-memory model in, a `Port` out.

    import convert
    port = convert.tf2torch(keras_model)          # or a path: .pb, SavedModel folder, .h5, .keras, .tflite
    port.module(x_nchw)                           # the source's function, in PyTorch
    port.save("ported.safetensors")

An in-memory model is first written, with the tool that holds it, to a private temporary folder —
Keras 3 -> `.keras`, tf_keras -> `.h5` (a SavedModel where HDF5 cannot hold it), a `tf.Module` ->
`tf.saved_model.save`, a GraphDef -> `.pb` — and that file goes through the same pipeline as a file
given on the command line: the same config scan before any loader runs (a `Lambda` is refused unless
`trust_code=True`), the same bounds, the same verification before anything is written.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from convert.model.options import DEFAULT_PROBES
from convert.model.tolerance import REL_TOL
from convert.runtime.errors import OWN, TfportError, fail

IN_MEMORY = "keras.Model (Keras 3), tf_keras.Model, a tf.Module with a serving signature, a tf.compat.v1.GraphDef"


class PortFailed(TfportError):
    """The port does not reproduce its source (the CLI's exit 1): nothing was written."""

    exit_code = 1


@dataclass(frozen=True)
class Port:
    """A verified port: the module `backbones.load` returns for its checkpoint, and how it was made.

    `module` is the source's whole function in PyTorch (NCHW input in the source's input range, eval mode,
    `.tfport_meta` attached); `meta` the checkpoint's metadata; `checks` the conversion's agreements with
    TF on the probe inputs (each with `what`, `rel`, `max_abs`; all within tolerance, or there is no Port);
    `path` the checkpoint written (`output`, or a private temporary file that lives as long as the Port);
    `source` the file converted (for an in-memory model, its temporary copy)."""

    module: Any  # torch.nn.Module (convert.port.module.PortedNet)
    meta: dict[str, Any]
    checks: tuple[Any, ...]  # convert.model.agreement.Agreement, every path's
    path: Path
    source: Path
    via: tuple[str, ...]
    _keep: Any = field(default=None, repr=False, compare=False)  # the temporary folder, removed with the Port

    @property
    def worst(self) -> Any:
        """The agreement furthest from TF (largest relative error)."""
        return max(self.checks, key=lambda a: a.rel)

    def __str__(self) -> str:
        w = self.worst
        return (f"Port of {self.meta.get('arch', '?')} alpha {self.meta.get('alpha')} via {'+'.join(self.via)}: "
                f"{len(self.checks)} checks vs TF, worst rel {w.rel:.2e} ({w.what})")

    def save(self, path: str | os.PathLike) -> Path:
        """Write `module` with `meta` as a tfport checkpoint (`.pth`, or `.safetensors` by suffix), the
        exports the metadata names (ported.onnx, MMdnn's emitted model) copied beside it under its stem."""
        from convert.port import checkpoint

        target = Path(path)
        if target.suffix not in checkpoint.SUFFIXES:
            raise fail(f"{target}: a ported checkpoint ends in {' or '.join(checkpoint.SUFFIXES)}")
        if not target.parent.is_dir():
            raise fail(f"{target}: output folder {target.parent} does not exist")
        meta = dict(self.meta)
        artifacts = {}
        for key, name in (self.meta.get("artifacts") or {}).items():
            suffix = name[len(self.path.stem):] if name.startswith(self.path.stem) else "." + name
            artifacts[key] = target.stem + suffix
            if (self.path.parent / name).resolve() != (target.parent / artifacts[key]).resolve():
                shutil.copyfile(self.path.parent / name, target.parent / artifacts[key])
        meta["artifacts"] = artifacts
        checkpoint.save(target, self.module.state_dict(), meta)
        return target


def tf2torch(source: Any, *, via: str = "onnx", input_size: tuple[int, int] | None = None,
             probes: int = DEFAULT_PROBES, output: str | os.PathLike | None = None, trust_code: bool = False,
             seed: int = 0, timeout: float | None = None, progress: Callable[[str], None] | None = None) -> Port:
    """Convert a TF MobileNetV2 to a verified PyTorch `Port` (what `python -m convert tf2torch` does).

    source: a path in any form the CLI reads, or an in-memory model (IN_MEMORY), written first to a private
        temporary file by the tool that holds it and then read like any file.
    via: "onnx" (tf2onnx -> onnx2torch), "mmdnn" (MMdnn 0.3.1), or "both" (each, and they must agree).
    input_size: (H, W) where the graph leaves it open. probes: seeded probe inputs compared against TF.
    output: where the checkpoint goes (`.pth` or `.safetensors`, exports beside it); None: a temporary
        file that lives as long as the Port (`Port.save` writes it elsewhere).
    trust_code: run code the model carries (Keras Lambda, custom classes); refused otherwise.
    timeout: seconds per stage (default: scaled to the model's files), enforced when called on the main
        thread, as the CLI runs; elsewhere the stages run unbounded.

    Raises TfportError (one line) on bad input, PortFailed (a TfportError, exit_code 1) where the port does
    not reproduce the source; nothing is written then."""
    from convert import pipeline
    from convert.port.checkpoint import load_module

    keep = tempfile.TemporaryDirectory(prefix="tfport-")
    try:
        src = source_file(source, Path(keep.name) / "source")
        target = Path(output) if output is not None else Path(keep.name) / "ported.pth"
        with bound(timeout, src):
            result = pipeline.convert(src, target, via=via, input_size=input_size, probes=probes, seed=seed,
                                      progress=progress or (lambda s: None), trust_code=trust_code)
        checks = tuple(a for p in result.paths for a in p.agreements) + tuple(result.cross)
        if not result.ok:
            worst = max(checks, key=lambda a: a.rel) if checks else None
            raise PortFailed(f"{_name(source, src)}: the port does not reproduce its source"
                             + (f" ({worst.what}: rel {worst.rel:.2e}, tolerance {REL_TOL:g})" if worst else "")
                             + "; nothing written")
        module = load_module(result.output)
    except BaseException:
        keep.cleanup()
        raise
    return Port(module, dict(module.tfport_meta), checks, Path(result.output), src,
                tuple(p.via for p in result.paths), keep)


def source_file(obj: Any, folder: Path) -> Path:
    """The file `obj` is read from: a path as given; an in-memory model written into `folder` (created,
    private) in the form the tool that holds it writes. Anything else: one TfportError naming it."""
    if isinstance(obj, str | os.PathLike):
        return Path(obj)
    writer = next((w for accepts, w in _WRITERS if accepts(obj)), None)
    if writer is None:
        raise fail(f"source: a {type(obj).__module__}.{type(obj).__qualname__} is neither a path nor an "
                   f"in-memory model ({IN_MEMORY})")
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    return writer(obj, folder)


def _saving(obj: Any, save: Callable[[], Any], passes: tuple[type[Exception], ...] = ()) -> None:
    """The saving tool's own call (Keras's save, tf.saved_model.save, protobuf's serializer), and only it:
    its refusal is one line about the object; what the writers around it do is tfport's. `passes`: what
    the writer handles itself."""
    try:
        save()
    except (*OWN, *passes):
        raise
    except Exception as e:  # noqa: BLE001  (the saving tool's own refusal, as one line)
        first = str(e).strip().splitlines()[0][:200] if str(e).strip() else ""
        raise fail(f"source: {type(obj).__name__} could not be written for reading ({type(e).__name__}: "
                   f"{first})") from None


def _loaded(module: str, attr: str) -> Any:
    """`module.attr` where the caller has imported `module` (an object of its class cannot exist otherwise)."""
    m = sys.modules.get(module)
    return getattr(m, attr, None) if m is not None else None


def _is(module: str, attr: str) -> Callable[[Any], bool]:
    def accepts(obj: Any) -> bool:
        cls = _loaded(module, attr)
        return cls is not None and isinstance(obj, cls)
    return accepts


def _write_keras3(model: Any, folder: Path) -> Path:
    target = folder / "model.keras"
    _saving(model, lambda: model.save(str(target)))
    return target


def _write_tf_keras(model: Any, folder: Path) -> Path:
    h5 = folder / "model.h5"
    try:
        _saving(model, lambda: model.save(str(h5)), passes=(NotImplementedError,))
        return h5
    except NotImplementedError:  # a subclassed model: HDF5 holds functional and Sequential models only
        h5.unlink(missing_ok=True)
    target = folder / "savedmodel"
    _saving(model, lambda: model.save(str(target), save_format="tf"))
    return target


def _write_tf_module(module: Any, folder: Path) -> Path:
    import tensorflow as tf

    target = folder / "savedmodel"
    signatures = getattr(module, "signatures", None)  # a loaded SavedModel keeps its own
    kept = dict(signatures) if signatures else None
    _saving(module, lambda: tf.saved_model.save(module, str(target), signatures=kept))
    return target


def _write_graph_def(graph_def: Any, folder: Path) -> Path:
    target = folder / "graph.pb"
    data: list[bytes] = []
    _saving(graph_def, lambda: data.append(graph_def.SerializeToString()))
    target.write_bytes(data[0])
    return target


# Keras 3 first: with the TF backend its models are tf.Modules too
_WRITERS: list[tuple[Callable[[Any], bool], Callable[[Any, Path], Path]]] = [
    (_is("keras", "Model"), _write_keras3),
    (_is("tf_keras", "Model"), _write_tf_keras),
    (_is("tensorflow", "Module"), _write_tf_module),
    (lambda obj: (gd := _loaded("tensorflow", "compat")) is not None and isinstance(obj, gd.v1.GraphDef),
     _write_graph_def),
]


def _name(source: Any, src: Path) -> str:
    return str(src) if isinstance(source, str | os.PathLike) else f"{type(source).__name__} (written to {src})"


@contextmanager
def bound(timeout: float | None, where: str | os.PathLike) -> Iterator[None]:
    """The CLI's per-stage bound (convert.runtime.bounds), where it can act: its watchdog interrupts the
    main thread, so a call from another thread runs unbounded."""
    from convert.runtime.bounds import bounded

    on_main = threading.current_thread() is threading.main_thread()
    with bounded(timeout, where) if on_main else nullcontext():
        yield
