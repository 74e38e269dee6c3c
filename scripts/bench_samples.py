"""Bench set-up (not timed): write the sample models `scripts/bench.py` measures, and describe them.

One process (one TF import) writes every model the bench needs, in one form, and a manifest beside
them: path, input/output tensor names and input shape per model, which the stand-alone baselines
(tf2onnx alone, MMdnn alone) are given on their command lines. A model is `ALPHA:SIZE` (MobileNetV2
at that width, manifest key `FORM:ALPHA:SIZE` as before) or `ARCH:SIZE` (another architecture
convert.sample writes, e.g. `resnet50:224`, `mobilenet_v3_large:224`; key `FORM:ARCH:SIZE`).

    python scripts/bench_samples.py OUT_DIR FORM MODEL [MODEL ...]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from convert.runtime import guard as _guard  # noqa: F401  (before TF/torch: hides triton)

MANIFEST = "manifest.json"


def parse_model(key: str) -> tuple[str, float, int]:
    """`ALPHA:SIZE` (MobileNetV2) or `ARCH:SIZE` -> (arch, alpha, size); ValueError where it is neither."""
    first, sep, size = key.partition(":")
    if not sep or not size.isdigit():
        raise ValueError(f"model {key!r}: expected ALPHA:SIZE or ARCH:SIZE")
    try:
        return "mobilenet_v2", float(first), int(size)
    except ValueError:
        return first, 1.0, int(size)


def main(argv: list[str]) -> int:
    out, form, models = Path(argv[0]), argv[1], argv[2:]
    from convert.cli import quiet_frameworks

    quiet_frameworks()
    from convert.runtime.errors import TfportError
    from convert.sample import SampleSpec, write_samples

    try:
        specs = {}
        for key in models:
            arch, alpha, size = parse_model(key)
            specs[key] = SampleSpec(alpha=alpha, size=(size, size), arch=arch)
    except (ValueError, TfportError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    from convert.sources import load_source

    manifest_path = out / MANIFEST
    manifest = json.loads(manifest_path.read_text()) if manifest_path.is_file() else {}
    for key, spec in specs.items():
        entry = manifest.get(f"{form}:{key}")
        if entry and Path(entry["path"]).is_file():
            continue
        path = write_samples(out, spec, (form,))[form]
        src = load_source(path)
        manifest[f"{form}:{key}"] = {
            "path": str(path.resolve()), "form": form, "arch": spec.arch, "alpha": spec.alpha, "size": spec.size[0],
            "input": src.info.input, "output": src.info.output,
            "input_shape": [int(d) for d in src.spec.input_shape],
        }
        manifest_path.write_text(json.dumps(manifest, indent=2))
        print(f"wrote {path}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
