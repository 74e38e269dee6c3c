"""The one registry shape tfport uses for its op handlers, conversion paths, checks and textures.

A dict from name to entry, filled by a decorator (tf2onnx's handlers, onnx2torch's converters): an entry
registered twice raises at import, and `lookup` of an unknown name is bad input naming the known ones.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

from convert.runtime.errors import fail

T = TypeVar("T")


class Registry(dict[str, T], Generic[T]):
    def __init__(self, what: str) -> None:
        super().__init__()
        self.what = what  # "conversion path", "TFLite op", ...: for messages

    def register(self, *names: str) -> Callable[[T], T]:
        """Decorator: the entry answers for every name in `names`."""
        def add(entry: T) -> T:
            for name in names:
                if name in self:
                    raise ValueError(f"{self.what} {name!r} registered twice")
                self[name] = entry
            return entry
        return add

    def lookup(self, name: str, hint: str = "") -> T:
        """The entry for `name`, or one line naming the known ones."""
        try:
            return self[name]
        except KeyError:
            raise fail(f"unknown {self.what} {name!r}; known: {', '.join(self)}{hint}") from None
