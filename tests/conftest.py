"""Shared, session-scoped fixtures: sample models are generated once and reused by every test."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import convert  # noqa: F401  (import-order guard before torch/TF)

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
ROOT = Path(__file__).resolve().parents[1]


class Samples:
    """Generates sample models on demand, each (alpha, size, form) once per session."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._paths: dict[tuple, Path] = {}
        self._models: dict = {}

    def get(self, form: str, alpha: float = 1.0, size: tuple[int, int] = (96, 96)) -> Path:
        from convert.sample import SampleSpec, keras2_model, write_samples

        key = (form, alpha, size)
        if key not in self._paths:
            spec = SampleSpec(alpha=alpha, size=size)
            if spec not in self._models:  # one seeded Keras build serves every form of a spec
                self._models[spec] = keras2_model(spec)
            (path,) = write_samples(self.root / spec.tag, spec, (form,), k2=self._models[spec]).values()
            self._paths[key] = path
        return self._paths[key]


@pytest.fixture(scope="session")
def samples(tmp_path_factory) -> Samples:
    return Samples(tmp_path_factory.mktemp("samples"))


class Zoo:
    """Keras models as users save them (tests/zoo/keras_models.py), each built once and written once per form."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._built: dict = {}
        self._paths: dict = {}

    def get(self, kind: str, version: str, form: str, size: int = 96, alpha: float = 0.35):
        from tests.zoo import keras_models

        key = (kind, version, size, alpha)
        if version in ("tflite", "tf1", "tfmodule", "slim"):
            return self._special(kind, version, size, alpha)
        if key not in self._built:
            self._built[key] = keras_models.build(kind, version, size, alpha)
        if key + (form,) not in self._paths:
            target = self.root / f"{kind}_{version}_a{alpha:g}_{size}".replace(".", "p")  # no dot: with_suffix
            self._paths[key + (form,)] = keras_models.save(self._built[key].model, version, form, target)
        return self._paths[key + (form,)], self._built[key]

    def _special(self, kind: str, version: str, size: int, alpha: float):
        """Files no Keras `save` writes: the TFLite converter's, TF1-era graph mode's, TF-slim's, a tf.Module's."""
        from tests.zoo import keras_models

        key = (kind, version, size, alpha, "")
        if key in self._paths:
            return self._paths[key], self._built.get(key)
        target = self.root / f"{kind}_{version}_a{alpha:g}_{size}".replace(".", "p")
        if version == "tflite":
            from tests.zoo.tflite_writer import write_tflite

            written = write_tflite(target.with_suffix(".tflite"), alpha=alpha, size=size)
            self._built[key] = keras_models.Built(written.model, (-1.0, 1.0))
            self._paths[key] = written.path
        elif version in ("tf1", "slim"):  # graph mode is process-global: the writers run as scripts
            out = target.with_suffix(".pb")
            script = {"tf1": "tf1_keras.py", "slim": "slim_writer.py"}[version]
            extra = ["--bn-v1"] if kind == "bn_v1" else []
            proc = subprocess.run(
                [
                    sys.executable,
                    str(ROOT / "tests" / "zoo" / script),
                    str(out),
                    "--alpha",
                    str(alpha),
                    "--size",
                    str(size),
                    *extra,
                ],
                env=dict(os.environ, PYTHONPATH=str(ROOT)),
                capture_output=True,
                text=True,
                timeout=600,
            )
            assert proc.returncode == 0, proc.stderr[-2000:]
            self._built[key], self._paths[key] = None, out
        else:
            self._paths[key], self._built[key] = keras_models.tf_module_savedmodel(target, size, alpha)
        return self._paths[key], self._built[key]


@pytest.fixture(scope="session")
def zoo(tmp_path_factory) -> Zoo:
    return Zoo(tmp_path_factory.mktemp("zoo"))


@pytest.fixture(scope="session")
def zoo_ported(zoo, tmp_path_factory):
    """case -> (source path, Built, ported.pth, ConversionResult), each zoo file converted once per session
    (tests/convert/test_zoo.py, and the tolerance edges of tests/convert/test_tolerance_edges.py)."""
    from convert import pipeline

    root = tmp_path_factory.mktemp("zoo_ported")
    cache: dict = {}

    def get(case: tuple[str, str, str], via: str = "onnx"):
        if (case, via) not in cache:
            src, built = zoo.get(*case)
            out = root / ("-".join(map(str, case)) + "-" + via) / "ported.pth"
            out.parent.mkdir(exist_ok=True)
            cache[case, via] = (src, built, out, pipeline.convert(src, out, via=via, probes=16))
        return cache[case, via]

    return get


@pytest.fixture(scope="session")
def converted(samples, tmp_path_factory):
    """converted(case, via="onnx") -> (source path, ported.pth, ConversionResult), each converted once per
    session; via "mmdnn" or "both" also leaves MMdnn's emitted ported.mmdnn.py (+ .npy) beside the port."""
    from convert import pipeline

    out_root = tmp_path_factory.mktemp("ported")
    cache: dict[str, tuple] = {}

    def get(case, via: str = "onnx"):
        key = "-".join(map(str, case)).replace(" ", "").replace(",", "x").replace("(", "").replace(")", "")
        key += "" if via == "onnx" else f"-{via}"
        if key not in cache:
            form, alpha, size = case
            src = samples.get(form, alpha, size)
            (out_root / key).mkdir()
            out = out_root / key / "ported.pth"
            cache[key] = (src, out, pipeline.convert(src, out, via=via))
        return cache[key]

    return get


