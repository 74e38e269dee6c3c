"""The README's "files as users hold them" table, measured: every source form, written by the tool that
writes it, through each conversion path, then `parity check`.

    source scripts/_venv.sh && "$PY" scripts/forms_table.py [--out DIR] [--via onnx mmdnn]
    source scripts/_venv.sh && "$PY" scripts/forms_table.py --arch resnet50 vgg16 mobilenet_v3_large ...

Per form and path: converts (or the one-line error), the modes parity certifies, and what the port
carries besides the backbone (preprocessing inside the model, augmentation dropped, the head).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import convert  # noqa: E402, F401  (import-order guard)

# (row label, zoo kind, zoo version, form)
FORMS = [
    ("tf_keras tutorial .h5", "tutorial", "k2", "h5"),
    ("tf_keras tutorial .keras", "tutorial", "k2", "keras"),
    ("tf_keras tutorial SavedModel", "tutorial", "k2", "savedmodel"),
    ("Keras 3 tutorial .keras", "tutorial", "k3", "keras"),
    ("Keras 3 tutorial .h5", "tutorial", "k3", "h5"),
    ("Keras 3 tutorial export()", "tutorial", "k3", "savedmodel"),
    ("Keras 3 regression export()", "regression", "k3", "savedmodel"),
    ("Keras 3 features (pooling=None) .keras", "features_none", "k3", "keras"),
    ("tf_keras features (pooling=avg) .h5", "features_avg", "k2", "h5"),
    ("Keras 3 features (pooling=max) .h5", "features_max", "k3", "h5"),
    ("Keras 3 regression Dense(32)-Dense(2) .keras", "regression", "k3", "keras"),
    ("tf_keras AvgPool-Flatten-Dense-Dense .h5", "pooled_flatten", "k2", "h5"),
    ("Keras 3 GMP + sigmoid .keras", "classifier_gmp", "k3", "keras"),
    ("tf.Module SavedModel (TF-Hub style)", "classifier", "tfmodule", "savedmodel"),
    ("TF1-era Keras frozen .pb (learning phase)", "classifier", "tf1", "pb"),
    ("TFLite float32", "classifier", "tflite", "tflite"),
    # weights only: rebuilt from Keras's own MobileNetV2 at --input-size (default 224, used here)
    ("tf_keras save_weights .h5 (Keras Applications layout, top)", "application", "k2", "weights"),
    ("tf_keras save_weights .h5 (no top)", "features_none", "k2", "weights"),
    ("Keras 3 save_weights .weights.h5 (no top)", "features_none", "k3", "weights"),
]


# --arch: every other registered architecture's forms, each written by the tool that writes it (convert.sample:
# tf_keras's save, the TF freezer, Keras 3's save; TFLite's converter on the transfer model), at the sizes the
# tests use (32 px: ResNet50's layer4 is 1x1; VGG16's Flatten head at 64x32; MobileNetV3 at 64)
ARCH_FORMS = [
    ("tf_keras .h5, Keras's top", "keras2_h5"),
    ("tf_keras transfer head .h5", "transfer_h5"),
    ("Keras 3 .keras, Keras's top", "keras3"),
    ("tf_keras SavedModel, Keras's top", "savedmodel"),
    ("tf_keras frozen .pb, Keras's top", "keras2_pb"),
    ("TFLite float32, transfer head", "tflite"),
]
ARCH_SIZE = {"resnet50": (32, 32), "vgg16": (64, 32), "mobilenet_v3_large": (64, 64), "mobilenet_v3_small": (64, 64)}


def arch_sources(arch: str, folder: Path) -> list[tuple[str, Path]]:
    """(label, file) per form of `arch`'s seeded sample."""
    from convert.sample import SampleSpec, transfer_model, write_samples
    from tests.zoo.tflite_writer import tflite_bytes

    spec = SampleSpec(arch=arch, size=ARCH_SIZE[arch])
    written = write_samples(folder, spec, tuple(f for _, f in ARCH_FORMS if f != "tflite"))
    tflite = folder / f"{arch}_{spec.tag}_transfer.tflite"
    tflite.write_bytes(tflite_bytes(transfer_model(spec)))
    written["tflite"] = tflite
    return [(label, written[form]) for label, form in ARCH_FORMS]


