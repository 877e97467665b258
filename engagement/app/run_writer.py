"""What a run writes while it goes: its buffered per-second rows, and its heartbeat.

Rows are committed in one transaction per flush (a live dashboard sees whole seconds); a flush
that fails keeps its rows for the next try. The heartbeat tells other hosts the run is alive.
"""

from __future__ import annotations

from engagement.app.periodic import Periodic
from engagement.core.errors import StoreError
from engagement.core.records import WindowFeatures
from engagement.core.repositories import runs as run_rows
from engagement.core.repositories.runs import HEARTBEAT_EVERY_S, RunGone
from engagement.core.store import Store


class Heartbeat(Periodic):
    """Refreshes the run's heartbeat from a thread, also while no row is written (a long stretch
    without faces, a camera that is reconnecting), so that another host does not take the run
    for dead; notices when another process reaped it all the same."""

    def __init__(self, store: Store, run_id: int, every_s: float = HEARTBEAT_EVERY_S):
        super().__init__(every_s, "run-heartbeat")
        self.store, self.run_id = store, run_id
        self.gone = False

    def check(self) -> None:
        if self.gone:
            raise RunGone(f"run {self.run_id} was reaped by another process (no heartbeat seen in time)")

    def tick(self) -> bool:
        try:
            self.gone = not run_rows.touch_run(self.store, self.run_id)
        except StoreError:
            pass  # a busy database: the next beat tries again
        return not self.gone


class RunWriter:
    """Buffers windows and temporal outputs of one run and writes them in transactions."""

    def __init__(self, store: Store, run_id: int, temporal, gate):
        self.store = store
        self.gate = gate
        self.participants: dict[int, str] = {}  # vision track id -> pseudonym
        self.run_id = run_id
        self.temporal = temporal
        self.track_ids: dict[int, int] = {}  # vision track id -> tracks.id
        self._new_tracks: dict[int, tuple[str, int]] = {}
        self._windows: list[WindowFeatures] = []
        self._outputs: list = []
        self._seen_ms: dict[int, list[float]] = {}
        self.pending_seconds = 0
        self.seconds = 0
        self._alerts: list | None = None
        self.last_ms = 0.0  # media time of the newest frame handed to the writer

    def add(self, windows: list[WindowFeatures], allowed: dict[int, str]) -> None:
        if not windows:
            return
        by_track = {}
        for w in windows:
            if w.track_id not in allowed:
                continue
            if w.track_id not in self.track_ids and w.track_id not in self._new_tracks:
                self._new_tracks[w.track_id] = (allowed[w.track_id], w.second)
                self.participants[w.track_id] = allowed[w.track_id]
            by_track[w.track_id] = w
            self._windows.append(w)
        second = windows[0].second
        self._outputs.append(self.temporal.process_second(second, by_track, consenting=set(by_track)))
        self.pending_seconds += 1
        self.seconds = max(self.seconds, second + 1)

    def note_seen(self, track_id: int, t_ms: float) -> None:
        span = self._seen_ms.setdefault(track_id, [t_ms, t_ms])
        span[1] = t_ms

    def forget(self, track_id: int) -> None:
        self._seen_ms.pop(track_id, None)
        self._windows = [w for w in self._windows if w.track_id != track_id]
        self._new_tracks.pop(track_id, None)

    def flush(self, frames_read: int, frames_analysed: int, alerts: list | None = None) -> None:
        with self.store.transaction() as conn:
            # First: a run reaped by another process (RunGone) gets nothing more written.
            run_rows.heartbeat(conn, self.run_id, frames_read, frames_analysed, self.seconds)
            # Participants who withdrew while the run was going: their rows of this run are
            # deleted here, and nothing more of theirs is written.
            gone = self.gate.sweep(conn, self.run_id, t_ms=self.last_ms)
            for track_id, participant in list(self.participants.items()):
                if participant in gone:
                    self.track_ids.pop(track_id, None)
                    self._new_tracks.pop(track_id, None)
            # New track ids are kept aside until the commit, so a failed flush can be retried.
            added = {
                track_id: run_rows.add_track(conn, self.run_id, f"T{track_id}", participant, second)
                for track_id, (participant, second) in sorted(self._new_tracks.items())
            }
            track_ids = {**self.track_ids, **added}
            run_rows.write_windows(
                conn, self.run_id, [(track_ids[w.track_id], w) for w in self._windows if w.track_id in track_ids]
            )
            estimates, points = [], []
            for out in self._outputs:
                estimates += [
                    {**est.to_dict(), "track_id": track_ids[est.track_id]}
                    for est in out.estimates
                    if est.track_id in track_ids
                ]
                points.append(out.class_point.to_dict())
            run_rows.write_outputs(conn, self.run_id, estimates, points, [a.to_dict() for a in alerts or ()])
            for track_id, (first_ms, last_ms) in self._seen_ms.items():
                if track_id in track_ids:
                    run_rows.set_track_span(conn, track_ids[track_id], first_ms, last_ms)
        self.track_ids = track_ids
        self._new_tracks.clear()
        self._windows.clear()
        self._outputs.clear()
        self.pending_seconds = 0

    def finish(self, frames_read: int, frames_analysed: int) -> None:
        if self._alerts is None:  # once: a retried finish must not close the temporal stage twice
            self._alerts = self.temporal.finish()
        self.flush(frames_read, frames_analysed, alerts=self._alerts)

    def spans(self) -> dict[str, tuple[float, float]]:
        return {f"T{k}": (v[0], v[1]) for k, v in self._seen_ms.items() if k in self.track_ids}


