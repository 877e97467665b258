"""What every command shares: its options, its messages, the way into the database, the progress bar.

Help texts are looked up in the language of `cli_lang()` (ENGAGEMENT_LANG) when the command
modules are imported (options) or the tree is built (commands); run-time messages when printed.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import click
import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn

from engagement.app.reaper import reap_and_report
from engagement.core.config import default_db_url
from engagement.core.i18n import cli_lang, translate
from engagement.core.store import Store
from privacy import retention
from privacy.roster import load_roster as read_roster


def say(key: str, **values: object) -> str:
    """A message of the command line in the operator's language (English unless ENGAGEMENT_LANG)."""
    return translate(key, cli_lang(), **values)


def warn(key: str, **values: object) -> None:
    print(say(key, **values), file=sys.stderr)


def group(name: str, *, key: str | None = None, bare_help: bool = False, **settings) -> typer.Typer:
    """A command group whose help comes from `cli.<key or name>.help`. Plain help text (no rich
    markup): help texts contain brackets such as `webcam[:N]` that markup would swallow.
    With `bare_help`, the group alone prints its help and succeeds (exit 0)."""
    settings.setdefault("invoke_without_command", bare_help)
    app = typer.Typer(
        name=name, help=say(f"cli.{key or name}.help"), rich_markup_mode=None, add_completion=False, **settings
    )
    if bare_help:
        app.callback()(_help_when_bare)
    return app


def command(app: typer.Typer, name: str, handler, key: str, *, description: str | None = None, **settings) -> None:
    """Add `handler` as `name`, its one-line help from `key`; the full help from `description`
    when it says more. The one-line help is also the listing's, which click would otherwise cut."""
    text = say(key)
    app.command(name, short_help=text, help=say(description) if description else text, **settings)(handler)


def _help_when_bare(ctx: typer.Context) -> None:
    if ctx.invoked_subcommand is None:
        print(ctx.get_help())


def option(*decls: str, key: str | None = None, values: dict | None = None, **settings):
    """A typer option whose help is the catalogue's `key` (its placeholders filled from `values`).
    Its default is shown by typer only where the help text does not already name it."""
    if key is not None:
        settings["help"] = say(key, **(values or {}))
        settings.setdefault("show_default", "default" not in translate(key, "en"))
    return typer.Option(*decls, **settings)


Db = Annotated[str | None, option("--db", metavar="URL", key="cli.opt.db")]
Cohort = Annotated[str | None, option("--cohort", key="cli.opt.cohort")]
Profile = Annotated[str, option("--profile", key="cli.opt.profile")]
SampleFps = Annotated[str | None, option("--sample-fps", metavar="N", key="cli.opt.sample_fps")]
MaxFaces = Annotated[int, option("--max-faces", metavar="N", key="cli.opt.max_faces")]
Participant = Annotated[str | None, option("--participant", key="cli.opt.participant")]
Roster = Annotated[Path | None, option("--roster", key="cli.opt.roster")]
StoreFileName = Annotated[bool, option("--store-file-name", key="cli.opt.store_file_name")]
PolicyFile = Annotated[str | None, option("--policy", key="cli.opt.policy")]
Yes = Annotated[bool, option("--yes", key="cli.opt.yes")]
Json = Annotated[bool, typer.Option("--json")]
OutFile = Annotated[str | None, option("--out", key="cli.opt.out_file")]


def open_store(url: str | None, *, create: bool = True, read_only: bool = False) -> Store:
    """Open the database; unless read-only, first reap runs whose writer is gone."""
    store = Store.open(url or default_db_url(), create=create, read_only=read_only)
    ctx = click.get_current_context(silent=True)
    if ctx is not None:
        ctx.call_on_close(store.close)  # the command's connections end with the command
    if not read_only:
        reap_and_report(store)
    return store


def load_roster(path: Path | None):
    """The roster, read and checked before anything is written (None without --roster)."""
    return None if path is None else read_roster(path)


def startup_purge(store: Store) -> None:
    """Retention is enforced every time data is touched, not only when someone remembers."""
    receipt = retention.startup_purge(store, trigger="analyze")
    if receipt.total:
        warn("cli.analyze.purged", n=receipt.total, receipt=receipt.receipt_id)


def progress_bar(console: Console | None = None, *, enabled: bool = True) -> Progress:
    """The one progress bar of the command line (analyze, batch), on stderr. Silent when stderr
    is not a terminal, so logs and test output hold no control characters."""
    console = console or Console(stderr=True)
    return Progress(
        TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(), TimeElapsedColumn(),
        TextColumn("{task.fields[detail]}"),
        console=console, disable=not (enabled and console.is_terminal),
    )
