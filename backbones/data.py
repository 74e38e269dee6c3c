"""The keypoint folder format, its validation, and the in-memory dataset the trainer reads.

Layout::

    DIR/images/*.png            (any format PIL reads; converted to RGB)
    DIR/labels.csv              one row per image

``labels.csv`` has a header. Coordinates are either normalised or in pixels, and the header says which:

    file,x,y[,split]            x, y in [0, 1]: 0 is the left/top edge of the image, 1 the right/bottom edge
    file,x_px,y_px[,split]      pixels on the same axes: 0 .. width, 0 .. height; the centre of pixel
                                column i is at x_px = i + 0.5 (PIL's convention)

``file`` is relative to ``DIR/images``. ``split`` is ``train`` or ``valid``; without that column the
split is derived from the file name (sha1, 20 % valid), so it never changes when rows are reordered
or added. Every problem (missing folder or image, unparsable or out-of-image coordinates, a split with
no images) is one :class:`~convert.runtime.errors.TfportError` naming the file and line.

Images are resized to a square ``img_size`` and held in memory as uint8 (1,000 images at 96 px are
27 MB): training then indexes tensors instead of decoding files, and a batch is a pure function of
its indices, which is what makes resume and multi-process runs reproducible.
"""

from __future__ import annotations

import csv
import hashlib
import io
import math
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image, UnidentifiedImageError

from convert.runtime.errors import fail
from convert.runtime.files import write_text

if TYPE_CHECKING:
    import torch

IMAGES = "images"
LABELS = "labels.csv"
SPLITS = ("train", "valid")
VALID_PERCENT = 20  # share of images that fall in "valid" when the CSV has no split column

# header columns -> whether the coordinates are pixels
COORDINATE_COLUMNS: dict[tuple[str, str], bool] = {("x", "y"): False, ("x_px", "y_px"): True}


@dataclass(frozen=True)
class Row:
    """One labelled image; x, y always normalised to [0, 1] once read."""

    file: str
    x: float
    y: float
    split: str


def split_of(file: str) -> str:
    """Deterministic split from the file name alone."""
    h = int(hashlib.sha1(file.encode()).hexdigest()[:8], 16)
    return "valid" if h % 100 < VALID_PERCENT else "train"


def write_labels(folder: str | Path, rows: Iterable[Row]) -> None:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["file", "x", "y", "split"])
    for r in rows:
        w.writerow([r.file, f"{r.x:.6f}", f"{r.y:.6f}", r.split])
    write_text(Path(folder) / LABELS, buf.getvalue())


def _number(text: str, what: str, where: str) -> float:
    try:
        v = float(text)
    except (TypeError, ValueError):
        raise fail(f"{where}: {what} {text!r} is not a number") from None
    if not math.isfinite(v):
        raise fail(f"{where}: {what} is {text}")
    return v


def _columns(header: list[str] | None, where: str) -> tuple[str, str, bool]:
    cols = set(header or [])
    if "file" not in cols:
        raise fail(f"{where}: header {header!r} has no 'file' column; "
                   "expected file,x,y[,split] or file,x_px,y_px[,split]")
    for (cx, cy), pixels in COORDINATE_COLUMNS.items():
        if {cx, cy} <= cols:
            return cx, cy, pixels
    raise fail(f"{where}: header {header!r} has no coordinates; "
               "expected columns x,y (normalised) or x_px,y_px (pixels)")


def read_labels(folder: str | Path) -> list[Row]:
    """Parse and validate labels.csv against the images that exist; no torch needed."""
    root = Path(folder)
    if not root.is_dir():
        raise fail(f"{root}: no such data folder")
    path = root / LABELS
    if not path.is_file():
        raise fail(f"{root}: no {LABELS} (expected {root}/{LABELS} with columns file,x,y[,split])")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as e:
        raise fail(f"{path}: cannot read ({e})") from None
    reader = csv.DictReader(io.StringIO(text))
    cx, cy, pixels = _columns(reader.fieldnames, str(path))
    rows: list[Row] = []
    seen: set[str] = set()
    for line, rec in enumerate(reader, start=2):
        where = f"{path} line {line}"
        name = (rec.get("file") or "").strip()
        if not name:
            raise fail(f"{where}: empty file name")
        if name in seen:
            raise fail(f"{where}: {name} is listed twice")
        seen.add(name)
        image = root / IMAGES / name
        if not image.is_file():
            raise fail(f"{where}: image {image} does not exist")
        x, y = _number(rec.get(cx), cx, where), _number(rec.get(cy), cy, where)
        if pixels:
            w, h = _image_size(image, where)
            if not (0 <= x <= w and 0 <= y <= h):
                raise fail(f"{where}: point ({x:g}, {y:g}) px lies outside the {w}x{h} image {name}")
            x, y = x / w, y / h
        elif not (0 <= x <= 1 and 0 <= y <= 1):
            raise fail(f"{where}: point ({x:g}, {y:g}) lies outside the image; normalised x, y must be in [0, 1] "
                       "(pixel coordinates go in columns x_px, y_px)")
        split = (rec.get("split") or "").strip() if "split" in (reader.fieldnames or []) else split_of(name)
        if split not in SPLITS:
            raise fail(f"{where}: split {split!r}; expected one of {', '.join(SPLITS)}")
        rows.append(Row(name, x, y, split))
    for s in SPLITS:
        if not any(r.split == s for r in rows):
            raise fail(f"{path}: no {s} images ({len(rows)} rows)")
    return rows


def _image_size(image: Path, where: str) -> tuple[int, int]:
    try:
        with Image.open(image) as im:
            return im.size
    except (OSError, UnidentifiedImageError) as e:
        raise fail(f"{where}: {image} is not a readable image ({type(e).__name__})") from None


def _pixels(image: Path, size: int) -> np.ndarray:
    try:
        with Image.open(image) as im:
            rgb = im.convert("RGB")
    except (OSError, UnidentifiedImageError) as e:
        raise fail(f"{image}: not a readable image ({type(e).__name__})") from None
    if rgb.size != (size, size):
        # a non-uniform resize keeps normalised coordinates valid
        rgb = rgb.resize((size, size), Image.BILINEAR)
    return np.asarray(rgb, dtype=np.uint8).transpose(2, 0, 1)


@dataclass(frozen=True)
class KeypointSet:
    """One split in memory: uint8 images (N, 3, S, S) and normalised targets (N, 2) as (x, y)."""

    images: torch.Tensor
    targets: torch.Tensor
    files: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Map-style access (float image in [0, 1], target), e.g. for a torch DataLoader."""
        return self.images[i].float() / 255, self.targets[i]


@dataclass(frozen=True)
class KeypointData:
    train: KeypointSet
    valid: KeypointSet
    img_size: int
    folder: str

    def describe(self) -> str:
        return f"{self.folder}: {len(self.train)} train, {len(self.valid)} valid at {self.img_size}px"


def load(folder: str | Path, img_size: int) -> KeypointData:
    """Validate the folder, then decode and resize every image once."""
    import torch

    if img_size < 16:
        raise fail(f"--img-size {img_size}: need at least 16 pixels")
    rows = read_labels(folder)
    root = Path(folder)

    def build(split: str) -> KeypointSet:
        chosen = [r for r in rows if r.split == split]
        images = np.stack([_pixels(root / IMAGES / r.file, img_size) for r in chosen])
        targets = np.array([[r.x, r.y] for r in chosen], dtype=np.float32)
        return KeypointSet(torch.from_numpy(images), torch.from_numpy(targets), tuple(r.file for r in chosen))

    return KeypointData(build("train"), build("valid"), img_size, str(root))
