"""One analysis run: source -> vision -> consent gate -> windows -> temporal -> store.

Data flows one way. Everything that can be refused (video, roster, cohort key, session name)
is checked before the run is recorded as `running`; per-second rows are then committed in
batches (so a live dashboard sees them), and the run ends `complete`. Any failure, including
Ctrl-C, SIGTERM and a video found truncated at its end, marks the run `failed`/`interrupted` and
removes every row it wrote: a run is either whole or clearly marked and empty, never silent
half-data. A writer that cannot mark its run (SIGKILL, a database that refuses the last write)
leaves it to the next command, which reaps it (`engagement.reaper`). Every outcome is audited.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from engagement import __version__
from engagement.config import AnalysisOptions, settings_hash
from engagement.errors import EngagementError, StoreError
from engagement.interrupts import Terminated, deferred
from engagement.records import RunSummary, WindowFeatures
from engagement.store import HEARTBEAT_EVERY_S, RunGone, Store, check_session_name, utcnow
from engagement.temporal.run_config import run_settings
from engagement.temporal.windows import WindowAggregator
from engagement.vision.stage import VisionStage

if TYPE_CHECKING:
    from privacy.consent import Roster


@dataclass(frozen=True)
class Progress:
    """What the pipeline reports to its hook after each analysed frame."""

    frames_read: int
    frames_analysed: int
    t_ms: float
    duration_ms: float  # 0 when unknown (live sources)
    faces: int
    tracks: int


ProgressHook = Callable[[Progress], None]


@dataclass(frozen=True)
class ConsentOptions:
    """How faces are tied to consenting participants for this run (see `privacy.consent`)."""

    device_participant: str | None = None  # one participant on their own device
    roster: Roster | Path | None = None  # gallery tile positions -> participants (a roster or its file)


class AnalysisPipeline:
    def __init__(
        self,
        store: Store,
        options: AnalysisOptions,
        *,
        profile: str = "id-pdp",
        consent: ConsentOptions = ConsentOptions(),
        models_dir: Path | None = None,
        flush_every_s: int = 10,
        actor: str | None = None,
        vision_factory: Callable[[AnalysisOptions, Path | None], VisionStage] | None = None,
        on_store_error: Callable[[StoreError], None] | None = None,
    ):
        from privacy.profiles import get_profile

        self.store = store
        self.profile = get_profile(profile)
        # The profile decides whether the expression stage exists at all for this run.
        self.options = self.profile.analysis_options(options)
        self.consent = consent
        self.models_dir = models_dir
        self.flush_every_s = max(1, flush_every_s)
        self.actor = actor
        # Seams for live runs (engagement/live.py): gallery view brings its own vision stage; with
        # `on_store_error` a failed write (locked database) is reported and retried a second later
        # instead of failing the run.
        self.vision_factory = vision_factory or VisionStage.from_options
        self.on_store_error = on_store_error

    def run(
        self,
        source,
        session: str,
        *,
        cohort: str | None = None,
        hook: ProgressHook | None = None,
        source_sha256: str | None = None,
    ) -> RunSummary:
        from privacy.audit import AuditLog, resolve_actor
        from privacy.consent import ConsentGate

        from engagement.temporal.stage import TemporalStage

        check_session_name(session)
        actor = self.actor or resolve_actor()
        audit = AuditLog(self.store)
        vision = self.vision_factory(self.options, self.models_dir)
        try:
            temporal = TemporalStage.load(self.models_dir)
            # Everything that can be refused is checked before the run row exists, so a refusal
            # leaves no run behind: the consent gate reads the roster, creates the cohort key (an
            # unwritable key directory fails here) and turns identities into pseudonyms. An
            # existing session keeps its own cohort, as it always has.
            gate = ConsentGate.for_session(
                self.store,
                session,
                at=utcnow(),
                roster=self.consent.roster,
                device_participant=self.consent.device_participant,
                cohort=None if self.store.session_exists(session) else cohort,
            )
            session_id = self.store.session_id(session, cohort=cohort)
            models = {**vision.model_versions(), **temporal.model_versions()}
            settings = run_settings(self.options, self.models_dir, k_min=temporal.k_min)
            run_id = self.store.begin_run(
                session_id,
                mode="live" if source.kind != "file" else "file",
                source=source.name,
                software_version=__version__,
                profile=self.profile.name,
                config=settings,
                config_hash=settings_hash(settings),
                models=models,
                source_sha256=source_sha256,
            )
        except BaseException:
            vision.close()
            raise
        summary = RunSummary(session=session, run_id=run_id)
        writer = _RunWriter(self.store, run_id, temporal, gate)
        aggregator = WindowAggregator(self.options.window_ms)
        heartbeat = _Heartbeat(self.store, run_id)
        denied: set[int] = set()
        allowed: dict[int, str] = {}
        seen: set[int] = set()
        frames_with_face = 0
        clock = time.perf_counter()
        duration_ms = source.duration_s * 1000.0 if hasattr(source, "duration_s") else 0.0
        try:
            heartbeat.start()
            for frame in source.frames():
                heartbeat.check()
                faces = vision.observe(frame)
                admitted = []
                for face in faces:
                    seen.add(face.track_id)
                    participant = gate.participant_for(
                        f"T{face.track_id}", vision.consent_box(face), frame.size, frame.t_ms
                    )
                    if participant is None:
                        # Default deny: no consent, nothing measured, nothing stored.
                        denied.add(face.track_id)
                        if face.track_id in allowed:  # consent withdrawn during the run
                            del allowed[face.track_id]
                            aggregator.forget(face.track_id)
                            writer.forget(face.track_id)
                        continue
                    allowed[face.track_id] = participant
                    admitted.append(face)
                    writer.note_seen(face.track_id, frame.t_ms)
                frames_with_face += bool(admitted)
                writer.last_ms = frame.t_ms
                features = vision.measure(frame, admitted)
                summary.frames_analysed += 1
                windows = aggregator.add(frame.t_ms, features)
                if windows:
                    writer.add(windows, allowed)
                    if writer.pending_seconds >= self.flush_every_s:
                        self._write(writer.flush, source.frames_read, summary.frames_analysed)
                if hook:
                    hook(
                        Progress(
                            source.frames_read, summary.frames_analysed, frame.t_ms, duration_ms, len(faces), len(seen)
                        )
                    )
            source.check_complete()
            writer.add(aggregator.flush(), allowed)
            if summary.frames_analysed:
                # Seconds of video looked at, also when no face (and so no window) was found.
                writer.seconds = max(writer.seconds, int(writer.last_ms // self.options.window_ms) + 1)
            self._write(writer.finish, source.frames_read, summary.frames_analysed, final=True)
            unconsented = len(denied - set(allowed))
            outcome = {
                "run_id": run_id,
                "session_id": session_id,
                "profile": self.profile.name,
                "status": "complete",
                "tracks": len(writer.track_ids),
                "denied_tracks": unconsented,
                "seconds": writer.seconds,
                "config_hash": settings_hash(settings),
            }
            self._write(
                self._complete,
                audit,
                actor,
                outcome,
                frames_read=source.frames_read,
                frames_analysed=summary.frames_analysed,
                final=True,
            )
        except BaseException as exc:
            status = "interrupted" if isinstance(exc, KeyboardInterrupt) else "failed"
            if isinstance(exc, KeyboardInterrupt):
                message = "stopped by SIGTERM" if isinstance(exc, Terminated) else "stopped by Ctrl-C"
            else:
                message = str(exc) if isinstance(exc, EngagementError) else f"{type(exc).__name__}: {exc}"
            redact = getattr(source, "redact", None)
            with deferred():
                self._abandon(audit, actor, run_id, session_id, status, redact(message) if redact else message, exc)
            raise
        finally:
            heartbeat.stop()
            vision.close()
        summary.frames_read = source.frames_read
        summary.seconds = writer.seconds
        summary.tracks = len(writer.track_ids)
        summary.face_present_share = frames_with_face / summary.frames_analysed if summary.frames_analysed else 0.0
        summary.wall_s = time.perf_counter() - clock
        summary.track_spans = writer.spans()
        summary.notes.extend(getattr(source, "warnings", ()))
        if unconsented:
            summary.notes.append(f"{unconsented} face track(s) had no recorded consent and were not analysed")
        return summary

    def _complete(self, audit, actor: str, outcome: dict, *, frames_read: int, frames_analysed: int) -> None:
        """The run ends `complete` and is audited in one transaction: no outcome goes unrecorded."""
        from privacy.audit import AuditAction

        with self.store.transaction() as conn:
            self.store.finish_run(
                outcome["run_id"], frames_read=frames_read, frames_analysed=frames_analysed,
                seconds=outcome["seconds"], conn=conn,
            )  # fmt: skip
            audit.record(AuditAction.ANALYSIS_RUN, actor, outcome, conn=conn)

    def _abandon(self, audit, actor: str, run_id: int, session_id: int, status: str, message: str,
                 exc: BaseException) -> None:  # fmt: skip
        """A run that stops short keeps no rows (live runs too): mark it, empty it, audit it."""
        from privacy.audit import AuditAction

        try:
            with self.store.transaction() as conn:
                if not self.store.abandon_run(run_id, status=status, error=message, conn=conn):
                    return  # already complete, or reaped by another process
                audit.record(
                    AuditAction.ANALYSIS_RUN,
                    actor,
                    {"run_id": run_id, "session_id": session_id, "profile": self.profile.name, "status": status,
                     "error": type(exc).__name__},
                    conn=conn,
                )  # fmt: skip
            exc.add_note(f"run {run_id} was marked {status} and its rows removed")
        except EngagementError as problem:
            # The database refuses even this (locked, full): the run stays `running` until the
            # next command that opens the database finds its process gone and reaps it.
            exc.add_note(f"run {run_id} could not be marked {status} ({problem}); the next command will")

    def _write(self, action: Callable, *args, final: bool = False, **kwargs) -> None:
        """Run one store write; in live runs a failure is reported and the data kept for a retry:
        a periodic flush retries with the next second, the final one a few times here."""
        if self.on_store_error is None:
            action(*args, **kwargs)
            return
        for attempt in range(FINAL_WRITE_ATTEMPTS if final else 1):
            try:
                action(*args, **kwargs)
                return
            except RunGone:
                raise  # reaped by another process: retrying cannot help
            except StoreError as exc:
                self.on_store_error(exc)
                if final and attempt == FINAL_WRITE_ATTEMPTS - 1:
                    raise
                if final:
                    time.sleep(1.0)


# Live runs: how often the closing write is tried (each try waits out SQLite's busy timeout).
FINAL_WRITE_ATTEMPTS = 10


class _Heartbeat:
    """Refreshes the run's heartbeat from a thread, also while no row is written (a long stretch
    without faces, a camera that is reconnecting), so that another host does not take the run
    for dead; notices when another process reaped it all the same."""

    def __init__(self, store: Store, run_id: int, every_s: float = HEARTBEAT_EVERY_S):
        self.store, self.run_id, self.every_s = store, run_id, every_s
        self.gone = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="run-heartbeat", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)

    def check(self) -> None:
        if self.gone:
            raise RunGone(f"run {self.run_id} was reaped by another process (no heartbeat seen in time)")

    def _beat(self) -> None:
        while not self._stop.wait(self.every_s):
            try:
                if not self.store.touch_run(self.run_id):
                    self.gone = True
                    return
            except StoreError:
                continue  # a busy database: the next beat tries again


class _RunWriter:
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
            self.store.heartbeat(conn, self.run_id, frames_read, frames_analysed, self.seconds)
            # Participants who withdrew while the run was going: their rows of this run are
            # deleted here, and nothing more of theirs is written.
            gone = self.gate.sweep(conn, self.run_id, t_ms=self.last_ms)
            for track_id, participant in list(self.participants.items()):
                if participant in gone:
                    self.track_ids.pop(track_id, None)
                    self._new_tracks.pop(track_id, None)
            # New track ids are kept aside until the commit, so a failed flush can be retried.
            added = {
                track_id: self.store.add_track(conn, self.run_id, f"T{track_id}", participant, second)
                for track_id, (participant, second) in sorted(self._new_tracks.items())
            }
            track_ids = {**self.track_ids, **added}
            self.store.write_windows(
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
            self.store.write_outputs(conn, self.run_id, estimates, points, [a.to_dict() for a in alerts or ()])
            for track_id, (first_ms, last_ms) in self._seen_ms.items():
                if track_id in track_ids:
                    self.store.set_track_span(conn, track_ids[track_id], first_ms, last_ms)
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


