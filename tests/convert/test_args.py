"""Every CLI argument is checked before any work starts: one line `error: ...`, exit 2, no traceback.

(`--probes 0` used to reach the conversion and end in numpy's `need at least one array to concatenate`.)"""

from __future__ import annotations

import pytest

CASES = {
    "tf2torch-probes-0": ("convert", ["tf2torch", "m.pb", "--probes", "0"], "--probes"),
    "tf2torch-probes-negative": ("convert", ["tf2torch", "m.pb", "--probes", "-2"], "--probes"),
    "tf2torch-probes-word": ("convert", ["tf2torch", "m.pb", "--probes", "many"], "--probes"),
    "tf2torch-seed-negative": ("convert", ["tf2torch", "m.pb", "--seed", "-1"], "--seed"),
    "sample-classes-0": ("convert", ["sample", "out", "--classes", "0"], "--classes"),
    "sample-seed-negative": ("convert", ["sample", "out", "--seed", "-5"], "--seed"),
    "parity-atol-negative": ("parity", ["check", "p.pth", "--atol", "-1e-5"], "--atol"),
    "parity-rtol-nan": ("parity", ["check", "p.pth", "--rtol", "nan"], "--rtol"),
    "parity-atol-inf": ("parity", ["check", "p.pth", "--atol", "inf"], "--atol"),
    "parity-probes-0": ("parity", ["check", "p.pth", "--probes", "0"], "--probes"),
    "parity-seed-negative": ("parity", ["check", "p.pth", "--seed", "-3"], "--seed"),
    "parity-unknown-option": ("parity", ["check", "p.pth", "--atoll", "1"], "--atoll"),
}


@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_bad_argument_is_one_line_before_any_work(case, capsys, tmp_path, monkeypatch):
    cli, argv, mentions = CASES[case]
    monkeypatch.chdir(tmp_path)  # nothing may be written, and the named files do not exist
    main = __import__(f"{cli}.cli", fromlist=["main"]).main
    with pytest.raises(SystemExit) as e:
        main(argv)
    out, err = capsys.readouterr()
    assert e.value.code == 2
    assert err.count("\n") == 1 and err.startswith("error: ") and mentions in err, err
    assert "Traceback" not in err and not out
    assert list(tmp_path.iterdir()) == []
