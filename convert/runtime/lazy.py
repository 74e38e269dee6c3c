"""A package's API names imported where first read (PEP 562), so `import convert` / `parity` / `backbones`
stays as light as `--help` needs: one implementation for the three packages' `__getattr__`/`__dir__`."""

from __future__ import annotations

from collections.abc import Callable


def lazy_exports(package: str, table: dict[str, str],
                 namespace: dict) -> tuple[Callable[[str], object], Callable[[], list[str]]]:
    """(__getattr__, __dir__) for `package`: each name in `table` (name -> its module) is imported when read."""

    def __getattr__(name: str):
        if name not in table:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        from importlib import import_module

        return getattr(import_module(table[name]), name)

    def __dir__() -> list[str]:
        return sorted([*namespace, *table])

    return __getattr__, __dir__
