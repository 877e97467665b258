"""Installed as users install it: a built wheel carries every shipped model, and the program runs
from a fresh virtual environment holding that wheel (not editable, no source tree on the path;
both built once per run: tests/installed_wheel.py).
"""

from __future__ import annotations

import json
import subprocess
import zipfile
from pathlib import Path

import pytest

from engagement.core.config import REPO_ROOT
from installed_wheel import clean_env
from test_dashboard_server import _free_port, _wait_healthy

pytestmark = pytest.mark.slow

MODELS = REPO_ROOT / "models"


@pytest.fixture(scope="module")
def installed(wheel_env) -> Path:
    """The `engagement` command of a fresh virtual environment holding the wheel."""
    return wheel_env.engagement


def test_the_wheel_carries_every_file_under_models(wheel):
    shipped = {p.relative_to(MODELS).as_posix() for p in MODELS.rglob("*") if p.is_file() and "__pycache__" not in p.parts}
    with zipfile.ZipFile(wheel) as zf:
        inside = {n.removeprefix("engagement/models/") for n in zf.namelist() if n.startswith("engagement/models/")}
        top_level = {n.split("/", 1)[0] for n in zf.namelist()}
    assert {"models.json", "face_landmarker.task", "face_landmarker.LICENSE"} <= shipped
    assert shipped - inside == set(), f"missing from the wheel: {sorted(shipped - inside)}"
    # The bug this replaces installed nothing, or a top-level `models` folder into site-packages.
    assert "models" not in top_level and "tests" not in top_level


def test_the_installed_package_finds_its_models_inside_itself(installed, tmp_path):
    python = installed.with_name(installed.name.replace("engagement", "python"))
    probe = ("import engagement, engagement.core.config as c; "
             "print(engagement.__file__); print(c.models_dir()); print(c.REPO_ROOT)")
    out = subprocess.run([str(python), "-c", probe], cwd=tmp_path, env=clean_env(),
                         check=True, capture_output=True, text=True).stdout.split("\n")
    package, models = Path(out[0]), Path(out[1])
    venv_root = installed.parent.parent
    assert venv_root in package.parents, f"imported {package}, not the installed wheel"
    assert venv_root in models.parents and (models / "models.json").is_file()
    assert REPO_ROOT not in package.parents and REPO_ROOT not in models.parents


def test_the_installed_demo_analyses_exports_and_serves(installed, tmp_path):
    env = clean_env(ENGAGEMENT_DATA_DIR=str(tmp_path / "data"), HOME=str(tmp_path / "home"))
    result = subprocess.run([str(installed), "analyze"], cwd=tmp_path, env=env, capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "complete" in result.stdout and "error:" not in result.stderr
    demo_db = tmp_path / "data" / "demo.sqlite"  # the demo keeps its own database
    exported = subprocess.run([str(installed), "export", "demo", "--db", f"sqlite:///{demo_db}", "--out",
                               str(tmp_path / "exports")], cwd=tmp_path, env=env, capture_output=True, text=True,
                              timeout=300)
    assert exported.returncode == 0, exported.stderr[-2000:]
    assert list((tmp_path / "exports").glob("*.csv")), exported.stdout
    # The dashboard's own package data (theme, Streamlit settings, icons) comes from the wheel too.
    port, log = _free_port(), tmp_path / "dashboard.log"
    with log.open("w") as out:
        proc = subprocess.Popen([str(installed), "dashboard", "--demo", "--port", str(port)], cwd=tmp_path, env=env,
                                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
    try:
        _wait_healthy(port, proc, log)
    finally:
        proc.terminate()
        proc.wait(timeout=60)


def test_the_installed_doctor_loads_every_model_from_the_wheel(installed, tmp_path):
    env = clean_env(ENGAGEMENT_DATA_DIR=str(tmp_path / "data"))
    result = subprocess.run([str(installed), "doctor", "--json"], cwd=tmp_path, env=env, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr[-2000:]
    checks = {c["check"]: c for c in json.loads(result.stdout)["checks"]}
    assert checks["models"]["status"] == "ok" and checks["onnxruntime"]["status"] == "ok"
    assert installed.parent.parent in Path(checks["models"]["values"]["dir"]).parents


def test_the_installed_evaluate_images_scores_a_tiny_generated_set(installed, tmp_path):
    import cv2
    from skimage import data as skimage_data

    photo = cv2.cvtColor(skimage_data.astronaut(), cv2.COLOR_RGB2BGR)
    face = photo[20:260, 110:300]
    cv2.imwrite(str(tmp_path / "face.png"), face)
    cv2.imwrite(str(tmp_path / "mirror.png"), face[:, ::-1])
    (tmp_path / "labels.csv").write_text("path,label\nface.png,happy\nmirror.png,happy\n")
    env = clean_env(ENGAGEMENT_DATA_DIR=str(tmp_path / "data"))
    result = subprocess.run([str(installed), "evaluate", "images", str(tmp_path)], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.rstrip().splitlines()[-1].startswith("accuracy=")
