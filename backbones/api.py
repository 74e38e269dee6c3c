"""The Python API of `python -m backbones train`: `backbones.train(backbone, data, **settings)`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from backbones.results import TrainResult


def train(backbone: Any, data: str, *, out: str | None = None, **settings: Any) -> TrainResult:
    """Train the shared head on `backbone` — a registered name (`python -m backbones list`), a ported
    checkpoint's path, or a `convert.Port` (its checkpoint) — with the images and labels in `data`.

    `settings` are backbones.config.TrainConfig's fields, the CLI's flags by their Python names (`bs`,
    `max_lr`, `epochs`, `freeze`, `bn`, `bn_momentum`, `head`, `hidden`, `preprocess`, `parity_gate`,
    ...); `out` defaults to `runs/NAME` as on the CLI. A ported backbone trains only with a passing
    parity certificate beside it (`parity.check(...).write_certificate()`), as on the CLI; refused, this
    raises parity.certificate.GateError. Bad settings raise TfportError. Returns the TrainResult: truthy
    when the run completed, `final_line()` the CLI's last line."""
    from dataclasses import fields
    from os import PathLike, fspath
    from pathlib import Path

    from backbones import data as datasets
    from backbones import registry
    from backbones.config import TrainConfig
    from backbones.trainer import train as run
    from convert.runtime.errors import fail

    if hasattr(backbone, "path") and hasattr(backbone, "module"):  # a convert.Port: its checkpoint
        backbone = backbone.path
    if isinstance(backbone, PathLike):
        backbone = fspath(backbone)
    if not isinstance(backbone, str):
        raise fail(f"backbone: {type(backbone).__name__} is not a backbone name, a checkpoint path or a Port")
    known = {f.name for f in fields(TrainConfig)} - {"backbone", "data", "out"}
    unknown = sorted(set(settings) - known)
    if unknown:
        raise fail(f"backbones.train: unknown setting(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    if "hidden" in settings:
        settings["hidden"] = tuple(settings["hidden"])
    data = fspath(data)
    cfg = TrainConfig(backbone=backbone, data=data, out=fspath(out) if out else str(Path("runs") / Path(backbone).stem),
                      **settings).validate()
    datasets.read_labels(cfg.data)  # the torch-free checks first, as the CLI runs them
    registry.check_name(cfg.backbone)
    return run(cfg)
