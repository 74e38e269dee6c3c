"""The factorial seed experiment (seed_grid, seed_stats, seed_render, the seed_table CLI): its reductions
(pure) and one small real grid."""

from __future__ import annotations

import json
import math

from backbones.seed_grid import Cell
from backbones.seed_render import markdown, text_table
from backbones.seed_stats import effects, summarise
from backbones.seed_table import main


def _cell(setting, head, run, seed, train, valid, backbone="port", norm="imagenet"):
    return Cell(backbone, setting, norm, head, run, 8, 0.1, seed, "done", tuple(train), tuple(valid),
                (None,) * len(train), 1.0)


def test_ratio_and_bad_epochs():
    c = _cell("mmdnn", "fastai", "run#1", 0, [1.0, 0.5, 0.2], [50.0, 120.0, float("nan")])
    assert c.bad_epochs == 2 and math.isinf(c.ratio)
    assert _cell("pytorch", "fastai", "run#1", 0, [1.0, 0.5], [1.0, 1.0]).ratio == 2.0


def test_summaries_take_median_and_range_over_seeds():
    cells = [_cell("mmdnn", "fastai", "run#1", s, [1.0], [v]) for s, v in enumerate([3.0, 500.0, 40.0])]
    cells += [_cell("frozen-eval", "fastai", "run#1", s, [1.0], [1.2]) for s in range(3)]
    sums = {s.group[1]: s for s in summarise(cells)}
    mm = sums["mmdnn"]
    assert mm.ratios == (3.0, 500.0, 40.0) and mm.median == 40.0 and mm.exploded == 1
    assert mm.cell() == "40 [3–500] 1/3"
    md = markdown(list(sums.values())).splitlines()
    assert len(md) == 4 and md[2].startswith("| port | mmdnn | imagenet | fastai | 40 [3–500] 1/3 |")
    eff = effects(list(sums.values()))
    assert eff["BN"]["mmdnn"]["median_log10_ratio"] > eff["BN"]["frozen-eval"]["median_log10_ratio"]
    assert eff["BN"]["mmdnn"]["exploded_share"] == 1 / 3
    assert all(len(line) <= 80 for line in text_table(list(sums.values())).splitlines())


def test_a_small_grid_end_to_end(tmp_path, capsys):
    out = tmp_path / "grid"
    code = main(["--out", str(out), "--quick", "--settings", "mmdnn", "frozen-eval", "--no-native", "--n", "120",
                 "--img-size", "32", "--epochs", "2", "--workers", "2"])
    text = capsys.readouterr().out
    assert code == 0, text
    doc = json.loads((out / "seed_table.json").read_text())
    assert len(doc["cells"]) == 8 and {c["head"] for c in doc["cells"]} == {"fastai"}
    assert {(c["setting"], c["run"]) for c in doc["cells"]} == {(s, f"run#{k}") for s in ("mmdnn", "frozen-eval")
                                                                 for k in range(1, 5)}
    # BN train runs carry the monitor's figures, BN eval runs none
    assert all(all(d is not None for d in c["drift"]) == (c["setting"] == "mmdnn") for c in doc["cells"])
    assert (out / "seed_table.png").stat().st_size > 10_000
    assert (out / "seed_table.md").read_text().count("| port |") == 2 and "DONE: 8 runs" in text


def test_the_grid_sizes_the_readme_gives():
    """README: the full grid is 324 runs (4 BN settings x 2 inputs x 3 heads x 4 runs x 3 seeds, plus native
    torchvision: 1 x 3 heads x 4 runs x 3 seeds); --quick is 20 (one seed, fastai head, ImageNet inputs)."""
    from backbones.seed_table import build_parser, plan

    full = plan(build_parser().parse_args([]), {}, {})
    quick = plan(build_parser().parse_args(["--quick"]), {}, {})
    assert (len(full), len(quick)) == (324, 20)
    assert {(j.head, j.norm) for j in quick} == {("fastai", "imagenet")} and {j.seed for j in quick} == {0}
    assert sum(j.backbone == "native" for j in full) == 36


def test_the_default_data_split(tmp_path):
    """README: 256 synthetic faces, 205 train and 51 valid (every 5th image is valid)."""
    from backbones.seed_table import build_parser
    from backbones.synth import write_dataset

    n = build_parser().parse_args([]).n
    got = write_dataset(tmp_path / "d", n=n, size=16, seed=0, workers=1)
    assert (n, got.n_train, got.n_valid) == (256, 205, 51)
