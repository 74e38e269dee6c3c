"""What a conversion path yields: its canonical port, its outputs on the probes, its agreement with TF."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from convert.model import tolerance


@dataclass
class PathResult:
    """One conversion path's canonical port, its outputs on the probes, and how well it reproduces TF."""

    via: str
    canonical: Any  # convert.paths.worker.CanonicalRef
    agreements: list = field(default_factory=list)  # list[probe.Agreement]
    artifacts: dict[str, bytes] = field(default_factory=dict)  # extra files to write (name suffix -> bytes)
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)
    outputs: dict[str, Any] = field(
        default_factory=dict
    )  # the canonical port's outputs (convert.paths.worker.torch_outputs)

    @property
    def ok(self) -> bool:
        gating = [a for a in self.agreements if a.gating]
        return bool(gating) and all(a.ok(tolerance.REL_TOL) for a in gating)
