"""The three answers (backbones.seed_answers) computed from cells whose outcome the test knows: a small lr that
generalises better at matched train loss is called regularising and one that does not is not; the contrast
rows count exploded seeds; the batch rows measure steps, epoch time and time to the best valid loss."""

from __future__ import annotations

import math

from backbones import seed_answers as sa
from backbones.seed_grid import CONFIGS, Cell

RUN = {(bs, lr): run for bs, lr, run in CONFIGS}


def cell(backbone, setting, bs, lr, seed, train, valid, head="fastai", epoch_s=1.0, steps=None):
    return Cell(backbone, setting, "imagenet", head, RUN[(bs, lr)], bs, lr, seed, "done", tuple(train), tuple(valid),
                (None,) * len(train), epoch_s * len(train), (epoch_s,) * len(train),
                steps if steps is not None else math.ceil(205 / bs))


def lr_cells(small_valid: float) -> list[Cell]:
    """lr 0.1 reaches train 0.1 at epoch 2 with valid 0.4 (gap 4); lr 0.01 ends at train 0.1 with `small_valid`."""
    cells = []
    for seed in range(3):
        for bs in (8, 32):
            cells.append(cell("native-imagenet", "pytorch", bs, 0.1, seed, [1, 0.5, 0.1, 0.05], [1, 0.6, 0.4, 0.5]))
            cells.append(cell("native-imagenet", "pytorch", bs, 0.01, seed, [1, 0.6, 0.3, 0.1],
                              [1, 0.7, 0.4, small_valid]))
    return cells


def test_a_small_lr_that_validates_better_at_the_same_fit_is_called_regularising():
    a = sa.answer_lr(lr_cells(small_valid=0.12))
    assert (a.pairs, a.matched, a.smaller_gap) == (6, 6, 6)
    assert math.isclose(a.median_gap_ratio, (0.12 / 0.1) / (0.4 / 0.1)) and a.median_mismatch == 0.0
    assert a.sentence().startswith("yes")
    pair = sa.lr_pairs(lr_cells(0.12))[0]
    assert (pair.epoch_big, pair.train_big, pair.valid_big) == (2, 0.1, 0.4)  # the matched epoch, not the last


def test_a_small_lr_with_the_same_gap_is_not_called_regularising():
    a = sa.answer_lr(lr_cells(small_valid=0.4))
    assert math.isclose(a.median_gap_ratio, 1.0) and a.smaller_gap == 0
    assert a.sentence().startswith("no clear regularisation")
    assert sa.answer_lr(lr_cells(small_valid=0.9)).sentence().startswith("no:")


def test_train_losses_that_never_meet_are_not_called_a_match():
    """lr 0.1 that never trains below 2 against lr 0.01 ending at 0.3: no pair is matched, and the answer says
    the large learning rate fits worse instead of claiming regularisation either way."""
    cells = []
    for seed in range(3):
        cells.append(cell("native-imagenet", "pytorch", 8, 0.1, seed, [5, 3, 2, 2.5], [9, 4, 2, 2.2]))
        cells.append(cell("native-imagenet", "pytorch", 8, 0.01, seed, [1, 0.6, 0.3], [0.8, 0.3, 0.15]))
    a = sa.answer_lr(cells)
    assert (a.pairs, a.matched) == (3, 0) and math.isnan(a.median_gap_ratio)
    assert (a.train_big, a.train_small) == (2, 0.3) and math.isclose(10 ** a.median_mismatch, 2 / 0.3)
    assert a.sentence().startswith("not as regularisation") and "fits worse" in a.sentence()


def test_the_port_rows_are_not_used_for_the_learning_rate_answer():
    port = [Cell(**{**c.__dict__, "backbone": "port"}) for c in lr_cells(0.12)]
    assert sa.answer_lr(port).pairs == 0 and "not answered" in sa.answer_lr(port).sentence()


def test_the_contrast_counts_exploded_seeds_per_row():
    cells = [cell("port", "mmdnn", 8, 0.1, s, [1, 0.5], [1, 500.0]) for s in range(3)]  # 1000x train: exploded
    cells += [cell("port", "tf-faithful", 8, 0.1, s, [1, 0.5], [1, 0.6]) for s in range(3)]
    cells += [cell("native-imagenet", "pytorch", 8, 0.1, s, [1, 0.5], [1, 0.55]) for s in range(3)]
    rows = {r.setting + "/" + r.backbone: r for r in sa.answer_contrast(cells)}
    assert rows["mmdnn/port"].exploded == (3, 3) and rows["mmdnn/port"].per_run["run#1"][0] == 1000.0
    assert rows["tf-faithful/port"].exploded == (0, 3) and rows["pytorch/native-imagenet"].exploded == (0, 3)
    md = sa.render(cells)
    assert "| TF port, MMdnn's momentum 0 | 1000 3/3 |" in md


def test_batch_rows_measure_steps_time_and_time_to_best():
    cells = [cell("native-imagenet", "frozen-eval", 8, 0.01, s, [1, 0.5, 0.4], [1, 0.3, 0.35], epoch_s=2.0)
             for s in range(3)]
    cells += [cell("native-imagenet", "frozen-eval", 32, 0.01, s, [1, 0.6, 0.5], [1, 0.5, 0.4], epoch_s=1.0)
              for s in range(3)]
    rows = {r.bs: r for r in sa.answer_batch(cells)}
    assert (rows[8].steps, rows[32].steps) == (26, 7)
    assert (rows[8].epoch_seconds, rows[8].best_valid, rows[8].seconds_to_best) == (2.0, 0.3, 4.0)
    assert (rows[32].epoch_seconds, rows[32].best_valid, rows[32].seconds_to_best) == (1.0, 0.4, 3.0)
    text = sa.batch_sentence(list(rows.values()))
    assert "in 0/1" in text and "not always better" in text and "26 steps per epoch against 7" in text


def test_the_readme_contrast_is_what_the_script_computes_from_the_committed_cells():
    """README's like-for-like table and its three answers are seed_answers' output on docs/seed_contrast.json
    (the 60 runs the README's commands wrote), not figures typed by hand."""
    from backbones.seed_table import read_cells
    from tests.conftest import ROOT

    cells, _ = read_cells([str(ROOT / "docs" / "seed_contrast.json")])
    assert len(cells) == 60
    md = sa.render(cells)
    assert md == (ROOT / "docs" / "seed_contrast.md").read_text()
    readme = (ROOT / "README.md").read_text()
    rows = [line for line in md.splitlines() if line.startswith(("| TF port", "| torchvision"))]
    assert len(rows) == 5 and all(row in readme for row in rows)
    lr = sa.answer_lr(cells)
    assert (lr.matched, f"{lr.train_big:.3g}", f"{lr.train_small:.3g}") == (0, "3.46", "0.374")
    assert "median lowest 3.46 against a final\n  0.374" in readme
    batch = sa.batch_sentence(sa.answer_batch(cells))
    assert "in 0/10 (backbone, BN, lr) pairs" in batch and "sooner in wall time in 2/10" in batch
    assert "0 of 10 (backbone, BN, lr) pairs" in readme and "wall time in 2/10" in readme
