"""What a checker found (`Unsafe`: the node, its op, why) and the one decision made on it: refuse in one
line naming the first, or, with `--trust-code`, let it run and say so in the metadata."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from convert.runtime.errors import fail


@dataclass(frozen=True)
class Unsafe:
    node: str  # the node's name (inside a function: function/node), a TFLite op index, an ONNX node
    op: str
    why: str  # convert.safety.ops.why_refused, or the container's own reason

    def __str__(self) -> str:
        return f"{self.node} ({self.op})"


def refuse_unless_trusted(where: str, found: Iterable[Unsafe], trust_code: bool) -> list[str]:
    """Raise (exit 2) naming the first finding unless `trust_code`; return what was let through, for the
    checkpoint metadata's `trusted_code` and the parity report."""
    found = list(dict.fromkeys(found))
    if found and not trust_code:
        first = found[0]
        more = f" (and {len(found) - 1} more)" if len(found) > 1 else ""
        raise fail(f"{where}: node {first.node}: {first.op} {first.why} — a vision model has no use for it; "
                   f"refused (--trust-code runs it){more}")
    return [str(u) for u in found]
