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
    """Two BN settings of the port and the native rows on torchvision's ImageNet weights (its momentum 0.1 and
    BN eval), in one run of the command: every run trains, BN-train runs carry the monitor's figures."""
    import os

    out = tmp_path / "grid"
    omp = os.environ.get("OMP_NUM_THREADS")
    code = main(["--out", str(out), "--quick", "--settings", "mmdnn", "frozen-eval", "--natives", "native-imagenet",
                 "--n", "120", "--img-size", "32", "--epochs", "2", "--workers", "2"])
    text = capsys.readouterr().out
    assert code == 0, text
    # its workers ran one thread each; this process's environment, which later processes inherit, is as it was
    assert os.environ.get("OMP_NUM_THREADS") == omp
    doc = json.loads((out / "seed_table.json").read_text())
    port = [c for c in doc["cells"] if c["backbone"] == "port"]
    native = [c for c in doc["cells"] if c["backbone"] == "native-imagenet"]
    assert len(port) == 8 and len(native) == 8 and {c["head"] for c in doc["cells"]} == {"fastai"}
    assert {(c["setting"], c["run"]) for c in port} == {(s, f"run#{k}") for s in ("mmdnn", "frozen-eval")
                                                        for k in range(1, 5)}
    assert {(c["setting"], c["run"]) for c in native} == {(s, f"run#{k}") for s in ("pytorch", "frozen-eval")
                                                          for k in range(1, 5)}
    assert all(c["status"] == "done" and all(map(math.isfinite, c["train"])) for c in native), native
    # BN train runs carry the monitor's figures, BN eval runs none
    assert all(all(d is not None for d in c["drift"]) == (c["setting"] in ("mmdnn", "pytorch"))
               for c in doc["cells"])
    assert (out / "seed_table.png").stat().st_size > 10_000
    table = (out / "seed_table.md").read_text()
    assert table.count("| port |") == 2 and table.count("| native-imagenet |") == 2 and "DONE: 16 runs" in text
    assert table.index("| port |") < table.index("| native-imagenet |")
    answers = (out / "seed_answers.md").read_text()
    assert "| TF port, MMdnn's momentum 0 |" in answers and "| torchvision pretrained, momentum 0.1 |" in answers
    # the same tables again from the data alone; one grid twice is refused
    again = tmp_path / "again"
    assert main(["--from-json", str(out / "seed_table.json"), "--out", str(again)]) == 0
    assert (again / "seed_table.md").read_text() == table and (again / "seed_answers.md").read_text() == answers
    # the findings (README's aggregates) are written with the table and computed again from the data alike
    findings = (out / "seed_findings.md").read_text()
    assert "small_lr_never_explodes" in findings and (again / "seed_findings.md").read_text() == findings
    assert json.loads((out / "seed_table.json").read_text())["findings"][0]["key"] == "small_lr_never_explodes"
    capsys.readouterr()
    assert main(["--from-json", str(out / "seed_table.json"), str(out / "seed_table.json"), "--out", str(again)]) == 2
    assert "is in two files" in capsys.readouterr().err


def test_the_grid_sizes_the_readme_gives():
    """README: the full grid is 396 runs (4 BN settings x 2 inputs x 3 heads x 4 runs x 3 seeds, plus
    torchvision's ImageNet MobileNetV2 under momentum 0.1 and BN eval: 2 x 3 x 4 x 3, and at random init under
    momentum 0.1: 1 x 3 x 4 x 3); --quick is 28 (one seed, fastai head, ImageNet inputs)."""
    from backbones.seed_table import build_parser, plan

    full = plan(build_parser().parse_args([]), {}, {})
    quick = plan(build_parser().parse_args(["--quick"]), {}, {})
    assert (len(full), len(quick)) == (396, 28)
    assert {(j.head, j.norm) for j in quick} == {("fastai", "imagenet")} and {j.seed for j in quick} == {0}
    assert sum(j.backbone == "native-imagenet" for j in full) == 72
    assert sum(j.backbone == "native-random" for j in full) == 36
    assert {(j.common["backbone"], j.setting.name) for j in quick if j.backbone != "port"} == {
        ("mobilenet_v2:imagenet", "pytorch"), ("mobilenet_v2:imagenet", "frozen-eval"), ("mobilenet_v2", "pytorch")}
    only = plan(build_parser().parse_args(["--quick", "--no-port", "--natives", "native-imagenet"]), {}, {})
    assert {j.backbone for j in only} == {"native-imagenet"} and len(only) == 8


def test_the_default_data_split(tmp_path):
    """README: 256 synthetic faces, 205 train and 51 valid (every 5th image is valid)."""
    from backbones.seed_table import build_parser
    from backbones.synth import write_dataset

    n = build_parser().parse_args([]).n
    got = write_dataset(tmp_path / "d", n=n, size=16, seed=0, workers=1)
    assert (n, got.n_train, got.n_valid) == (256, 205, 51)
