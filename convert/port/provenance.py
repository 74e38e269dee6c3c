"""What every checkpoint tfport writes records about where it came from and how it was checked.

`convert tf2torch` and `convert repair` both write it beside the canonical mapping's own metadata
(architecture, width, semantics): the source file and its sha256, the route taken, the agreements
measured before writing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from convert import TOOL_VERSION

FORMAT_VERSION = 2  # metadata: 2 adds head/preprocess/dropped (convert.port.head); 1 had a classifier or nothing


def provenance(source, via: str, agreements) -> dict[str, Any]:
    """The metadata every checkpoint tfport writes carries about where it came from and how it was
    checked (convert and repair both write it)."""
    return {
        "format_version": FORMAT_VERSION,
        "tool": {"name": "tfport", "version": TOOL_VERSION},
        "source": {"path": str(Path(source.path).resolve()), "sha256": source.sha256, "form": source.form,
                   "input": source.info.input, "output": source.info.output},
        "path": via,  # the metadata key predates `--via`: the route taken (onnx, mmdnn, or a repair)
        "conversion_check": {a.what: {"rel": a.rel, "max_abs": a.max_abs, "top1_agree": a.top1_agree}
                             for a in agreements},
    }
