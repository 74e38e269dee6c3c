"""A bug in tfport, reported as one: exit 3, one line, the full traceback in a file.

Bad input is one line and exit 2 (convert.runtime.errors); an exception from tfport's own code is not
the user's fault, and what a maintainer needs is the traceback — but not spread over the user's
terminal or a CI log in place of the verdict line. It goes to a file of its own under the system's
temporary folder (`tempfile.gettempdir()`: $TMPDIR, else /tmp), never beside or over an output.
"""

from __future__ import annotations

import os
import sys

from convert.runtime.errors import CallbackBug

EXIT_BUG = 3


def report_bug(e: BaseException) -> str:
    """Write `e`'s traceback to a new file; the one line that names the bug and that file."""
    import tempfile
    import traceback

    root = e.__cause__ if isinstance(e, CallbackBug) and e.__cause__ is not None else e
    text = str(root).strip().splitlines()
    summary = f"{type(root).__name__}: {text[0][:300]}" if text else type(root).__name__
    body = (f"tfport internal error; command: {' '.join(sys.argv)}\npython {sys.version.split()[0]}\n\n"
            + "".join(traceback.format_exception(e)))
    try:
        fd, name = tempfile.mkstemp(prefix="tfport-bug-", suffix=".txt")
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(body)
    except OSError as err:  # no writable temporary folder: the traceback is shown after the line instead
        return f"internal error (a bug in tfport): {summary} — traceback not written ({err}):\n{body}"
    return f"internal error (a bug in tfport): {summary} — traceback in {name}"
