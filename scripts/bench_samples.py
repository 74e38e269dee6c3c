"""Bench set-up (not timed): write the sample models `scripts/bench.py` measures, and describe them.

One process (one TF import) writes every (alpha, size) model the bench needs, in one form, and a
manifest beside them: path, input/output tensor names and input shape per model, which the
stand-alone baselines (tf2onnx alone, MMdnn alone) are given on their command lines.

    python scripts/bench_samples.py OUT_DIR FORM ALPHA:SIZE [ALPHA:SIZE ...]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from convert.runtime import guard as _guard  # noqa: F401  (before TF/torch: hides triton)

MANIFEST = "manifest.json"


def main(argv: list[str]) -> int:
    out, form, models = Path(argv[0]), argv[1], argv[2:]
    from convert.cli import quiet_frameworks

    quiet_frameworks()
    from convert.sample import SampleSpec, write_samples
    from convert.sources import load_source

    manifest_path = out / MANIFEST
    manifest = json.loads(manifest_path.read_text()) if manifest_path.is_file() else {}
    for key in models:
        alpha, size = key.split(":")
        spec = SampleSpec(alpha=float(alpha), size=(int(size), int(size)))
        entry = manifest.get(f"{form}:{key}")
        if entry and Path(entry["path"]).is_file():
            continue
        path = write_samples(out, spec, (form,))[form]
        src = load_source(path)
        manifest[f"{form}:{key}"] = {
            "path": str(path.resolve()), "form": form, "alpha": float(alpha), "size": int(size),
            "input": src.info.input, "output": src.info.output,
            "input_shape": [int(d) for d in src.spec.input_shape],
        }
        manifest_path.write_text(json.dumps(manifest, indent=2))
        print(f"wrote {path}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
