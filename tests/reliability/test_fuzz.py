"""Fuzzing the readers: mutated GraphDefs, checkpoints, metadata and MMdnn weights files.

Whatever the bytes, the outcome is success or bad input: a TfportError with exit code 2 and one line.
Anything else is what a CLI reports as a bug (exit 3) and fails the example — including a bug of tfport's
that a library called back (CallbackBug), which the readers' wrappers no longer turn into "corrupt file".
CI runs a bounded number of examples; `scripts/fuzz` runs the same tests with many more
(HYPOTHESIS_PROFILE=long).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
from collections.abc import Iterator

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from convert.port import checkpoint
from convert.runtime.errors import TfportError

settings.register_profile("ci", max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
settings.register_profile("long", max_examples=int(os.environ.get("TFPORT_FUZZ_EXAMPLES", "1500")), deadline=None,
                          suppress_health_check=list(HealthCheck))
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

_CHECKPOINT: dict[str, bytes] = {}  # large inputs, kept out of hypothesis' example reports
mutations = st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.integers(0, 255)), min_size=1, max_size=40)


@contextlib.contextmanager
def bad_input_or_success() -> Iterator[None]:
    """The only outcomes a fuzz example may have: none (success) or exit 2 in one line. Any other exception
    propagates, and the example fails, as exit 3 would."""
    try:
        yield
    except TfportError as e:
        assert e.exit_code == 2 and "\n" not in str(e), (e.exit_code, str(e))


def _mutate(data: bytes, muts, cut: float | None) -> bytes:
    b = bytearray(data)
    for pos, val in muts:
        b[int(pos * len(b))] = val
    return bytes(b[: int(cut * len(b))] if cut is not None else b)


@pytest.fixture(scope="module")
def small_graph(samples):
    _CHECKPOINT["graph"] = samples.get("slim_pb", 0.35, (96, 96)).read_bytes()
    return "graph"


@given(muts=mutations, cut=st.one_of(st.none(), st.floats(0, 1)))
def test_graph_reader(small_graph, muts, cut):
    from convert.readers.tf_graph import parse_graph_def, read_graph

    data = _mutate(_CHECKPOINT[small_graph], muts, cut)
    with bad_input_or_success():
        gd = parse_graph_def(data, "fuzz.pb")
        read_graph(gd, "fuzz.pb")


@pytest.fixture(scope="module")
def good_checkpoint(converted):
    """Bytes kept out of the test's arguments, so a failing example's report stays readable."""
    _, ported, _ = converted(("keras2_pb", 0.35, (96, 96)))
    _CHECKPOINT["bytes"] = ported.read_bytes()
    return "bytes"


@given(muts=mutations, cut=st.one_of(st.none(), st.floats(0, 1)))
def test_checkpoint_bytes(good_checkpoint, tmp_path_factory, muts, cut):
    p = tmp_path_factory.mktemp("fz") / "p.pth"
    p.write_bytes(_mutate(_CHECKPOINT[good_checkpoint], muts, cut))
    with bad_input_or_success():
        checkpoint.load_module(p)


json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
                           lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=6), c, max_size=3),
                           max_leaves=6)


@given(key=st.sampled_from(["alpha", "num_classes", "padding", "bn", "input_range", "head"]), value=json_values,
       drop=st.lists(st.integers(0, 400), max_size=3), reshape=st.booleans())
def test_checkpoint_structure(good_checkpoint, tmp_path_factory, key, value, drop, reshape):
    """Mutated metadata values, missing state-dict keys, wrong shapes."""
    obj = torch.load(io.BytesIO(_CHECKPOINT[good_checkpoint]), weights_only=True)
    meta = json.loads(obj["metadata"])
    meta[key] = value
    obj["metadata"] = json.dumps(meta)
    keys = list(obj["state_dict"])
    for i in drop:
        obj["state_dict"].pop(keys[i % len(keys)], None)
    if reshape:
        k = keys[len(drop) % len(keys)]
        obj["state_dict"][k] = torch.zeros(3, 1)
    p = tmp_path_factory.mktemp("fz") / "p.pth"
    torch.save(obj, p)
    with bad_input_or_success():
        checkpoint.load_module(p)


@pytest.fixture(scope="module")
def mmdnn_weights(tmp_path_factory):
    p = tmp_path_factory.mktemp("w") / "w.npy"
    np.save(p, np.array({"conv": {"weights": np.ones((4, 3, 3, 3), np.float32)}, "bn": {"mean": np.zeros(4)}},
                        dtype=object), allow_pickle=True)
    return p.read_bytes()


@given(muts=mutations, cut=st.one_of(st.none(), st.floats(0, 1)))
def test_mmdnn_weights_reader(mmdnn_weights, tmp_path_factory, muts, cut):
    from convert.compat.mmdnn import read_weights

    p = tmp_path_factory.mktemp("fz") / "w.npy"
    p.write_bytes(_mutate(mmdnn_weights, muts, cut))
    with bad_input_or_success():
        read_weights(p)


def test_a_bug_behind_a_reader_fails_its_target(mmdnn_weights, tmp_path, monkeypatch):
    """A reader's own bug is not bad input: the target fails on it. Here the restricted unpickler's lookup
    (tfport's code, called back by pickle) breaks; before, read_weights' wrapper reported it as "corrupt MMdnn
    weights file" and every example of the target above passed."""
    import convert.compat.mmdnn as shims
    from convert.runtime.errors import CallbackBug

    p = tmp_path / "w.npy"
    p.write_bytes(mmdnn_weights)
    with bad_input_or_success():
        shims.read_weights(p)
    monkeypatch.setattr(shims, "_ALLOWED_GLOBALS", None)
    with pytest.raises(CallbackBug), bad_input_or_success():
        shims.read_weights(p)


@pytest.fixture(scope="module")
def payload_files(tmp_path_factory):
    """A tf_keras Lambda payload .h5 and a Keras 3 one in .keras: bytes mutated below."""
    from tests.zoo.payloads import write

    d = tmp_path_factory.mktemp("fuzz_payloads")
    marker = d / "PWNED"
    for version, fmt in (("k2", "h5"), ("k3", "keras")):
        _CHECKPOINT[f"payload.{fmt}"] = write("lambda", version, fmt, d / f"lambda_{version}", marker).read_bytes()
    return d, marker


@given(muts=mutations, cut=st.one_of(st.none(), st.floats(0, 1)), fmt=st.sampled_from(["h5", "keras"]))
@example(muts=[(1e-05, 1)], cut=None, fmt="h5")  # CI found it: h5py's link visit raised RuntimeError, not OSError
def test_model_files_carrying_code(payload_files, tmp_path_factory, muts, cut, fmt):
    """Whatever the bytes of a Lambda-carrying model file: only TfportError escapes, and its code never runs
    (the config is read as data first; a damaged file is refused, never half-loaded into running code)."""
    from convert.sources import load_source

    d, marker = payload_files
    path = tmp_path_factory.mktemp("fz") / f"model.{fmt}"
    path.write_bytes(_mutate(_CHECKPOINT[f"payload.{fmt}"], muts, cut))
    with bad_input_or_success():
        load_source(path)
    assert not marker.exists(), "the file's code ran"


@pytest.fixture(scope="module")
def hostile_files(samples, tmp_path_factory):
    """A frozen graph whose output waits on a WriteFile node, and a zip-bomb .keras (issue 21): bytes mutated below."""
    from tests.zoo import hostile

    d = tmp_path_factory.mktemp("fuzz_hostile")
    marker = d / "PWNED"
    good = samples.get("keras2_pb", 0.35)
    _CHECKPOINT["hostile.pb"] = hostile.write_file_pb(d / "telemetry.pb", marker, good).read_bytes()
    _CHECKPOINT["hostile.keras"] = hostile.zip_bomb_keras(samples.get("keras3", 0.35), d / "bomb.keras",
                                                          size=256 << 20).read_bytes()
    return d, marker


@given(muts=mutations, cut=st.one_of(st.none(), st.floats(0, 1)), fmt=st.sampled_from(["pb", "keras"]))
def test_hostile_graphs_and_archives(hostile_files, tmp_path_factory, muts, cut, fmt):
    """Whatever the bytes of a WriteFile graph or a zip bomb: only TfportError escapes; a graph that loads is run
    as the TF reference is, and its WriteFile never runs (a mutated op name is outside the allowlist too)."""
    from convert.model.probe import probe_inputs
    from convert.sources import load_source

    d, marker = hostile_files
    path = tmp_path_factory.mktemp("fz") / f"model.{fmt}"
    path.write_bytes(_mutate(_CHECKPOINT[f"hostile.{fmt}"], muts, cut))
    with bad_input_or_success():
        source = load_source(path)
        runner = source.runner()
        try:
            runner.run(probe_inputs(1, source.spec.input_shape[:2], source.spec.input_range), [source.info.output])
        finally:
            runner.close()
    assert not marker.exists(), "the graph's WriteFile ran"


def test_ci_runs_15_examples_a_target_and_scripts_fuzz_1500():
    """README: CI runs 15 examples per target; scripts/fuzz runs 1,500 (the `long` profile, unless
    TFPORT_FUZZ_EXAMPLES says otherwise)."""
    from tests.conftest import ROOT

    assert settings.get_profile("ci").max_examples == 15
    assert "HYPOTHESIS_PROFILE=long" in (ROOT / "scripts" / "fuzz").read_text()
    if "TFPORT_FUZZ_EXAMPLES" not in os.environ:
        assert settings.get_profile("long").max_examples == 1500
