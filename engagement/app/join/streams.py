"""One served session: participants who consented, their tokens, and their streams of numbers.

Each stream is one ordinary live run of the analysis pipeline (`AnalysisPipeline`, as `engagement
live` runs it) whose source is the participant's browser and whose vision stage judges the numbers
the browser measured (`BrowserVisionStage`): the attention tracker, windows, temporal stage and
writer are the ones every other run uses. The consent gate ties the stream to the participant who
consented on the page (`device_participant`), so default deny holds here as everywhere.
"""

from __future__ import annotations

import hashlib
import queue
import secrets
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import select

from engagement.app.join.ingest import AHEAD_SLACK_MS, Batch, Refused, parse_batch
from engagement.app.pipeline import AnalysisPipeline, ConsentOptions
from engagement.core import schema
from engagement.core.config import AnalysisOptions
from engagement.core.errors import StoreError
from engagement.core.records import RunningMode
from engagement.core.repositories import runs as run_rows
from engagement.core.repositories.runs import check_session_name
from engagement.vision.browser import BrowserVisionStage, NumbersFrame
from engagement.vision.landmarks import bundle_sha256
from privacy.audit import AuditAction, AuditLog
from privacy.consent import grant
from privacy.pseudonym import KeyRing, check_cohort
from privacy.subjects import erase

# The Face Landmarker build the join page runs (package.json of the vendored files).
BROWSER_RUNTIME = "@mediapipe/tasks-vision 1.1.0 (WASM, in the participant's browser)"
NOTICE_VERSION = "join-2026-1"
MAX_ID_CHARS = 120
GRANT_ATTEMPTS = 5
QUEUE_BATCHES = 10  # batches waiting for the pipeline; more means it fell behind: refuse, keep none


@dataclass(frozen=True)
class JoinLimits:
    rate_per_s: float = 4.0  # requests a second a participant's token may make, on average
    burst: float = 8.0  # and at once


class TokenBucket:
    """Per-token rate limit: `rate` requests a second on average, `burst` at once."""

    def __init__(self, rate: float, burst: float, clock: Callable[[], float]):
        self.rate, self.burst, self.clock = rate, burst, clock
        self.tokens, self.at = burst, clock()

    def take(self) -> bool:
        now = self.clock()
        self.tokens = min(self.burst, self.tokens + (now - self.at) * self.rate)
        self.at = now
        if self.tokens < 1.0:
            return False
        self.tokens -= 1.0
        return True


class BrowserSource:
    """The pipeline's `Source` for one stream: numbers frames handed over by the server as the
    browser's batches arrive, until `stop`. Running mode LIVE: every second is stored as it ends."""

    running_mode = RunningMode.LIVE
    finite = True
    duration_s = 0.0
    fps = 0.0
    frame_size = None

    def __init__(self, name: str):
        self.name = name
        self.frames_read = 0
        self.warnings: list[str] = []
        self._queue: queue.Queue[Batch | None] = queue.Queue(QUEUE_BATCHES)

    def put(self, batch: Batch) -> None:
        try:
            self._queue.put_nowait(batch)
        except queue.Full:
            raise Refused(503, "busy", "the server is behind on this stream; this second was not kept") from None

    def stop(self) -> None:
        self._queue.put(None)  # blocks at most until the pipeline takes a batch: it always ends

    def redact(self, text: str) -> str:
        return text

    def check_complete(self) -> None:
        return None

    def abandon(self) -> None:
        """The run failed: drop what waits, so that nobody waits on it."""
        while True:
            try:
                self._queue.get_nowait()
            except queue.Empty:
                return
            self._queue.task_done()

    def settled(self) -> None:
        """Wait until the pipeline has analysed every batch handed over (tests, benchmarks)."""
        self._queue.join()

    def frames(self) -> Iterator[NumbersFrame]:
        while (batch := self._queue.get()) is not None:
            for frame in batch.frames:
                self.frames_read += 1
                yield NumbersFrame(frame.t_ms, self.frames_read - 1, frame.numbers, frame.size)
            self._queue.task_done()  # the pipeline has analysed the batch's last frame
        self._queue.task_done()


@dataclass
class Stream:
    id: str
    source: BrowserSource
    started: float  # the server's clock when the stream began
    thread: threading.Thread | None = None
    last_seq: int = -1
    last_t_ms: float = -1.0
    error: BaseException | None = None
    seconds: int = 0


@dataclass
class Participant:
    token: str
    identity: str
    pseudonym: str
    lang: str
    bucket: TokenBucket
    stream: Stream | None = None
    refused: set[str] = field(default_factory=set)  # refusal codes already audited for this token


