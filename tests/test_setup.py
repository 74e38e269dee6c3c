"""README "Set-up": where the scripts' virtualenv lives, that an existing one is reused as it is, and the
pinned set the suite runs on."""

from __future__ import annotations

import hashlib
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

# README: "torch 2.14.1 + torchvision 0.29.1, tensorflow-cpu 2.21.0, tf-keras 2.21.0, tf2onnx 1.17.0, onnx,
# onnxruntime, onnx2torch, mmdnn 0.3.1"
PINNED = {"torch": "2.14.1", "torchvision": "0.29.1", "tensorflow-cpu": "2.21.0", "tf-keras": "2.21.0",
          "tf2onnx": "1.17.0", "mmdnn": "0.3.1"}
UNPINNED_IN_README = ("onnx", "onnxruntime", "onnx2torch")


def _fake_venv(folder: Path) -> Path:
    """A virtualenv _venv.sh takes as complete: bin/python and the .complete marker (nothing is installed)."""
    (folder / "bin").mkdir(parents=True)
    (folder / "bin" / "python").symlink_to(sys.executable)
    (folder / ".complete").touch()
    return folder


def _sourced(home: Path, **env: str) -> dict[str, str]:
    """What `source scripts/_venv.sh` leaves: VENV, PY, PYTHONPATH."""
    script = 'source scripts/_venv.sh && printf "%s\\n%s\\n%s\\n" "$VENV" "$PY" "$PYTHONPATH"'
    base = {"HOME": str(home), "PATH": "/usr/bin:/bin"}  # no TFPORT_VENV, no XDG_CACHE_HOME unless given
    proc = subprocess.run(["bash", "-c", script], cwd=ROOT, env={**base, **env}, capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "setting up virtualenv" not in proc.stderr  # an existing, complete venv is reused, not reinstalled
    venv, py, pythonpath = proc.stdout.splitlines()
    return {"VENV": venv, "PY": py, "PYTHONPATH": pythonpath}


def test_venv_is_outside_the_clone_keyed_by_the_requirements(tmp_path):
    key = hashlib.sha256((ROOT / "requirements.txt").read_bytes() + (ROOT / "requirements.lock").read_bytes()
                         ).hexdigest()[:12]
    venv = _fake_venv(tmp_path / ".cache" / "tfport" / "venvs" / key)
    got = _sourced(tmp_path)
    assert got["VENV"] == str(venv) and got["PY"] == str(venv / "bin" / "python")
    assert not got["VENV"].startswith(str(ROOT))
    assert got["PYTHONPATH"].split(":")[0] == str(ROOT)  # the clone on PYTHONPATH, as the README says


def test_tfport_venv_chooses_another_place(tmp_path):
    venv = _fake_venv(tmp_path / "elsewhere")
    assert _sourced(tmp_path, TFPORT_VENV=str(venv))["PY"] == str(venv / "bin" / "python")


def _pins() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if "==" in line:
            name, version = line.split("==")
            pins[name.strip().lower()] = version.strip()
    return pins


@pytest.mark.parametrize("package,version", list(PINNED.items()))
def test_the_readme_versions_are_pinned_and_installed(package, version):
    from importlib.metadata import version as installed

    assert _pins()[package] == version
    assert installed(package).split("+")[0] == version


def test_the_rest_of_the_set_and_python():
    from importlib.metadata import version as installed

    pins = _pins()
    assert all(p in pins and installed(p) == pins[p] for p in UNPINNED_IN_README)
    assert sys.version_info[:2] == (3, 11)
    assert installed("protobuf").split(".")[0] == "7"  # "MMdnn 0.3.1 runs under ... protobuf 7"


@pytest.mark.parametrize("script", ["demo", "test", "ci_parity_gate", "fetch_pretrained", "reproduce_seed_table",
                                    "fuzz"])
def test_every_script_sets_up_or_reuses_the_venv(script):
    text = (ROOT / "scripts" / script).read_text()
    assert re.search(r'^source "\$\(dirname "\$(\{BASH_SOURCE\[0\]\}|0)"\)/_venv\.sh"$', text, re.MULTILINE), script


def test_scripts_test_runs_the_whole_suite():
    last = (ROOT / "scripts" / "test").read_text().strip().splitlines()[-1]
    # from the clone's root: every test, unless narrowed, on the workers counted above it
    assert last == 'exec "$PY" -m pytest -q --durations=15 -n "$WORKERS" --dist loadfile "$@"'


def test_the_files_sharing_session_fixtures_are_one_unit_and_exist_once_each():
    """tests/conftest.py SHARED_FIXTURES sends files whose session fixtures build the same conversions to one
    worker: a file renamed or listed twice would silently fall back to a unit of its own."""
    from tests.conftest import SHARED_FIXTURES, _unit

    files = [f for group in SHARED_FIXTURES.values() for f in group]
    assert len(files) == len(set(files))
    assert all((ROOT / "tests" / f).is_file() for f in files), [f for f in files if not (ROOT / "tests" / f).is_file()]
    assert _unit("tests/test_quiet.py::test_verbose_shows_the_chatter[parity]") == "mobilenet_v2-a0.35-96"
    assert _unit("tests/parity/test_faults.py::test_x") == _unit("tests/convert/test_tf2torch.py::test_y[a]")
    assert _unit("tests/test_layout.py::test_z") == "tests/test_layout.py"


def test_xdist_schedules_the_files_sharing_session_fixtures_as_one_unit():
    """The scheduler scripts/test's `--dist loadfile` gets (tests/conftest.py) puts the files of a SHARED_FIXTURES
    entry in one work unit, and every other file in its own, as xdist's loadfile does."""
    import types

    from tests.conftest import pytest_xdist_make_scheduler

    ids = ["tests/test_quiet.py::a", "tests/test_quiet.py::b", "tests/convert/test_bug_exit.py::c",
           "tests/test_layout.py::d", "tests/convert/test_zoo.py::e[x]", "tests/reliability/test_fuzz.py::f"]
    options = {"dist": "loadfile", "tx": ["2*popen"]}
    config = types.SimpleNamespace(getvalue=options.get, option=types.SimpleNamespace(loadscopereorder=True))
    sched = pytest_xdist_make_scheduler(config, None)

    class Node:  # what the scheduler calls on a worker
        def __init__(self, name: str) -> None:
            self.gateway, self.sent, self.shutting_down = types.SimpleNamespace(id=name), [], False

        def send_runtest_some(self, indices) -> None:
            self.sent.extend(indices)

        def shutdown(self) -> None:
            pass

    nodes = [Node("gw0"), Node("gw1")]
    for node in nodes:
        sched.add_node(node)
        sched.add_node_collection(node, ids)
    sched.schedule()
    units = {tuple(sorted(work)) for work in sched.workqueue.values()}
    units |= {tuple(sorted(work)) for assigned in sched.assigned_work.values() for work in assigned.values()}
    assert units == {(ids[2], ids[0], ids[1]), (ids[3],), (ids[4], ids[5])}, units


def _lock_lines() -> list[str]:
    return [line for line in (ROOT / "requirements.lock").read_text().splitlines()
            if line.strip() and not line.startswith("#")]


def _lock() -> dict[str, str]:
    """The lock's packages and versions, pip itself aside (a venv's installer, not an install of the project)."""
    pins = {}
    for line in _lock_lines():
        name, version = line.split()[0].split("==")
        if _norm(name) != "pip":
            pins[_norm(name)] = version.strip()
    return pins


def test_every_locked_file_is_pinned_by_its_sha256():
    """Issue 27: installed with hashes required: one `--hash=sha256:` of 64 hex digits per package, pip too."""
    lines = _lock_lines()
    bad = [line for line in lines if not re.fullmatch(r"[A-Za-z0-9_.\-]+==\S+ --hash=sha256:[0-9a-f]{64}", line)]
    assert not bad and any(line.startswith("pip==") for line in lines), bad
    venv_sh = (ROOT / "scripts" / "_venv.sh").read_text()
    assert venv_sh.count("--require-hashes --no-deps") == 2 and '-r "$ROOT/requirements.lock"' in venv_sh


def _norm(name: str) -> str:
    """PEP 503 names: tf_keras, tf-keras and TF.Keras are one package."""
    return re.sub(r"[-_.]+", "-", name).lower().strip()


def test_the_lock_holds_every_top_level_pin_at_its_version():
    """requirements.txt and the lock cannot drift: each top-level pin is in the lock, at the same version."""
    lock = _lock()
    assert len(lock) >= 70  # the transitive set too, not only the top level
    drift = {name: (version, lock.get(_norm(name))) for name, version in _pins().items()
             if lock.get(_norm(name)) != version}
    assert not drift, f"requirements.txt vs requirements.lock: {drift}; run scripts/lock"


def test_pyproject_pins_what_requirements_pins():
    """pyproject.toml's dependencies (+ the dev extra + the build backend) are requirements.txt's pins, nothing
    more or less."""
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    build = tomllib.loads((ROOT / "pyproject.toml").read_text())["build-system"]["requires"]
    declared = [*project["dependencies"], *project["optional-dependencies"]["dev"], *build]
    pins = {_norm(d.split("==")[0]): d.split("==")[1] for d in declared}
    assert pins == {_norm(k): v for k, v in _pins().items()}


@pytest.mark.skipif(not (Path(sys.prefix) / ".complete").exists(), reason="not running in a scripts/_venv.sh venv")
def test_the_venv_is_the_lock():
    """The environment the suite runs in is exactly the lock: no package missing, extra or at another version."""
    import sysconfig
    from importlib.metadata import distributions

    # Only what is installed in the venv's site-packages: once setuptools is imported (torch, tf2onnx do)
    # its vendored packages' dist-info under setuptools/_vendor join sys.path, and they are not installs.
    site = sorted({sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]})
    installed = {_norm(d.metadata["Name"]): d.version for d in distributions(path=site)}
    installed = {k: v for k, v in installed.items() if k != "pip"}  # setuptools is locked: `pip wheel .` uses it
    lock = _lock()
    assert installed == lock, {k: (installed.get(k), lock.get(k)) for k in installed.keys() | lock.keys()
                               if installed.get(k) != lock.get(k)}
