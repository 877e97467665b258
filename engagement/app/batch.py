"""`engagement batch`: an archive of recordings analysed in parallel on Ray.

Each recording is one Ray task, and each task runs `engagement analyze` on its recording in a
child process. So a batch runs exactly the pipeline of a single analysis, with the same consent
checks, input validation and failure handling (a failed run keeps no rows), and a recording that
crashes its analysis, is corrupt or is killed fails alone: the Ray worker survives it. The child
dies with its worker (PR_SET_PDEATHSIG), so a cancelled batch never leaves an analysis writing.

Ray is optional (`pip install 'engagement[cluster]'`) and imported only here, inside functions:
the single-machine commands never load it.
"""

from __future__ import annotations

import csv
import io
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select

from engagement.app.agenda import parse_agenda_csv, replace_agenda
from engagement.app.reaper import reap_dead_runs
from engagement.app.shared_storage import TOKEN_VAR, storage_problem, storage_token
from engagement.core import schema
from engagement.core.config import AnalysisOptions, data_dir
from engagement.core.errors import ConfigError, EngagementError
from engagement.core.i18n import cli_lang, translate
from engagement.core.registry import sha256_file
from engagement.core.repositories import runs as run_rows
from engagement.core.store import Store
from engagement.temporal.run_config import run_settings_hash
from engagement.vision.gallery import TILE_THREADS_VAR
from engagement.vision.meeting import options_for, recording_layout
from engagement.vision.sources import name_digest
from privacy.profiles import get_profile

VIDEO_SUFFIXES = frozenset({".mp4", ".mov", ".avi", ".mkv", ".mpg", ".mpeg", ".m4v", ".webm", ".wmv", ".flv"})
LISTING_COLUMNS = ("file", "session", "cohort", "roster", "agenda")
# A cancelled analysis gets this long to mark its run interrupted before it is killed.
CANCEL_GRACE_S = 60.0


@dataclass(frozen=True)
class Recording:
    """One recording to analyse and where its results go."""

    path: Path
    session: str
    cohort: str | None = None
    roster: Path | None = None
    agenda: Path | None = None


@dataclass(frozen=True)
class BatchOptions:
    db_url: str
    analysis: AnalysisOptions
    profile: str = "id-pdp"
    force: bool = False
    store_file_name: bool = False  # runs record the file's name (as `analyze --store-file-name`)


@dataclass(frozen=True)
class Outcome:
    recording: Recording
    status: str  # done | skipped | failed | cancelled
    detail: str = ""
    wall_s: float = 0.0
    peak_mb: float = 0.0  # the worker's largest analysis so far (resident memory)


# -- what to analyse ---------------------------------------------------------------------------


def default_session(path: Path, *, file_names: bool = False) -> str:
    """The session of a recording nobody named: the same hashed name `engagement analyze` gives
    (`video-<hash of the file name>`), since file names often name a person; the file's name
    without its suffix only when asked for (`--store-file-name`)."""
    if file_names:
        try:
            return run_rows.check_session_name(path.stem)
        except ConfigError as exc:
            raise ConfigError(f"{path}: {exc}; name its session in a CSV listing") from None
    return f"video-{name_digest(path)}"


def collect(paths: Iterable[str | Path], *, file_names: bool = False) -> list[Recording]:
    """Recordings from files, folders (their video files, recursively, sorted) and CSV listings;
    sessions nobody named get `default_session`."""
    found: list[Recording] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            videos = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES)
            found += [Recording(p, default_session(p, file_names=file_names)) for p in videos]
        elif path.suffix.lower() == ".csv":
            found += read_listing(path, file_names=file_names)
        elif path.exists():
            found.append(Recording(path, default_session(path, file_names=file_names)))
        else:
            raise ConfigError(f"{path}: no such file or folder")
    found = _once(found)
    sessions: dict[str, Path] = {}
    for rec in found:
        if rec.session in sessions and sessions[rec.session] != rec.path:
            raise ConfigError(
                f"two recordings would go into session {rec.session!r} ({sessions[rec.session]} and {rec.path}); "
                "name the sessions in a CSV listing"
            )
        sessions[rec.session] = rec.path
    if not found:
        raise ConfigError("no recordings found (video files: " + ", ".join(sorted(VIDEO_SUFFIXES)) + ")")
    return found


def _once(found: list[Recording]) -> list[Recording]:
    """Each recording once: the same file given twice (a folder and a listing, a listing line
    repeated) for the same session is analysed once; for two sessions it is refused."""
    first: dict[Path, Recording] = {}
    for rec in found:
        key = rec.path.resolve()
        if key not in first:
            first[key] = rec
        elif first[key].session != rec.session:
            raise ConfigError(
                f"{rec.path} is listed twice, for sessions {first[key].session!r} and {rec.session!r}; list it once")
    return list(first.values())


