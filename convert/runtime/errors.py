"""One exception type for bad input or usage.

Every CLI prints a :class:`TfportError` as one line and exits 2; anything else is a bug and keeps
its traceback (Polygraphy's split between user errors and bugs).
"""

from __future__ import annotations


class TfportError(Exception):
    """Bad input or usage: a file that is missing, corrupt, unsafe or not a MobileNetV2."""

    exit_code = 2


def fail(msg: str) -> TfportError:
    """Build the error so call sites read ``raise fail(...)``."""
    return TfportError(msg)
