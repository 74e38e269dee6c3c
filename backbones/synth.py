"""A synthetic nose dataset: procedurally drawn faces, so demos and tests need no download.

Each image is a head (rotated ellipse) with eyes, nose and mouth at a random position, scale, roll
and yaw/pitch (features slide across the head as it turns), over a textured background, under a
random lighting gradient. The label is the nose tip, computed from the same geometry that draws it.
Image ``i`` depends only on ``(seed, i)``, so any subset regenerates identically.
"""

from __future__ import annotations

import functools
import math
import os
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from backbones import data
from convert.runtime.errors import fail
from convert.runtime.registry import Registry

_T = np.linspace(0, 2 * math.pi, 28, endpoint=False)
_COS, _SIN = np.cos(_T), np.sin(_T)  # polygon vertices of every drawn ellipse
SUPERSAMPLE = 2  # draw at 2x and box-filter down: anti-aliased edges at no extra code
VALID_EVERY = 5  # every 5th image is validation: exactly 20 %, stable for a given n

Texture = Callable[[np.random.Generator, np.ndarray, np.ndarray], np.ndarray]
TEXTURES: Registry[Texture] = Registry("texture")


def texture(name: str) -> Callable[[Texture], Texture]:
    return TEXTURES.register(name)


def _mix(rng: np.random.Generator, t: np.ndarray) -> np.ndarray:
    """Blend two random colours by t (..., 1) in [0, 1]."""
    a, b = rng.uniform(0.05, 0.95, (2, 3)).astype(np.float32)
    return a + (b - a) * t


@texture("gradient")
def _gradient(rng, yy, xx):
    phi = rng.uniform(0, 2 * math.pi)
    t = (math.cos(phi) * xx + math.sin(phi) * yy + 1) / 2
    return _mix(rng, t[..., None])


@texture("stripes")
def _stripes(rng, yy, xx):
    phi, freq = rng.uniform(0, math.pi), rng.uniform(3, 12)
    t = (np.sin(freq * math.pi * (math.cos(phi) * xx + math.sin(phi) * yy)) + 1) / 2
    return _mix(rng, t[..., None])


@texture("checker")
def _checker(rng, yy, xx):
    phi, cells = rng.uniform(0, math.pi), rng.uniform(2, 8)
    u = math.cos(phi) * xx + math.sin(phi) * yy
    v = -math.sin(phi) * xx + math.cos(phi) * yy
    t = ((np.floor(u * cells) + np.floor(v * cells)) % 2)[..., None]
    return _mix(rng, t)


@texture("blobs")
def _blobs(rng, yy, xx):
    h, w = xx.shape
    coarse = (rng.uniform(0, 255, (rng.integers(3, 8), rng.integers(3, 8), 3))).astype(np.uint8)
    return np.asarray(Image.fromarray(coarse).resize((w, h), Image.BICUBIC), dtype=np.float32) / 255


@dataclass(frozen=True)
class Face:
    """Where the face is: centre and radii in pixels of the drawing canvas, angles in radians."""

    cx: float
    cy: float
    rx: float
    ry: float
    roll: float
    yaw: float  # -1..1: features slide sideways as the head turns
    pitch: float  # -1..1: features slide up/down

    def to_image(self, lx, ly):
        """Face-local coordinates (units of the radii, +y down, features shifted by pose) -> canvas.

        Works on floats and on numpy arrays alike."""
        lx, ly = lx + 0.45 * self.yaw, ly + 0.15 * self.pitch
        x, y = lx * self.rx, ly * self.ry
        c, s = math.cos(self.roll), math.sin(self.roll)
        return self.cx + c * x - s * y, self.cy + s * x + c * y

    def ellipse(self, lx: float, ly: float, ax: float, ay: float) -> list[tuple[float, float]]:
        px, py = self.to_image(lx + ax * _COS, ly + ay * _SIN)
        return list(zip(px.tolist(), py.tolist(), strict=True))

    @property
    def nose_tip(self) -> tuple[float, float]:
        return self.to_image(0.0, 0.22)


def _sample_face(rng: np.random.Generator, canvas: int) -> Face:
    """Rejection-sample until the nose tip lies well inside the image (10 %..90 %)."""
    while True:
        r = rng.uniform(0.16, 0.3) * canvas
        face = Face(cx=rng.uniform(0.15, 0.85) * canvas, cy=rng.uniform(0.15, 0.85) * canvas,
                    rx=r, ry=r * rng.uniform(1.15, 1.4), roll=rng.uniform(-0.5, 0.5),
                    yaw=rng.uniform(-0.6, 0.6), pitch=rng.uniform(-0.6, 0.6))
        x, y = face.nose_tip
        if 0.1 * canvas <= x <= 0.9 * canvas and 0.1 * canvas <= y <= 0.9 * canvas:
            return face


