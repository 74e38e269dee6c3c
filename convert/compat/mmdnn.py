"""Run the real MMdnn 0.3.1 on today's Python, TensorFlow 2.x and protobuf 6+, without touching it.

MMdnn has been unmaintained since 2020; it was written for TF 1.x, protobuf 3 and Python 3.6. Nothing
in site-packages is edited, copied or vendored. Each shim swaps one thing in at the boundary, for the
duration of a :func:`mmdnn_compat` block, and puts it back afterwards; the one exception is the IR
protobuf module, which MMdnn cannot import at all otherwise and which is registered once (idempotent).

  shim         MMdnn 0.3.1 does                                  served here by
  ir_proto     `graph_pb2.py` made by protoc 3 (descriptors built   the same FileDescriptorProto, parsed from the
               in Python): protobuf 4+ refuses to import it         serialized bytes in that file (read as text, never
                                                                    executed) into a private DescriptorPool; classes
                                                                    from message_factory, on the fast upb backend
  tf1          `tensorflow.reset_default_graph()`, `GraphDef`,      tf.compat.v1 (graph mode: MMdnn builds every
               `Session`, `placeholder`, `train.export_meta_graph`  graph inside `Graph().as_default()`/`Session`)
  imp          `imp.load_source` (module removed in Python 3.12)    importlib
  identifiers  Python names = node name with / - [ ] replaced       every non-identifier character -> _,
               by _: Keras scopes such as `mobilenetv2_1.00_224`    keywords and leading digits escaped,
               keep their dot and break the generated code          collisions numbered (one table per block)
  weights      `np.load(allow_pickle=True)` on its weights file     :func:`read_weights`: a restricted unpickler that
               (a pickled dict of arrays): runs any pickled code    rebuilds numpy arrays and builtin containers only
"""

from __future__ import annotations

import ast
import contextlib
import importlib
import importlib.util
import keyword
import pickle
import re
import sys
import types
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from convert.runtime.errors import OWN, called_back, fail

MMDNN_VERSION = "0.3.1"  # what these shims were written for (requirements.txt pins it)
IR_PROTO_MODULE = "mmdnn.conversion.common.IR.graph_pb2"
# MMdnn modules the TF -> IR -> PyTorch route imports; imported (under the shims) before patching
MMDNN_MODULES = (
    "mmdnn.conversion.tensorflow.tensorflow_frozenparser",
    "mmdnn.conversion.pytorch.pytorch_emitter",
)
_MARK = "__tfport_rebuilt__"


# --- ir_proto: MMdnn's IR protobuf module, rebuilt from the descriptor it ships -----------------------

def _serialized_descriptor(origin: Path) -> bytes:
    """The `serialized_pb=_b('...')` literal in MMdnn's graph_pb2.py, read from its syntax tree."""
    tree = ast.parse(origin.read_text(encoding="utf-8"), str(origin))
    for node in ast.walk(tree):
        if isinstance(node, ast.keyword) and node.arg == "serialized_pb":
            value = node.value
            if isinstance(value, ast.Call) and len(value.args) == 1:  # _b('...') = str.encode('latin1')
                value = value.args[0]
            if isinstance(value, ast.Constant) and isinstance(value.value, (str, bytes)):
                data = value.value
                return data.encode("latin1") if isinstance(data, str) else data
    raise fail(f"{origin}: no serialized descriptor found; is this MMdnn 0.3.1?")


def build_ir_proto_module() -> types.ModuleType:
    """A module with MMdnn's IR messages (GraphDef, NodeDef, AttrValue, ...) and DataType enum values."""
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
    from google.protobuf.internal import enum_type_wrapper

    try:
        spec = importlib.util.find_spec(IR_PROTO_MODULE.rpartition(".")[0])
    except ModuleNotFoundError:
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise fail("MMdnn is not installed (no mmdnn.conversion.common.IR package)")
    origin = Path(next(iter(spec.submodule_search_locations))) / "graph_pb2.py"
    file_proto = descriptor_pb2.FileDescriptorProto.FromString(_serialized_descriptor(origin))
    pool = descriptor_pool.DescriptorPool()  # private: MMdnn's package-less names stay out of the default pool
    file_desc = pool.Add(file_proto)
    classes = message_factory.GetMessageClassesForFiles([file_proto.name], pool)
    mod = types.ModuleType(IR_PROTO_MODULE, "MMdnn's IR protobuf module, rebuilt by tfport from its descriptor")
    mod.__file__ = str(origin)
    mod.DESCRIPTOR = file_desc
    for name, desc in file_desc.message_types_by_name.items():
        setattr(mod, name, classes[desc.full_name])
    for name, desc in file_desc.enum_types_by_name.items():
        setattr(mod, name, enum_type_wrapper.EnumTypeWrapper(desc))
        for value in desc.values:
            setattr(mod, value.name, value.number)
    setattr(mod, _MARK, True)
    return mod


