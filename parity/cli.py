"""`python -m parity check PORTED`: layer by layer against TF, ORT and torchvision."""

from __future__ import annotations

import argparse

from convert.runtime.args import (
    HelpFormatter,
    Parser,
    parse_size,
    positive_int,
    positive_seconds,
    run_main,
    seed_number,
    tolerance,
)
from convert.runtime.args import path as path_arg  # lazy pathlib: --help stays fast
from convert.runtime.errors import TfportError
from convert.runtime.quiet import add_verbose_flag

EPILOG = """examples:
  # the source found from the checkpoint's metadata
  python -m parity check ported.pth
  python -m parity check ported.pth --source mobilenet_v2.pb \\
      --json report.json --junit parity.xml --html report/
  # MMdnn's emitted code (+ its weights .npy beside it)
  python -m parity check mmdnn_emitted.py --source model.pb
  # does its certificate let the trainer use it?
  python -m parity gate ported.pth --bn train

exit codes: 0 pass, 1 parity failed (gate: not certified), 2 bad input or usage"""


def _against(text: str) -> tuple[str, ...]:
    from parity.results import REFERENCES

    items = tuple(t.strip() for t in text.split(",") if t.strip())
    bad = [t for t in items if t not in REFERENCES]
    if bad or not items:
        raise argparse.ArgumentTypeError(f"unknown reference(s) {bad}; choose from {','.join(REFERENCES)}")
    return items


def cmd_check(args: argparse.Namespace) -> int:
    from convert.runtime.quiet import quiet_frameworks

    quiet_frameworks(args.verbose)  # before torch and TF are imported (_check's imports)
    return _check(args)


def _check(args: argparse.Namespace) -> int:
    from rich.console import Console

    from parity import certificate, report
    from parity.api import check

    console = Console(highlight=False, log_path=False)
    for out in (args.json, args.junit):
        if out is not None and not out.parent.is_dir():
            raise TfportError(f"{out}: output folder {out.parent} does not exist")
    with console.status("loading") as status:
        def progress(msg: str) -> None:
            status.update(msg)
            console.log(msg)

        rep = check(args.ported, args.source, against=args.against, atol=args.atol, rtol=args.rtol,
                    probes=args.probes, seed=args.seed, trust_code=args.trust_code, timeout=args.timeout,
                    input_size=args.input_size, progress=progress)
    report.print_table(console, rep)
    if args.json:
        rep.write_json(args.json)
    if args.junit:
        rep.write_junit(args.junit)
    if args.html:
        console.print(f"HTML report: {rep.write_html(args.html)}")
    cert = certificate.path_for(args.ported)
    if rep.passed and rep.candidate.kind == "ported":
        rep.write_certificate(args.ported)
        console.print(f"certificate: {cert} (modes: {', '.join(rep.modes_passed)})")
    elif cert.exists():
        cert.unlink()  # a stale certificate must not outlive a failing check
    console.print(rep.summary())
    return 0 if rep.passed else 1


def cmd_gate(args: argparse.Namespace) -> int:
    """What the trainer's gate asks (parity.certificate.check_for_training), as a CI
    step: exit 1 naming what the certificate beside PORTED lacks (no certificate,
    other bytes, a reference or probes fewer than a default check compares, looser
    tolerances, train mode not certified)."""
    import sys

    from parity.certificate import GateError, check_for_training

    try:
        cert = check_for_training(args.ported, args.bn)
    except GateError as e:  # not certified: the parity verdict's exit code, one line
        print(f"error: {e}", file=sys.stderr)
        return e.exit_code
    print(f"certified for training with BN in {args.bn} mode: {', '.join(cert['references'])} on "
          f"{cert['probes']} probes, modes {', '.join(cert['modes_passed'])}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from parity import tolerances  # plain numbers: --help stays fast

    parser = Parser(prog="python -m parity", description=__doc__.splitlines()[0], epilog=EPILOG,
                                     formatter_class=HelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("check", help="check a port against its TF source", epilog=EPILOG,
                       formatter_class=HelpFormatter)
    p.add_argument("ported", type=path_arg,
                   help="ported.pth, a torchvision state dict, MMdnn's emitted .py, or an .onnx")
    p.add_argument("--source", type=path_arg, default=None, help="TF source (default: from the checkpoint's metadata)")
    p.add_argument("--against", type=_against, default=("tf", "onnx", "torchvision"))
    p.add_argument("--atol", type=tolerance, default=tolerances.EVAL_ATOL,
                   help="absolute tolerance per point (default %(default)g; the trainer's gate accepts no looser)")
    p.add_argument("--rtol", type=tolerance, default=tolerances.EVAL_RTOL,
                   help="relative tolerance, times max|ref| per point (default %(default)g; the gate accepts no "
                        "looser)")
    p.add_argument("--probes", type=positive_int, default=8)
    p.add_argument("--seed", type=seed_number, default=0)
    p.add_argument("--json", type=path_arg)
    p.add_argument("--junit", type=path_arg)
    p.add_argument("--html", type=path_arg, help="folder for index.html and per_layer_error.png")
    p.add_argument("--input-size", type=parse_size, default=None, metavar="HxW",
                   help="where the source leaves its input size open: compare at HxW (default: the size the "
                        "candidate records; needed for MMdnn's .py and an .onnx)")
    p.add_argument("--trust-code", action="store_true",
                   help="run code the source file carries (Keras Lambda, custom classes); refused by default")
    p.add_argument("--timeout", type=positive_seconds, default=None,
                   help="bound in seconds for each stage (load, parity); default scales with the model")
    add_verbose_flag(p)
    p.set_defaults(func=cmd_check)
    g = sub.add_parser("gate", help="does PORTED's certificate certify it for training (the trainer's gate)",
                       description="\n".join(line.strip() for line in cmd_gate.__doc__.splitlines()),
                       formatter_class=HelpFormatter)
    g.add_argument("ported", type=path_arg, help="ported.pth or .safetensors, its .parity.json beside it")
    g.add_argument("--bn", choices=("eval", "train"), default="eval",
                   help="the BN mode the trainer will use (train needs train mode certified)")
    g.set_defaults(func=cmd_gate)
    return parser


def main(argv: list[str] | None = None) -> int:
    return run_main(build_parser(), argv)
