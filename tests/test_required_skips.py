"""conftest's second lock: under ENGAGEMENT_REQUIRE_*=1 a skipped test of that kind fails the run."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

pytest_plugins = ("pytester",)

TESTS = Path(__file__).resolve().parent
HOOKS = ("pytest_configure", "pytest_runtest_makereport", "pytest_sessionfinish", "pytest_terminal_summary")

SAMPLE = '''
import pytest

@pytest.mark.data
def test_needs_data():
    pytest.skip("shared data not found")

@pytest.mark.browser
def test_needs_browser():
    pytest.skip("no chromium")

def test_plain_skip():
    pytest.skip("not applicable here")

def test_passes():
    pass
'''


@pytest.fixture
def run(pytester, monkeypatch):
    # The project's conftest, loaded by path into the inner run (its own imports need tests/).
    pytester.makeconftest(
        "import importlib.util\n"
        f"spec = importlib.util.spec_from_file_location('project_conftest', {str(TESTS / 'conftest.py')!r})\n"
        "mod = importlib.util.module_from_spec(spec)\n"
        "spec.loader.exec_module(mod)\n"
        + "".join(f"{name} = mod.{name}\n" for name in HOOKS)
    )
    pytester.makepyfile(test_sample=SAMPLE)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(TESTS), str(TESTS.parent), os.environ.get("PYTHONPATH", "")]))
    for variable in ("ENGAGEMENT_REQUIRE_DATA", "ENGAGEMENT_REQUIRE_BROWSER", "ENGAGEMENT_REQUIRE_POSTGRES"):
        monkeypatch.delenv(variable, raising=False)

    def go(**env):
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        return pytester.runpytest_subprocess("-p", "no:cacheprovider")

    return go


def test_skips_pass_without_the_variables(run):
    result = run()
    result.assert_outcomes(passed=1, skipped=3)
    assert result.ret == 0


@pytest.mark.parametrize("variable, test", [("ENGAGEMENT_REQUIRE_DATA", "test_needs_data"),
                                            ("ENGAGEMENT_REQUIRE_BROWSER", "test_needs_browser")])
def test_a_required_kind_that_skipped_fails_the_run(run, variable, test):
    result = run(**{variable: "1"})
    result.assert_outcomes(passed=1, skipped=3)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    listed = [line for line in result.outlines if line.startswith("test_sample.py::")]
    assert len(listed) == 1 and listed[0].startswith(f"test_sample.py::{test} ")
    assert "test_plain_skip" not in result.stdout.str().split("required tests that skipped")[1]
