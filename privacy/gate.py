"""The consent gate the pipeline asks before computing anything for a face.

Default deny: a face that cannot be tied to a consenting participant gets no pseudonym, so the
pipeline computes nothing for it and stores nothing. Three ways to tie a face to a participant:

1. device: one participant on their own device (`device_participant`); the first face seen is
   theirs, and a second face at the same time is denied (someone behind them did not consent).
2. roster: gallery-view tile positions -> participant identity (`privacy.roster.Roster`); the
   face's centre picks the tile. A roster of display names (`name = "Budi S."`) ties a tile to
   the participant whose name its label shows, wherever the tile moves (`label_key`); a tile
   whose label shows a name not in the roster is denied, one without a readable label falls
   back to the position rule.
3. attestation: a facilitator's recorded statement that everyone present in a session consented;
   each track gets a pseudonym derived from session + track label (nobody is identified).

Consent is checked at the moment of the frame (run start + t_ms), and the gate re-reads the
records every `refresh_s` seconds of wall-clock, so a withdrawal during a live run stops
processing from that moment. Withdrawal also purges everything stored for that participant.
"""

from __future__ import annotations

import difflib
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import and_, or_, select
from sqlalchemy.engine import Connection

from engagement.core import schema
from engagement.core.repositories import consent as repo
from engagement.core.time import as_utc, utcnow
from engagement.vision.name_labels import normalise_display_name
from privacy.consent import ANALYSIS_SCOPE, check_scopes, is_active
from privacy.data import delete_participant_data
from privacy.pseudonym import ATTESTED_PREFIX, KeyRing, check_cohort
from privacy.roster import Roster, load_roster


@dataclass
class _Binding:
    label: str
    last_t_ms: float


