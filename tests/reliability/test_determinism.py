"""Same inputs and seed give a byte-identical parity report (the report carries no timestamps)."""

from __future__ import annotations

from parity.cli import main


def test_parity_json_is_byte_identical(converted, tmp_path):
    _, ported, _ = converted(("keras2_h5", 1.0, (96, 96)))
    for name in ("a.json", "b.json"):
        assert main(["check", str(ported), "--probes", "4", "--seed", "3", "--json", str(tmp_path / name)]) == 0
    assert (tmp_path / "a.json").read_bytes() == (tmp_path / "b.json").read_bytes()