def _row(label: str, src: Path, via: str, out_dir: Path, probes: int = 4) -> str:
    from convert.cli import main as convert_main
    from convert.port import checkpoint
    from parity import certificate
    from parity.cli import main as parity_main

    out = out_dir / f"{abs(hash((label, via)))}.pth"
    err = io.StringIO()
    t0 = time.perf_counter()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = convert_main(["tf2torch", str(src), "-o", str(out), "--via", via])
    seconds = time.perf_counter() - t0
    if code != 0:
        line = next((x for x in err.getvalue().splitlines() if x.startswith("error:")),
                    "the port does not reproduce the source")
        reason = line.split(f"{src}: ", 1)[-1]
        if len(reason) > 160:  # the cause, then the way out where one is given
            first, _, last = reason.partition("; ")
            reason = first[:90] + (" … " + last.rsplit("; ", 1)[-1][:70] if last else "…")
        return f"| {label} | {via} | exit {code}: {reason} | – | – | – | – |"
    with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
        pcode = parity_main(["check", str(out), "--probes", str(probes)])
    cert = certificate.read(out) if pcode == 0 else None
    _, meta = checkpoint.load(out)
    from convert.report import head_text

    head = head_text(meta)
    pre = meta.get("preprocess")
    carried = (f"x·{pre['scale'][0]:.4g}{pre['offset'][0]:+g}, input {meta['input_range']}" if pre else "–")
    modes = ", ".join(cert["modes_passed"]) if cert else f"parity exit {pcode}"
    return (f"| {label} | {via} | yes ({seconds:.0f} s) | {modes} | {carried} | "
            f"{', '.join(meta.get('dropped') or []) or '–'} | {head} |")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=None, help="keep the written files here")
    parser.add_argument("--via", nargs="+", default=["onnx", "mmdnn"], choices=["onnx", "mmdnn"])
    parser.add_argument("--only", default="", help="the rows whose label holds this text (default: all)")
    parser.add_argument("--arch", nargs="+", choices=sorted(ARCH_SIZE),
                        help="the architecture x form x path table of these architectures instead")
    args = parser.parse_args(argv)
    from convert.runtime.quiet import quiet_frameworks

    quiet_frameworks()
    sys.path.insert(0, str(ROOT))
    from tests.conftest import Zoo

    root = args.out or Path(tempfile.mkdtemp(prefix="tfport-forms-"))
    root.mkdir(parents=True, exist_ok=True)
    if args.arch:
        return arch_table(args, root)
    zoo = Zoo(root / "files")
    (root / "files").mkdir(exist_ok=True)
    print("| source form (written by its own tool) | path | converts | parity certifies | preprocessing carried "
          "| dropped | pooling → head |")
    print("|---|---|---|---|---|---|---|")
    t0 = time.perf_counter()
    for label, kind, version, form in (f for f in FORMS if args.only in f[0]):
        with contextlib.redirect_stdout(io.StringIO()):  # Keras 3's export() prints its signature
            src, _ = zoo.get(kind, version, form)
        for via in args.via:
            print(_row(label, src, via, root), flush=True)
    print(f"\nmeasured by `scripts/forms_table.py` in {time.perf_counter() - t0:.0f} s (alpha 0.35, 96x96)")
    return 0


def arch_table(args: argparse.Namespace, root: Path) -> int:
    """One row per architecture, form and path; parity at its default 8 probes (at 32 px ResNet50's layer4
    maps are 1x1: train-mode BatchNorm over 4 values per channel is float32 noise, not a verdict)."""
    print("| architecture (size) | source form (written by its own tool) | path | converts | parity certifies "
          "| preprocessing carried | dropped | pooling → head |")
    print("|---|---|---|---|---|---|---|---|")
    t0 = time.perf_counter()
    for arch in args.arch:
        folder = root / arch
        folder.mkdir(exist_ok=True)
        with contextlib.redirect_stdout(io.StringIO()):
            sources = arch_sources(arch, folder)
        h, w = ARCH_SIZE[arch]
        for label, src in sources:
            if args.only not in label:
                continue
            for via in args.via:
                print(f"| {arch} ({h}x{w}) " + _row(label, src, via, folder, probes=8), flush=True)
    print(f"\nmeasured by `scripts/forms_table.py --arch {' '.join(args.arch)}` in {time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
