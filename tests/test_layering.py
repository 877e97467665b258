"""Imports point down the layers (docs: the target architecture): core <- vision, temporal <-
privacy <- application <- interface. Every import of every module of `engagement`, `privacy`
and `dashboard` is checked, also one inside a function; a module in no layer fails too, so a
new module is placed on the map when it is made."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("engagement", "privacy", "dashboard")
LAYER_NAMES = {1: "core", 2: "vision/temporal", 3: "privacy", 4: "application", 5: "interface"}
# (module or package, layer). The longest match wins; a package covers its submodules, except
# `engagement` itself, which is placed on its own so that a new module of it is never placed
# by default.
LAYER_MAP = (
    ("engagement", 1),
    ("engagement.errors", 1),
    ("engagement.config", 1),
    ("engagement.records", 1),
    ("engagement.schema", 1),
    ("engagement.store", 1),
    ("engagement.timeutil", 1),
    ("engagement.repositories", 1),
    ("engagement.migrations", 1),
    ("engagement.registry", 1),
    ("engagement.interrupts", 1),
    ("engagement.i18n", 1),
    ("engagement.vision", 2),
    ("engagement.temporal", 2),
    ("privacy", 3),
    ("engagement.pipeline", 4),
    ("engagement.run_writer", 4),
    ("engagement.periodic", 4),
    ("engagement.live", 4),
    ("engagement.batch", 4),
    ("engagement.export", 4),
    ("engagement.agenda", 4),
    ("engagement.reaper", 4),
    ("engagement.demo", 4),
    ("engagement.training", 4),
    ("engagement.cli", 5),
    ("engagement.commands", 5),
    ("privacy.cli", 5),
    ("dashboard", 5),
)
# Modules split from engagement.live (engagement.live_<part>) sit where it sits.
SPLIT_FROM = {"engagement.live_": "engagement.live"}


def layer_of(module: str) -> int | None:
    for prefix, parent in SPLIT_FROM.items():
        if module.startswith(prefix):
            module = parent
    best = None
    for name, layer in LAYER_MAP:
        covers = module == name or (module.startswith(name + ".") and name != "engagement")
        if covers and (best is None or len(name) > len(best[0])):
            best = (name, layer)
    return best[1] if best else None


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def first_party_modules() -> dict[str, Path]:
    return {module_name(p): p for pkg in PACKAGES for p in sorted((ROOT / pkg).rglob("*.py"))}


def imported_modules(module: str, source: str, known: set[str], is_package: bool = False) -> set[str]:
    """First-party modules `source` imports, at any depth: `from a import b` names a.b when that
    is a module, else a; relative imports are resolved against `module`."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = module.split(".")
                anchor = anchor[: len(anchor) - node.level + (1 if is_package else 0)]
                base = ".".join(anchor + ([base] if base else []))
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base for alias in node.names]
        else:
            continue
        for target in targets:
            if target.split(".")[0] not in PACKAGES:
                continue
            while target not in known and "." in target:
                target = target.rsplit(".", 1)[0]
            found.add(target)
    return found


def violations(modules: dict[str, str], known: set[str], packages: set[str] = frozenset()) -> list[str]:
    """`module -> imported (layer a -> layer b)` for each import that points up a layer, and each
    module that is in no layer."""
    out = []
    for module, source in sorted(modules.items()):
        here = layer_of(module)
        if here is None:
            out.append(f"{module} is in no layer: add it to LAYER_MAP")
            continue
        for target in sorted(imported_modules(module, source, known, module in packages)):
            there = layer_of(target)
            if there is not None and there > here:
                out.append(
                    f"{module} -> {target} (layer {here} {LAYER_NAMES[here]} -> layer {there} {LAYER_NAMES[there]})"
                )
    return out


def test_imports_point_down_the_layers():
    paths = first_party_modules()
    packages = {name for name, path in paths.items() if path.name == "__init__.py"}
    sources = {name: path.read_text(encoding="utf-8") for name, path in paths.items()}
    found = violations(sources, set(paths), packages)
    assert not found, "imports that point up a layer:\n" + "\n".join(found)


@pytest.mark.parametrize(
    ("module", "source", "expected"),
    [
        ("engagement.store", "import dashboard.ui", ["engagement.store -> dashboard.ui (layer 1 core -> layer 5 interface)"]),
        (
            "engagement.config",
            "def f():\n    from engagement.vision import attention\n",
            ["engagement.config -> engagement.vision.attention (layer 1 core -> layer 2 vision/temporal)"],
        ),
        ("privacy.audit", "from . import cli", ["privacy.audit -> privacy.cli (layer 3 privacy -> layer 5 interface)"]),
        ("dashboard.ui", "from engagement.store import Store\nimport privacy.audit", []),
        ("engagement.live_view", "from engagement import pipeline", []),
        ("engagement.unplaced", "", ["engagement.unplaced is in no layer: add it to LAYER_MAP"]),
    ],
)
def test_the_check_finds_imports_up_the_layers(module, source, expected):
    known = {"engagement.store", "engagement.config", "engagement.vision", "engagement.vision.attention", "dashboard.ui",
             "privacy.audit", "privacy.cli", "privacy", "engagement.pipeline", "engagement", "dashboard"}
    assert violations({module: source}, known) == expected
