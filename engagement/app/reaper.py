"""Runs whose writer is gone (killed, crashed, its machine lost): mark them and remove their rows.

A run killed with SIGKILL, or whose last write failed (a locked or full database), cannot mark
itself. Every command that opens the store for writing calls `reap_dead_runs` first: a
`running` run whose writer process has ended on this host, or whose heartbeat is older than
`engagement.core.repositories.runs.STALE_AFTER_S` (a writer on another host), is marked `interrupted`, its
per-second rows (windows, estimates, tracks, class timeline, alerts) are deleted, and an audit
entry records it, all in one transaction. Two commands reaping at once cannot both act on a run:
only a run still `running` is changed.
"""

from __future__ import annotations

import sys

from engagement.core.repositories import runs as run_rows
from engagement.core.repositories.runs import DeadRun
from engagement.core.store import Store
from privacy.audit import AuditAction, AuditLog, resolve_actor


def reap_dead_runs(store: Store, *, actor: str | None = None) -> list[DeadRun]:
    """Reap every dead run; returns the runs reaped by this call."""
    audit = AuditLog(store)
    reaped = []
    for run in run_rows.dead_runs(store):
        with store.transaction() as conn:
            error = f"interrupted: the process writing this run is gone ({run.reason})"
            if not run_rows.abandon_run(store, run.id, status="interrupted", error=error, conn=conn):
                continue  # finished or reaped by another process meanwhile
            audit.record(
                AuditAction.ANALYSIS_RUN,
                actor or resolve_actor(),
                {"run_id": run.id, "session_id": run.session_id, "status": "interrupted", "reaped": True,
                 "reason": run.reason},
                conn=conn,
            )
        reaped.append(run)
    return reaped


def reap_and_report(store: Store) -> None:
    """Reap, and tell the user on stderr about each run reaped (a command's start-up)."""
    for run in reap_dead_runs(store):
        print(
            f"note: run {run.id} of session {run.session!r} was left running by a writer that is gone "
            f"({run.reason}); it is now marked interrupted and its rows are removed",
            file=sys.stderr,
        )
