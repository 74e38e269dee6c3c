"""One op-handler registry, as tf2onnx and onnx2torch keep theirs: a decorator per op family.

Each reader that walks a foreign op set (TFLite builtin codes, MMdnn IR ops) keeps one `OpHandlers`;
two handlers for one op raise at import, and what a reader does with an op no handler knows (pass it
through, or refuse it naming the known ones) stays the reader's decision.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

Handler = Callable[[Any, Any], None]  # (walk, node) -> None: the handler appends to the walk's layers


class OpHandlers:
    def __init__(self, what: str) -> None:
        self.what = what  # "TFLite op", "MMdnn IR op": for messages
        self._handlers: dict[str, Handler] = {}

    def register(self, *ops: str) -> Callable[[Handler], Handler]:
        """Decorator: `fn` handles every op in `ops`."""
        def add(fn: Handler) -> Handler:
            for op in ops:
                if op in self._handlers:
                    raise ValueError(f"{self.what} {op!r} already has a handler ({self._handlers[op].__name__})")
                self._handlers[op] = fn
            return fn
        return add

    def get(self, op: str) -> Handler | None:
        return self._handlers.get(op)

    def __iter__(self) -> Iterator[str]:
        return iter(self._handlers)