class JoinSession:
    """The participants of one served session. Thread-safe: the server calls it from many threads."""

    def __init__(self, store, session: str, *, cohort: str | None = None, profile: str = "id-pdp",
                 models_dir: Path | None = None, limits: JoinLimits = JoinLimits(),
                 clock: Callable[[], float] = time.monotonic):  # fmt: skip
        self.store, self.session = store, check_session_name(session)
        with store.transaction() as conn:
            existing = conn.execute(
                select(schema.sessions.c.cohort).where(schema.sessions.c.name == session)).first()  # fmt: skip
        # An existing session keeps its cohort (as for every run); else the one given.
        self.cohort = check_cohort(existing[0] if existing else cohort)
        self.profile, self.models_dir, self.limits, self.clock = profile, models_dir, limits, clock
        # The session row and the cohort key exist before the first participant arrives: made by
        # many streams at once, two would race to create them (PostgreSQL refuses the second).
        self.session_id = run_rows.session_id(store, self.session, cohort=self.cohort)
        KeyRing(store).key(self.cohort)
        self.token = secrets.token_urlsafe(18)  # the session's link
        self.landmarker_sha256 = bundle_sha256(models_dir)
        self._participants: dict[str, Participant] = {}
        self._streaming: dict[str, Stream] = {}  # pseudonym -> their one running stream
        self._refused_foreign: set[str] = set()
        self._lock = threading.RLock()
        self.audit = AuditLog(store)

    # -- consent ----------------------------------------------------------------------------------

    def consent(self, identity, lang: str, accepted) -> Participant:
        """The participant's own grant, audited with the notice version and language; a token."""
        if accepted is not True:
            raise Refused(400, "no_consent", "consent must be given explicitly (accept: true)")
        if not isinstance(identity, str) or not identity.strip() or len(identity) > MAX_ID_CHARS:
            raise Refused(400, "bad_identity", f"give your name or employee number (1-{MAX_ID_CHARS} characters)")
        if lang not in ("id", "en"):
            raise Refused(400, "malformed", "lang must be id or en")
        pseudonym = self._grant(identity.strip(), lang)
        with self._lock:
            token = secrets.token_urlsafe(24)
            p = Participant(token, identity.strip(), pseudonym, lang,
                            TokenBucket(self.limits.rate_per_s, self.limits.burst, self.clock))  # fmt: skip
            self._participants[token] = p
        return p

    def _grant(self, identity: str, lang: str) -> str:
        """Record the grant; a class agreeing at once meets a busy database (streams hold its
        lock for at most a short wait), so a busy store is tried again: the grant is one
        transaction, whole or not at all."""
        for attempt in range(GRANT_ATTEMPTS):
            try:
                return grant(
                    self.store, identity, cohort=self.cohort, notice_version=NOTICE_VERSION, language=lang,
                    evidence=f"join page of session {self.session}: the participant agreed in their own browser",
                    actor="participant (join page)", reason="own consent on the join page",
                )[0].participant  # fmt: skip
            except StoreError:
                if attempt == GRANT_ATTEMPTS - 1:
                    raise
                time.sleep(0.2 * (attempt + 1))
        raise AssertionError("unreachable")

    # -- tokens and abuse -------------------------------------------------------------------------

    def participant(self, token, *, charge: bool = True) -> Participant:
        """The participant a token was issued to, after the rate limit (`charge`: the request
        counts against it); a foreign token is refused (403) and audited once."""
        with self._audited():
            return self._participant(token, charge)

    def _participant(self, token, charge: bool = True) -> Participant:
        with self._lock:
            p = self._participants.get(token) if isinstance(token, str) else None
            if p is None:
                refusal = Refused(403, "foreign_token", "this token was not issued by this session (join again)")
                digest = hashlib.sha256(str(token).encode()).hexdigest()[:16]
                if digest not in self._refused_foreign and len(self._refused_foreign) < 10_000:
                    self._refused_foreign.add(digest)
                    refusal.audit = {"session": self.session, "refused": refusal.code}
                raise refusal
            if charge and not p.bucket.take():
                self._refuse(p, Refused(429, "rate_limited", "too many requests; slow down"))
            return p

    def _refuse(self, p: Participant, refusal: Refused) -> None:
        """Raise a refusal that matters, to be audited once per participant and kind (by
        `_audited`, after the lock is released: no request waits on another's audit write)."""
        if refusal.code not in p.refused:
            p.refused.add(refusal.code)
            refusal.audit = {"session": self.session, "refused": refusal.code, "participant": p.pseudonym}
        raise refusal

    @contextmanager
    def _audited(self) -> Iterator[None]:
        """Around a public method, outside its lock: write the audit entry a refusal carries."""
        try:
            yield
        except Refused as refusal:
            if refusal.audit is not None:
                details, refusal.audit = refusal.audit, None
                self.audit.record(AuditAction.PARTICIPANT_REFUSED, "participant (join page)", details)
            raise

    # -- streams ----------------------------------------------------------------------------------

    def start(self, token) -> Stream:
        """A new stream (a live run) for the participant; one at a time, whichever tab asks."""
        with self._audited(), self._lock:
            p = self._participant(token)
            if p.pseudonym in self._streaming:
                self._refuse(p, Refused(409, "second_stream", "you are already measuring in another tab or device"))
            stream_id = secrets.token_urlsafe(12)
            stream = Stream(stream_id, BrowserSource(f"browser:{stream_id[:8]}"), self.clock())
            p.stream = self._streaming[p.pseudonym] = stream
        stream.thread = threading.Thread(target=self._run, args=(p, stream), name="join-stream", daemon=True)
        stream.thread.start()
        return stream

    def _run(self, p: Participant, stream: Stream) -> None:
        """The stream's live run, in its own thread, until the participant stops (or withdraws)."""
        def vision(options, models_dir, running_mode):
            return BrowserVisionStage(options, runtime=BROWSER_RUNTIME, landmarker_sha256=self.landmarker_sha256)

        pipeline = AnalysisPipeline(
            self.store, AnalysisOptions(expression=False), profile=self.profile, models_dir=self.models_dir,
            consent=ConsentOptions(device_participant=p.identity), vision_factory=vision,
            actor="participant (join page)",
        )  # fmt: skip
        try:
            summary = pipeline.run(stream.source, self.session, cohort=self.cohort)
            stream.seconds = summary.seconds
        except BaseException as exc:  # noqa: BLE001 - kept for stop() to report, never lost
            stream.error = exc
            stream.source.abandon()
            # The operator hears of it (the participant's next batch is refused: start again).
            print(f"error: a participant's stream stopped: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
        finally:
            with self._lock:
                if self._streaming.get(p.pseudonym) is stream:
                    del self._streaming[p.pseudonym]

    def ingest(self, token, data: dict) -> Batch:
        """Check one batch against the form, the stream's order and its clock, then hand it over."""
        batch = parse_batch(data)
        with self._audited(), self._lock:
            p = self._participant(token)
            stream = p.stream
            if (stream is None or stream.id != batch.stream or self._streaming.get(p.pseudonym) is not stream
                    or stream.error is not None):
                self._refuse(p, Refused(409, "not_streaming", "this stream is not running (press Start again)"))
            if batch.seq <= stream.last_seq:
                self._refuse(p, Refused(409, "replayed", f"batch {batch.seq} was already received"))
            if batch.frames[0].t_ms <= stream.last_t_ms:
                self._refuse(p, Refused(400, "time_order",
                                        f"frame times must increase: {batch.frames[0].t_ms:g} ms after "
                                        f"{stream.last_t_ms:g} ms"))  # fmt: skip
            ahead = batch.frames[-1].t_ms - (self.clock() - stream.started) * 1000.0
            if ahead > AHEAD_SLACK_MS:
                self._refuse(p, Refused(400, "time_ahead", f"frame times run {ahead:.0f} ms ahead of the stream's clock"))
            stream.source.put(batch)
            stream.last_seq, stream.last_t_ms = batch.seq, batch.frames[-1].t_ms
        return batch

    def stop(self, token, *, participant: Participant | None = None) -> Stream | None:
        """End the participant's stream: the run flushes its last second and ends `complete`."""
        p = participant or self.participant(token)
        stream = p.stream
        if stream is None:
            return None
        p.stream = None
        if stream.thread is not None and stream.thread.is_alive():
            stream.source.stop()
            stream.thread.join(timeout=60)
        return stream

    def withdraw(self, token) -> dict:
        """Stop, then the existing erasure path: every row deleted, consents ended, a receipt."""
        p = self.participant(token)
        self.stop(token, participant=p)
        result = erase(self.store, p.identity, cohort=self.cohort, actor="participant (join page)")
        with self._lock:
            self._participants.pop(p.token, None)  # the token dies with the consent
        return result.receipt

    def recent(self, token, limit: int = 5) -> list[dict]:
        """The participant's last stored seconds: what the facilitator sees about them."""
        p = self.participant(token, charge=False)  # part of the request that was charged
        w, t = schema.window_features.c, schema.tracks.c
        with self.store.transaction() as conn:
            rows = conn.execute(
                select(w.second, w.attention, w.on_screen_ratio, w.eyes_closed_ratio, w.present_ratio,
                       w.gaze_yaw_mean, w.gaze_pitch_mean, w.face_size_mean)
                .join(schema.tracks, t.id == w.track_id).join(schema.runs, schema.runs.c.id == w.run_id)
                .where(t.participant == p.pseudonym, schema.runs.c.session_id == self.session_id)
                .order_by(w.created_at.desc(), w.second.desc()).limit(limit)
            ).all()  # fmt: skip
        return [dict(r._mapping) for r in rows]

    def close(self) -> None:
        """Stop every stream (the server is shutting down): each run ends complete."""
        with self._lock:
            people = [p for p in self._participants.values() if p.stream is not None]
        for p in people:
            self.stop(p.token, participant=p)
