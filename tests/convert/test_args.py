"""Every CLI argument is checked before any work starts: one line `error: ...`, exit 2, no traceback.

(`--probes 0` used to reach the conversion and end in numpy's `need at least one array to concatenate`.)"""

from __future__ import annotations

import pytest

CASES = {
    "tf2torch-probes-0": ("convert.cli", ["tf2torch", "m.pb", "--probes", "0"], "--probes"),
    "tf2torch-probes-negative": ("convert.cli", ["tf2torch", "m.pb", "--probes", "-2"], "--probes"),
    "tf2torch-probes-word": ("convert.cli", ["tf2torch", "m.pb", "--probes", "many"], "--probes"),
    "tf2torch-seed-negative": ("convert.cli", ["tf2torch", "m.pb", "--seed", "-1"], "--seed"),
    "sample-classes-0": ("convert.cli", ["sample", "out", "--classes", "0"], "--classes"),
    "sample-seed-negative": ("convert.cli", ["sample", "out", "--seed", "-5"], "--seed"),
    "sample-alpha-not-keras": ("convert.cli", ["sample", "out", "--alpha", "0.6"], "--alpha"),  # README: alpha in {...}
    "sample-size-below-32": ("convert.cli", ["sample", "out", "--size", "31"], "--size"),  # README: any size >= 32
    "sample-width-below-32": ("convert.cli", ["sample", "out", "--size", "64x16"], "--size"),
    "parity-atol-negative": ("parity.cli", ["check", "p.pth", "--atol", "-1e-5"], "--atol"),
    "parity-rtol-nan": ("parity.cli", ["check", "p.pth", "--rtol", "nan"], "--rtol"),
    "parity-atol-inf": ("parity.cli", ["check", "p.pth", "--atol", "inf"], "--atol"),
    "parity-probes-0": ("parity.cli", ["check", "p.pth", "--probes", "0"], "--probes"),
    "parity-seed-negative": ("parity.cli", ["check", "p.pth", "--seed", "-3"], "--seed"),
    "parity-unknown-option": ("parity.cli", ["check", "p.pth", "--atoll", "1"], "--atoll"),
    "backbones-unknown-option": ("backbones.cli", ["train", "--backbone", "b", "--data", "d", "--bss", "8"], "--bss"),
    "backbones-bs-word": ("backbones.cli", ["train", "--backbone", "b", "--data", "d", "--bs", "many"], "--bs"),
    "seed-table-seeds-word": ("backbones.seed_table", ["--seeds", "many"], "--seeds"),
    "fetch-pretrained-timeout-0": ("backbones.pretrained", ["--timeout", "0"], "--timeout"),
}


@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_bad_argument_is_one_line_before_any_work(case, capsys, tmp_path, monkeypatch):
    """`main` returns 2 (argparse would exit from inside parse_args, with its usage block first)."""
    module, argv, mentions = CASES[case]
    monkeypatch.chdir(tmp_path)  # nothing may be written, and the named files do not exist
    main = __import__(module, fromlist=["main"]).main
    assert main(argv) == 2
    out, err = capsys.readouterr()
    assert err.count("\n") == 1 and err.startswith("error: ") and mentions in err, err
    assert "Traceback" not in err and not out
    assert list(tmp_path.iterdir()) == []


PARSERS = ("convert.cli", "parity.cli", "backbones.cli", "backbones.seed_table")


@pytest.mark.parametrize("module", PARSERS)
def test_every_cli_parses_with_the_one_parser(module):
    """One Parser class (convert.runtime.args) for every CLI and each of its subcommands."""
    import argparse

    from convert.runtime.args import Parser

    parser = __import__(module, fromlist=["build_parser"]).build_parser()
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    for p in [parser, *(c for a in subs for c in a.choices.values())]:
        assert type(p) is Parser, (p.prog, type(p))


def test_defaults_are_the_readme_s():
    """README usage lines: tf2torch -o ported.pth, --via onnx, --probes 16, no --timeout (the scaled default);
    parity check --against tf,onnx,torchvision, --atol 1e-5 --rtol 1e-4, --probes 8."""
    from convert.cli import build_parser as convert_parser
    from parity.cli import build_parser as parity_parser

    a = convert_parser().parse_args(["tf2torch", "m.pb"])
    assert (str(a.output), a.via, a.probes, a.timeout, a.trust_code) == ("ported.pth", "onnx", 16, None, False)
    p = parity_parser().parse_args(["check", "p.pth"])
    assert (p.against, p.atol, p.rtol, p.probes, p.timeout) == (("tf", "onnx", "torchvision"), 1e-5, 1e-4, 8, None)
    assert p.input_size is None
    assert parity_parser().parse_args(["check", "p.py", "--input-size", "96"]).input_size == (96, 96)
    assert parity_parser().parse_args(["gate", "p.pth"]).bn == "eval"  # parity gate PORTED [--bn eval|train]