def read_listing(path: Path, *, file_names: bool = False) -> list[Recording]:
    """A CSV with a `file` column and optional `session`, `cohort`, `roster`, `agenda` columns;
    relative paths are relative to the CSV's folder. A row without a session gets
    `default_session`."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read the listing ({exc})") from None
    # newline="": a quoted cell keeps a line break inside it (and is then refused where it is
    # not allowed) instead of splitting the row in two.
    reader = csv.DictReader(io.StringIO(text, newline=""))
    columns = [c.strip().lower() for c in reader.fieldnames or []]
    if "file" not in columns:
        raise ConfigError(f"{path}: a listing needs a 'file' column (columns: {', '.join(LISTING_COLUMNS)})")
    unknown = sorted(set(columns) - set(LISTING_COLUMNS))
    if unknown:
        raise ConfigError(f"{path}: unknown column(s) {', '.join(unknown)}; allowed: {', '.join(LISTING_COLUMNS)}")
    base = path.parent
    out = []
    for line, row in enumerate(reader, start=2):
        # Paths and cohorts are trimmed; a session name is taken as written and checked like any
        # other (a tab or ESC in it is refused, not silently removed).
        row = {k.strip().lower(): (v or "") if k.strip().lower() == "session" else (v or "").strip()
               for k, v in row.items() if k is not None}
        if not row.get("file"):
            raise ConfigError(f"{path}: line {line}: the file is empty")

        def resolve(value: str) -> Path | None:
            return (base / value) if value else None

        video = resolve(row["file"])
        if row.get("session"):
            try:
                run_rows.check_session_name(row["session"])
            except ConfigError as exc:
                raise ConfigError(f"{path}: line {line}: {exc}") from None
        out.append(
            Recording(
                path=video,
                session=row.get("session") or default_session(video, file_names=file_names),
                cohort=row.get("cohort") or None,
                roster=resolve(row.get("roster", "")),
                agenda=resolve(row.get("agenda", "")),
            )
        )
    return out


# -- skipping what is done ---------------------------------------------------------------------


def recorded_hash(options: AnalysisOptions, path: Path) -> str:
    """The settings hash `analyze` records for this recording: a gallery runs at the gallery's
    rate, so its hash is not the one of the options as given."""
    return run_settings_hash(options_for(options, recording_layout(path)))


def already_analysed(store: Store, rec: Recording, sha256: str, config_hash: str) -> bool:
    """A complete run of this very file (same content) with the same settings in its session."""
    runs, sessions = schema.runs, schema.sessions
    stmt = (
        select(runs.c.id)
        .join(sessions, sessions.c.id == runs.c.session_id)
        .where(
            sessions.c.name == rec.session,
            runs.c.status == "complete",
            runs.c.source_sha256 == sha256,
            runs.c.config_hash == config_hash,
        )
        .limit(1)
    )
    with store.transaction() as conn:
        return conn.execute(stmt).first() is not None


# -- one recording -----------------------------------------------------------------------------


def analyze_argv(rec: Recording, opts: BatchOptions) -> list[str]:
    """The `engagement` arguments of one recording's analysis (the command comes from the worker)."""
    argv = ["analyze", str(rec.path), "--session", rec.session, "--db", opts.db_url, "--profile", opts.profile,
            "--max-faces", str(opts.analysis.max_faces), "--no-progress"]
    if opts.analysis.sample_fps is not None:
        argv += ["--sample-fps", repr(opts.analysis.sample_fps)]
    if rec.cohort:
        argv += ["--cohort", rec.cohort]
    if rec.roster:
        argv += ["--roster", str(rec.roster)]
    if opts.store_file_name:
        argv.append("--store-file-name")
    return argv


def engagement_command(*args: str) -> list[str]:
    """`engagement` on the machine this runs on: its own interpreter, where the package is
    installed. Never the batch machine's interpreter: its path may not exist on a worker machine,
    or hold another copy of the package there (a source checkout)."""
    return [sys.executable, "-m", "engagement.cli.main", *args]


def analyse_recording(args: list[str], env: dict[str, str]) -> tuple[int, str, float, float]:
    """The Ray task: `run_analysis` of `engagement <args>`, the command taken on the worker."""
    return run_analysis(engagement_command(*args), env)


