"""Class-level rows follow the people they were made from.

A class timeline second and the alerts over it are computed from the consenting participants'
per-second rows. When consent is withdrawn or a person is erased, their rows go, and so must
their share of the class figures: every affected run's class timeline is recomputed from the
rows that remain, with the same minimum group size k (so a figure fewer than k people stand
behind stays hidden), and its alerts from that timeline. A second nobody is left in has no row,
so no class row survives that only the removed person made. Where the per-second rows are gone
already (past their retention period), nothing remains to recompute from and the run's class
rows go with the person.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from sqlalchemy.engine import Connection

from engagement.core.repositories import class_rows as repo
from engagement.temporal.timeline import K_MIN, class_alerts, class_point


def rederive(conn: Connection, run_ids: Iterable[int]) -> dict[str, int]:
    """Recompute the class rows of `run_ids` from what remains; the receipt's counts: class
    timeline rows and alerts deleted, and timeline rows recomputed in their place."""
    counts = {"class_timeline": 0, "alerts": 0, "class_timeline_recomputed": 0}
    for run_id in sorted(set(run_ids)):
        seconds = repo.timeline_seconds(conn, run_id)
        estimates, windows = repo.second_rows(conn, run_id)
        k_min = repo.run_k_min(conn, run_id) or K_MIN
        by_second, windows_by_second = defaultdict(list), defaultdict(list)
        for e in estimates:
            by_second[int(e.second)].append(e)
        for w in windows:
            windows_by_second[int(w.second)].append(w)
        # Only seconds the run had a class row for, and only where someone is left.
        starts = yawn_starts(windows_by_second)
        points = [class_point(s, by_second[s], k_min, windows=windows_by_second[s], yawn_starts=starts.get(s, 0))
                  for s in seconds if by_second.get(s)]
        alerts = class_alerts(points)
        removed, removed_alerts = repo.replace_class_rows(
            conn, run_id, [p.to_dict() for p in points], [a.to_dict() for a in alerts])
        counts["class_timeline"] += removed
        counts["alerts"] += removed_alerts
        counts["class_timeline_recomputed"] += len(points)
    return counts


def yawn_starts(windows_by_second: dict) -> dict[int, int]:
    """Per second, how many of the remaining participants began a yawn then (in a yawn this
    second and not the second before), as the temporal stage counts them while analysing."""
    starts, yawning = {}, set()
    for second in sorted(windows_by_second):
        now = {w.track_id for w in windows_by_second[second] if w.yawn == 1}
        starts[second] = len(now - yawning)
        yawning = now
    return starts