def install_ir_proto() -> types.ModuleType:
    """Register the rebuilt module under the name MMdnn imports (idempotent)."""
    mod = sys.modules.get(IR_PROTO_MODULE)
    if mod is not None and getattr(mod, _MARK, False):
        return mod
    if mod is not None:  # MMdnn's own module imported (old protobuf): keep it, it works there
        return mod
    mod = build_ir_proto_module()
    parent = importlib.import_module(IR_PROTO_MODULE.rpartition(".")[0])
    sys.modules[IR_PROTO_MODULE] = mod
    parent.graph_pb2 = mod
    return mod


# --- tf1: MMdnn's `tensorflow.X` served by tf.compat.v1 ----------------------------------------------

class _TF1(types.ModuleType):
    """`tensorflow` as MMdnn 0.3.1 spells it: TF-1 names from tf.compat.v1, everything else from tf."""

    def __init__(self) -> None:
        super().__init__("tensorflow", "tf.compat.v1 in front of tf, for MMdnn 0.3.1")

    @called_back(AttributeError)  # what MMdnn asks for and TF has under neither name: getattr's own answer
    def __getattr__(self, name: str) -> Any:
        import tensorflow as tf

        try:
            return getattr(tf.compat.v1, name)
        except AttributeError:
            return getattr(tf, name)


@contextlib.contextmanager
def _tf1_api() -> Iterator[None]:
    import tensorflow as tf

    proxy = _TF1()
    patched = []
    for name, mod in list(sys.modules.items()):
        if name.startswith("mmdnn.") and getattr(mod, "tensorflow", None) is tf:
            patched.append(mod)
            mod.tensorflow = proxy  # type: ignore[attr-defined]
    try:
        yield
    finally:
        for mod in patched:
            mod.tensorflow = tf  # type: ignore[attr-defined]


# --- imp: importlib behind the old API -------------------------------------------------------------

def load_source(name: str, path: str | Path) -> types.ModuleType:
    """`imp.load_source` on importlib: import the file at `path` as module `name`."""
    spec = importlib.util.spec_from_file_location(name, str(path))
    if spec is None or spec.loader is None:
        raise fail(f"{path}: not an importable Python file")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _imp_module() -> types.ModuleType:
    mod = types.ModuleType("imp", "imp.load_source served by importlib (tfport shim for MMdnn)")
    mod.load_source = load_source  # type: ignore[attr-defined]
    return mod


@contextlib.contextmanager
def _imp() -> Iterator[None]:
    saved = sys.modules.get("imp")
    sys.modules["imp"] = _imp_module()
    try:
        yield
    finally:
        if saved is None:
            sys.modules.pop("imp", None)
        else:
            sys.modules["imp"] = saved


# --- identifiers: names MMdnn writes into generated Python ------------------------------------------

class IdentifierTable:
    """Node name -> Python identifier, stable and collision-free within one emission."""

    def __init__(self) -> None:
        self.by_name: dict[str, str] = {}
        self.taken: set[str] = set()

    @called_back()  # MMdnn reads node.variable_name while it writes code
    def __call__(self, name: str) -> str:
        ident = self.by_name.get(name)
        if ident is None:
            ident = py_identifier(name)
            base, n = ident, 1
            while ident in self.taken:  # e.g. 'a.b' and 'a_b' in the same graph
                n += 1
                ident = f"{base}_{n}"
            self.by_name[name] = ident
            self.taken.add(ident)
        return ident


def py_identifier(name: str) -> str:
    """MMdnn's own mapping (/ - [ ] -> _) extended to every non-identifier character."""
    ident = re.sub(r"\W", "_", name, flags=re.ASCII)
    if not ident or ident[0].isdigit():
        ident = "n_" + ident
    if keyword.iskeyword(ident):
        ident += "_"
    return ident


@contextlib.contextmanager
def _identifiers() -> Iterator[None]:
    from mmdnn.conversion.common.DataStructure.graph import GraphNode

    table = IdentifierTable()
    prop = property(lambda node: table(node.real_name))
    saved = {k: GraphNode.__dict__[k] for k in ("variable_name", "real_variable_name")}
    GraphNode.variable_name = prop  # type: ignore[method-assign,assignment]
    GraphNode.real_variable_name = prop  # type: ignore[method-assign,assignment]
    try:
        yield
    finally:
        for k, v in saved.items():
            setattr(GraphNode, k, v)


# --- weights: MMdnn's pickled weights dict, read without running pickled code -----------------------

# Exactly what numpy's own pickles of arrays reference (np.save of a dict of arrays): array and
# scalar reconstruction. Containers (dict, list, tuple, str, bytes, numbers) are pickle opcodes and
# need no lookup; anything else (os.system, builtins.eval, a class's __reduce__) is refused.
_ALLOWED_GLOBALS = frozenset({
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
})