def run_cli(*args: str, cwd: Path | None = None, timeout: int = 600) -> subprocess.CompletedProcess:
    """Run `python -m ...` as a user would, from the repo on PYTHONPATH."""
    env = dict(os.environ, PYTHONPATH=str(ROOT), TF_CPP_MIN_LOG_LEVEL="3")
    return subprocess.run(
        [sys.executable, "-m", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )


def run_main(*args: str) -> subprocess.CompletedProcess:
    """What `run_cli` gives, from the CLI's own `main(argv)` in this process (what `python -m` calls after its
    start-up): TF and torch are imported once per test worker, where each `python -m` imports them again (~8 s
    of CPU here). For tests of what a command does; how a fresh process starts, prints and exits is tested
    through `run_cli` (tests/test_quiet.py, tests/convert/test_bad_input.py, tests/test_install.py, ...)."""
    import contextlib
    import importlib
    import io

    main = importlib.import_module(f"{args[0]}.cli").main
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(args[1:]))
    return subprocess.CompletedProcess([sys.executable, "-m", *args], code, out.getvalue(), err.getvalue())


def assert_one_line_error(proc: subprocess.CompletedProcess, code: int = 2, mentions: str = "") -> str:
    """Exit code, exactly one `error:` line, and no traceback."""
    assert proc.returncode == code, (proc.returncode, proc.stdout[-2000:], proc.stderr[-2000:])
    assert "Traceback" not in proc.stderr and "Traceback" not in proc.stdout
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, proc.stderr
    assert mentions in errors[0], errors[0]
    return errors[0]


# The exhaustive matrix: cases the default suite covers by a cheaper sibling (another form, size or path of
# the same code) run only with `scripts/test --exhaustive` (or TFPORT_EXHAUSTIVE=1), keeping the default
# suite under its 20 minutes on 2 cores while every form and architecture is still covered once.
def pytest_addoption(parser):
    parser.addoption("--exhaustive", action="store_true", help="also run the tests marked exhaustive")


def pytest_configure(config):
    config.addinivalue_line("markers", "exhaustive: a case the default suite covers by a cheaper sibling")


# Test files whose session fixtures build the same expensive values (a conversion, a sample SavedModel) run on
# one xdist worker: with one file per worker (scripts/test's `--dist loadfile`) two workers each converted and
# wrote them once (a run's log: 49 s of conversions and 72 s of sample writing done twice). Every other file is
# a unit of its own, as loadfile has it (its module fixtures built once).
SHARED_FIXTURES = {
    # converted(("keras2_h5", 1.0, (96, 96))) (also via both) and the a1 96x96 samples of every form
    "mobilenet_v2-a1-96": ("convert/test_tf2torch.py", "convert/test_bounds.py", "convert/test_sample.py",
                           "convert/test_sources.py", "convert/test_mmdnn.py", "parity/test_cli.py",
                           "parity/test_faults.py", "parity/test_streaming.py", "reliability/test_corpus.py",
                           "reliability/test_determinism.py", "test_ci_gate.py"),
    # converted(("keras2_h5", 0.35, (96, 96))) and its sample
    "mobilenet_v2-a0.35-96": ("convert/test_trust_code.py", "convert/test_safety.py", "convert/test_bug_exit.py",
                              "parity/test_report.py", "test_quiet.py", "test_end_to_end.py", "test_install.py"),
    # the zoo's files and ports, and converted(("keras2_pb", 0.35, (96, 96)))
    "zoo": ("convert/test_zoo.py", "convert/test_tolerance_edges.py", "convert/test_tflite_source.py",
            "parity/test_tolerance_edges.py", "reliability/test_fuzz.py"),
}
_UNIT_OF = {f"tests/{f}": unit for unit, files in SHARED_FIXTURES.items() for f in files}


def _unit(nodeid: str) -> str:
    """The scheduling unit of a test: its SHARED_FIXTURES entry, else its file (loadfile's own unit)."""
    where = nodeid.split("::")[0]
    return _UNIT_OF.get(where, where)


@pytest.hookimpl(optionalhook=True)  # xdist's hook: absent under `-p no:xdist`
def pytest_xdist_make_scheduler(config, log):
    """`--dist loadfile`, with the files of each SHARED_FIXTURES entry sent to one worker as one unit. (xdist's
    own `loadgroup` marks do nothing under pytest 9: xdist 3.8 renames `item._nodeid`, which pytest 9 no longer
    reads.) Other --dist modes: xdist's own scheduler."""
    if config.getvalue("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadFileScheduling

    class SharedFixtureScheduling(LoadFileScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return _unit(nodeid)

    return SharedFixtureScheduling(config, log)


def pytest_collection_modifyitems(config, items):
    if config.getoption("--exhaustive") or os.environ.get("TFPORT_EXHAUSTIVE") == "1":
        return
    skip = pytest.mark.skip(reason="exhaustive matrix: scripts/test --exhaustive")
    for item in items:
        if "exhaustive" in item.keywords:
            item.add_marker(skip)
