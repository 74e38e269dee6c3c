"""What every source form yields (:class:`Source`) and the detection registry that picks the form."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from convert.model.spec import ModelSpec
from convert.runtime.errors import fail


@dataclass(frozen=True)
class LoadOptions:
    input_size: tuple[int, int] | None = None  # where the source leaves H, W open
    trust_code: bool = False  # the user opts in to running code the file carries (Keras Lambda, custom layers)


@dataclass
class Source:
    path: Path
    form: str  # a registered form name, e.g. keras3_keras, keras2_h5, savedmodel, graph_pb
    sha256: str
    graph_def: object | None  # tf GraphDef, frozen; None for a TFLite flatbuffer (see runner())
    info: object  # convert.readers.tf_graph.GraphInfo, or convert.readers.tflite.TFLiteInfo
    spec: ModelSpec
    keras_model: object | None = None
    notes: list[str] = field(default_factory=list)

    def runner(self):
        """The source run as itself (the reference every comparison is against): TF on the frozen graph, or
        the TFLite interpreter on a flatbuffer. Both answer `run(x, fetches)` and `close()`."""
        if self.graph_def is None:
            from convert.runners.tflite import TFLiteRunner

            return TFLiteRunner(self.path)
        from convert.runners.tf import TFRunner

        return TFRunner(self.graph_def, self.info)


@dataclass(frozen=True)
class Form:
    name: str
    detect: Callable[[Path], bool]  # reads the file's own bytes; cheap; never raises for a foreign file
    load: Callable[[Path, LoadOptions], Source]


FORMS: list[Form] = []


def register(name: str, detect: Callable[[Path], bool]):
    def deco(load: Callable[[Path, LoadOptions], Source]):
        if any(f.name == name for f in FORMS):
            raise ValueError(f"source form {name!r} registered twice")
        FORMS.append(Form(name, detect, load))
        return load
    return deco


def read_head(path: Path, n: int = 16) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read(n)
    except OSError as e:
        raise fail(f"{path}: cannot read ({e.strerror})") from None


HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"  # every HDF5 file's first 8 bytes (a user block aside, which Keras never writes)


def is_hdf5(path: Path) -> bool:
    """An HDF5 file by its signature: Keras model files (.h5) and weights files (.h5, .weights.h5) alike."""
    return path.is_file() and read_head(path, 8) == HDF5_MAGIC


def detect_form(path: Path) -> Form:
    if not path.exists():
        raise fail(f"{path}: no such file or folder")
    if path.is_file() and not read_head(path):
        raise fail(f"{path}: empty file")
    for form in FORMS:
        if form.detect(path):
            return form
    if path.is_dir():
        raise fail(f"{path}: a folder that is not a SavedModel (no saved_model.pb)")
    raise fail(f"{path}: unknown model format (expected a frozen .pb, a SavedModel folder, .h5 or .keras)")


def load_source(path: str | Path, input_size: tuple[int, int] | None = None, trust_code: bool = False) -> Source:
    p = Path(path)
    from convert.arch import in_torchvision_order

    source = detect_form(p).load(p, LoadOptions(input_size, trust_code))
    _require_finite(source)
    source.spec = in_torchvision_order(source.spec)  # what parity's probe points index into
    _require_twin(source)
    return source


def _require_twin(source: Source) -> None:
    """A variant of a registered architecture that torchvision has no builder for (MobileNetV3's alpha 0.75
    or minimalistic=True) is refused in one line naming it, before any conversion runs."""
    from convert.arch import get

    check = getattr(get(source.spec.arch), "require_twin", None)
    if check is not None:
        check(source.spec, str(source.path))


def _require_finite(source: Source) -> None:
    """NaN/Inf weights make every comparison meaningless: refuse them up front, naming the layer."""
    import numpy as np

    for layer in source.spec.layers:
        for name, value in vars(layer).items():
            if isinstance(value, np.ndarray) and value.dtype.kind == "f" and not np.isfinite(value).all():
                raise fail(f"{source.path}: layer '{layer.name}' has NaN or Inf in its {name}")


def trust(spec: ModelSpec, trusted: list[str]) -> None:
    """Record what ran only because the user passed --trust-code (metadata `trusted_code`, parity's notes)."""
    spec.trusted_code = list(dict.fromkeys([*spec.trusted_code, *trusted]))


def graph_source(path: Path, form: str, gd, opts: LoadOptions, keras_model=None) -> Source:
    """A Source from a frozen GraphDef (what every form reduces to)."""
    from convert.readers.tf_graph import read_graph
    from convert.runtime.files import sha256_file
    from convert.safety.graph import check_graph_def

    trusted = check_graph_def(gd, str(path), opts.trust_code)  # every form reduces to this graph: before any run
    spec, info = read_graph(gd, str(path), opts.input_size)
    spec.origin = form
    trust(spec, trusted)
    return Source(path, form, sha256_file(path), gd, info, spec, keras_model)
