"""ONNX models checked as data, before ONNX Runtime or onnx2torch sees them: node types of the default
domain from `ops.ONNX_OPS` (every subgraph too), and external data only in files inside the model's own
folder (no absolute path, no `..`, no link out of it) — the onnx library's path-traversal class of bugs."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path, PurePosixPath, PureWindowsPath

from convert.runtime.errors import fail
from convert.safety.ops import ONNX_DEFAULT_DOMAINS, ONNX_OPS, why_refused
from convert.safety.refusal import Unsafe, refuse_unless_trusted


def _nodes(graph, prefix: str = "") -> Iterator[tuple[str, object]]:
    for n in graph.node:
        name = prefix + (n.name or n.op_type)
        yield name, n
        for attr in n.attribute:
            for g in ([attr.g] if attr.HasField("g") else []) + list(attr.graphs):
                yield from _nodes(g, name + "/")


def findings(model) -> list[Unsafe]:
    out = []
    for name, n in _nodes(model.graph):
        if n.domain not in ONNX_DEFAULT_DOMAINS:
            out.append(Unsafe(name, f"{n.domain}.{n.op_type}", "is an op outside ONNX's default domain"))
        elif n.op_type not in ONNX_OPS:
            out.append(Unsafe(name, n.op_type, why_refused(n.op_type)))
    return out


def _tensors(model) -> Iterator[object]:
    yield from model.graph.initializer
    for _, n in _nodes(model.graph):
        for attr in n.attribute:
            if attr.HasField("t"):
                yield attr.t
            yield from attr.tensors


def external_files(model, where: str, folder: Path | None) -> list[Path]:
    """Each external-data file the model names, refused unless it lies inside `folder` (None: a model held
    in memory, which may name none)."""
    import onnx

    out = []
    for t in _tensors(model):
        if t.data_location != onnx.TensorProto.EXTERNAL:
            continue
        location = next((e.value for e in t.external_data if e.key == "location"), "")
        if folder is None:
            raise fail(f"{where}: tensor '{t.name}' keeps its data in an external file ({location!r}); "
                       "refused for a model not read from a folder")
        parts = PurePosixPath(location.replace("\\", "/")).parts
        if (not location or PurePosixPath(location).is_absolute() or PureWindowsPath(location).is_absolute()
                or ".." in parts):
            raise fail(f"{where}: tensor '{t.name}' names external data at {location!r}: outside the model's "
                       "folder (absolute or '..'); refused")
        target = (folder / location).resolve()
        if not target.is_relative_to(folder.resolve()):
            raise fail(f"{where}: tensor '{t.name}' names external data at {location!r}, a link out of the "
                       "model's folder; refused")
        out.append(target)
    return out


def load_onnx(path: Path, where: str, trust_code: bool = False):
    """An ONNX file, checked (external data, then op types) before its external data is read."""
    import onnx

    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as e:  # noqa: BLE001  (protobuf DecodeError and others on a damaged file)
        raise fail(f"{where}: not a readable ONNX model ({type(e).__name__})") from None
    check_onnx(model, where, path.parent, trust_code)
    if any(t.data_location == onnx.TensorProto.EXTERNAL for t in _tensors(model)):
        try:
            onnx.load_external_data_for_model(model, str(path.parent))
        except Exception as e:  # noqa: BLE001  (a missing or short external file)
            raise fail(f"{where}: cannot read its external data ({type(e).__name__})") from None
    return model


def check_onnx(model, where: str, folder: Path | None, trust_code: bool = False) -> list[str]:
    external_files(model, where, folder)
    return refuse_unless_trusted(where, findings(model), trust_code)
