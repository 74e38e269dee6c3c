"""What a parity run was asked and what it found: the configuration and the report, as frozen types.

The report's records are the JSON report's objects field for field (`to_json` gives exactly those
keys); they also answer `record["key"]`, the form the JSON's readers and tests hold them in.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

from parity.checks import CheckResult
from parity.metrics import EVAL_TOL, TRAIN_TOL, PointResult, Tolerance

REFERENCES = ("tf", "onnx", "torchvision")
GATING = ("tf", "onnx", "torchvision+declared")  # plain torchvision is informational: it never fails a port
REFERENCE_ORDER = ("tf", "onnx", "torchvision", "torchvision+declared")  # as a report's results list them


@dataclass(frozen=True)
class ParityConfig:
    tol: Tolerance = EVAL_TOL
    train_tol: Tolerance = TRAIN_TOL  # batch statistics: see parity.metrics
    probes: int = 8
    seed: int = 0
    against: tuple[str, ...] = REFERENCES
    modes: tuple[str, ...] = ("eval", "train")


class _Record:
    """A report record read by attribute, also by its JSON key (`report.hazard["bn_momentum"]`)."""

    def __getitem__(self, key: str) -> Any:
        if key not in {f.name for f in fields(self)}:  # type: ignore[arg-type]
            raise KeyError(key)
        return getattr(self, key)

    def to_json(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}  # type: ignore[call-overload]


@dataclass(frozen=True)
class CandidateRecord(_Record):
    path: str
    kind: str
    sha256: str
    bn_folded: bool


@dataclass(frozen=True)
class SourceRecord(_Record):
    path: str
    form: str
    sha256: str
    alpha: float | None  # MobileNetV2's width; None for an architecture without one (ResNet50)
    input_size: tuple[int, ...]
    num_classes: int


@dataclass(frozen=True)
class ConfigRecord(_Record):
    """The configuration as run and recorded (JSON `config`, the certificate's tolerances and references)."""

    atol: float
    rtol: float
    train_atol: float
    train_rtol: float
    probes: int
    seed: int
    against: tuple[str, ...]
    modes: tuple[str, ...]
    tool_version: str

    @classmethod
    def of(cls, cfg: ParityConfig, tool_version: str) -> ConfigRecord:
        return cls(cfg.tol.atol, cfg.tol.rtol, cfg.train_tol.atol, cfg.train_tol.rtol, cfg.probes, cfg.seed,
                   tuple(cfg.against), tuple(cfg.modes), tool_version)


@dataclass(frozen=True)
class Hazard(_Record):
    """The train-mode hazard: how fast the candidate's BN running statistics follow new data."""

    bn_momentum: float
    half_life_steps: float | None  # None: never (momentum 0)
    never_moves: bool
    measured_one_step: float | None  # the smallest update factor one train-mode step really applied (None: no BN)

    def describe(self) -> str:
        """One line for the reports."""
        if self.measured_one_step is None and self.never_moves:
            return "no BatchNorm: no running statistics to follow"
        hl = "never" if self.never_moves else f"{self.half_life_steps:.0f} steps"
        return f"BN momentum {self.bn_momentum:g}; running statistics move halfway to new data in {hl}"


def gating_passed(results: list[PointResult], checks: list[CheckResult]) -> bool:
    """Every gating eval-mode point, every train-mode point and every check passed, and some gating
    eval-mode point was compared at all."""
    gating = [r for r in results if r.reference in GATING and r.mode == "eval"]
    train = [r for r in results if r.mode == "train"]
    return bool(gating) and all(gating) and all(train) and all(checks)


def modes_passed(results: list[PointResult], checks: list[CheckResult]) -> list[str]:
    """The modes a passing report certifies: eval, and train where train mode was compared."""
    if not gating_passed(results, checks):
        return []
    return ["eval"] + (["train"] if any(r.mode == "train" for r in results) else [])


def compared(results: list[PointResult]) -> tuple[list[str], int]:
    """The references a report really compared against (in REFERENCE_ORDER), and the probes it compared
    them on (the rows of its TF eval-mode points): what a certificate may claim, whatever was asked."""
    present = {r.reference for r in results}
    probes = max((r.shape[0] for r in results if r.reference == "tf" and r.mode == "eval" and r.shape), default=0)
    return [r for r in REFERENCE_ORDER if r in present], probes


@dataclass(frozen=True)
class ParityReport:
    candidate: CandidateRecord
    source: SourceRecord
    config: ConfigRecord
    results: list[PointResult]
    checks: list[CheckResult]
    hazard: Hazard
    modes_passed: list[str]
    notes: list[str] = field(default_factory=list)

    @property
    def first_divergent(self) -> PointResult | None:
        return next((r for r in self.results if r.reference == "tf" and r.mode == "eval" and not r.passed), None)

    @property
    def passed(self) -> bool:
        return gating_passed(self.results, self.checks)

    def __bool__(self) -> bool:
        return self.passed

    def summary(self) -> str:
        tf = [r for r in self.results if r.reference == "tf" and r.mode == "eval"]
        n_fail = sum(not r.passed for r in tf)
        bad = [c.name for c in self.checks if not c.passed]
        first = self.first_divergent
        return (f"{'PASSED' if self.passed else 'FAILED'}: {len(tf)} points vs TF ({n_fail} divergent"
                f"{', first ' + first.point if first is not None else ''}); checks failed: "
                f"{', '.join(bad) if bad else 'none'}")
