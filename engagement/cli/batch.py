"""`engagement batch`: many recordings in parallel on Ray (a local runtime or a cluster)."""

from __future__ import annotations

import signal
import sys
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from engagement.app.batch import BatchOptions, Outcome, collect, run_batch
from engagement.cli.common import MaxFaces, Profile, SampleFps, command, option, progress_bar, say
from engagement.core.config import AnalysisOptions, default_db_url, parse_sample_fps
from engagement.core.errors import ConfigError
from engagement.core.interrupts import Terminated, raise_on_sigterm

STATUS_STYLE = {"done": "green", "skipped": "cyan", "failed": "red", "cancelled": "yellow"}


def register(app: typer.Typer) -> None:
    # engagement.app.batch imports Ray only when a batch runs, so the [cluster] extra is optional.
    command(app, "batch", batch, "cli.batch.help", description="cli.batch.description")


def batch(
    paths: Annotated[list[str], typer.Argument(metavar="PATH...")],
    workers: Annotated[int, option("--workers", metavar="N", key="cli.batch.opt_workers")] = 2,
    ray_address: Annotated[str | None, option("--ray-address", metavar="ADDR", key="cli.batch.opt_ray_address")] = None,
    db: Annotated[str | None, option("--db", metavar="URL", key="cli.batch.opt_db")] = None,
    sample_fps: SampleFps = None,
    max_faces: MaxFaces = 8,
    profile: Profile = "id-pdp",
    force: Annotated[bool, option("--force", key="cli.batch.opt_force")] = False,
    store_file_name: Annotated[bool, option("--store-file-name", key="cli.batch.opt_store_file_name")] = False,
) -> int:
    if not 1 <= workers <= 256:
        raise ConfigError(say("cli.batch.bad_workers", got=workers))
    fps = parse_sample_fps(sample_fps) if sample_fps is not None else None
    recordings = collect(paths, file_names=store_file_name)
    opts = BatchOptions(
        db_url=db or default_db_url(),
        analysis=AnalysisOptions(sample_fps=fps, max_faces=max_faces),
        profile=profile,
        force=force,
        store_file_name=store_file_name,
    )
    err = Console(stderr=True)
    # Ray's calls turn a SIGTERM's exception into a plain KeyboardInterrupt; remember which
    # signal it was, so the exit code says SIGTERM (143) and not Ctrl-C (130).
    terminated = []

    def on_sigterm(signum, frame):
        terminated.append(signum)
        raise_on_sigterm()

    signal.signal(signal.SIGTERM, on_sigterm)
    progress = progress_bar(err)
    outcomes: list[Outcome] = []

    def report(outcome: Outcome) -> None:
        outcomes.append(outcome)
        progress.update(task, advance=1, detail=f"{len(outcomes)}/{len(recordings)}")
        if outcome.status == "failed":
            # One line per failure as it happens; the table at the end repeats it.
            err.print(say("cli.batch.failed", path=outcome.recording.path, detail=outcome.detail),
                      markup=False, highlight=False, soft_wrap=True)

    with progress:
        task = progress.add_task(say("cli.batch.progress"), total=len(recordings), detail=f"0/{len(recordings)}")
        try:
            run_batch(recordings, opts, workers=workers, ray_address=ray_address, on_outcome=report)
        except KeyboardInterrupt as exc:
            # Ctrl-C, or SIGTERM (the command line turns it into the same exception): the
            # recordings still running were cancelled and none is left `running`.
            print_summary(outcomes)
            if terminated and not isinstance(exc, Terminated):
                exc = Terminated()
            exc.add_note(say("cli.batch.cancelled"))
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
    console.print(", ".join(f"{n} {s}" for s, n in counts.items() if n) or say("cli.batch.nothing"), highlight=False)
