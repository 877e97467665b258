"""Retention policy (TOML) and purge.

Tiers and what they cover:
- raw_frames: must be "never": the pipeline has no place to store a frame, and the policy says so.
- features:   window_features (per-second numbers per participant).
- timelines:  engagement_estimates (per-second engagement per participant); a track row (which
              carries the pseudonym) goes when none of its per-second rows remain and its run is
              older than the shorter of the two periods.
- aggregates: class_timeline and alerts (class-level, k-suppressed); finished runs with nothing
              left under them go with this tier.
- audit:      audit_log entries and purge receipts.

A row is past its period when its age is strictly greater than the period: a row created
exactly `period` ago is kept, one a microsecond older is deleted.

Purge also enforces consent: rows of tracks with no pseudonym, or whose participant has no
active consent left (a withdrawal's purge interrupted, a row written after it), are deleted.
"""

from __future__ import annotations

import hashlib
import json
import re
import tomllib
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy.engine import Connection

from engagement.core import schema
from engagement.core.config import data_dir
from engagement.core.repositories import audit as audit_rows
from engagement.core.repositories import retention as retention_rows
from engagement.core.store import take_write_turn
from engagement.core.time import as_utc, iso, utcnow
from privacy.audit import AuditAction, AuditLog, resolve_actor
from privacy.consent import track_consented
from privacy.data import add_receipt, delete_tracks, write_receipt_file
from privacy.errors import PolicyError
from privacy.profiles import DEFAULT_PROFILE, get_profile

TIERS = ("features", "timelines", "aggregates", "audit")
DEFAULT_PERIODS = {
    # Protective defaults: per-second personal data lives a month, per-participant timelines a
    # quarter (a training programme), class aggregates a year, the audit trail two years.
    "features": timedelta(days=30),
    "timelines": timedelta(days=90),
    "aggregates": timedelta(days=365),
    "audit": timedelta(days=730),
}
_PERIOD_RE = re.compile(r"^\s*(\d+)\s*([hdwy])\s*$", re.IGNORECASE)
_UNIT = {"h": timedelta(hours=1), "d": timedelta(days=1), "w": timedelta(weeks=1), "y": timedelta(days=365)}
MAX_PERIOD = timedelta(days=3650)


def policy_path() -> Path:
    return data_dir() / "retention.toml"


@dataclass(frozen=True)
class RetentionPolicy:
    periods: dict[str, timedelta]
    profile: str = DEFAULT_PROFILE
    source: str = "defaults"
    raw_frames: str = "never"

    def to_dict(self) -> dict:
        return {
            "retention": {"raw_frames": self.raw_frames, **{k: format_period(v) for k, v in self.periods.items()}},
            "compliance": {"profile": self.profile},
        }

    @property
    def hash(self) -> str:
        blob = json.dumps(self.to_dict(), sort_keys=True).encode("utf-8")
        return hashlib.sha256(blob).hexdigest()

    def to_toml(self) -> str:
        import tomli_w

        return tomli_w.dumps(self.to_dict())


def format_period(value: timedelta) -> str:
    if value.total_seconds() % 86400 == 0:
        return f"{int(value.total_seconds() // 86400)}d"
    return f"{int(value.total_seconds() // 3600)}h"


def parse_period(value, tier: str, source: str) -> timedelta:
    if isinstance(value, bool):
        value = None
    if isinstance(value, int):
        period = timedelta(days=value)
    elif isinstance(value, str) and _PERIOD_RE.match(value):
        n, unit = _PERIOD_RE.match(value).groups()
        period = int(n) * _UNIT[unit.lower()]
    else:
        raise PolicyError(
            f"{source}: retention.{tier} = {value!r} is not a period; write a number of days (30) "
            "or a string like \"30d\", \"12h\", \"8w\", \"1y\""
        )
    if period < timedelta(0) or period > MAX_PERIOD:
        raise PolicyError(f"{source}: retention.{tier} must be between 0 and 10 years")
    return period


def parse_policy(data: dict, source: str) -> RetentionPolicy:
    unknown = set(data) - {"retention", "compliance"}
    if unknown:
        raise PolicyError(f"{source}: unknown section(s) {', '.join(sorted(unknown))}; allowed: retention, compliance")
    ret = data.get("retention", {})
    comp = data.get("compliance", {})
    if not isinstance(ret, dict) or not isinstance(comp, dict):
        raise PolicyError(f"{source}: [retention] and [compliance] must be tables")
    bad = set(ret) - set(TIERS) - {"raw_frames"}
    if bad:
        raise PolicyError(f"{source}: unknown retention tier(s) {', '.join(sorted(bad))}; allowed: raw_frames, {', '.join(TIERS)}")
    raw = ret.get("raw_frames", "never")
    if raw not in ("never", 0, "0d"):
        raise PolicyError(f"{source}: retention.raw_frames must be \"never\": frames are never stored")
    periods = {tier: parse_period(ret[tier], tier, source) if tier in ret else DEFAULT_PERIODS[tier] for tier in TIERS}
    bad = set(comp) - {"profile"}
    if bad:
        raise PolicyError(f"{source}: unknown compliance setting(s) {', '.join(sorted(bad))}; allowed: profile")
    profile = comp.get("profile", DEFAULT_PROFILE)
    try:
        profile = get_profile(profile).name
    except Exception as exc:  # noqa: BLE001 - reported with the file it came from
        raise PolicyError(f"{source}: {exc}") from None
    return RetentionPolicy(periods=periods, profile=profile, source=source)


