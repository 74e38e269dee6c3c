"""`python -m convert`: make sample models, convert TF MobileNetV2s to PyTorch.

Heavy frameworks (TF, torch) load inside the handlers, so `--help` and usage errors stay fast.
"""

from __future__ import annotations

import argparse

from convert.model.options import DEFAULT_PROBES
from convert.runtime.args import (
    HelpFormatter,
    Parser,
    parse_size,
    positive_int,
    positive_seconds,
    run_main,
    seed_number,
)
from convert.runtime.args import path as path_arg  # lazy pathlib: --help stays fast
from convert.runtime.quiet import add_verbose_flag, quiet_frameworks

EPILOG = """examples:
  # every sample form, alpha 1.0, 224x224
  python -m convert sample samples/
  python -m convert sample samples/ --alpha 0.35 --size 128x192 \\
      --forms slim_pb keras2_h5
  python -m convert sample samples/ --arch resnet50 --size 64 \\
      --forms keras2_h5 keras3
  python -m convert sample samples/ --arch mobilenet_v3_small --size 64 \\
      --forms keras2_h5 transfer_h5
  # -> ported.pth (+ ported.onnx)
  python -m convert tf2torch mobilenet_v2.pb
  python -m convert tf2torch model.h5 -o out/model.pth --via both
  # MMdnn's output -> the canonical port
  python -m convert repair out/model.mmdnn.py --source model.h5 -o fixed.pth

exit codes: 0 ok, 1 the port does not reproduce its source, 2 bad input or
usage"""
TIMEOUT_HELP = (
    "bound in seconds for each stage (load, TF reference, tf2onnx, MMdnn, torch side); default scales with the model"
)


TRUST_HELP = ("run code the source file carries (Keras Lambda layers, custom classes); off by default: "
              "such a file is refused before it is loaded")


def _console():
    from rich.console import Console

    return Console(highlight=False, log_path=False)


def cmd_sample(args: argparse.Namespace) -> int:
    quiet_frameworks(args.verbose)
    from convert.sample import SampleSpec, write_samples

    console = _console()
    spec = SampleSpec(alpha=args.alpha, size=args.size, classes=args.classes, seed=args.seed, arch=args.arch)
    from convert.model.options import FORMS, MOBILENET_V2_ONLY_FORMS

    # default: every form the architecture has (TF-slim's graph is MobileNetV2's own)
    forms = args.forms or [f for f in FORMS if args.arch == "mobilenet_v2" or f not in MOBILENET_V2_ONLY_FORMS]
    with console.status("generating") as status:
        paths = write_samples(args.out_dir, spec, tuple(forms), progress=lambda f: status.update(f"writing {f}"))
    for form, path in paths.items():
        console.print(f"{form:12s} {path}")
    console.print(f"DONE: {len(paths)} sample model(s) in {args.out_dir}")
    return 0


def cmd_tf2torch(args: argparse.Namespace) -> int:
    quiet_frameworks(args.verbose)
    from convert import pipeline
    from convert.model import tolerance
    from convert.report import print_summary
    from convert.runtime.bounds import bounded

    console = _console()
    with console.status("starting") as status, bounded(args.timeout, args.src):
        def progress(msg: str) -> None:
            status.update(msg)
            console.log(msg)

        result = pipeline.convert(args.src, args.output, via=args.via, input_size=args.input_size,
                                  probes=args.probes, seed=args.seed, progress=progress, trust_code=args.trust_code)
    print_summary(console, result)
    if not result.ok:
        console.print(
            f"FAILED: the port does not reproduce {args.src} (tolerance {tolerance.REL_TOL:g}); nothing written"
        )
        return 1
    console.print(f"PASSED: wrote {result.output}")
    return 0


