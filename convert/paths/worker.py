"""Everything `tf2torch` does in PyTorch, in this process or in a worker that imports torch meanwhile.

Why a worker: a conversion needs TF and torch, and importing either costs seconds of single-threaded
Python (here TF ~5.5 s, torch + torchvision ~6 s). Started at the beginning of `convert`, before TF
loads, a spawned worker imports torch while this process imports TF, reads the graph and runs
tf2onnx or MMdnn; the two imports overlap on two cores (scripts/bench: convert_*_overhead). The
worker keeps the canonical backbones; only numpy arrays, specs and JSON-able dicts cross the pipe.

Where torch is already imported (tests, library callers, the bench's scaling rows) there is nothing
to overlap and the same requests run in-process (`InProcessTorch`). `TFPORT_TORCH_WORKER=0` forces that too.
"""

from __future__ import annotations

import os
import sys
import threading
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from convert.runtime.errors import TfportError, fail


@dataclass(frozen=True)
class CanonicalRef:
    """What the pipeline needs of a canonical backbone held by the torch half: its key and metadata."""

    key: str
    meta: dict[str, Any]


class TorchState:
    """What the torch half keeps between requests: the canonical backbones, by key."""

    def __init__(self) -> None:
        self.canonicals: dict[str, Any] = {}  # key -> convert.port.canonical.Canonical


# --- the torch work itself, as module-level functions of the state (what a request names) --------------
def warm_up(state: TorchState) -> None:
    """Import torch and torchvision (the worker does this while its parent imports TF)."""
    import torchvision.models  # noqa: F401  (torch with it; ~6 s, most of it torch._dynamo via torchvision.ops)

    import convert.port.canonical  # noqa: F401


def canonical(state: TorchState, key: str, spec, where: str) -> dict[str, Any]:
    """Map the spec to the canonical port `key`; its metadata."""
    from convert.port.canonical import to_torchvision

    state.canonicals[key] = to_torchvision(spec, where)
    return state.canonicals[key].meta


def canonical_outputs(state: TorchState, key: str, spec, where: str,
                      x_nhwc: np.ndarray) -> tuple[dict, dict[str, np.ndarray]]:
    """Map the spec to the canonical port `key`, then run it: (metadata, its outputs by name)."""
    meta = canonical(state, key, spec, where)
    return meta, torch_outputs(state.canonicals[key].module(), x_nhwc)


def emitted(state: TorchState, code: str, weights: str, x_nhwc: np.ndarray) -> tuple[np.ndarray, np.ndarray, dict]:
    """MMdnn's emitted model on the probes: (logits, output, BN momentum per module)."""
    import warnings

    from convert.compat.mmdnn import MMDNN_VERSION
    from convert.paths.mmdnn.emitted import emitted_bn_momenta, emitted_outputs, load_emitted

    model = load_emitted(code, weights)

    def forward(x):  # MMdnn's emitted code, and only it: its failures are MMdnn's, not tfport's
        try:
            return model(x)
        except (TypeError, RuntimeError, ValueError, IndexError, AttributeError) as e:
            raise fail(f"MMdnn {MMDNN_VERSION} emitted PyTorch code that fails to run on this model "
                       f"({type(e).__name__}: {str(e).splitlines()[0][:160] if str(e) else ''}); "
                       "use --via onnx") from None

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Implicit dimension choice for softmax")  # MMdnn's F.softmax(x)
        logits, out = emitted_outputs(model, x_nhwc, forward=forward)
    return logits, out, emitted_bn_momenta(model)


def save(state: TorchState, key: str, output: str, metadata: dict[str, Any]) -> None:
    """Write the canonical port `key` as a checkpoint (convert.port.checkpoint)."""
    from convert.port import checkpoint

    c = state.canonicals[key]
    checkpoint.save(Path(output), {**c.state_dict, **c.head_state}, metadata)


Request = Callable[..., Any]  # one of the functions above; its first argument is the state
REQUESTS: dict[str, Request] = {f.__name__: f for f in (warm_up, canonical, canonical_outputs, emitted, save)}


class InProcessTorch:
    """The torch half in this process: each request runs when submitted."""

    def __init__(self) -> None:
        self.state = TorchState()

    def submit(self, request: Request, *args: Any) -> Callable[[], Any]:
        """Run `request` now; the worker's version runs it meanwhile. Returns what gives the result."""
        value = request(self.state, *args)
        return lambda: value

    def call(self, request: Request, *args: Any) -> Any:
        return self.submit(request, *args)()

    def close(self) -> None:
        self.state.canonicals.clear()


