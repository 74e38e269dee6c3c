"""backbones/seed_findings.py: the README's aggregate figures computed from the grid's cells."""

from __future__ import annotations

import math

import pytest

from backbones import seed_findings
from backbones.seed_grid import Cell


def _cell(setting="mmdnn", norm="imagenet", head="linear", run="run#1", lr=0.1, seed=0, valid=(1.0, 1.0),
          train=(1.0, 1.0), backbone="port") -> Cell:
    bs = 8 if run in ("run#1", "run#3") else 32
    return Cell(backbone, setting, norm, head, run, bs, lr, seed, "ok", tuple(train), tuple(valid),
                (None,) * len(train), 1.0)


def _by_key(cells):
    return {f.key: f for f in seed_findings.findings(cells)}


def test_small_lr_counts_exploded_runs_on_the_port_only():
    cells = [_cell(lr=0.01, seed=s) for s in range(3)] + [_cell(lr=0.01, run="run#3", valid=(1.0, math.nan))]
    cells += [_cell(lr=0.01, backbone="native-random", valid=(500.0, 1.0))]  # not the port: not counted
    f = _by_key(cells)["small_lr_never_explodes"]
    assert f.figures == {"exploded": 1, "runs": 4} and "1 of the 4 runs" in f.sentence


def test_linear_head_median_and_exploded_per_setting():
    cells = [_cell(setting="mmdnn", seed=s, valid=(1.0, v)) for s, v in enumerate((150.0, 160.0, 2.0))]
    cells += [_cell(setting="pytorch", seed=s, valid=(1.0, v)) for s, v in enumerate((1.5, 1.4, 1.6))]
    cells += [_cell(setting="pytorch", head="fastai", valid=(1.0, 900.0))]  # another head: not counted
    f = _by_key(cells)["linear_head_by_bn"]
    assert f.figures["mmdnn_median"] == 150.0 and f.figures["mmdnn_exploded"] == 2 and f.figures["mmdnn_runs"] == 3
    assert f.figures["pytorch_median"] == 1.5 and f.figures["pytorch_exploded"] == 0
    assert "mmdnn 150× (2/3 exploded)" in f.sentence and "tf-faithful" not in f.sentence


def test_train_losses_compared_across_the_train_bn_momenta():
    same = [_cell(setting=s, train=(2.0, 1.0)) for s in ("mmdnn", "tf-faithful", "pytorch")]
    assert _by_key(same)["train_loss_same_under_train_bn"].figures == {"max_rel_diff": 0.0, "runs": 2}
    moved = same[:2] + [_cell(setting="pytorch", train=(2.0, 1.1))]
    assert _by_key(moved)["train_loss_same_under_train_bn"].figures["max_rel_diff"] == pytest.approx(0.1)


def test_fastai_run1_ranges_cell_medians_and_counts_seeds():
    cells = [_cell(setting="frozen-eval", head="fastai", norm=n, seed=s, valid=(1.0, v))
             for n, vs in (("imagenet", (1e4, 2e4, 50.0)), ("source", (2621.0, 300.0, 5.0))) for s, v in enumerate(vs)]
    f = _by_key(cells)["fastai_head_run1"]
    assert f.figures["BN_eval_cells"] == "300–1e+04" and f.figures["BN_eval_exploded"] == 4
    assert f.figures["BN_eval_runs"] == 6 and f.figures["BN_eval_worst"] == 2e4


def test_inputs_share_and_native_random():
    cells = [_cell(norm="imagenet", valid=(1.0, 500.0)), _cell(norm="imagenet", seed=1), _cell(norm="source")]
    cells += [_cell(backbone="native-random", setting="pytorch", head="fastai", seed=s, valid=(1.0, v))
              for s, v in enumerate((1.5, 1.2, 300.0))]
    cells += [_cell(setting="mmdnn", head="fastai", valid=(1.0, 1e4))]
    found = _by_key(cells)
    assert found["inputs_exploded_share"].figures["imagenet_share"] == pytest.approx(2 / 3)  # fastai 1e4 run too
    assert found["inputs_exploded_share"].figures["source_share"] == 0.0
    assert found["native_random"].figures == {"exploded": 1, "runs": 3, "fastai_run1": 1.5,
                                              "port_mmdnn_fastai_run1": 1e4}


def test_a_grid_without_a_factor_leaves_its_finding_out():
    """A quick grid (fastai head only) has no linear-head finding rather than one over no runs."""
    keys = set(_by_key([_cell(head="fastai")]))
    assert "linear_head_by_bn" not in keys and "fastai_head_run1" in keys
    text = seed_findings.render(seed_findings.findings([_cell(head="fastai")]))
    assert text.startswith("# Findings") and "fastai_head_run1" in text


def test_the_readme_quotes_the_committed_grids_findings_and_they_follow_from_its_cells():
    """Issue 24: the README's aggregates are the script's sentences, not typed figures. docs/seed_table.json is
    the full grid's output (scripts/reproduce_seed_table --backbone …): its findings are recomputed from its
    own cells here, and each sentence stands in the README verbatim."""
    import json

    from backbones.seed_table import read_cells
    from tests.conftest import ROOT

    doc = json.loads((ROOT / "docs" / "seed_table.json").read_text())
    cells, _ = read_cells([str(ROOT / "docs" / "seed_table.json")])
    assert seed_findings.as_json(seed_findings.findings(cells)) == doc["findings"]
    readme = " ".join((ROOT / "README.md").read_text().split())
    missing = [f["key"] for f in doc["findings"] if " ".join(f["sentence"].split()) not in readme]
    assert len(doc["findings"]) >= 5 and not missing, missing
