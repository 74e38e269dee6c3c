"""The keypoint folder format: both coordinate conventions, the split, and one-line refusals."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from backbones import data
from convert.runtime.errors import TfportError


def _folder(tmp_path: Path, csv: str, images: tuple[str, ...] = ("a.png", "b.png"), size=(40, 20)) -> Path:
    (tmp_path / "images").mkdir(parents=True)
    for name in images:
        Image.fromarray(np.zeros((size[1], size[0], 3), np.uint8)).save(tmp_path / "images" / name)
    (tmp_path / "labels.csv").write_text(csv)
    return tmp_path


def test_normalised_rows(tmp_path):
    rows = data.read_labels(_folder(tmp_path, "file,x,y,split\na.png,0.25,0.5,train\nb.png,1,0,valid\n"))
    assert rows == [data.Row("a.png", 0.25, 0.5, "train"), data.Row("b.png", 1.0, 0.0, "valid")]


def test_pixel_rows_are_normalised_by_image_size(tmp_path):
    rows = data.read_labels(_folder(tmp_path, "file,x_px,y_px,split\na.png,10,5,train\nb.png,40,20,valid\n"))
    assert [(r.x, r.y) for r in rows] == [(0.25, 0.25), (1.0, 1.0)]


def test_split_without_column_is_stable_per_file(tmp_path):
    names = tuple(f"img{i}.png" for i in range(30))
    csv = "file,x,y\n" + "".join(f"{n},0.5,0.5\n" for n in names)
    rows = data.read_labels(_folder(tmp_path, csv, names))
    assert [r.split for r in rows] == [data.split_of(n) for n in names]
    assert {"train", "valid"} == {r.split for r in rows}


def test_load_resizes_and_keeps_targets(tmp_path):
    folder = _folder(tmp_path, "file,x,y,split\na.png,0.25,0.5,train\nb.png,1,0,valid\n")
    d = data.load(folder, 16)
    assert tuple(d.train.images.shape) == (1, 3, 16, 16) and d.train.images.dtype.is_floating_point is False
    assert d.train.targets.tolist() == [[0.25, 0.5]]


BAD = {
    "missing-folder": (None, "no such data folder"),
    "no-labels": ("", "no labels.csv"),
    "no-coordinates": ("file,u,v\na.png,0.1,0.1\n", "no coordinates"),
    "missing-image": ("file,x,y,split\na.png,0.1,0.1,train\nzzz.png,0.1,0.1,valid\n", "zzz.png does not exist"),
    "outside-normalised": ("file,x,y,split\na.png,1.5,0.1,train\nb.png,0.1,0.1,valid\n", "outside the image"),
    "outside-pixels": ("file,x_px,y_px,split\na.png,41,3,train\nb.png,1,1,valid\n", "outside the 40x20 image"),
    "not-a-number": ("file,x,y,split\na.png,abc,0.1,train\nb.png,0.1,0.1,valid\n", "is not a number"),
    "nan": ("file,x,y,split\na.png,nan,0.1,train\nb.png,0.1,0.1,valid\n", "x is nan"),
    "bad-split": ("file,x,y,split\na.png,0.1,0.1,test\nb.png,0.1,0.1,valid\n", "split 'test'"),
    "twice": ("file,x,y,split\na.png,0.1,0.1,train\na.png,0.1,0.1,valid\n", "listed twice"),
    "no-valid": ("file,x,y,split\na.png,0.1,0.1,train\nb.png,0.1,0.1,train\n", "no valid images"),
}


@pytest.mark.parametrize("csv,message", list(BAD.values()), ids=list(BAD))
def test_bad_folder_is_one_line_error(tmp_path, csv, message):
    folder = tmp_path / "nothing" if csv is None else _folder(tmp_path, csv)
    if csv == "":
        (folder / "labels.csv").unlink()
    with pytest.raises(TfportError, match=message) as e:
        data.read_labels(folder)
    assert "\n" not in str(e.value)


def test_unreadable_image_is_refused(tmp_path):
    folder = _folder(tmp_path, "file,x,y,split\na.png,0.1,0.1,train\nb.png,0.1,0.1,valid\n")
    (folder / "images" / "a.png").write_bytes(b"not a png")
    with pytest.raises(TfportError, match="not a readable image"):
        data.load(folder, 16)
    shutil.rmtree(folder)
