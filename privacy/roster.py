"""Rosters: gallery-view tile positions -> participant identities, and their consents.

A roster is read from TOML (settings + [[participants]]) or CSV, checked entry by entry (every
problem names its entry), and imported as consent records in one transaction. During a run the
consent gate asks `Roster.identity_at` which tile a face's centre falls in. Identities never
reach a log: `RosterEntry`'s repr leaves them out, and only pseudonyms are stored.
"""

from __future__ import annotations

import csv
import io
import tomllib
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from engagement.core.errors import ConfigError
from engagement.core.time import utcnow
from engagement.vision.gallery import parse_grid
from engagement.vision.name_labels import normalise_display_name
from privacy.audit import AuditAction
from privacy.consent import Notice, add_participant_consents, audit, check_language, check_scopes, check_text, check_time
from privacy.errors import ConsentError
from privacy.pseudonym import KeyRing, check_cohort, normalise_identity


@dataclass(frozen=True)
class RosterEntry:
    identity: str
    scopes: tuple[str, ...]
    tile: tuple[int, int] | None = None  # (row, col), 1-based, in the gallery grid
    rect: tuple[float, float, float, float] | None = None  # normalised x0, y0, x1, y1
    notice_version: str | None = None
    language: str | None = None
    evidence: str | None = None
    granted_at: datetime | None = None
    # The display name shown in the meeting (normalised: engagement.vision.name_labels); the
    # tile showing it is this participant wherever it moves.
    name: str | None = None

    def __repr__(self) -> str:  # never print an identity into a log by accident
        return f"RosterEntry(tile={self.tile}, rect={self.rect}, scopes={self.scopes})"


@dataclass(frozen=True)
class Roster:
    entries: tuple[RosterEntry, ...]
    grid: tuple[int, int] | None = None  # (cols, rows)
    cohort: str | None = None
    notice_version: str | None = None
    language: str | None = None
    evidence: str | None = None

    def region(self, entry: RosterEntry) -> tuple[float, float, float, float] | None:
        if entry.rect is not None:
            return entry.rect
        if entry.tile is not None and self.grid is not None:
            cols, rows = self.grid
            r, c = entry.tile
            return ((c - 1) / cols, (r - 1) / rows, c / cols, r / rows)
        return None

    def identity_at(self, cx: float, cy: float) -> str | None:
        """The identity whose tile holds the normalised point (cx, cy); None if none or ambiguous."""
        hits = []
        for entry in self.entries:
            reg = self.region(entry)
            if reg and reg[0] <= cx < reg[2] and reg[1] <= cy < reg[3]:
                hits.append(entry.identity)
        return hits[0] if len(set(hits)) == 1 else None

    def named(self) -> dict[str, str]:
        """Normalised display name -> identity, for the entries that give a name."""
        return {e.name: e.identity for e in self.entries if e.name}


def _parse_grid(value, where: str) -> tuple[int, int] | None:
    if value in (None, ""):
        return None
    try:
        return parse_grid(str(value))  # the same grid the gallery view is cut into
    except ConfigError:
        raise ConsentError(f"{where}grid {value!r} must look like COLSxROWS with 1-10 columns and rows, e.g. 3x2") from None


def _parse_tile(value, grid, where: str) -> tuple[int, int] | None:
    if value in (None, ""):
        return None
    parts = value if isinstance(value, (list, tuple)) else str(value).replace(";", ",").split(",")
    try:
        r, c = (int(str(x).strip()) for x in parts)
    except ValueError:
        raise ConsentError(f"{where}tile {value!r} must be ROW,COL (1-based), e.g. 1,2") from None
    if grid is None:
        raise ConsentError(f"{where}a tile position needs the roster's grid (e.g. grid = \"3x2\")")
    cols, rows = grid
    if not (1 <= r <= rows and 1 <= c <= cols):
        raise ConsentError(f"{where}tile {r},{c} is outside the {cols}x{rows} grid")
    return r, c