def _die_with_parent() -> None:
    # Linux: the analysis gets SIGTERM when its Ray worker dies (a cancelled or shut-down batch),
    # so it marks its run interrupted instead of writing on as an orphan.
    import ctypes

    PR_SET_PDEATHSIG = 1
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def run_analysis(argv: list[str], env: dict[str, str]) -> tuple[int, str, float, float]:
    """Run one analysis to its end: (exit code, its last `error:` line or summary line, seconds,
    peak memory in MB of the analyses this worker has run so far).

    A KeyboardInterrupt (Ctrl-C, or Ray cancelling the task) is passed on as SIGTERM, which the
    analysis handles like Ctrl-C; after CANCEL_GRACE_S it is killed."""
    # A worker machine without the shared data directory stops here, before any run row.
    problem = storage_problem(env.get(TOKEN_VAR), Path(env.get("ENGAGEMENT_DATA_DIR") or data_dir()).expanduser())
    if problem:
        return 2, problem, 0.0, 0.0
    t0 = time.monotonic()
    preexec = _die_with_parent if sys.platform.startswith("linux") else None
    child = subprocess.Popen(argv, env={**os.environ, **env}, stdin=subprocess.DEVNULL,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=preexec)
    try:
        # Short waits, not one long one: Ray delivers a cancel as a KeyboardInterrupt between
        # Python steps, which a single blocking wait would postpone to the analysis's end.
        while True:
            try:
                out, err = child.communicate(timeout=0.5)
                break
            except subprocess.TimeoutExpired:
                continue
    except KeyboardInterrupt:
        child.send_signal(signal.SIGTERM)
        try:
            child.communicate(timeout=CANCEL_GRACE_S)
        except subprocess.TimeoutExpired:
            child.kill()
            child.communicate()
        raise
    detail = failure_reason(child.returncode, err) if child.returncode != 0 else success_detail(out)
    return child.returncode, detail, time.monotonic() - t0, _children_peak_mb()


def _children_peak_mb() -> float:
    # `resource` is POSIX-only: a module-level import stopped the whole command line on Windows.
    try:
        import resource
    except ImportError:
        return 0.0  # unmeasured, as an Outcome says by default
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # KiB on Linux


# MediaPipe's and TensorFlow Lite's own log lines (glog/absl: "W0000 00:00:1796667666.05 ...",
# "INFO: Created TensorFlow Lite ..."): noise, never the reason an analysis failed.
_LIBRARY_LOG = re.compile(r"^([IWEF]\d{4} |(INFO|WARNING): |WARNING: All log messages before absl)")


def failure_reason(returncode: int, stderr: str) -> str:
    """Why an analysis failed: its own `error:` line; killed by a signal, which one; a crash
    without either, its last line that is not a library's log line; else its exit code."""
    errors = [ln[len("error:"):].strip() for ln in stderr.splitlines() if ln.startswith("error:")]
    if errors:
        return errors[-1]
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        return f"the analysis was killed by {name} (out of memory, or stopped from outside)"
    own = [ln.strip() for ln in stderr.splitlines() if ln.strip() and not _LIBRARY_LOG.match(ln.strip())]
    return own[-1] if own else f"exit code {returncode}"


def success_detail(stdout: str) -> str:
    """The summary's first line, with its notes (a file cut short, faces without consent)."""
    lines = stdout.strip().splitlines()
    # The analysis speaks the batch's language (ENGAGEMENT_LANG is passed on): "note:", "catatan:".
    prefix = translate("cli.summary.note", cli_lang(), note="").strip()
    notes = [ln.strip() for ln in lines[1:] if ln.strip().startswith(prefix)]
    return "; ".join(([lines[0].strip()] if lines else []) + notes)


# -- the batch ---------------------------------------------------------------------------------


def require_ray():
    try:
        import ray  # heavy optional dependency: the [cluster] extra
    except ModuleNotFoundError:
        raise ConfigError("`engagement batch` needs Ray: pip install 'engagement[cluster]'") from None
    return ray


def task_env() -> dict[str, str]:
    """What each analysis needs from this process's environment (also on other cluster nodes),
    one thread per analysis so N workers use N cores."""
    env = {k: v for k, v in os.environ.items() if k.startswith("ENGAGEMENT_")}
    env.update({"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", TILE_THREADS_VAR: "1"})
    return env


def start_ray(workers: int, address: str | None):
    ray = require_ray()
    # Offline and private: no usage statistics, no dashboard server.
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    kwargs = dict(include_dashboard=False, log_to_driver=False, configure_logging=False)
    ours = signal.getsignal(signal.SIGTERM)
    if address:
        ray.init(address=address, **kwargs)
    else:
        ray.init(num_cpus=workers, **kwargs)
    if threading.current_thread() is threading.main_thread():
        # ray.init installs a SIGTERM handler that exits at once; ours cancels like Ctrl-C.
        signal.signal(signal.SIGTERM, ours)
    return ray


