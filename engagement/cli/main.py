"""The `engagement` command: one entry point, one command tree (typer), one subcommand per job.

Every user-facing failure is an `EngagementError` and ends as one line on stderr and exit code 2;
Ctrl-C and SIGTERM end as one line and 130 / 143; a usage error prints the usage and one
`error:` line and exits 2; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import os
import sys
from typing import Annotated

import typer

from engagement import __version__
from engagement.cli import analysis, batch, dashboard, doctor, evaluate, live, privacy, serve, train
from engagement.cli.common import say
from engagement.core.errors import EngagementError
from engagement.core.interrupts import Terminated, exit_code, sigterm_interrupts

# typer >= 0.29 carries its own copy of click; older releases use click. Both name the class
# `UsageError`, and typer.BadParameter derives from it in both.
UsageError = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "UsageError")


def _version(value: bool) -> None:
    if value:
        print(f"engagement {__version__}")
        raise typer.Exit()


def build_app() -> typer.Typer:
    app = typer.Typer(
        name="engagement",
        help=say("cli.description"),
        rich_markup_mode=None,  # plain help: option texts hold brackets (webcam[:N]) that markup would eat
        add_completion=False,
        no_args_is_help=True,
        context_settings={"help_option_names": ["-h", "--help"]},
    )

    @app.callback()
    def root(
        version: Annotated[
            bool, typer.Option("--version", callback=_version, is_eager=True, help=say("cli.opt.version"))
        ] = False,
    ) -> None:
        pass

    for module in (analysis, batch, live, serve, train, evaluate, privacy, dashboard, doctor):
        module.register(app)
    return app


def main(argv: list[str] | None = None) -> int:
    # Everything this program writes (the database, cohort keys, receipts, exports, the DPIA) is
    # personal data or protects it: owner-only files (0600) and directories (0700), also for the
    # dashboard server started as a child.
    os.umask(0o077)
    command = typer.main.get_command(build_app())
    args = sys.argv[1:] if argv is None else list(argv)
    with sigterm_interrupts():
        try:
            # Not command.main(): it turns KeyboardInterrupt into its own exit, losing SIGTERM's 143.
            with command.make_context("engagement", args) as ctx:
                return int(command.invoke(ctx) or 0)
        except EngagementError as exc:
            print(say("cli.error", message=exc), file=sys.stderr)
            return 2
        except KeyboardInterrupt as exc:
            what = say("cli.terminated" if isinstance(exc, Terminated) else "cli.interrupted")
            notes = "; ".join(getattr(exc, "__notes__", ()))
            print(f"{what}: {notes}" if notes else what, file=sys.stderr)
            return exit_code(exc)
        except typer.Exit as exc:  # --help, --version
            return exc.exit_code
        except UsageError as exc:
            return usage_error(exc)


def usage_error(exc) -> int:
    """argparse's shape, which scripts already know: the usage line, then `PROG: error: ...`."""
    ctx = exc.ctx
    if ctx is not None and type(exc).__name__ == "NoArgsIsHelpError":  # `engagement` alone
        print(ctx.get_help(), file=sys.stderr)
        return 2
    if ctx is not None:
        print(ctx.get_usage().replace("Usage:", "usage:", 1), file=sys.stderr)
    prog = ctx.command_path if ctx is not None else "engagement"
    print(say("cli.usage_error", prog=prog, message=exc.format_message()), file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