def torch_outputs(model, x_nhwc: np.ndarray, batch: int = 2) -> dict[str, np.ndarray]:
    """What a port returns for NHWC inputs, laid out as TF lays it out: "output" (the whole function; a
    feature map back in NHWC), "pooled" (after its global pooling) and "logits" (torchvision's classifier,
    before the activation), the last two where the port has them. Batch 2: as fast as 8 on two cores
    (MobileNetV2 224: 0.16-0.19 s vs 0.30 s for 8 probes; ResNet50 0.79-1.06 vs 0.98-1.00 s) with a quarter
    of the activations alive in the worker, whose peak adds to the TF process's."""
    import torch

    taps: dict[str, list[np.ndarray]] = {"output": []}
    hooks = []
    for name, module in (("pooled", getattr(model, "pool", None)), ("logits", _classifier_of(model))):
        if module is not None:
            taps[name] = []
            hooks.append(module.register_forward_hook(lambda _m, _i, o, acc=taps[name]: acc.append(o.numpy())))
    try:
        with torch.no_grad():
            for i in range(0, len(x_nhwc), batch):
                x = torch.from_numpy(np.ascontiguousarray(x_nhwc[i : i + batch].transpose(0, 3, 1, 2)))
                y = model(x).numpy()
                taps["output"].append(y.transpose(0, 2, 3, 1) if y.ndim == 4 else y)
    finally:
        for h in hooks:
            h.remove()
    return {k: np.concatenate(v) for k, v in taps.items()}


def _classifier_of(model):
    """torchvision's classifier where the port uses it (a feature extractor's has 0 outputs)."""
    if getattr(model, "classifier_activation", None) is None:
        return None
    return getattr(model, model.classifier_name)  # MobileNetV2's `classifier`, ResNet50's `fc`


class TorchWorker:
    """The same requests, run in a spawned process, answered in order; TfportError comes back as such."""

    def __init__(self) -> None:
        import multiprocessing

        ctx = multiprocessing.get_context("spawn")  # a fresh interpreter: no forked TF or OpenMP state
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_serve, args=(child,), daemon=True, name="tfport-torch")
        self.proc.start()
        child.close()
        self._sent = self._received = 0
        self._answers: dict[int, tuple[str, Any]] = {}
        self._gone: str | None = None  # why the worker's answers stopped, once they have
        self._arrived = threading.Condition()
        # answers are read as they come, so that the worker never blocks sending a large one (a feature
        # map) while this process blocks sending it the next large request: both would wait forever
        threading.Thread(target=self._read, name="tfport-torch-answers", daemon=True).start()
        self.submit(warm_up)  # answered once torch is in; nobody waits for it

    def _read(self) -> None:
        while True:
            try:
                answer = self.conn.recv()
            except (EOFError, OSError) as e:
                with self._arrived:
                    self._gone = str(e) or type(e).__name__
                    self._arrived.notify_all()
                return
            with self._arrived:
                self._answers[self._received], self._received = answer, self._received + 1
                self._arrived.notify_all()

    def submit(self, request: Request, *args: Any) -> Callable[[], Any]:
        """Send a request now; the returned callable waits for its answer."""
        if REQUESTS.get(request.__name__) is not request:
            raise ValueError(f"{request!r} is not a torch-worker request ({', '.join(REQUESTS)})")
        try:
            self.conn.send((request.__name__, args))
        except (OSError, ValueError) as e:
            raise RuntimeError(f"tfport's torch worker is gone (exit code {self.proc.exitcode}): {e}") from None
        ticket, self._sent = self._sent, self._sent + 1
        return lambda: self._result(ticket)

    def _result(self, ticket: int) -> Any:
        with self._arrived:
            while ticket not in self._answers:
                if self._gone is not None:
                    self.proc.join(2)
                    raise RuntimeError(f"tfport's torch worker stopped (exit code {self.proc.exitcode}): {self._gone}")
                self._arrived.wait(0.5)  # short waits: a time bound's interrupt gets through
            status, value = self._answers.pop(ticket)
        if status == "fail":
            raise TfportError(value)
        if status == "error":  # a bug there: its last line first (the one line a CLI shows), then its traceback
            lines = value.strip().splitlines()
            raise RuntimeError(f"in tfport's torch worker: {lines[-1] if lines else '?'}\n{value}")
        return value

    def call(self, request: Request, *args: Any) -> Any:
        """Send a request and wait for its answer."""
        return self.submit(request, *args)()

    def close(self) -> None:
        """Tell the worker to stop, without waiting: its teardown (torch's) takes ~1 s and every answer
        it owes has been read. A daemon, it is ended with this process at the latest."""
        try:
            self.conn.send(None)
        except (OSError, ValueError):
            pass
        self.conn.close()


def _serve(conn) -> None:
    """The worker's loop: one (method, args) request at a time, answered ("ok"|"fail"|"error", value)."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle; it closes us
    from convert.runtime.quiet import quiet_frameworks

    quiet_frameworks()
    state = TorchState()
    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            return
        if msg is None:
            return
        name, args = msg
        try:
            answer = ("ok", REQUESTS[name](state, *args))
        except TfportError as e:
            answer = ("fail", str(e))
        except BaseException:  # a bug: its traceback goes to the parent, which raises it
            answer = ("error", traceback.format_exc())
        try:
            conn.send(answer)
        except (OSError, ValueError):  # the parent is gone (it ended on bad input): nobody to answer
            return


def open_torch() -> InProcessTorch | TorchWorker:
    """A worker where it can overlap torch's import with TF's, else in-process."""
    if "torch" in sys.modules or os.environ.get("TFPORT_TORCH_WORKER", "1") == "0":
        return InProcessTorch()
    return TorchWorker()
