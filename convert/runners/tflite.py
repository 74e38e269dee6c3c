"""The TFLite interpreter as the reference: builtin kernels, tensors fetched by name, batch by batch."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from convert.readers.tflite import QUANTIZED_MSG, input_detail, input_signature, interpreter, read_bytes
from convert.runners.tf import per_probe
from convert.runtime.errors import fail


class TFLiteRunner:
    """Runs a .tflite with TFLite's builtin kernels and fetches tensors by name, batch by batch.

    A file whose batch dim is free (-1 in its signature) is resized to each batch; a file with a
    fixed batch (old files: 1) runs that many images at a time, the last batch padded."""

    def __init__(self, path: str | Path, where: str | None = None, batch: int = 16) -> None:
        self.where = where or str(path)
        self.interp = interpreter(read_bytes(path, self.where), self.where, preserve_all_tensors=True)
        detail = input_detail(self.interp, self.where)
        if np.dtype(detail["dtype"]) != np.float32:
            raise fail(f"{self.where}: input is {np.dtype(detail['dtype']).name}: quantized TFLite ({QUANTIZED_MSG})")
        self.input_index = int(detail["index"])
        self.input_shape = tuple(int(d) for d in detail["shape"])
        self.batch = input_signature(detail)[0]  # None: any batch
        self.step = self.batch or batch
        self._allocated = self.input_shape[0]
        self.index: dict[str, list[int]] = {}
        for t in self.interp.get_tensor_details():
            self.index.setdefault(t["name"], []).append(int(t["index"]))

    def close(self) -> None:
        """Release the interpreter's buffers (all tensors are preserved, so they are large) now."""
        self.interp = None

    def tensor(self, name: str) -> int:
        found = self.index.get(name, [])
        if len(found) != 1:
            raise fail(f"{self.where}: {'no' if not found else len(found)} tensors named '{name}' in the TFLite file")
        return found[0]

    def _resize(self, n: int) -> None:
        if n != self._allocated:
            self.interp.resize_tensor_input(self.input_index, [n, *self.input_shape[1:]])
            self.interp.allocate_tensors()
            self._allocated = n

    def run(self, x: np.ndarray, fetches: list[str], progress: Callable[[int], None] | None = None,
            maps: bool = False) -> list[np.ndarray]:
        """As TFRunner.run (convert.runners.tf.per_probe: what is flattened, and `maps`)."""
        if self.interp is None:
            raise RuntimeError("TFLiteRunner.run after close()")
        indices = [self.tensor(f) for f in fetches]
        x = np.asarray(x, np.float32)
        outs: list[list[np.ndarray]] = [[] for _ in fetches]
        for i in range(0, len(x), self.step):
            chunk = x[i : i + self.step]
            n = len(chunk)
            if self.batch is None:
                self._resize(n)
            elif n < self.batch:  # a fixed batch: pad the last one with zeros, keep the first n results
                chunk = np.concatenate([chunk, np.zeros((self.batch - n, *chunk.shape[1:]), np.float32)])
            self.interp.set_tensor(self.input_index, np.ascontiguousarray(chunk))
            self.interp.invoke()
            for acc, j in zip(outs, indices, strict=True):
                acc.append(per_probe(self.interp.get_tensor(j)[:n], n, maps))  # a copy: invoke overwrites
            if progress:
                progress(min(i + self.step, len(x)))
        return [o[0] if len(o) == 1 else np.concatenate(o) for o in outs]
