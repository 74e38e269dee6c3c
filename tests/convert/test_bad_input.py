"""Bad input to `python -m convert tf2torch`: one line, exit 2, no traceback, no output left behind."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.conftest import assert_one_line_error, run_cli


def _not_mobilenet_v2(kind: str, path: Path) -> None:
    """Frozen graphs of well-known backbones tfport does not register, from Keras's own definitions (random weights)."""
    import tf_keras

    from convert.sample import frozen_graph_def

    tf_keras.utils.set_random_seed(0)
    if kind == "mobilenet_v1":
        model = tf_keras.applications.MobileNet(input_shape=(96, 96, 3), alpha=0.25, weights=None)
    else:
        model = tf_keras.applications.InceptionV3(input_shape=(75, 75, 3), weights=None)
    path.write_bytes(frozen_graph_def(model).SerializeToString())


@pytest.fixture(scope="module")
def bad_inputs(tmp_path_factory, samples):
    d = tmp_path_factory.mktemp("bad")
    good = samples.get("slim_pb", 1.0, (96, 96)).read_bytes()
    (d / "truncated.pb").write_bytes(good[: len(good) // 3])
    (d / "random.pb").write_bytes(os.urandom(4096))
    (d / "empty.pb").write_bytes(b"")
    (d / "folder.pb").mkdir()
    (d / "not_a_model.h5").write_bytes(b"\x89HDF\r\n\x1a\n" + os.urandom(512))
    (d / "corrupt.keras").write_bytes(b"PK\x03\x04" + os.urandom(512))
    for kind in ("mobilenet_v1", "inception_v3"):  # ResNet50 is registered (tests/convert/test_resnet50.py)
        _not_mobilenet_v2(kind, d / f"{kind}.pb")
    return d


CASES = {
    "truncated.pb": "",
    "random.pb": "",
    "empty.pb": "empty",
    "folder.pb": "not a SavedModel",
    "not_a_model.h5": "Keras",
    "corrupt.keras": ".keras",
    "mobilenet_v1.pb": "not a MobileNetV2",
    "inception_v3.pb": "",
    "missing.pb": "no such file",
}


@pytest.mark.parametrize(("name", "mentions"), list(CASES.items()), ids=list(CASES))
def test_bad_source(bad_inputs, tmp_path, name, mentions):
    out = tmp_path / "out"
    out.mkdir()
    proc = run_cli("convert", "tf2torch", str(bad_inputs / name), "-o", str(out / "ported.pth"))
    line = assert_one_line_error(proc, 2, mentions)
    assert name in line
    assert list(out.iterdir()) == []


def test_output_folder_missing(samples, tmp_path):
    proc = run_cli("convert", "tf2torch", str(samples.get("slim_pb")), "-o", str(tmp_path / "nope" / "p.pth"))
    assert_one_line_error(proc, 2, "does not exist")


def test_usage_error_exit_2():
    proc = run_cli("convert", "tf2torch")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
