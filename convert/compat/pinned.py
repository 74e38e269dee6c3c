"""A private name of a third-party library, looked up where it is used, with one clear line when it is gone."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

from convert.runtime.errors import TfportError


class UpstreamChanged(TfportError):
    """A library no longer has a private name tfport relies on: the installed version is not the pinned one.
    One line, like bad input, since the fix is the user's too (install the pinned set)."""


@dataclass(frozen=True)
class Private:
    """`module.name` of `library`, as tfport uses it at `written_for` (the version requirements.txt pins)."""

    library: str
    written_for: str
    module: str
    name: str

    def get(self) -> Any:
        try:
            value = importlib.import_module(self.module)
            for part in self.name.split("."):  # a class attribute: "Class.method"
                value = getattr(value, part)
            return value
        except (ImportError, AttributeError):
            installed = _version(self.library)
            raise UpstreamChanged(
                f"{self.library} {installed} has no {self.module}.{self.name}, which tfport uses as {self.library} "
                f"{self.written_for} has it: install the pinned set (requirements.txt)") from None


def _version(library: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(library)
    except PackageNotFoundError:
        return "(not installed)"
