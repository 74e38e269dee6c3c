"""README "Install": `pip install .` (here: the wheel `pip wheel` builds) gives packages that work from any
folder, with no clone on sys.path: `python -m convert tf2torch`, `parity check`, `backbones list` and the
Python API, in a fresh virtualenv layered on the project's (torch and TF are not downloaded again)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import time
import zipfile
from pathlib import Path

import pytest

from tests.conftest import ROOT

PACKAGES = ("convert", "parity", "backbones")


def _run(cmd: list[str], cwd: Path, env: dict[str, str], timeout: int = 900) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{cmd}: exit {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """(python of a fresh venv with the wheel installed, a work folder outside the clone, env without
    PYTHONPATH). The wheel is built from a copy of the tree, so the clone gets no build/ or *.egg-info."""
    base = tmp_path_factory.mktemp("install")
    src = base / "src"
    src.mkdir()
    for name in PACKAGES:
        shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    start = time.monotonic()
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(base / "dist"),
          str(src)], base, env)
    built = time.monotonic() - start
    (wheel,) = (base / "dist").glob("tfport-*.whl")
    venv = base / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], base, env)
    py = venv / "bin" / "python"
    site = Path(_run([str(py), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"], base, env)
                .stdout.strip())
    (site / "project_venv.pth").write_text(sysconfig.get_path("purelib") + "\n")  # torch, TF, ... from the project's
    _run([sys.executable, "-m", "pip", "--python", str(py), "install", "--no-deps", "-q", str(wheel)], base, env)
    print(f"wheel built in {built:.1f} s, built and installed in {time.monotonic() - start:.1f} s")
    work = base / "work"
    work.mkdir()
    return py, work, env, wheel


def test_the_wheel_holds_every_subpackage_and_no_tests(installed):
    *_, wheel = installed
    names = zipfile.ZipFile(wheel).namelist()
    tree = {str(p.relative_to(ROOT)) for name in PACKAGES for ext in ("*.py", "*.c") for p in (ROOT / name).rglob(ext)}
    assert "parity/native/fused_sums.c" in tree  # parity's kernel source ships, to be compiled where installed
    assert tree <= set(names), sorted(tree - set(names))
    assert not any(n.startswith("tests/") for n in names)


def test_installed_packages_load_from_the_venv_not_the_clone(installed):
    py, work, env, _ = installed
    out = _run([str(py), "-c", "import convert, parity, backbones; print(convert.__file__, parity.__file__, "
                "backbones.__file__)"], work, env).stdout.split()
    assert len(out) == 3 and all(Path(f).is_relative_to(py.parent.parent) for f in out), out
    assert not any(Path(f).is_relative_to(ROOT) for f in out)


def test_the_clis_and_the_api_run_from_outside_the_clone(installed, samples):
    py, work, env, _ = installed
    # the session's sample (what `convert sample --alpha 0.35 --size 96x96 --forms keras2_h5` writes: its CLI runs
    # in tests/test_quiet.py); each package's entry point runs here, from the wheel: convert, parity, backbones
    sample = work / "mobilenet_v2_a0.35_96.h5"
    shutil.copyfile(samples.get("keras2_h5", 0.35, (96, 96)), sample)
    converted = _run([str(py), "-m", "convert", "tf2torch", str(sample), "-o", "ported.pth"], work, env)
    assert "PASSED: wrote ported.pth" in converted.stdout and (work / "ported.pth").is_file()
    checked = _run([str(py), "-m", "parity", "check", "ported.pth", "--probes", "2"], work, env)
    assert "PASSED: " in checked.stdout and (work / "ported.pth.parity.json").is_file()
    _run([str(py), "-m", "backbones", "list"], work, env)
    api = ("import convert, parity, backbones\n"
           f"port = convert.tf2torch({str(sample)!r}, probes=4)\n"
           "report = parity.check(port, probes=2, against=('tf',))\n"
           "assert report, str(report)\n"
           "print(str(report))\n"
           "assert type(backbones.load(port.path)) is type(port.module)\n")
    out = _run([str(py), "-c", api], work, env).stdout
    assert out.strip().splitlines()[-1].startswith("PASSED: ")
    assert not (ROOT / "build").exists() and not list(ROOT.glob("*.egg-info"))
