"""`engagement batch`: many recordings in parallel on Ray (a local runtime or a cluster)."""

from __future__ import annotations

import argparse
import signal
import sys

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from engagement.batch import BatchOptions, Outcome, collect, run_batch
from engagement.config import AnalysisOptions, default_db_url, parse_sample_fps
from engagement.errors import ConfigError
from engagement.interrupts import Terminated, raise_on_sigterm

STATUS_STYLE = {"done": "green", "skipped": "cyan", "failed": "red", "cancelled": "yellow"}


def register(sub: argparse._SubParsersAction) -> None:
    batch = sub.add_parser(
        "batch",
        help="analyse many recordings in parallel on Ray (files, folders or a CSV listing)",
        description=(
            "Each recording runs the same analysis as `engagement analyze` (same consent checks), as one "
            "Ray task. PATH may be a video file, a folder (its video files) or a CSV listing with columns "
            "file, session, cohort, roster, agenda. The session name defaults to the file's name without "
            "its suffix. A recording already analysed (same file content and settings) is skipped unless "
            "--force. Needs the [cluster] extra."
        ),
    )
    batch.add_argument("paths", nargs="+", metavar="PATH")
    batch.add_argument("--workers", type=int, default=2, metavar="N",
                       help="recordings analysed at once on the local Ray runtime (default 2)")
    batch.add_argument("--ray-address", metavar="ADDR",
                       help="join an existing Ray cluster (e.g. 10.0.0.5:6379) instead of starting a local one")
    batch.add_argument("--db", metavar="URL", default=None,
                       help="SQLAlchemy database URL shared by every worker (default: $ENGAGEMENT_DB or the local SQLite file)")
    batch.add_argument("--sample-fps", metavar="N", help="analyse at most N frames per second (default: all)")
    batch.add_argument("--max-faces", type=int, default=8, metavar="N", help="most faces per frame (default 8)")
    batch.add_argument("--profile", default="id-pdp", help="compliance profile: id-pdp (default) or eu-ai-act")
    batch.add_argument("--force", action="store_true", help="analyse again what was already analysed")
    batch.set_defaults(handler=run_batch_command)


def run_batch_command(args: argparse.Namespace) -> int:
    if not 1 <= args.workers <= 256:
        raise ConfigError(f"--workers must be between 1 and 256, got {args.workers}")
    sample_fps = parse_sample_fps(args.sample_fps) if args.sample_fps is not None else None
    recordings = collect(args.paths)
    opts = BatchOptions(
        db_url=args.db or default_db_url(),
        analysis=AnalysisOptions(sample_fps=sample_fps, max_faces=args.max_faces),
        profile=args.profile,
        force=args.force,
    )
    err = Console(stderr=True)
    # Ray's calls turn a SIGTERM's exception into a plain KeyboardInterrupt; remember which
    # signal it was, so the exit code says SIGTERM (143) and not Ctrl-C (130).
    terminated = []

    def on_sigterm(signum, frame):
        terminated.append(signum)
        raise_on_sigterm()

    signal.signal(signal.SIGTERM, on_sigterm)
    progress = Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        console=err, disable=not err.is_terminal,
    )
    outcomes: list[Outcome] = []

    def report(outcome: Outcome) -> None:
        outcomes.append(outcome)
        progress.advance(task)
        if outcome.status == "failed":
            # One line per failure as it happens; the table at the end repeats it.
            err.print(f"failed: {outcome.recording.path}: {outcome.detail}", markup=False, highlight=False, soft_wrap=True)

    with progress:
        task = progress.add_task("recordings", total=len(recordings))
        try:
            run_batch(recordings, opts, workers=args.workers, ray_address=args.ray_address, on_outcome=report)
        except KeyboardInterrupt as exc:
            # Ctrl-C, or SIGTERM (the command line turns it into the same exception): the
            # recordings still running were cancelled and none is left `running`.
            print_summary(outcomes)
            if terminated and not isinstance(exc, Terminated):
                exc = Terminated()
            exc.add_note("the recordings still running were cancelled; none is left running")
            raise exc from None
    print_summary(outcomes)
    return 1 if any(o.status == "failed" for o in outcomes) else 0


def print_summary(outcomes: list[Outcome]) -> None:
    table = Table(title="engagement batch")
    for column in ("recording", "session", "status", "seconds", "detail"):
        table.add_column(column)
    for o in outcomes:
        table.add_row(
            escape(o.recording.path.name), escape(o.recording.session), f"[{STATUS_STYLE[o.status]}]{o.status}[/]",
            f"{o.wall_s:.1f}" if o.wall_s else "", escape(o.detail),
        )
    console = Console(width=160) if not sys.stdout.isatty() else Console()
    console.print(table)
    counts = {s: sum(o.status == s for o in outcomes) for s in STATUS_STYLE}
    console.print(", ".join(f"{n} {s}" for s, n in counts.items() if n) or "nothing to do", highlight=False)
