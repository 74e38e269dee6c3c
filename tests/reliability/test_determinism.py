"""Same inputs and seed give a byte-identical parity report (the report carries no timestamps)."""

from __future__ import annotations

from tests.conftest import run_cli


def test_parity_json_is_byte_identical(converted, tmp_path):
    _, ported, _ = converted(("keras2_h5", 1.0, (96, 96)))
    for name in ("a.json", "b.json"):
        proc = run_cli("parity", "check", str(ported), "--probes", "4", "--seed", "3", "--json", str(tmp_path / name))
        assert proc.returncode == 0, proc.stdout[-2000:]
    assert (tmp_path / "a.json").read_bytes() == (tmp_path / "b.json").read_bytes()