class _ArraysOnlyUnpickler(pickle.Unpickler):
    @called_back(pickle.UnpicklingError)  # the refusal is the protocol; any other failure here is tfport's
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in _ALLOWED_GLOBALS:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name} (only numpy arrays are allowed)")
        try:
            return super().find_class(module, name)
        except (ImportError, AttributeError) as e:  # a numpy that spells it otherwise: the file's, not a bug
            raise pickle.UnpicklingError(f"cannot find {module}.{name} ({e})") from None

    @called_back(pickle.UnpicklingError)
    def persistent_load(self, pid: Any) -> Any:
        raise pickle.UnpicklingError("refusing a persistent id")


_HEADER_READERS: dict[tuple[int, int], Callable] = {
    (1, 0): np.lib.format.read_array_header_1_0,
    (2, 0): np.lib.format.read_array_header_2_0,
}


def _numpy_says(path: Path, read: Callable[[], Any]) -> Any:
    """One read of numpy's header parser or the unpickler; what they raise on bad bytes is the file's fault."""
    try:
        return read()
    except OWN:
        raise
    except pickle.UnpicklingError as e:
        raise fail(f"{path}: unsafe or corrupt MMdnn weights file ({e})") from e
    except Exception as e:  # noqa: BLE001  corrupt bytes make numpy's header parser and the unpickler raise
        # anything (SyntaxError, tokenize.TokenError, MemoryError for a huge declared array, ...)
        detail = str(e).splitlines()[0] if str(e) else "truncated"
        raise fail(f"{path}: corrupt MMdnn weights file ({type(e).__name__}: {detail})") from e


def read_weights(path: str | Path) -> dict[str, dict[str, np.ndarray]]:
    """MMdnn's weights file (np.save of {layer: {name: array}}) without executing pickled code.

    Any malformed, truncated or unsafe file is a TfportError naming the file."""
    path = Path(path)
    try:
        f = open(path, "rb")
    except FileNotFoundError:
        raise fail(f"{path}: no such file") from None
    except OSError as e:
        raise fail(f"{path}: cannot read ({e.strerror})") from None
    with f:
        version = _numpy_says(path, lambda: np.lib.format.read_magic(f))
        reader = _HEADER_READERS.get(version)
        if reader is None:
            raise fail(f"{path}: corrupt MMdnn weights file (unsupported .npy version {version})")
        shape, _, dtype = _numpy_says(path, lambda: reader(f))
        if dtype != np.dtype(object) or shape != ():
            raise fail(f"{path}: corrupt MMdnn weights file (holds a {dtype} array of shape {shape}, not a "
                       "pickled dict)")
        obj = _numpy_says(path, _ArraysOnlyUnpickler(f).load)
    value = obj.item() if isinstance(obj, np.ndarray) and obj.shape == () else obj
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, dict) and all(isinstance(a, np.ndarray) for a in v.values())
        for k, v in value.items()
    ):
        raise fail(f"{path}: not an MMdnn weights file (expected {{layer: {{name: array}}}})")
    return value


@contextlib.contextmanager
def _safe_weights() -> Iterator[None]:
    """MMdnn's emitters load the IR weights with np.load(allow_pickle=True): read them safely instead."""
    from mmdnn.conversion.common.DataStructure.emitter import Emitter

    saved = Emitter.__dict__["_load_weights"]

    @called_back()  # read_weights names a bad file as TfportError; anything else from it is a bug
    def _load_weights(self, file_name=None):
        self.weight_loaded = True
        self.weights_dict = read_weights(file_name)

    Emitter._load_weights = _load_weights  # type: ignore[method-assign]
    try:
        yield
    finally:
        Emitter._load_weights = saved  # type: ignore[method-assign]


# --- the boundary -----------------------------------------------------------------------------------

SHIMS: dict[str, Callable[[], contextlib.AbstractContextManager]] = {
    "tf1": _tf1_api,
    "imp": _imp,
    "identifiers": _identifiers,
    "weights": _safe_weights,
}


def import_mmdnn() -> None:
    """Import the MMdnn modules the TF -> PyTorch route uses (after the IR module is rebuilt)."""
    install_ir_proto()
    try:
        for name in MMDNN_MODULES:
            importlib.import_module(name)
    except ImportError as e:
        raise fail(f"MMdnn 0.3.1 cannot be imported ({type(e).__name__}: {e})") from e


@contextlib.contextmanager
def mmdnn_compat() -> Iterator[None]:
    """Every shim for the duration of the block; MMdnn's modules are imported on entry."""
    import_mmdnn()
    with contextlib.ExitStack() as stack:
        for shim in SHIMS.values():
            stack.enter_context(shim())
        yield