def run_batch(
    recordings: list[Recording],
    opts: BatchOptions,
    *,
    workers: int = 2,
    ray_address: str | None = None,
    on_outcome: Callable[[Outcome], None] = lambda o: None,
) -> list[Outcome]:
    """Analyse `recordings` (skipping those already done unless `opts.force`), `workers` at a
    time; every recording ends with an Outcome, passed to `on_outcome` as it ends."""
    outcomes: dict[int, Outcome] = {}
    todo: list[tuple[int, Recording, list[str]]] = []
    # The options a run records: the profile may switch the expression stage off, and a gallery
    # recording is analysed at the gallery's rate (as `analyze` decides it, from its opening).
    options = get_profile(opts.profile).analysis_options(opts.analysis)
    store = Store.open(opts.db_url)
    try:
        for i, rec in enumerate(recordings):
            problem = _precheck(rec)
            if problem:
                outcomes[i] = Outcome(rec, "failed", problem)
                on_outcome(outcomes[i])
                continue
            if not opts.force and already_analysed(store, rec, sha256_file(rec.path), recorded_hash(options, rec.path)):
                outcomes[i] = Outcome(rec, "skipped", "already analysed with the same file and settings")
                on_outcome(outcomes[i])
                continue
            todo.append((i, rec, analyze_argv(rec, opts)))
        if todo:
            ray = start_ray(workers, ray_address)
            try:
                with storage_token(data_dir()) as token:
                    _run_tasks(ray, todo, store, outcomes, on_outcome, {**task_env(), TOKEN_VAR: token})
            finally:
                ray.shutdown()
    finally:
        store.close()
    return [outcomes[i] for i in sorted(outcomes)]


def _precheck(rec: Recording) -> str:
    """Problems found before any analysis starts (reported for this recording alone)."""
    if not rec.path.is_file():
        return f"{rec.path}: no such file"
    if rec.roster and not rec.roster.is_file():
        return f"roster {rec.roster}: no such file"
    if rec.agenda:
        try:
            parse_agenda_csv(rec.agenda.read_bytes())
        except (OSError, EngagementError) as exc:
            return f"agenda {rec.agenda}: {exc}"
    return ""


def _run_tasks(ray, todo, store: Store, outcomes: dict, on_outcome, env: dict[str, str]) -> None:
    analyse = ray.remote(num_cpus=1, max_retries=0)(analyse_recording)
    pending = {analyse.remote(argv, env): (i, rec) for i, rec, argv in todo}
    try:
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1, timeout=1.0)
            for ref in done:
                i, rec = pending.pop(ref)
                outcomes[i] = _outcome(ray, ref, rec, store)
                on_outcome(outcomes[i])
    except KeyboardInterrupt:
        # A cancelled task passes SIGTERM to its analysis, which marks its run interrupted and
        # removes its rows. A task that has not ended within the grace period is killed, and its
        # analysis with it (Ray kills a dead worker's children); the reaper then marks that run.
        for ref in pending:
            ray.cancel(ref)
        _, stuck = ray.wait(list(pending), num_returns=len(pending), timeout=CANCEL_GRACE_S)
        for ref in stuck:  # only tasks still running: cancelling an ended one upsets Ray
            ray.cancel(ref, force=True)
        final = settle(store, [rec.session for _, rec in pending.values()], CANCEL_GRACE_S)
        for i, rec in pending.values():
            if final.get(rec.session) == "complete":
                outcomes[i] = Outcome(rec, "done", "finished before the cancel")
            else:
                outcomes[i] = Outcome(rec, "cancelled", "cancelled by the user")
            on_outcome(outcomes[i])
        raise


def settle(store: Store, sessions: list[str], timeout_s: float) -> dict[str, str]:
    """The newest run's status per session, once none of them is `running` any more (or after
    `timeout_s`; a run still `running` then is reaped by the next command that opens the store)."""
    runs, names = schema.runs, schema.sessions
    newest = (
        select(names.c.name, runs.c.status)
        .join(runs, runs.c.session_id == names.c.id)
        .where(names.c.name.in_(sessions))
        .order_by(runs.c.id)
    )
    deadline = time.monotonic() + timeout_s
    while True:
        reap_dead_runs(store)  # an analysis killed with its worker cannot mark its own run
        with store.transaction() as conn:
            status = {name: state for name, state in conn.execute(newest)}  # the newest run wins
        if "running" not in status.values() or time.monotonic() > deadline:
            return status
        time.sleep(0.2)


def _outcome(ray, ref, rec: Recording, store: Store) -> Outcome:
    try:
        rc, detail, wall, peak_mb = ray.get(ref)
    except Exception as exc:  # the worker itself died (out of memory, node lost)
        return Outcome(rec, "failed", f"the worker failed: {str(exc).splitlines()[0]}")
    if rc != 0:
        return Outcome(rec, "failed", detail or f"exit code {rc}", wall, peak_mb)
    if rec.agenda:
        session_id = run_rows.session_id(store, rec.session, cohort=rec.cohort)
        replace_agenda(store, session_id, parse_agenda_csv(rec.agenda.read_bytes()))
    return Outcome(rec, "done", detail, wall, peak_mb)
