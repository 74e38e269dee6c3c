"""The registry itself: a decorator that files an architecture under its name, and the lookup."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

from convert.errors import fail

if TYPE_CHECKING:
    from parity.arch import Architecture

DEFAULT = "mobilenet_v2"  # what a checkpoint without an `arch` key is (every tfport port before the key)

ARCHITECTURES: dict[str, Architecture] = {}

T = TypeVar("T")


def register(name: str) -> Callable[[type[T]], type[T]]:
    """Class decorator: one instance of the class answers for `name`. Registering a name twice raises."""
    def deco(cls: type[T]) -> type[T]:
        if name in ARCHITECTURES:
            raise ValueError(f"architecture {name!r} registered twice")
        ARCHITECTURES[name] = cls()  # type: ignore[assignment]
        return cls
    return deco


def get(name: str | None) -> Architecture:
    """The architecture registered as `name` (DEFAULT where None); bad input (exit 2) naming the known
    ones where parity has none by that name: it comes from a checkpoint's metadata."""
    key = DEFAULT if name is None else name
    if key not in ARCHITECTURES:
        raise fail(f"architecture {key!r} is unknown to parity; known: {', '.join(sorted(ARCHITECTURES))}")
    return ARCHITECTURES[key]
