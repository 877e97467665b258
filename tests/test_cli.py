"""The command tree itself: its listing, usage errors, exit codes, languages, the progress bar."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from rich.console import Console

from engagement.cli.common import progress_bar
from engagement.cli.main import main
from engagement.core.i18n import catalogue
from engagement.core.interrupts import Terminated, exit_code
from engagement.core.store import Store

REPO = Path(__file__).resolve().parents[1]
COMMANDS = ("analyze", "sessions", "export", "batch", "live", "train", "evaluate", "privacy", "dashboard", "doctor")


def run_cli(*args: str, lang: str | None = None, code: str | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "ENGAGEMENT_LANG"}
    if lang:
        env["ENGAGEMENT_LANG"] = lang
    command = [sys.executable, "-c", code] if code else [sys.executable, "-m", "engagement.cli.main", *args]
    return subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=120)


def test_every_cli_message_in_both_languages_with_the_same_placeholders():
    english = {k: v for k, v in catalogue("en").items() if k.startswith("cli.")}
    indonesian = {k: v for k, v in catalogue("id").items() if k.startswith("cli.")}
    assert english and set(english) == set(indonesian)
    for key, text in english.items():
        assert set(re.findall(r"{(\w+)}", text)) == set(re.findall(r"{(\w+)}", indonesian[key])), key


def test_every_message_key_in_the_code_is_in_the_catalogue():
    sources = sorted((REPO / "engagement" / "cli").glob("*.py"))
    used = {key for path in sources for key in re.findall(r'(?:say|warn)\("(cli\.[\w.-]+)"', path.read_text())}
    assert len(used) > 50
    assert used <= set(catalogue("en")), used - set(catalogue("en"))


def test_help_lists_every_command_without_the_heavy_extras():
    # pandas, the dashboard's query layer, alembic (upgrades only) and the browser opener too:
    # every command, `analyze` of a short clip included, would pay for importing them at start-up.
    heavy = ("torch", "ray", "streamlit", "pandas", "dashboard.queries", "alembic", "webbrowser")
    probe = ("import sys; from engagement.cli.main import main; code = main(['--help']); "
             f"print('heavy:', sorted(m for m in {heavy!r} if m in sys.modules)); sys.exit(code)")
    result = run_cli(code=probe)
    assert result.returncode == 0, result.stderr
    listing = result.stdout.split("Commands:", 1)[1]
    assert [c for c in COMMANDS if re.search(rf"^\s+{c}\s", listing, re.M)] == list(COMMANDS)
    assert "heavy: []" in result.stdout


def test_help_in_indonesian():
    result = run_cli("privacy", "--help", lang="id")
    assert result.returncode == 0, result.stderr
    assert "persetujuan, retensi dan penghapusan" in result.stdout
    assert "musnahkan kunci kohort" not in result.stdout  # a subgroup's commands stay in the subgroup


def test_output_and_error_lines_switch_language(isolated_data_dir, monkeypatch, capsys):
    store = Store.open(f"sqlite:///{isolated_data_dir / 'x.db'}")
    store.close()
    db = ["--db", store.url]
    assert main(["privacy", "consent", "list", *db]) == 0
    assert capsys.readouterr().out == "no consent records\n"
    assert main(["privacy", "audit", "list", "--action", "nonsense", *db]) == 2
    assert capsys.readouterr().err.startswith("error: unknown audit action 'nonsense'; one of: ")
    monkeypatch.setenv("ENGAGEMENT_LANG", "id")
    assert main(["privacy", "consent", "list", *db]) == 0
    assert capsys.readouterr().out == "tidak ada catatan persetujuan\n"
    assert main(["privacy", "audit", "list", "--action", "nonsense", *db]) == 2
    assert capsys.readouterr().err.startswith("galat: tindakan audit 'nonsense' tidak dikenal")


def test_usage_errors_exit_2_with_one_error_line(capsys):
    assert main(["analyze", "--max-faces", "many"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith("usage: engagement analyze")
    assert err[1].startswith("engagement analyze: error: ") and "--max-faces" in err[1]
    assert main(["no-such-command"]) == 2
    assert "error: " in capsys.readouterr().err
    assert main(["privacy", "dpia", "--lang", "fr"]) == 2  # a closed choice
    assert main(["live", "--session", "s"]) == 2  # --source is required
    assert "--source" in capsys.readouterr().err


def test_version_and_bare_groups(capsys):
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.startswith("engagement ")
    assert main(["privacy"]) == 0  # a group alone shows its actions
    out = capsys.readouterr().out
    assert "consent" in out and "purge" in out
    assert main(["privacy", "audit"]) == 0
    assert "re-anchor" in capsys.readouterr().out


def test_training_and_evaluation_get_their_own_arguments(tmp_path, capsys):
    # Everything after the job's name, options included, is the job's; its errors end as usual.
    assert main(["evaluate", "engagewild", str(tmp_path / "missing.npz"), "--split", "test"]) == 2
    assert capsys.readouterr().err.strip() == f"error: no such file: {tmp_path / 'missing.npz'}"


# Each train/evaluate job and the options (and argument) its help must show.
JOBS = {
    ("train", "expression"): ("--data", "--out", "--epochs", "--seed", "--resume", "--reschedule", "--lr", "--aug",
                              "--init-from", "--limit-train", "--recipe", "--ferplus-weight"),
    ("train", "export-expression"): ("--ckpt", "--version", "--models-dir", "--no-tta", "--int8", "--data"),
    ("train", "float-expression"): ("INT8_ONNX", "--name", "--models-dir"),
    ("train", "temporal"): ("--data", "--out", "--seed", "--kind", "--folds", "--repeats", "--epochs", "--hidden",
                            "--members", "--decay", "--no-export"),
    ("evaluate", "fer2013"): ("NPZ", "--split", "--models-dir", "--model"),
    ("evaluate", "images"): ("DIR", "--labels", "--model", "--models-dir"),
    ("evaluate", "engagewild"): ("NPZ", "--split", "--models-dir", "--model"),
}


def test_train_and_evaluate_help_list_every_job_and_its_options_without_torch():
    # One process for all the help pages: the training jobs' help must not need torch either.
    pages = [["train", "--help"], ["evaluate", "--help"], *([*job, "--help"] for job in JOBS)]
    probe = ("import sys; from engagement.cli.main import main\n"
             f"for args in {pages!r}:\n"
             "    print('=== ' + ' '.join(args)); print('exit', main(args))\n"
             "print('heavy:', sorted(m for m in ('torch', 'onnx') if m in sys.modules))")
    result = run_cli(code=probe)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "heavy: []" in out
    page = dict(re.findall(r"^=== (.+?)\n(.*?)^exit 0$", out, re.M | re.S))
    assert len(page) == len(pages), out
    for verb in ("train", "evaluate"):
        listing = page[f"{verb} --help"].split("Commands:", 1)[1]
        assert [job for v, job in JOBS if v == verb and re.search(rf"^\s+{job}\s", listing, re.M)] == \
            [job for v, job in JOBS if v == verb]
    for job, options in JOBS.items():
        text = page[" ".join(job) + " --help"]
        assert text.startswith(f"Usage: engagement {' '.join(job)} "), text
        assert [o for o in options if re.search(rf"(^|\s){o}(\s|$)", text, re.M)] == list(options), text


def test_a_bare_recipe_is_v1(tmp_path, monkeypatch, capsys):
    pytest.importorskip("torch")
    import engagement.app.training.expression as training

    calls = []
    monkeypatch.setitem(training.RECIPES, "v1", lambda data, out, seed, resume: calls.append(("v1", seed)) or "v1.pt")
    monkeypatch.setitem(training.RECIPES, "v2", lambda data, out, seed, resume: calls.append(("v2", seed)) or "v2.pt")
    out = str(tmp_path / "run")
    assert main(["train", "expression", "--out", out, "--recipe"]) == 0
    assert main(["train", "expression", "--recipe", "--seed", "3", "--out", out]) == 0
    assert main(["train", "expression", "--out", out, "--recipe", "v2"]) == 0
    assert calls == [("v1", 0), ("v1", 3), ("v2", 0)]
    assert capsys.readouterr().out.splitlines()[-1] == "best checkpoint: v2.pt"
    assert main(["train", "expression", "--out", out, "--recipe", "v9"]) == 2
    assert main(["train", "expression", "--out", out, "--aug", "none"]) == 2
    err = capsys.readouterr().err
    assert "'--recipe'" in err and "'--aug'" in err and "'strong'" in err


def test_signal_exit_codes():
    assert exit_code(Terminated()) == 143
    assert exit_code(KeyboardInterrupt()) == 130


def test_progress_bar_is_silent_off_a_terminal():
    assert progress_bar(Console(file=io.StringIO())).disable
    assert not progress_bar(Console(file=io.StringIO(), force_terminal=True)).disable
    assert progress_bar(Console(file=io.StringIO(), force_terminal=True), enabled=False).disable


def test_dashboard_database_named_before_or_after_the_action(tmp_path, monkeypatch, capsys):
    url = f"sqlite:///{tmp_path / 'accounts.db'}"
    monkeypatch.setattr("sys.stdin", io.StringIO("a-long-password\n"))
    assert main(["dashboard", "users", "add", "ani", "--role", "admin", "--password-stdin", "--db", url]) == 0
    assert capsys.readouterr().out == "created admin account 'ani'\n"
    assert main(["dashboard", "--db", url, "users", "list"]) == 0
    assert capsys.readouterr().out.startswith("ani ")
    assert main(["dashboard", "users", "add", "budi", "--role", "owner", "--db", url]) == 2  # a closed choice


def test_sigterm_while_the_command_line_is_loading_ends_with_a_message():
    """A SIGTERM before `main` installs its handler (the commands take seconds to load) ended
    with -15 and no word; it ends as a command stopped by SIGTERM does: one line and 143."""
    import subprocess
    import sys

    code = ("import os, signal, time\nimport engagement.cli\nos.kill(os.getpid(), signal.SIGTERM)\n"
            "time.sleep(30)\nprint('still running')\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "ENGAGEMENT_LANG": "en"})
    assert done.returncode == 143 and done.stderr.strip() == "terminated (SIGTERM)" and done.stdout == ""


# Every input points into an empty folder: were the check broken, each job would stop on its
# missing input (another message) and never train or write a model.
@pytest.mark.parametrize(("job", "missing"), [
    (["train", "temporal", "--data", "{tmp}/none.npz", "--no-export"], "torch"),
    (["train", "expression", "--out", "{tmp}/run", "--data", "{tmp}/none.npz"], "onnx"),
    (["train", "export-expression", "--ckpt", "{tmp}/x.pt", "--version", "v9", "--models-dir", "{tmp}"], "torch"),
    (["train", "float-expression", "{tmp}/x.onnx", "--name", "expression-cnn.v9", "--models-dir", "{tmp}"], "onnx"),
])
def test_a_training_job_without_the_train_extra_says_so_in_one_line(job, missing, tmp_path, monkeypatch, capsys):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == missing else real(name, *a))
    assert main([arg.format(tmp=tmp_path) for arg in job]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and f"missing {missing}" in err and "[train]" in err and "Traceback" not in err