def load_policy(path: str | Path | None = None) -> RetentionPolicy:
    """The policy at `path` (default data_dir()/retention.toml); defaults when that file is absent.
    A malformed file raises PolicyError (a ConfigError) and nothing is purged under it."""
    explicit = path is not None
    p = Path(path) if explicit else policy_path()
    if not p.exists():
        if explicit:
            raise PolicyError(f"policy file {p} does not exist")
        return RetentionPolicy(periods=dict(DEFAULT_PERIODS))
    try:
        data = tomllib.loads(p.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise PolicyError(f"{p} is not valid TOML: {exc}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise PolicyError(f"cannot read policy file {p}: {exc}") from None
    return parse_policy(data, str(p))


@dataclass
class PurgeReceipt:
    at: datetime
    policy_hash: str
    dry_run: bool
    counts: dict[str, int]
    cutoffs: dict[str, str]
    trigger: str = "api"
    receipt_id: int | None = None
    file: Path | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def to_dict(self) -> dict:
        return {
            "receipt_id": self.receipt_id,
            "kind": "purge",
            "at": iso(self.at),
            "trigger": self.trigger,
            "dry_run": self.dry_run,
            "policy_hash": self.policy_hash,
            "cutoffs": self.cutoffs,
            "counts": self.counts,
            "file": str(self.file) if self.file else None,
        }


def note_policy(store, policy: RetentionPolicy, conn: Connection, actor: str, reason: str | None = None) -> bool:
    """Audit a policy change once: compare with the hash seen last time. True if it changed.
    `reason` (a person's edit, e.g. in the dashboard) goes into that one entry."""
    take_write_turn(conn)  # two commands starting at once must not both record the change
    old = retention_rows.privacy_state(conn, "policy_hash")
    if old == policy.hash:
        return False
    retention_rows.set_privacy_state(conn, "policy_hash", policy.hash)
    AuditLog(store).record(
        AuditAction.POLICY_CHANGE, actor,
        {"old_hash": old, "new_hash": policy.hash, "policy": policy.to_dict(),
         **({"reason": reason[:500]} if reason else {})},
        conn=conn,
    )
    return True


def purge(
    store,
    policy: RetentionPolicy,
    now: datetime | None = None,
    dry_run: bool = False,
    *,
    before: datetime | None = None,
    trigger: str = "api",
    actor: str | None = None,
) -> PurgeReceipt:
    """Delete exactly what is past its period (and, with `before`, every data row older than that
    date; never audit entries). A dry run counts and changes nothing."""
    now = as_utc(now) if now else utcnow()
    cut = _cutoffs(policy, now, before)
    receipt = PurgeReceipt(
        at=now, policy_hash=policy.hash, dry_run=dry_run, counts={}, cutoffs={k: iso(v) for k, v in cut.items()},
        trigger=trigger,
    )
    # Whoever started the process is the actor, also of a start-up purge; `trigger` says why.
    actor = actor or resolve_actor()
    with store.transaction() as conn:
        counts, checkpoint = _purge(conn, cut, now, dry_run)
        receipt.counts = counts
        if dry_run:
            # The transaction is rolled back by raising nothing and deleting nothing: _purge only
            # counted. Nothing else is written either.
            return receipt
        note_policy(store, policy, conn, actor)
        row = add_receipt(conn, kind="purge", trigger=trigger, counts=counts, policy_hash=policy.hash,
                          cutoffs=receipt.cutoffs, at=now)
        receipt.receipt_id = row["receipt_id"]
        AuditLog(store).record(
            AuditAction.PURGE, actor,
            {"receipt_id": receipt.receipt_id, "counts": counts, "policy_hash": policy.hash, "cutoffs": receipt.cutoffs,
             "trigger": trigger,
             **({"checkpoint": {**checkpoint, "retention_s": int(policy.periods["audit"].total_seconds())}}
                if checkpoint else {})},
            conn=conn,
        )
    receipt.file = write_receipt_file(receipt.to_dict())
    return receipt


def _cutoffs(policy: RetentionPolicy, now: datetime, before: datetime | None = None) -> dict[str, datetime]:
    """Per tier, the time before which its rows are past their period."""
    cut = {tier: now - policy.periods[tier] for tier in TIERS}
    # The audit tier follows the clock, never a caller's `now`: an entry leaves the trail only
    # once it is older than the audit period, or `audit verify` refuses the checkpoint.
    cut["audit"] = min(cut["audit"], utcnow() - policy.periods["audit"])
    if before is not None:
        before = as_utc(before)
        for tier in ("features", "timelines", "aggregates"):
            cut[tier] = max(cut[tier], before)
    return cut


# The tables of a session's data a purge counts per session, with the tier that decides them.
SESSION_TABLES = (("window_features", "features"), ("engagement_estimates", "timelines"),
                  ("class_timeline", "aggregates"), ("alerts", "aggregates"))


def preview_by_session(store, policy: RetentionPolicy, now: datetime | None = None) -> list[tuple[str, str, int]]:
    """What a purge under `policy` would delete, per session and table: (session, table, rows),
    only where rows would go; `unconsented_tracks` counts the tracks nobody consented for. The
    total preview alone did not tell a privacy officer whose data a purge takes."""
    now = as_utc(now) if now else utcnow()
    cut = _cutoffs(policy, now)
    out: list[tuple[str, str, int]] = []
    with store.transaction() as conn:
        lacking = retention_rows.tracks_lacking_by_session(conn, track_consented(None, now))
        out += [(name, "unconsented_tracks", n) for name, n in lacking]
        for table, tier in SESSION_TABLES:
            rows = retention_rows.rows_before_by_session(conn, getattr(schema, table), cut[tier])
            out += [(name, table, n) for name, n in rows]
    return sorted(out)


def _purge(conn: Connection, cut: dict[str, datetime], now: datetime, dry_run: bool) -> tuple[dict[str, int], dict | None]:
    """Each step's count, in the receipt's order, and the audit checkpoint left (if any); the SQL
    of each step is a named function of `engagement.core.repositories.retention`."""
    s = schema
    counts = {"unconsented_tracks": _purge_unconsented(conn, now, dry_run)}
    # 2. Per-second personal data by tier (cut-offs are aware UTC; the columns bind them as such).
    counts["window_features"] = retention_rows.rows_created_before(conn, s.window_features, cut["features"],
                                                                   dry_run=dry_run)
    counts["engagement_estimates"] = retention_rows.rows_created_before(conn, s.engagement_estimates,
                                                                        cut["timelines"], dry_run=dry_run)
    # 3. Tracks (they carry the pseudonym) once nothing hangs off them and their run is old enough.
    counts["tracks"] = retention_rows.expired_tracks(
        conn, run_before=max(cut["features"], cut["timelines"]), features_before=cut["features"],
        timelines_before=cut["timelines"], dry_run=dry_run)
    # 4. Class-level aggregates.
    counts["class_timeline"] = retention_rows.rows_created_before(conn, s.class_timeline, cut["aggregates"],
                                                                  dry_run=dry_run)
    counts["alerts"] = retention_rows.rows_created_before(conn, s.alerts, cut["aggregates"], dry_run=dry_run)
    # 5. Finished runs past the aggregates period with nothing left under them (a dry run cannot
    # tell: it depends on the deletions above; reported after a real purge).
    counts["runs"] = 0 if dry_run else retention_rows.empty_runs_before(conn, cut["aggregates"])
    # 6. Audit tier: entries and receipts.
    counts["audit_log"], checkpoint = _purge_audit(conn, cut["audit"], dry_run)
    counts["purge_receipts"] = retention_rows.rows_created_before(conn, s.purge_receipts, cut["audit"],
                                                                  dry_run=dry_run)
    return counts, checkpoint


def _purge_unconsented(conn: Connection, now: datetime, dry_run: bool) -> int:
    """Consent enforcement: tracks nobody consented for (no pseudonym), participants with no
    consent of any scope active now, attested tracks whose session attestation is not active."""
    ids = retention_rows.tracks_lacking(conn, track_consented(None, now))
    if not ids or dry_run:
        return len(ids)
    return delete_tracks(conn, ids)["tracks"]


def _purge_audit(conn: Connection, cutoff: datetime, dry_run: bool) -> tuple[int, dict | None]:
    """Audit entries older than `cutoff`, removed as a prefix (every seq up to the newest expired
    one) so the chain that remains is whole; the last removed entry becomes its checkpoint, which
    the purge's own entry records (with the removed entry's time) so `audit verify` can prove it."""
    old = audit_rows.newest_before(conn, cutoff)
    if old is None:
        return 0, None
    if dry_run:
        return audit_rows.count_through(conn, int(old.seq)), None
    removed = audit_rows.remove_through(conn, int(old.seq), old.hash)
    return removed, {"seq": int(old.seq), "hash": old.hash, "newest_removed_at": iso(as_utc(old.at))}


def startup_purge(store, *, trigger: str, policy_file: str | Path | None = None) -> PurgeReceipt:
    """What `engagement analyze` and the dashboard call when they start: load the policy (a
    malformed file stops the start with a clear error) and purge under it."""
    return purge(store, load_policy(policy_file), trigger=trigger)