def _parse_rect(value, where: str) -> tuple[float, float, float, float] | None:
    if value in (None, ""):
        return None
    parts = value if isinstance(value, (list, tuple)) else str(value).replace(",", " ").split()
    try:
        x0, y0, x1, y1 = (float(x) for x in parts)
    except ValueError:
        raise ConsentError(f"{where}rect {value!r} must be four numbers x0 y0 x1 y1 between 0 and 1") from None
    if not (0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1):
        raise ConsentError(f"{where}rect {value!r} must satisfy 0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1")
    return x0, y0, x1, y1


_ENTRY_KEYS = {"identity", "name", "scopes", "tile", "rect", "notice_version", "language", "evidence", "granted_at"}
_ROSTER_KEYS = {"cohort", "grid", "notice_version", "language", "evidence", "participants"}


def _parse_name(value, where: str) -> str | None:
    if value in (None, ""):
        return None
    name = normalise_display_name(str(value))
    if not name:
        raise ConsentError(f"{where}name {value!r} has no letters a meeting label could show")
    return name


def _parse_identity(raw: dict, where: str, seen_names: set[str]) -> tuple[str, str | None]:
    """(identity, normalised display name or None) of a roster entry."""
    name = _parse_name(raw.get("name"), where)
    try:
        # A roster of display names needs no other identity: the name is the identity.
        ident = normalise_identity(raw.get("identity") or name or "")
    except Exception:  # noqa: BLE001
        raise ConsentError(f"{where}identity is missing (a roster of display names gives name = ...)") from None
    if name is not None:
        if name in seen_names:
            raise ConsentError(f"{where}the same display name appears twice")
        seen_names.add(name)
    return ident, name


def parse_roster(data: dict, *, source: str = "roster") -> Roster:
    """Validate a roster given as a mapping (the TOML form). Every problem names its entry."""
    if not isinstance(data, dict):
        raise ConsentError(f"{source}: expected a table of settings and [[participants]]")
    unknown = set(data) - _ROSTER_KEYS
    if unknown:
        raise ConsentError(f"{source}: unknown setting(s) {', '.join(sorted(unknown))}; allowed: {', '.join(sorted(_ROSTER_KEYS))}")
    grid = _parse_grid(data.get("grid"), f"{source}: ")
    cohort = check_cohort(data["cohort"]) if data.get("cohort") else None
    language = check_language(data["language"], f"{source}: ") if data.get("language") else None
    participants = data.get("participants")
    if not isinstance(participants, list) or not participants:
        raise ConsentError(f"{source}: no participants (add [[participants]] entries)")
    entries = []
    seen_ids: set[str] = set()
    seen_tiles: set = set()
    seen_names: set[str] = set()
    for i, raw in enumerate(participants, start=1):
        where = f"{source}: participant {i}: "
        if not isinstance(raw, dict):
            raise ConsentError(f"{where}expected a table")
        bad = set(raw) - _ENTRY_KEYS
        if bad:
            raise ConsentError(f"{where}unknown field(s) {', '.join(sorted(bad))}; allowed: {', '.join(sorted(_ENTRY_KEYS))}")
        ident, name = _parse_identity(raw, where, seen_names)
        if ident in seen_ids:
            raise ConsentError(f"{where}the same identity appears twice")
        seen_ids.add(ident)
        tile = _parse_tile(raw.get("tile"), grid, where)
        rect = _parse_rect(raw.get("rect"), where)
        key = tile or rect
        if key is not None:
            if key in seen_tiles:
                raise ConsentError(f"{where}tile/rect {key} is given to two participants")
            seen_tiles.add(key)
        entries.append(RosterEntry(
            identity=ident,
            name=name,
            scopes=check_scopes(raw.get("scopes"), where=where),
            tile=tile,
            rect=rect,
            notice_version=check_text(raw["notice_version"], "notice version", where, 64) if raw.get("notice_version") else None,
            language=check_language(raw["language"], where) if raw.get("language") else None,
            evidence=check_text(raw["evidence"], "evidence reference", where) if raw.get("evidence") else None,
            granted_at=check_time(raw["granted_at"], "granted_at", where) if raw.get("granted_at") not in (None, "") else None,
        ))
    return Roster(
        entries=tuple(entries), grid=grid, cohort=cohort,
        notice_version=check_text(data["notice_version"], "notice version", f"{source}: ", 64) if data.get("notice_version") else None,
        language=language,
        evidence=check_text(data["evidence"], "evidence reference", f"{source}: ") if data.get("evidence") else None,
    )


