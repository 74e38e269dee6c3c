"""What a probe point is: a name every report uses, and the module whose output it is.

Names follow torchvision's module paths with a suffix for where in a unit the point sits (`:bn` after
normalisation, `:act` after the activation, `:out` a block's output), plus `pool` for the pooled
features and `output` for the whole function the source computes: one vocabulary across the
candidate, TF and torchvision. Which points an architecture has is its registry entry's business
(parity.arch).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Point:
    name: str
    slot_index: int  # index into the architecture's parameter slots (and into the source's layers)
    suffix: str  # ":bn" | ":act" | ":out" | ":pool" (after a max-pool) | "" (dense) | "pool" | "output"
    module: str  # torchvision module path whose output this is (hook target)