def _draw_face(draw: ImageDraw.ImageDraw, face: Face, rng: np.random.Generator) -> None:
    skin = tuple(int(v) for v in rng.uniform([120, 80, 60], [255, 210, 180]))
    dark = tuple(int(v * rng.uniform(0.45, 0.7)) for v in skin)
    hair = tuple(int(v) for v in rng.uniform(0, 120, 3))
    # the outline stays put while eyes, nose and mouth slide with the yaw (to_image adds 0.45 * yaw)
    draw.polygon(face.ellipse(-0.45 * face.yaw, -0.35, 1.0, 0.75), fill=hair)
    draw.polygon(face.ellipse(-0.45 * face.yaw, 0.0, 1.0, 1.0), fill=skin)
    for side in (-1, 1):
        draw.polygon(face.ellipse(0.38 * side, -0.2, 0.17, 0.09), fill=(245, 245, 245))
        draw.polygon(face.ellipse(0.38 * side, -0.2, 0.07, 0.07), fill=(20, 20, 40))
    draw.polygon([face.to_image(-0.05, -0.12), face.to_image(0.05, -0.12),
                  face.to_image(0.16, 0.16), face.nose_tip, face.to_image(-0.16, 0.16)], fill=dark)
    draw.polygon(face.ellipse(0.0, 0.5, 0.32, rng.uniform(0.05, 0.13)), fill=(150, 30, 40))


def _lighting(rng: np.random.Generator, img: np.ndarray, yy: np.ndarray, xx: np.ndarray) -> np.ndarray:
    phi = rng.uniform(0, 2 * math.pi)
    gain = rng.uniform(0.7, 1.2) * (1 + rng.uniform(0, 0.45) * (math.cos(phi) * xx + math.sin(phi) * yy))
    noise = rng.standard_normal(img.shape, dtype=np.float32) * rng.uniform(0, 0.03)
    return np.clip(img * gain[..., None] + noise, 0, 1)


@functools.lru_cache(maxsize=4)
def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre coordinates in [-1, 1] (rows, columns), shared by every image of a size."""
    t = ((np.arange(size, dtype=np.float32) + 0.5) / size) * 2 - 1
    return np.broadcast_to(t[:, None], (size, size)), np.broadcast_to(t[None, :], (size, size))


def render(seed: int, index: int, size: int) -> tuple[np.ndarray, tuple[float, float]]:
    """One face: an (size, size, 3) uint8 image and the nose tip in normalised [0, 1] coordinates.

    The background is computed at the output size; only the face is drawn at SUPERSAMPLE x on a
    transparent layer and box-filtered down, then laid over it (its alpha gives soft edges)."""
    rng = np.random.default_rng([seed, index])
    canvas = size * SUPERSAMPLE
    yy, xx = _grid(size)
    names = sorted(TEXTURES)
    bg = TEXTURES[names[rng.integers(len(names))]](rng, yy, xx)
    layer = Image.new("RGBA", (canvas, canvas), (0, 0, 0, 0))
    face = _sample_face(rng, canvas)
    _draw_face(ImageDraw.Draw(layer), face, rng)
    small = np.asarray(layer.resize((size, size), Image.BOX), dtype=np.float32) / 255
    alpha = small[..., 3:]
    img = bg * (1 - alpha) + small[..., :3] * alpha
    out = (_lighting(rng, img, yy, xx) * 255 + 0.5).astype(np.uint8)
    x, y = face.nose_tip
    return out, (x / canvas, y / canvas)


@dataclass(frozen=True)
class Generated:
    folder: str
    n_train: int
    n_valid: int
    size: int
    seconds: float

    def summary(self) -> str:
        return (f"{self.n_train + self.n_valid} images ({self.n_train} train, {self.n_valid} valid) "
                f"of {self.size}x{self.size} in {self.folder} ({self.seconds:.1f} s)")


def _write_chunk(args: tuple[str, int, int, range]) -> list[data.Row]:
    folder, seed, size, indices = args
    rows = []
    for i in indices:
        pixels, (x, y) = render(seed, i, size)
        name = f"nose_{i:05d}.png"
        Image.fromarray(pixels).save(Path(folder) / name, compress_level=1)
        rows.append(data.Row(name, x, y, "valid" if i % VALID_EVERY == VALID_EVERY - 1 else "train"))
    return rows


def write_dataset(folder: str | Path, n: int = 1000, size: int = 96, seed: int = 0,
                  workers: int | None = None) -> Generated:
    """Write folder/images/*.png and folder/labels.csv (written last, atomically: no half datasets).

    Rendering and PNG writing take ~8 ms an image on one core, so larger sets are split over
    processes; images depend only on (seed, index), so the result is the same for any `workers`."""
    if n < 2:
        raise fail(f"--n {n}: need at least 2 images (one train, one valid)")
    if size < 16:
        raise fail(f"--size {size}: faces need at least 16x16 pixels")
    root = Path(folder)
    if (root / data.LABELS).exists():
        raise fail(f"{root}: already holds a dataset ({data.LABELS}); choose an empty folder")
    t0 = time.perf_counter()
    images = root / data.IMAGES
    try:
        images.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise fail(f"{root}: cannot create ({e.strerror})") from None
    workers = workers or (min(os.cpu_count() or 1, 8) if n >= 200 else 1)
    chunks = [(str(images), seed, size, range(k, n, workers)) for k in range(workers)]
    if workers == 1:
        parts = [_write_chunk(chunks[0])]
    else:
        with ProcessPoolExecutor(workers) as pool:
            parts = list(pool.map(_write_chunk, chunks))
    rows = sorted((r for part in parts for r in part), key=lambda r: r.file)
    data.write_labels(root, rows)
    n_valid = sum(r.split == "valid" for r in rows)
    return Generated(str(root), n - n_valid, n_valid, size, time.perf_counter() - t0)
