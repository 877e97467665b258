"""One analysis run: source -> vision -> consent gate -> windows -> temporal -> store.

Data flows one way. Everything that can be refused (video, roster, cohort key, session name)
is checked before the run is recorded as `running`; per-second rows are then committed in
batches (so a live dashboard sees them), and the run ends `complete`. Any failure, including
Ctrl-C, SIGTERM and a video found truncated at its end, marks the run `failed`/`interrupted` and
removes every row it wrote: a run is either whole or clearly marked and empty, never silent
half-data. A writer that cannot mark its run (SIGKILL, a database that refuses the last write)
leaves it to the next command, which reaps it (`engagement.app.reaper`). Every outcome is audited.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from engagement import __version__
from engagement.app.run_writer import Heartbeat, RunWriter
from engagement.core.config import AnalysisOptions, settings_hash
from engagement.core.errors import EngagementError, StoreError
from engagement.core.interrupts import Terminated, deferred
from engagement.core.records import RunningMode, RunSummary
from engagement.core.repositories import runs as run_rows
from engagement.core.repositories.runs import RunGone, check_session_name
from engagement.core.store import Store
from engagement.core.time import utcnow
from engagement.temporal.run_config import run_settings
from engagement.temporal.stage import TemporalStage
from engagement.temporal.windows import WindowAggregator
from engagement.vision.layout import LayoutSpec, MeetingLayout
from engagement.vision.meeting import MeetingVisionStage
from engagement.vision.sources import Source
from engagement.vision.stage import VisionStage
from privacy.audit import AuditAction, AuditLog, resolve_actor
from privacy.gate import ConsentGate
from privacy.profiles import get_profile
from privacy.roster import Roster


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
    """How faces are tied to consenting participants for this run (see `privacy.gate`)."""

    device_participant: str | None = None  # one participant on their own device
    roster: Roster | Path | None = None  # gallery tile positions -> participants (a roster or its file)


VisionFactory = Callable[[AnalysisOptions, "Path | None", RunningMode], VisionStage]


def default_vision_stage(options: AnalysisOptions, models_dir: Path | None, running_mode: RunningMode) -> VisionStage:
    return VisionStage.from_options(options, models_dir, running_mode=running_mode)


def meeting_vision(spec: LayoutSpec, opening: MeetingLayout | None = None) -> VisionFactory:
    """Vision that reads the recording's meeting layout (`--layout`): one camera as before, a
    gallery through the per-tile path; `opening`: the layout it starts with, read beforehand."""

    def factory(options: AnalysisOptions, models_dir: Path | None, running_mode: RunningMode) -> VisionStage:
        return MeetingVisionStage.for_spec(options, spec, models_dir, running_mode=running_mode).start_with(opening)

    return factory


class AnalysisPipeline:
    """Runs a `Source` through the stages into the store; the source's `running_mode` says how.

    VIDEO_FILE: rows are committed every `flush_every_s` seconds of video (default 10); a store
    error fails the run. LIVE: every second is committed as it ends (default 1), and a store error
    (a locked database) keeps the second buffered for the next flush; `on_store_error` hears of it.
    """

    def __init__(
        self,
        store: Store,
        options: AnalysisOptions,
        *,
        profile: str = "id-pdp",
        consent: ConsentOptions = ConsentOptions(),
        models_dir: Path | None = None,
        flush_every_s: int | None = None,
        actor: str | None = None,
        vision_factory: VisionFactory | None = None,
        on_store_error: Callable[[StoreError], None] | None = None,
    ):
        self.store = store
        self.profile = get_profile(profile)
        # The profile decides whether the expression stage exists at all for this run.
        self.options = self.profile.analysis_options(options)
        self.consent = consent
        self.models_dir = models_dir
        self.flush_every_s = flush_every_s
        self.actor = actor
        # Gallery view brings its own vision stage (engagement/app/live/session.py).
        self.vision_factory = vision_factory or default_vision_stage
        self.on_store_error = on_store_error

    def run(
        self,
        source: Source,
        session: str,
        *,
        cohort: str | None = None,
        hook: ProgressHook | None = None,
        source_sha256: str | None = None,
    ) -> RunSummary:
        check_session_name(session)
        vision = self.vision_factory(self.options, self.models_dir, source.running_mode)
        try:
            state = self._begin(vision, source, session, cohort, source_sha256)
        except BaseException:
            vision.close()
            raise
        try:
            state.heartbeat.start()
            for frame in source.frames():
                state.heartbeat.check()
                self._analyse_frame(state, vision, source, frame, hook)
            source.check_complete()
            self._finish(state, vision, source)
        except BaseException as exc:
            status = "interrupted" if isinstance(exc, KeyboardInterrupt) else "failed"
            if isinstance(exc, KeyboardInterrupt):
                message = "stopped by SIGTERM" if isinstance(exc, Terminated) else "stopped by Ctrl-C"
            else:
                message = str(exc) if isinstance(exc, EngagementError) else f"{type(exc).__name__}: {exc}"
            with deferred():
                self._abandon(state.audit, state.actor, state.run_id, state.session_id, status,
                              source.redact(message), exc)  # fmt: skip
            raise
        finally:
            state.heartbeat.stop()
            vision.close()
        return self._summary(state, vision, source)

    def _begin(self, vision: VisionStage, source: Source, session: str, cohort: str | None,
               source_sha256: str | None) -> "_RunState":  # fmt: skip
        """Everything that can be refused is checked before the run row exists, so a refusal
        leaves no run behind: the consent gate reads the roster, creates the cohort key (an
        unwritable key directory fails here) and turns identities into pseudonyms. An existing
        session keeps its own cohort, as it always has."""
        mode = source.running_mode
        live = mode is RunningMode.LIVE
        temporal = TemporalStage.load(self.models_dir)
        gate = ConsentGate.for_session(
            self.store,
            session,
            at=utcnow(),
            roster=self.consent.roster,
            device_participant=self.consent.device_participant,
            cohort=None if run_rows.session_exists(self.store, session) else cohort,
        )
        if gate.reads_names:  # a roster of display names: tiles are told apart by their labels
            vision.read_names(gate.label_key)
        session_id = run_rows.session_id(self.store, session, cohort=cohort)
        settings = run_settings(self.options, self.models_dir, k_min=temporal.k_min)
        run_id = run_rows.begin_run(
            self.store,
            session_id,
            mode=mode.value,
            source=source.name,
            software_version=__version__,
            profile=self.profile.name,
            config=settings,
            config_hash=settings_hash(settings),
            models={**vision.model_versions(), **temporal.model_versions()},
            source_sha256=source_sha256,
        )
        return _RunState(
            run_id=run_id, session_id=session_id, settings=settings, gate=gate,
            writer=RunWriter(self.store, run_id, temporal, gate),
            aggregator=WindowAggregator(self.options.window_ms),
            heartbeat=Heartbeat(self.store, run_id),
            audit=AuditLog(self.store), actor=self.actor or resolve_actor(),
            write=self._retrying_write if live else self._write,
            flush_every_s=max(1, self.flush_every_s or (1 if live else 10)),
            summary=RunSummary(session=session, run_id=run_id),
        )  # fmt: skip

    def _analyse_frame(self, state: "_RunState", vision: VisionStage, source: Source, frame,
                       hook: ProgressHook | None) -> None:  # fmt: skip
        faces = vision.observe(frame)
        admitted = [face for face in faces if self._admit(state, vision, face.track_id, vision.consent_box(face), frame)]
        for face in admitted:
            state.writer.note_seen(face.track_id, frame.t_ms)
        # Participants there without a face (a gallery tile with its camera off) are admitted the
        # same way: they are counted, and their seconds are `absent`, under the same id as their video.
        present = [track_id for track_id, box in vision.faceless_tracks() if self._admit(state, vision, track_id, box, frame)]
        state.frames_with_face += bool(admitted)
        state.writer.last_ms = frame.t_ms
        features = vision.measure(frame, admitted)
        state.summary.frames_analysed += 1
        unknown = vision.unmeasurable_tracks()
        windows = state.aggregator.add(
            frame.t_ms, features, present=present, unmeasurable=[t for t in present if t in unknown]
        )
        if windows:
            state.writer.add(windows, state.allowed)
            if state.writer.pending_seconds >= state.flush_every_s:
                state.write(state.writer.flush, source.frames_read, state.summary.frames_analysed)
        if hook:
            hook(Progress(source.frames_read, state.summary.frames_analysed, frame.t_ms,
                          source.duration_s * 1000.0, len(faces), len(state.seen)))  # fmt: skip

    @staticmethod
    def _admit(state: "_RunState", vision: VisionStage, track_id: int, box, frame) -> bool:
        """Whether the consent gate lets this track be measured now (default deny)."""
        state.seen.add(track_id)
        participant = state.gate.participant_for(
            f"T{track_id}", box, frame.size, frame.t_ms, name_key=vision.name_key(track_id)
        )
        if participant is None:
            # Default deny: no consent, nothing measured, nothing stored.
            state.denied.add(track_id)
            if track_id in state.allowed:  # consent withdrawn during the run
                del state.allowed[track_id]
                state.aggregator.forget(track_id)
                state.writer.forget(track_id)
            return False
        state.allowed[track_id] = participant
        return True

    def _finish(self, state: "_RunState", vision: VisionStage, source: Source) -> None:
        writer = state.writer
        writer.add(state.aggregator.flush(), state.allowed)
        if state.summary.frames_analysed:
            # Seconds of video looked at, also when no face (and so no window) was found.
            writer.seconds = max(writer.seconds, int(writer.last_ms // self.options.window_ms) + 1)
        state.write(writer.finish, source.frames_read, state.summary.frames_analysed, final=True)
        outcome = {
            "run_id": state.run_id,
            "session_id": state.session_id,
            "profile": self.profile.name,
            "status": "complete",
            "tracks": len(writer.track_ids),
            "denied_tracks": len(state.denied - set(state.allowed)),
            "seconds": writer.seconds,
            "config_hash": settings_hash(state.settings),
        }
        if vision.shared_name_frames():  # a warning for the privacy officer: one name in two tiles
            outcome["shared_name_frames"] = vision.shared_name_frames()
        layouts = vision.layout_changes()
        if layouts:  # recorded with the run: which layout was read, and from when
            outcome["layouts"] = [{"t_s": round(t_ms / 1000.0, 2), "layout": text} for t_ms, text in layouts]
        state.write(
            self._complete,
            state.audit,
            state.actor,
            outcome,
            frames_read=source.frames_read,
            frames_analysed=state.summary.frames_analysed,
            final=True,
        )

    @staticmethod
    def _summary(state: "_RunState", vision: VisionStage, source: Source) -> RunSummary:
        summary, writer = state.summary, state.writer
        summary.frames_read = source.frames_read
        summary.seconds = writer.seconds
        summary.tracks = len(writer.track_ids)
        frames = summary.frames_analysed
        summary.face_present_share = state.frames_with_face / frames if frames else 0.0
        summary.wall_s = time.perf_counter() - state.clock
        summary.track_spans = writer.spans()
        summary.layouts = vision.layout_changes()
        summary.notes.extend(source.warnings)
        unconsented = len(state.denied - set(state.allowed))
        if unconsented:
            summary.notes.append(f"{unconsented} face track(s) had no recorded consent and were not analysed")
        return summary

    def _complete(self, audit, actor: str, outcome: dict, *, frames_read: int, frames_analysed: int) -> None:
        """The run ends `complete` and is audited in one transaction: no outcome goes unrecorded."""
        with self.store.transaction() as conn:
            run_rows.finish_run(
                self.store, outcome["run_id"], frames_read=frames_read, frames_analysed=frames_analysed,
                seconds=outcome["seconds"], conn=conn,
            )  # fmt: skip
            audit.record(AuditAction.ANALYSIS_RUN, actor, outcome, conn=conn)

    def _abandon(self, audit, actor: str, run_id: int, session_id: int, status: str, message: str,
                 exc: BaseException) -> None:  # fmt: skip
        """A run that stops short keeps no rows (live runs too): mark it, empty it, audit it."""
        try:
            with self.store.transaction() as conn:
                if not run_rows.abandon_run(self.store, run_id, status=status, error=message, conn=conn):
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

    @staticmethod
    def _write(action: Callable, *args, final: bool = False, **kwargs) -> None:
        """One store write of a file run: a failure fails the run."""
        action(*args, **kwargs)

    def _retrying_write(self, action: Callable, *args, final: bool = False, **kwargs) -> None:
        """One store write of a live run: a failure is reported and the data kept for a retry;
        a periodic flush retries with the next second, the final one a few times here."""
        for attempt in range(FINAL_WRITE_ATTEMPTS if final else 1):
            try:
                action(*args, **kwargs)
                return
            except RunGone:
                raise  # reaped by another process: retrying cannot help
            except StoreError as exc:
                if self.on_store_error is not None:
                    self.on_store_error(exc)
                if final and attempt == FINAL_WRITE_ATTEMPTS - 1:
                    raise
                if final:
                    time.sleep(1.0)


@dataclass
class _RunState:
    """What one run carries from frame to frame."""

    run_id: int
    session_id: int
    settings: dict
    gate: ConsentGate
    writer: RunWriter
    aggregator: WindowAggregator
    heartbeat: Heartbeat
    audit: AuditLog
    actor: str
    write: Callable
    flush_every_s: int
    summary: RunSummary
    denied: set[int] = field(default_factory=set)
    allowed: dict[int, str] = field(default_factory=dict)  # track id -> pseudonym
    seen: set[int] = field(default_factory=set)
    frames_with_face: int = 0
    clock: float = field(default_factory=time.perf_counter)


# Live runs: how often the closing write is tried (each try waits out SQLite's busy timeout).
FINAL_WRITE_ATTEMPTS = 10