@dataclass
class ConsentGate:
    """Ask `participant_for` for every face; None means: compute nothing, store nothing."""

    store: object
    session_name: str
    cohort: str
    at: datetime
    scope: str = ANALYSIS_SCOPE
    roster: Roster | None = None
    device_participant: str | None = None  # the pseudonym, never the identity
    refresh_s: float = 1.0
    # A participant is bound to one track at a time; another face claiming the same participant
    # while the bound track was seen within this many ms is denied.
    hold_ms: float = 2000.0
    ring: KeyRing | None = None
    _intervals: dict[str, list[tuple[datetime, datetime | None]]] = field(default_factory=dict)
    _attested: list[tuple[datetime, datetime | None]] = field(default_factory=list)
    _loaded_at: float = -1e18
    _bindings: dict[str, _Binding] = field(default_factory=dict)
    _roster_pseudonyms: dict[str, str] = field(default_factory=dict)
    _label_pseudonyms: dict[str, str] = field(default_factory=dict)  # label key -> participant
    _ever_tied: set[str] = field(default_factory=set)
    _swept: set[str] = field(default_factory=set)

    @classmethod
    def for_session(
        cls,
        store,
        session_name: str,
        *,
        at: datetime | None = None,
        roster: Roster | str | Path | None = None,
        device_participant: str | None = None,
        scope: str = ANALYSIS_SCOPE,
        cohort: str | None = None,
        refresh_s: float = 1.0,
    ) -> "ConsentGate":
        """The gate for one run of `session_name`; `at` is the run's wall-clock start (now).
        `device_participant` is the identity of the single participant on their own device."""
        scope = check_scopes([scope])[0]
        if isinstance(roster, (str, Path)):
            roster = load_roster(roster)
        with store.transaction() as conn:
            session_cohort = repo.session_cohort(conn, session_name)
        cohort = check_cohort(cohort or session_cohort or (roster.cohort if roster else None))
        ring = KeyRing(store)
        ring.key(cohort)  # create the key now, never later inside the pipeline's transaction
        gate = cls(store=store, session_name=session_name, cohort=cohort, at=as_utc(at) if at else utcnow(),
                   scope=scope, roster=roster, refresh_s=refresh_s, ring=ring)
        if device_participant:
            gate.device_participant = ring.pseudonym(device_participant, cohort)
        if roster:
            gate._roster_pseudonyms = {e.identity: ring.pseudonym(e.identity, cohort) for e in roster.entries}
            gate._label_pseudonyms = {
                ring.pseudonym(name, cohort): gate._roster_pseudonyms[ident] for name, ident in roster.named().items()
            }
        gate.refresh()
        return gate

    @property
    def reads_names(self) -> bool:
        """Whether the roster ties participants to the display names their tiles show."""
        return bool(self._label_pseudonyms)

    def label_key(self, text: str) -> str | None:
        """A tile label's text -> its keyed pseudonym (the cohort's HMAC, as roster names). The
        text is normalised and not kept. A reading within a letter or two of a roster name (OCR
        reads 'l' for 'I', drops a dot) counts as that name when no other name is as close."""
        name = normalise_display_name(text)
        del text
        if not name:
            return None
        return self.ring.pseudonym(self._nearest_name(name), self.cohort)

    def _nearest_name(self, name: str) -> str:
        names = self.roster.named() if self.roster is not None else {}
        if name in names or not names:
            return name
        scored = sorted((difflib.SequenceMatcher(None, name, known).ratio(), known) for known in names)
        best, known = scored[-1]
        runner_up = scored[-2][0] if len(scored) > 1 else 0.0
        # 0.85: one or two wrong letters in a 12-letter name; a margin so that two similar
        # names in one class ("Budi S." and "Budi P.") never take each other's readings.
        return known if best >= 0.85 and best - runner_up >= 0.1 else name

    def refresh(self) -> None:
        """Re-read consent and attestation records (withdrawals take effect from their time)."""
        CR = schema.consent_records
        c = CR.c
        with self.store.transaction() as conn:
            rows = conn.execute(
                select(c.kind, c.participant, c.granted_at, c.withdrawn_at).where(
                    c.scope == self.scope,
                    or_(and_(c.kind == "participant", c.cohort == self.cohort),
                        and_(c.kind == "attestation", c.session_name == self.session_name)),
                )
            ).all()
        intervals: dict[str, list] = {}
        attested = []
        for r in rows:
            span = (as_utc(r.granted_at), as_utc(r.withdrawn_at) if r.withdrawn_at is not None else None)
            if r.kind == "attestation":
                attested.append(span)
            else:
                intervals.setdefault(r.participant, []).append(span)
        self._intervals, self._attested = intervals, attested
        self._loaded_at = time.monotonic()

    def _maybe_refresh(self) -> None:
        if time.monotonic() - self._loaded_at >= self.refresh_s:
            self.refresh()

    @staticmethod
    def _active(spans, when: datetime) -> bool:
        return any(is_active(g, w, when) for g, w in spans)

    def _bind(self, pseudonym: str, track_label: str, t_ms: float) -> bool:
        b = self._bindings.get(pseudonym)
        if b is None or b.label == track_label or t_ms - b.last_t_ms > self.hold_ms:
            self._bindings[pseudonym] = _Binding(track_label, t_ms)
            return True
        return False

    def participant_for(
        self, track_label: str, bbox: tuple[float, float, float, float], frame_size: tuple[int, int], t_ms: float,
        name_key: str | None = None,
    ) -> str | None:
        """The consenting participant's pseudonym for this face at this moment, or None (deny).
        `name_key`: the keyed pseudonym of the name label shown in the face's tile, if read."""
        self._maybe_refresh()
        when = self.at + timedelta(milliseconds=float(t_ms))
        candidate = None
        if self.device_participant:
            candidate = self.device_participant
        elif name_key is not None and self._label_pseudonyms:
            # Consent follows the name: a name not in the roster is denied, wherever it sits.
            candidate = self._label_pseudonyms.get(name_key)
        elif self.roster is not None:
            w, h = frame_size
            if w > 0 and h > 0:
                cx = (bbox[0] + bbox[2]) / 2 / w
                cy = (bbox[1] + bbox[3]) / 2 / h
                ident = self.roster.identity_at(cx, cy)
                if ident is not None:
                    candidate = self._roster_pseudonyms.get(ident)
        if candidate is not None and self._active(self._intervals.get(candidate, ()), when):
            if self._bind(candidate, track_label, t_ms):
                self._ever_tied.add(candidate)
                return candidate
            return None
        # Not tied to a consenting participant: only a session attestation can still cover it.
        if self._attested and self._active(self._attested, when):
            pseud = self.ring.attested_pseudonym(self.cohort, self.session_name, track_label)
            self._ever_tied.add(pseud)
            return pseud
        return None

    def allowed(self, pseudonym: str, t_ms: float) -> bool:
        """Whether data of `pseudonym` for the moment t_ms (from the run start) may be kept."""
        self._maybe_refresh()
        when = self.at + timedelta(milliseconds=float(t_ms))
        if pseudonym.startswith(ATTESTED_PREFIX):
            return self._active(self._attested, when)
        return self._active(self._intervals.get(pseudonym, ()), when)

    def withdrawn(self, t_ms: float | None = None) -> set[str]:
        """Pseudonyms tied during this run whose consent has ended (as last refreshed), by now or
        by the run's media time `t_ms`, whichever is later: a recording analysed faster than
        real time reaches a withdrawal's moment before the wall clock does."""
        now = utcnow()
        if t_ms is not None:
            now = max(now, self.at + timedelta(milliseconds=float(t_ms)))
        out = set()
        for p in self._ever_tied:
            spans = self._attested if p.startswith(ATTESTED_PREFIX) else self._intervals.get(p, ())
            if not self._active(spans, now):
                out.add(p)
        return out

    def sweep(self, conn: Connection, run_id: int, t_ms: float | None = None) -> set[str]:
        """Delete this run's rows of participants who withdrew while it ran. The pipeline calls it
        inside its write transaction (cheap when nothing changed); it closes the gap between a
        withdrawal's purge and the gate's next refresh. Returns the pseudonyms swept: the pipeline
        must forget their tracks' database ids."""
        # Always re-read here (one small query per flush): a withdrawal's purge may have removed
        # this run's track rows since the last refresh, and writing to them would fail.
        self.refresh()
        gone = self.withdrawn(t_ms) - self._swept
        if gone:
            delete_participant_data(conn, gone, run_id=run_id)
            self._swept |= gone
        return gone
