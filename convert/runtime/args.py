"""Argument types and the parser every CLI uses, importable before any heavy import.

`--help` must cost little more than starting Python (scripts/bench: start-up), so nothing here imports
numpy, TF, torch, or even pathlib (which pulls urllib and ipaddress in).
"""

from __future__ import annotations

import argparse
import os
import sys

from convert.runtime.errors import TfportError


def path(text: str):
    """argparse type: a pathlib.Path, imported when an argument is parsed rather than when help is shown."""
    from pathlib import Path

    return Path(text)


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """argparse's RawDescriptionHelpFormatter, told its width: argparse would import shutil (and with it
    bz2, lzma, zlib) just to ask the terminal, ~5 ms of a ~65 ms `--help`."""

    def __init__(self, prog: str, indent_increment: int = 2, max_help_position: int = 24,
                 width: int | None = None) -> None:
        super().__init__(prog, indent_increment, max_help_position, width or _columns() - 2)


def _columns() -> int:
    """What shutil.get_terminal_size().columns gives: $COLUMNS, else the terminal's, else 80."""
    try:
        return int(os.environ["COLUMNS"])
    except (KeyError, ValueError):
        pass
    try:
        return os.get_terminal_size(sys.__stdout__.fileno()).columns or 80
    except (AttributeError, ValueError, OSError):
        return 80


def positive_seconds(text: str) -> float:
    """argparse type for --timeout: a positive, finite number of seconds."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r}: need a positive, finite number of seconds")
    return value


def parse_size(text: str) -> tuple[int, int]:
    """An input size: H (square) or HxW, each at least 32."""
    try:
        parts = [int(p) for p in text.lower().split("x")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a size like 224 or 128x192") from None
    if len(parts) == 1:
        parts *= 2
    if len(parts) != 2 or min(parts) < 32:
        raise argparse.ArgumentTypeError(f"{text!r}: need H or HxW, each at least 32")
    return parts[0], parts[1]


def _number(kind, text: str, what: str):
    try:
        return kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not {what}") from None


def positive_int(text: str) -> int:
    """argparse type for counts (--probes, --classes): at least 1."""
    value = _number(int, text, "a whole number")
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: need at least 1")
    return value


def seed_number(text: str) -> int:
    """argparse type for --seed: numpy's seeded generators take a non-negative integer."""
    value = _number(int, text, "a whole number")
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r}: need a seed of 0 or more")
    return value


def tolerance(text: str) -> float:
    """argparse type for --atol/--rtol: a finite number of 0 or more."""
    value = _number(float, text, "a number")
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r}: need a finite tolerance of 0 or more")
    return value


class Parser(argparse.ArgumentParser):
    """The parser of every tfport CLI. A usage error is bad input like any other: raised as TfportError,
    which each `main` prints as one line `error: ...` and returns as exit 2, before any work starts
    (argparse would print its usage block and exit from inside `parse_args`; under torchrun, from every
    rank). Subparsers inherit the class."""

    def error(self, message: str):  # type: ignore[override]
        raise TfportError(f"{self.prog}: {message} (see --help)")


def _to_stderr(line: str) -> None:
    print(line, file=sys.stderr)


def run_main(parser: argparse.ArgumentParser, argv, *, errors: tuple[type[BaseException], ...] = (),
             interrupted: str = "interrupted", say=_to_stderr) -> int:
    """Every CLI's one exit-code path: parse, run the subcommand's handler (`set_defaults(func=...)`) and
    return its code; bad input (TfportError, and `errors`, each with its `exit_code`) is one line
    `error: ...`; Ctrl-C is one line and 130. Anything else is a bug in tfport: one line naming it and the
    file its traceback was written to, exit 3 (convert.runtime.bug)."""
    try:
        args = parser.parse_args(argv)
        return args.func(args)
    except (TfportError, *errors) as e:
        say(f"error: {e}")
        return e.exit_code  # type: ignore[union-attr]
    except KeyboardInterrupt:
        say(f"error: {interrupted}")
        return 130
    except Exception as e:  # noqa: BLE001  (not bad input: tfport's own code failed)
        from convert.runtime.bug import EXIT_BUG, report_bug

        say(report_bug(e))
        return EXIT_BUG
