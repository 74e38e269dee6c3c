"""Bad input told apart from bugs (Polygraphy's split between user errors and bugs).

A :class:`TfportError` is bad input or usage: every CLI prints it as one line and exits 2. Anything
else that reaches a CLI's `run_main` is a bug in tfport: exit 3, one line, the traceback in a file
(convert.runtime.bug). A wrapper around a third-party loader may turn *its* failures into TfportError,
but never tfport's own: code of tfport's that a library calls back (MMdnn's shims, the restricted
unpickler) is marked :func:`called_back`, so that its failure crosses the library's broad wrapper as
:class:`CallbackBug` instead of reading as "the library cannot read your file".
"""

from __future__ import annotations

import functools
from collections.abc import Callable  # no `typing`: this module is imported while --help is built


class TfportError(Exception):
    """Bad input or usage: a file that is missing, corrupt, unsafe or not a MobileNetV2."""

    exit_code = 2


def fail(msg: str) -> TfportError:
    """Build the error so call sites read ``raise fail(...)``."""
    return TfportError(msg)


class CallbackBug(Exception):
    """tfport's own code failed where a third-party library called it: a bug, raised from the original
    exception, which a wrapper around that library lets through (see `OWN`)."""


# What a wrapper around a third-party call re-raises as it is, before it reports the library's failure:
# bad input tfport already named, and tfport's own callbacks failing
OWN: tuple[type[Exception], ...] = (TfportError, CallbackBug)


def called_back(*expected: type[BaseException]) -> Callable[[Callable], Callable]:
    """Decorator for tfport code that a library calls (a shim, a hook, an unpickler's find_class).
    `expected`: exceptions that are the protocol with that library (AttributeError from a `__getattr__`,
    UnpicklingError from a refusing find_class) and pass as they are; TfportError passes too. Anything
    else becomes CallbackBug, so that no `except Exception` in or around the library can report it as
    the user's file."""

    def deco(fn: Callable) -> Callable:
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            try:
                return fn(*args, **kwargs)
            except (*OWN, *expected):
                raise
            except Exception as e:
                raise CallbackBug(f"{type(e).__name__} in {fn.__qualname__}: {e}") from e

        return wrapper

    return deco
