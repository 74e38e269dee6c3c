"""The registry itself: a decorator that files an architecture under its name, and the lookup."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, TypeVar

from convert.runtime.errors import fail
from parity.points import Point


class Architecture(Protocol):
    """What parity needs to know about one network family (see the module docstring for each)."""

    activation: str
    tf_activation: str
    activation_fault: str
    input_point: str
    input_convention: str
    stride_fault: str  # the cause the stride check names where a conv strides unlike the source

    def canonical(self, spec: Any, where: str, tensors: bool = True) -> Any: ...
    def points(self, meta: dict[str, Any], pool: str | None, output: bool) -> list[Point]: ...
    def tf_tensors(self, points: list[Point], taps: dict[int, dict[str, str]],
                   pooled: str | None) -> dict[str, str]: ...
    def torchvision(self, state_dict: dict[str, Any], meta: dict[str, Any]) -> Any: ...
    def with_source_semantics(self, meta: dict[str, Any]) -> Any: ...
    def plain(self, state_dict: dict[str, Any]) -> tuple[Any, dict[str, Any]] | None: ...
    def backbone_state(self, state_dict: dict[str, Any]) -> dict[str, Any]: ...
    def units(self, model: Any) -> list[tuple[str, Any]]: ...
    def convs(self, model: Any) -> list[tuple[str, Any]]: ...
    def point_of_conv(self, path: str) -> str: ...
    def wrong_activations(self, model: Any) -> list[tuple[str, str]]: ...

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
