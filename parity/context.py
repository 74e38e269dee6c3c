"""What a semantic check reads: one typed object, built by parity.run once the comparisons are done."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from parity.hypotheses import Tested
from parity.metrics import PointResult
from parity.points import Point

if TYPE_CHECKING:
    from parity.arch import Architecture
    from parity.candidates import Candidate


@dataclass(frozen=True)
class PaddingEvidence:
    """The candidate as loaded against TF at a second input size of the other parity (TF SAME pads 0
    before and 1 after a stride-2 conv at even sizes, 1 and 1 at odd ones: pads written for one size
    differ at the other), where the source's input size is open; else why no second size was compared."""

    size: str | None  # "HxW" compared; None where none was
    compared: int  # probe points compared at that size
    first: PointResult | None = None  # the first point that differs there
    why_not: str = ""  # why no second size was compared

    def to_json(self) -> dict[str, Any]:  # as a check's details carry it
        return {"size": self.size, "points_compared": self.compared, "why_not": self.why_not or None,
                "first": self.first.to_json() if self.first is not None else None}


@dataclass(frozen=True)
class CheckContext:
    candidate: Candidate
    source: Any  # convert.sources' loaded source: spec, path, info, graph_def
    arch: Architecture
    points: list[Point]
    results: list[PointResult]
    measured_momentum: list[float]  # per BN module, in module order: what one train-mode step applies
    padding: PaddingEvidence | None = None  # None where the candidate's points cannot be found
    train_skipped: str = ""  # why train mode was not compared ("" where it was, or was not asked)
    tested: list[Tested] = field(default_factory=list)  # named hypotheses at `:act` points and the output
    # (the first probe NHWC, the candidate's output on it computed in a batch with others) from the eval
    # stage, where it ran the candidate on more than one probe at a time; None: not available
    first_in_batch: tuple[Any, Any] | None = None