def cmd_repair(args: argparse.Namespace) -> int:
    quiet_frameworks(args.verbose)
    from convert.model.tolerance import REL_TOL
    from convert.repair import repair

    console = _console()
    with console.status("repairing") as status:
        agreements, out = repair(args.ported, args.output, args.source, progress=status.update,
                                 trust_code=args.trust_code)
    for a in agreements:
        console.print(f"{a.what}: rel {a.rel:.2e} (max |Δ| {a.max_abs:.2e}) {'ok' if a.ok(REL_TOL) else 'FAIL'}")
    if out is None:
        console.print(f"FAILED: with the source's semantics the weights of {args.ported} still do not reproduce the "
                      "source; repair changes semantics, never weights; nothing written")
        return 1
    console.print(
        f"PASSED: wrote {out} (BN eps, momentum = 1 − decay, TF padding, eval mode, input range from the source)"
    )
    return 0


def build_parser() -> argparse.ArgumentParser:
    from convert.model.options import FORMS, SAMPLE_ARCHS
    from convert.model.options import MOBILENET_V2_ALPHAS as ALPHAS

    parser = Parser(prog="python -m convert", description=__doc__.splitlines()[0],
                                     epilog=EPILOG, formatter_class=HelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("sample", help="write sample TF MobileNetV2s in every form", epilog=EPILOG,
                       formatter_class=HelpFormatter)
    p.add_argument("out_dir", type=path_arg)
    p.add_argument("--arch", default="mobilenet_v2", choices=SAMPLE_ARCHS, metavar="ARCH",
                   help=f"the Keras application to build: {', '.join(SAMPLE_ARCHS)} (default %(default)s)")
    p.add_argument("--alpha", type=float, default=1.0, choices=ALPHAS, help="MobileNetV2's width")
    p.add_argument("--size", type=parse_size, default=(224, 224), help="H or HxW (default 224)")
    p.add_argument("--forms", nargs="+", default=None, choices=FORMS, metavar="FORM",
                   help=f"{', '.join(FORMS)} (default: every form the --arch has)")
    p.add_argument("--classes", type=positive_int, default=1000)
    p.add_argument("--seed", type=seed_number, default=0)
    add_verbose_flag(p)
    p.set_defaults(func=cmd_sample)

    p = sub.add_parser("tf2torch", help="convert a TF MobileNetV2 to a verified PyTorch checkpoint", epilog=EPILOG,
                       formatter_class=HelpFormatter)
    p.add_argument("src", type=path_arg, help="frozen .pb, SavedModel folder, .h5 (model or weights), .keras, .tflite")
    p.add_argument("-o", "--output", type=path_arg, default="ported.pth",
                   help="ported.pth (torch.save), or a path ending in .safetensors (default %(default)s)")
    p.add_argument("--via", choices=("onnx", "mmdnn", "both"), default="onnx")
    p.add_argument("--input-size", type=parse_size, default=None,
                   help="HxW, where the graph leaves it open; a weights-only .h5 is rebuilt at it (default 224)")
    p.add_argument("--probes", type=positive_int, default=DEFAULT_PROBES,
                   help="seeded probe inputs compared against TF (default %(default)s)")
    p.add_argument("--seed", type=seed_number, default=0)
    p.add_argument("--trust-code", action="store_true", help=TRUST_HELP)
    p.add_argument("--timeout", type=positive_seconds, default=None, help=TIMEOUT_HELP)
    add_verbose_flag(p)
    p.set_defaults(func=cmd_tf2torch)

    p = sub.add_parser("repair", help="rebuild any port as the canonical backbone with the source's semantics",
                       epilog=EPILOG, formatter_class=HelpFormatter)
    p.add_argument("ported", type=path_arg,
                   help="ported.pth or .safetensors, a torchvision state dict, or MMdnn's emitted .py (+ .npy)")
    p.add_argument("--source", type=path_arg, default=None, help="TF source (default: from the checkpoint's metadata)")
    p.add_argument("-o", "--output", type=path_arg, required=True, help="fixed.pth, or a path ending in .safetensors")
    p.add_argument("--trust-code", action="store_true", help=TRUST_HELP)
    add_verbose_flag(p)
    p.set_defaults(func=cmd_repair)
    return parser


def main(argv: list[str] | None = None) -> int:
    return run_main(build_parser(), argv)
