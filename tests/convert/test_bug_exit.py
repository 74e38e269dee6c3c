"""A bug in tfport is not bad input (Polygraphy's rule; README "Exit codes").

A third-party loader failing on the user's file is one line `error: ...`, exit 2. An exception raised by
tfport's own code — also where a library calls it back (MMdnn's shims: tests/convert/test_mmdnn.py) or where
a loader's wrapper used to cover it (Keras) — is exit 3, one line
`internal error (a bug in tfport): <Type>: <msg> — traceback in FILE`, with the full traceback in FILE under
the system's temporary folder. Each bug is injected into one real
tfport function; the rest of the run is the product's own.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from convert.runtime.errors import TfportError
from tests.conftest import ROOT

LINE = re.compile(r"^internal error \(a bug in tfport\): (\w+): (.*) — traceback in (\S+)$")


class Injected(Exception):
    """The deliberate bug: a type no library raises."""


def _boom(*_args, **_kwargs):
    raise Injected("deliberate bug injected by the test")


@pytest.fixture
def bug_files(tmp_path, monkeypatch):
    """The system temporary folder, for this test alone: where the traceback file must land."""
    d = tmp_path / "tmp"
    d.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(d))
    return d


def _one_bug_line(err: str, bug_files: Path, frame: str) -> Path:
    """Exactly one stderr line, naming the bug and a traceback file that holds `frame`."""
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    m = LINE.match(lines[0])
    assert m, lines[0]
    path = Path(m.group(3))
    assert path.parent == bug_files and path.is_file(), (path, list(bug_files.iterdir()))
    text = path.read_text()
    assert "Traceback (most recent call last)" in text and frame in text, text[-3000:]
    return path


def test_run_main_a_bug_is_exit_3_and_its_traceback_a_file(bug_files, capsys):
    """The one exit-code path: a handler's own exception -> 3, one line, the traceback (its frame) in a file."""
    from convert.runtime.args import Parser, run_main

    p = Parser(prog="t")
    p.set_defaults(func=lambda args: _boom())
    assert run_main(p, []) == 3
    out, err = capsys.readouterr()
    path = _one_bug_line(err, bug_files, "in _boom")
    assert not out and "Injected: deliberate bug injected by the test" in err
    assert 'test_bug_exit.py", line' in path.read_text()


def test_run_main_bad_input_stays_exit_2(bug_files, capsys):
    from convert.runtime.args import Parser, run_main
    from convert.runtime.errors import fail

    def bad(args):
        raise fail("m.pb: not a TensorFlow GraphDef")

    p = Parser(prog="t")
    p.set_defaults(func=bad)
    assert run_main(p, []) == 2
    assert capsys.readouterr().err == "error: m.pb: not a TensorFlow GraphDef\n"
    assert list(bug_files.iterdir()) == []  # no traceback file for bad input


def test_tfport_s_keras_loader_code_is_not_wrapped_as_keras_refusing(samples, monkeypatch):
    """The Keras 3 loader's own part (its custom objects) fails: the exception is the bug's, not
    "cannot load as a Keras model" (before: TfportError, exit 2)."""
    import convert.sources.keras_config as keras_config
    from convert.sources import load_source

    keras_config.known_classes()  # the config scan's lookup, cached: the bug is met in the loader, not the scan
    monkeypatch.setattr(keras_config, "keras3_ops", _boom)
    with pytest.raises(Injected):
        load_source(samples.get("keras3", 0.35))


def test_keras_refusing_a_damaged_file_stays_bad_input(samples, tmp_path):
    """The control: Keras itself failing on the user's bytes is one TfportError line (exit 2)."""
    from convert.sources import load_source

    data = samples.get("keras2_h5", 0.35).read_bytes()
    bad = tmp_path / "cut.h5"
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(TfportError) as e:
        load_source(bad)
    assert e.value.exit_code == 2 and "\n" not in str(e.value)


def test_the_restricted_unpickler_failing_is_a_bug_not_a_corrupt_file(tmp_path, monkeypatch):
    """find_class is tfport's, called back by pickle: its own failure is CallbackBug (before: "corrupt MMdnn
    weights file"); its refusal of a global stays bad input (tests/convert/test_mmdnn.py)."""
    import numpy as np

    import convert.compat.mmdnn as shims
    from convert.runtime.errors import CallbackBug

    w = tmp_path / "w.npy"
    np.save(w, np.array({"conv": {"weights": np.ones((2, 2), np.float32)}}, dtype=object), allow_pickle=True)
    assert shims.read_weights(w)["conv"]["weights"].shape == (2, 2)
    monkeypatch.setattr(shims, "_ALLOWED_GLOBALS", None)  # `in None`: a TypeError inside find_class
    with pytest.raises(CallbackBug) as e:
        shims.read_weights(w)
    assert isinstance(e.value.__cause__, TypeError)


def test_cli_subprocess_a_bug_is_exit_3_with_the_traceback_in_tmpdir(tmp_path):
    """`python -m convert` as the entry point runs it (exit_now(main())), with one tfport function patched to
    raise: exit 3, one stderr line, nothing on stdout, the traceback file under $TMPDIR holding the frame."""
    d = tmp_path / "tmp"
    d.mkdir()
    code = ("import convert.pipeline as p\n"
            "def injected_bug(*a, **k):\n    raise RuntimeError('deliberate bug injected by the test')\n"
            "p.convert = injected_bug\n"
            "from convert.cli import main\nfrom convert.runtime.fast_exit import exit_now\n"
            f"exit_now(main(['tf2torch', {str(tmp_path / 'm.pb')!r}, '-o', {str(tmp_path / 'p.pth')!r}]))\n")
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "TMPDIR": str(d), "TF_CPP_MIN_LOG_LEVEL": "3"}
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 3, (proc.stdout, proc.stderr)
    assert proc.stdout == ""
    path = _one_bug_line(proc.stderr, d, "in injected_bug")
    assert "RuntimeError: deliberate bug injected by the test" in proc.stderr
    assert 'convert/cli.py", line' in path.read_text()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tmp"]  # no output, no traceback beside it
