"""Imports point down the layers, and the layer is the path: the contract is import-linter's
layers contract in pyproject.toml ([tool.importlinter]), run here with `lint-imports` over every
import of `engagement`, `privacy` and `dashboard`, also one inside a function. The checks below
prove that it can fail, that every module of `engagement` sits in a layer (import-linter itself
passes over a module in no layer), and that docs/architecture.md lists the same layers."""

from __future__ import annotations

import ast
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("engagement", "privacy", "dashboard")
# The venv's own executable (the dev extra installs import-linter), not whichever is on PATH.
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def importlinter_config() -> dict:
    with open(ROOT / "pyproject.toml", "rb") as fh:
        return tomllib.load(fh)["tool"]["importlinter"]


def contract_layers() -> list[list[str]]:
    """The layers contract, top to bottom: each layer as the list of its sibling modules."""
    (contract,) = [c for c in importlinter_config()["contracts"] if c["type"] == "layers"]
    return [[name.strip() for name in re.split(r"[|:]", layer)] for layer in contract["layers"]]


def lint_imports(cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([str(LINT_IMPORTS), "--no-cache"], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=300)


def test_the_contracts_hold():
    assert importlinter_config()["root_packages"] == list(PACKAGES)
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


# Imports that point up a layer, each added to a copy of the packages: (module, line to add,
# the pair of layers lint-imports must name).
VIOLATIONS = (
    ("engagement/core/records.py", "def _up():\n    from engagement.cli import main\n", ("engagement.core", "engagement.cli")),
    ("engagement/vision/geometry.py", "import privacy.consent\n", ("engagement.vision", "privacy")),
    ("privacy/audit.py", "def _up():\n    from engagement.app import export\n", ("privacy", "engagement.app")),
    ("engagement/app/reaper.py", "from dashboard import queries\n", ("engagement.app", "dashboard")),
    ("dashboard/charts.py", "from engagement.cli import common\n", ("dashboard", "engagement.cli")),
)


def test_the_contract_finds_imports_up_the_layers(tmp_path):
    """The same contract on a copy of the packages with an import up a layer added at each level
    (one inside a function) fails and names each pair of layers."""
    for package in PACKAGES:
        shutil.copytree(ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    for path, line, _ in VIOLATIONS:
        with open(tmp_path / path, "a", encoding="utf-8") as fh:
            fh.write("\n\n" + line)
    # The copy comes first on the path, ahead of the installed (editable) packages.
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    result = lint_imports(tmp_path, env)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Imports point down the layers BROKEN" in result.stdout
    for _, _, (importer, imported) in VIOLATIONS:
        assert f"{importer} is not allowed to import {imported}:" in result.stdout, result.stdout


def unplaced(children: list[str], layers: list[list[str]]) -> list[str]:
    """The modules and packages directly under `engagement` that are in no layer."""
    placed = {name for layer in layers for name in layer}
    return [child for child in children if child not in placed]


def engagement_children() -> list[str]:
    here = ROOT / "engagement"
    modules = [f"engagement.{p.stem}" for p in here.glob("*.py") if p.name != "__init__.py"]
    packages = [f"engagement.{p.name}" for p in here.iterdir() if (p / "__init__.py").is_file()]
    return sorted(modules + packages)


def test_every_module_of_engagement_is_in_a_layer():
    """A new module or package directly under engagement/ belongs in a layer's folder (or is a new
    layer of the contract): import-linter does not check a module that is in no layer."""
    assert engagement_children(), "found nothing under engagement/"
    assert unplaced(engagement_children(), contract_layers()) == []


def test_the_check_finds_a_module_in_no_layer():
    layers = [["engagement.cli"], ["engagement.vision", "engagement.temporal"], ["engagement.core"]]
    assert unplaced(["engagement.core", "engagement.temporal", "engagement.records"], layers) == ["engagement.records"]


def first_party_imports(source: str) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            found.append("." * node.level + (node.module or ""))
    return [name for name in found if name.startswith(".") or name.split(".")[0] in PACKAGES]


def test_the_engagement_package_itself_imports_nothing_of_the_project():
    # `engagement/__init__.py` is in no layer (every layer imports it, for __version__).
    assert first_party_imports((ROOT / "engagement" / "__init__.py").read_text(encoding="utf-8")) == []
    assert first_party_imports("def f():\n    from .core import store\n") == [".core"]


def documented_layers(markdown: str) -> list[list[str]]:
    """The `package` column of the table under `## Layers`, bottom layer first."""
    section = markdown.split("\n## Layers\n", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("|")]
    header = [cell.strip() for cell in rows[0].strip("|").split("|")]
    column = header.index("package")
    cells = [[cell.strip() for cell in row.strip("|").split("|")] for row in rows[2:]]
    return [re.findall(r"`([\w.]+)`", row[column]) for row in cells]


def test_the_architecture_page_lists_the_contract_layers():
    documented = documented_layers((ROOT / "docs" / "architecture.md").read_text(encoding="utf-8"))
    assert [sorted(layer) for layer in documented] == [sorted(layer) for layer in reversed(contract_layers())]


def test_the_table_check_sees_a_missing_layer():
    page = ("# A\n\n## Layers\n\n| layer | package | job |\n|---|---|---|\n| 1 | `engagement.core` | x |\n"
            "| 2 | `engagement.vision`, `engagement.temporal` | y |\n\n## Next\n| package |\n")
    assert documented_layers(page) == [["engagement.core"], ["engagement.vision", "engagement.temporal"]]
    with pytest.raises(AssertionError):
        assert documented_layers(page) == [sorted(layer) for layer in reversed(contract_layers())]
