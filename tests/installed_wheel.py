"""The project's wheel, built once per test run, and a fresh virtual environment holding it (not
editable, no source tree on the path): shared by tests/test_wheel.py and the Ray cluster test,
whose worker node runs from that environment.

The fresh environment borrows the already installed dependencies through a .pth file naming the
running interpreter's site-packages folders (none of which holds the `engagement` package itself),
so building it needs no network and downloads nothing; the wheel itself goes in with `--no-deps`.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import venv
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import pytest

from engagement.core.config import REPO_ROOT

# Generated or private folders of a working copy (the top-level ones are .gitignore's: checkpoints
# under runs/ can be large); everything else travels to the build.
_TOP_LEVEL_JUNK = {".git", ".venv", "build", "dist", "runs", "data", ".engagement", ".pytest_cache", ".import_linter_cache"}
_ANYWHERE_JUNK = shutil.ignore_patterns("*.egg-info", "__pycache__")


@dataclass(frozen=True)
class FreshEnv:
    """A virtual environment with the wheel installed."""

    root: Path
    python: Path
    engagement: Path  # its `engagement` command
    site_packages: Path


def _not_sources(folder: str, names: list[str]) -> set[str]:
    top = _TOP_LEVEL_JUNK & set(names) if Path(folder) == REPO_ROOT else set()
    return top | _ANYWHERE_JUNK(folder, names)


def _setuptools_builds_wheels() -> None:
    # setuptools builds wheels on its own (no `wheel` package) from 70.1; the dev extra pins it.
    version = tuple(int(p) for p in metadata.version("setuptools").split(".")[:2])
    if version < (70, 1):
        pytest.fail(f"setuptools {metadata.version('setuptools')} is too old to build the wheel offline: "
                    "pip install -e '.[dev]' (it brings setuptools>=70.1)")


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without what would point a child at the source tree or at the
    user's data."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "ENGAGEMENT_MODELS_DIR", "ENGAGEMENT_DB", "ENGAGEMENT_DATA_DIR")}
    return {**env, "PIP_DISABLE_PIP_VERSION_CHECK": "1", **extra}


def build_wheel(work: Path) -> Path:
    """The project's wheel, built offline from a copy of the sources (an in-tree build would
    leave build/ behind and could pick up stale files from it)."""
    _setuptools_builds_wheels()
    src = work / "src"
    shutil.copytree(REPO_ROOT, src, ignore=_not_sources)
    out = work / "dist"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "--no-index",
                    "-w", str(out), str(src)], check=True, env=clean_env())
    (built,) = out.glob("engagement-*.whl")
    return built


def _dependency_paths() -> list[str]:
    """The running interpreter's site-packages folders, minus any that hold the project itself."""
    paths = [p for p in sys.path if Path(p).name in ("site-packages", "dist-packages") and Path(p).is_dir()]
    return [p for p in dict.fromkeys(paths) if not (Path(p) / "engagement" / "__init__.py").exists()]


def fresh_env(wheel: Path, root: Path) -> FreshEnv:
    """A new virtual environment at `root` with `wheel` installed into it."""
    venv.EnvBuilder(with_pip=False).create(root)
    bindir = root / ("Scripts" if os.name == "nt" else "bin")
    python = bindir / ("python.exe" if os.name == "nt" else "python")
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                               check=True, capture_output=True, text=True).stdout.strip())
    (site / "dependencies.pth").write_text("\n".join(_dependency_paths()) + "\n")
    subprocess.run([str(python), "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)],
                   check=True, env=clean_env())
    return FreshEnv(root, python, bindir / ("engagement.exe" if os.name == "nt" else "engagement"), site)
