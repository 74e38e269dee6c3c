"""The synthetic nose generator: deterministic per (seed, index), labels inside, 20 % valid."""

from __future__ import annotations

import numpy as np
import pytest

from backbones import data, synth
from convert.runtime.errors import TfportError


def test_render_is_a_function_of_seed_and_index():
    a, pa = synth.render(3, 7, 32)
    b, pb = synth.render(3, 7, 32)
    c, _ = synth.render(3, 8, 32)
    assert np.array_equal(a, b) and pa == pb
    assert not np.array_equal(a, c)


def test_nose_tips_lie_well_inside():
    tips = np.array([synth.render(0, i, 32)[1] for i in range(50)])
    assert tips.min() >= 0.1 and tips.max() <= 0.9
    assert tips.std(axis=0).min() > 0.1  # positions vary across the image


def test_dataset_folder_reads_back(noses):
    rows = data.read_labels(noses)
    assert len(rows) == 40 and sum(r.split == "valid" for r in rows) == 8
    header, *lines = (noses / "labels.csv").read_text().splitlines()
    assert header.split(",")[:3] == ["file", "x", "y"]  # README: file,x,y normalised to [0, 1]
    assert all(0 <= float(v) <= 1 for line in lines for v in line.split(",")[1:3])
    assert rows[3] == data.Row("nose_00003.png", *[round(v, 6) for v in synth.render(0, 3, 32)[1]], "train")


def test_workers_do_not_change_the_images(tmp_path, noses):
    synth.write_dataset(tmp_path / "two", n=40, size=32, seed=0, workers=2)
    assert (tmp_path / "two" / "labels.csv").read_text() == (noses / "labels.csv").read_text()
    name = "images/nose_00017.png"
    assert (tmp_path / "two" / name).read_bytes() == (noses / name).read_bytes()


def test_refuses_to_overwrite_a_dataset(noses):
    with pytest.raises(TfportError, match="already holds a dataset"):
        synth.write_dataset(noses, n=4, size=32)
