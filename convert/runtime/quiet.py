"""Keep the frameworks' start-up chatter off the terminal: stderr is for tfport's one-line errors.

Importing `tensorflow` loads its C++ libraries, which log through absl straight to file descriptor 2
before anything reads TF_CPP_MIN_LOG_LEVEL:

    WARNING: All log messages before absl::InitializeLog() is called are written to STDERR
    I0000 00:00:... port.cc:153] oneDNN custom operations are on. ...
    I0000 00:00:... cudart_stub.cc:31] Could not find cuda drivers on your machine, GPU will not be used.

(twice: two of its shared libraries each log them). Only fd 2 itself, pointed at /dev/null while that
import runs, keeps them off. TF is imported lazily, first by whichever module needs it (a source reader,
tf_keras, Keras 3, tf2onnx, MMdnn, parity's reference, in the main thread or the TF reference's): one
import hook on `tensorflow` is the single place they all pass through.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager

QUIET_IMPORTS = ("tensorflow",)  # the packages whose import writes C++ log lines to fd 2
# modules whose warnings the CLIs keep off stderr (a regex on the warning's module, as `warnings` matches it)
FRAMEWORK_MODULES = (r"(tensorflow|tf_keras|keras|tf2onnx|onnx|onnxruntime|onnx2torch|mmdnn|google|absl|h5py|numpy"
                     r"|torch|torchvision|flatbuffers|ml_dtypes|tf_slim)(\.|$)")


@contextmanager
def stderr_silenced() -> Iterator[None]:
    """File descriptor 2 -> /dev/null for the block (C++ writes included), restored after it."""
    sys.stderr.flush()
    try:
        saved = os.dup(2)
    except OSError:  # no fd 2 at all (a daemon's): nothing to silence
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


class _SilencedLoader:
    """The package's own loader, its module body run with fd 2 silenced. (Duck-typed, as the import
    system allows: importlib.abc would import pathlib, which `--help` must not load.)"""

    def __init__(self, loader) -> None:
        self.loader = loader

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module) -> None:
        module.__loader__ = module.__spec__.loader = self.loader  # the module keeps its real loader
        with stderr_silenced():
            self.loader.exec_module(module)

    def __getattr__(self, name: str):
        return getattr(self.loader, name)


class _SilencedFirstImport:
    """Finds nothing itself: hands back the real spec of a QUIET_IMPORTS package with a silenced loader."""

    def __init__(self) -> None:
        self._asking = threading.local()  # set while the real finders are asked, so that this one stands aside

    def find_spec(self, fullname: str, path=None, target=None):
        if fullname not in QUIET_IMPORTS or getattr(self._asking, "on", False):
            return None
        self._asking.on = True
        try:
            spec = importlib.util.find_spec(fullname)
        finally:
            self._asking.on = False
        if spec is not None and spec.loader is not None:
            spec.loader = _SilencedLoader(spec.loader)
        return spec


def quiet_frameworks(verbose: bool = False) -> None:
    """TF and Keras log to stderr at import; keep stderr for our one-line errors (`verbose` keeps it all)."""
    import logging
    import warnings

    if verbose:
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

    # the frameworks' own warnings (deprecations inside TF/Keras, tf2onnx's, torch's notices), not the
    # process's: a warning raised from tfport's own code still shows
    warnings.filterwarnings("ignore", module=FRAMEWORK_MODULES)
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    logging.getLogger("tf2onnx").setLevel(logging.ERROR)
    quiet_tensorflow_import()


def quiet_tensorflow_import() -> None:
    """From now on, the first import of TensorFlow (by anyone) runs with fd 2 silenced."""
    if not any(isinstance(f, _SilencedFirstImport) for f in sys.meta_path):
        sys.meta_path.insert(0, _SilencedFirstImport())


def add_verbose_flag(parser) -> None:
    """`--verbose` on a CLI's subcommand: the frameworks' start-up logging stays on stderr."""
    parser.add_argument("--verbose", action="store_true",
                        help="leave TensorFlow's C++ start-up logging and the frameworks' warnings on stderr")
