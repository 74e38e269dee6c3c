"""Every corpus entry: the right exit code, one `error:` line naming the file, no payload run, no output.

Run in-process through each CLI's `main(argv)` (TF and torch load once), which is what `python -m`
calls; the subprocess path is covered by tests/convert/test_bad_input.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.reliability import corpus

CLIS = {"convert": "convert.cli", "parity": "parity.cli"}


@pytest.fixture(scope="module")
def built(samples, converted, tmp_path_factory):
    import tf_keras

    from convert.sample import frozen_graph_def

    d = tmp_path_factory.mktemp("corpus")
    _, ported, _ = converted(("keras2_h5", 1.0, (96, 96)))
    tf_keras.utils.set_random_seed(0)
    not_v2 = {}
    for kind, model in {
        "mobilenet_v1": lambda: tf_keras.applications.MobileNet(input_shape=(96, 96, 3), alpha=0.25, weights=None),
        # ResNet50 is a registered architecture (convert.arch.resnet50): its v2 (pre-activation, the same 53
        # convs) is not, and must not pass for it
        "resnet50v2": lambda: tf_keras.applications.ResNet50V2(input_shape=(32, 32, 3), weights=None,
                                                               include_top=False),
    }.items():
        (d / f"{kind}.pb").write_bytes(frozen_graph_def(model()).SerializeToString())
        not_v2[kind] = d / f"{kind}.pb"
    entries = corpus.build(d, samples.get("slim_pb"), samples.get("keras2_h5"), samples.get("keras3"), ported, not_v2)
    return d, entries, samples.get("slim_pb"), ported


def _entries():
    # names only, so the test ids exist before the corpus is built
    return [
        "convert:empty.pb",
        "convert:random.pb",
        "convert:truncated.pb",
        "convert:empty.h5",
        "convert:random.h5",
        "convert:truncated.h5",
        "convert:random.keras",
        "convert:truncated.keras",
        "convert:random.onnx",
        "convert:random.npy",
        "convert:mobilenet_v1",
        "convert:resnet50v2",
        "convert:folder",
        "convert:dangling-link",
        "convert:lambda_k2.h5",
        "convert:lambda_k3.keras",
        "convert:custom_class_k2.keras",
        "convert:custom_class_k3.h5",
        "repair:lambda_k2.h5",
        "convert:telemetry.pb",
        "convert:if_branch.pb",
        "convert:telemetry_savedmodel",
        "convert:flex.tflite",
        "convert:bomb.keras",
        "convert:slip.keras",
        "convert:linked.h5",
        "convert:missing-out-folder",
        "convert:read-only-fs",
        "parity:empty.pth",
        "parity:random.pth",
        "parity:truncated.pth",
        "parity:payload.pth",
        "parity:payload_plain_pickle.pth",
        "parity:nan.pth",
        "parity:inf.pth",
        "parity:wrong_shape.pth",
        "parity:bad_metadata.pth",
        "parity:random.onnx",
        "parity:random.npy",
        "parity:external_data.onnx",
        "repair:mmdnn_payload",
        "repair:mmdnn_random_npy",
        "parity:pickled_model.pth",
        "parity:missing-source",
        "parity:json-in-missing-folder",
    ]


CORPUS_SIZE = len(_entries())


def test_corpus_is_complete(built):
    assert sorted(e.name for e in built[1]) == sorted(_entries())


@pytest.mark.parametrize("name", _entries())
def test_entry(built, name, tmp_path, capsys):
    import importlib

    d, entries, src, ported = built
    (entry,) = [e for e in entries if e.name == name]
    out = tmp_path / "out"
    out.mkdir()
    argv = [a.format(d=d, src=src, out=out, ported=ported) for a in entry.argv]
    cli = importlib.import_module(CLIS[argv[0]])
    beside = (d, src.parent, ported.parent)  # where a parity run could leave a certificate or report
    before = {p for folder in beside for p in folder.rglob("*")}
    code = cli.main(argv[1:])
    err = capsys.readouterr().err
    assert code == entry.code, err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, err
    assert entry.mentions.lower() in lines[0].lower()
    # the line names the file at fault (for MMdnn's code, it may be the weights file beside it)
    assert (entry.names or Path(argv[2]).stem) in lines[0], lines[0]
    assert not list(out.rglob("*")), "partial output left behind"
    # parity entries write nothing of their own into {out}: what they could leave lies beside their inputs
    left = {p for folder in beside for p in folder.rglob("*")} - before
    assert not left, f"left behind: {sorted(map(str, left))}"
    assert not any(d.glob("PWNED*")), "a pickle payload ran"