def load_roster(path: str | Path, *, grid: str | None = None) -> Roster:
    """Read a roster from TOML (settings + [[participants]]) or CSV (one participant per row,
    header: identity,name,scopes,tile,rect,notice_version,language,evidence,granted_at)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise ConsentError(f"roster file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConsentError(f"cannot read roster file {path}: {exc}") from None
    source = path.name
    if path.suffix.lower() == ".toml":
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConsentError(f"{source} is not valid TOML: {exc}") from None
        if grid is not None:
            data["grid"] = grid
        return parse_roster(data, source=source)
    if path.suffix.lower() == ".csv":
        reader = csv.DictReader(io.StringIO(text))
        header = reader.fieldnames or []
        if len(header) == 1 and (";" in header[0] or "\t" in header[0]):
            found = "';' (semicolons)" if ";" in header[0] else "tabs"
            raise ConsentError(
                f"{source}: the columns are separated by {found}; a roster CSV separates them by ',' "
                "(commas): save it as 'CSV (comma delimited)' or use a .toml roster"
            )
        if not reader.fieldnames or "identity" not in [f.strip() for f in reader.fieldnames]:
            raise ConsentError(f"{source}: the CSV needs a header row with at least an 'identity' column")
        fields = [f.strip() for f in reader.fieldnames]
        bad = set(fields) - _ENTRY_KEYS
        if bad:
            raise ConsentError(f"{source}: unknown column(s) {', '.join(sorted(bad))}; allowed: {', '.join(sorted(_ENTRY_KEYS))}")
        rows = []
        for n, row in enumerate(reader, start=2):
            if None in row:
                raise ConsentError(f"{source}: line {n} has more cells than the header")
            rows.append({k.strip(): (v or "").strip() for k, v in row.items() if (v or "").strip()})
        return parse_roster({"participants": rows, **({"grid": grid} if grid else {})}, source=source)
    raise ConsentError(f"roster file {path} must end in .toml or .csv")


def import_roster(
    store,
    roster: Roster,
    *,
    cohort: str | None = None,
    notice_version: str | None = None,
    language: str | None = None,
    evidence: str | None = None,
    actor: str | None = None,
    ring: KeyRing | None = None,
) -> int:
    """Grant the consents listed in a roster, all in one transaction: a bad entry changes nothing."""
    if cohort and roster.cohort and check_cohort(cohort) != roster.cohort:
        raise ConsentError(f"the roster is for cohort {roster.cohort!r}, not {cohort!r}")
    cohort = check_cohort(cohort or roster.cohort)
    prepared = []
    for i, e in enumerate(roster.entries, start=1):
        notice = Notice.check(e.notice_version or notice_version or roster.notice_version,
                              e.language or language or roster.language,
                              e.evidence or evidence or roster.evidence, f"participant {i}: ", hint=True)
        prepared.append((e, notice, e.granted_at or utcnow()))
    ring = ring or KeyRing(store)
    pseudonyms = [ring.pseudonym(e.identity, cohort) for e, *_ in prepared]
    with store.transaction() as conn:
        total = 0
        for (e, notice, when), pseud in zip(prepared, pseudonyms):
            total += len(add_participant_consents(conn, pseud, cohort, e.scopes, notice, when))
        audit(store, conn, AuditAction.CONSENT_IMPORTED, actor,
              {"cohort": cohort, "participants": pseudonyms, "records": total})
    return total
