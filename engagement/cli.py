"""The `engagement` command: one entry point, one subcommand per job.

Every user-facing failure is an `EngagementError` and ends as one line on stderr and exit code 2;
Ctrl-C and SIGTERM end as one line and 130 / 143; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading

from engagement import __version__
from engagement.errors import EngagementError
from engagement.interrupts import Terminated, raise_on_sigterm


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="engagement",
        description="Classroom engagement analytics: attention signals from video, privacy by design.",
    )
    parser.add_argument("--version", action="version", version=f"engagement {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    from engagement.commands import analysis, batch, live, models

    analysis.register(sub)
    batch.register(sub)
    live.register(sub)
    models.register(sub)

    from privacy import cli as privacy_cli

    privacy_cli.register(sub)

    from dashboard import cli as dashboard_cli

    dashboard_cli.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    # Everything this program writes (the database, cohort keys, receipts, exports, the DPIA) is
    # personal data or protects it: owner-only files (0600) and directories (0700), also for the
    # dashboard server started as a child.
    os.umask(0o077)
    parser = build_parser()
    # Training/evaluation subcommands hand their options to the module that owns them.
    args, extra = parser.parse_known_args(argv)
    if extra:
        if not getattr(args, "forward", False):
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
        args.args = extra + args.args
    main_thread = threading.current_thread() is threading.main_thread()
    # SIGTERM stops a command the way Ctrl-C does (put back afterwards for in-process callers).
    previous = signal.signal(signal.SIGTERM, raise_on_sigterm) if main_thread else None
    try:
        return int(args.handler(args) or 0)
    except EngagementError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:
        what = "terminated (SIGTERM)" if isinstance(exc, Terminated) else "interrupted"
        notes = "; ".join(getattr(exc, "__notes__", ()))
        print(f"{what}: {notes}" if notes else what, file=sys.stderr)
        return 128 + (signal.SIGTERM if isinstance(exc, Terminated) else signal.SIGINT)
    finally:
        if main_thread:
            signal.signal(signal.SIGTERM, signal.SIG_DFL if previous is None else previous)


if __name__ == "__main__":
    sys.exit(main())
