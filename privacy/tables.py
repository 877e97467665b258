"""Privacy tables, declared on the shared schema metadata so one database holds everything.

No table here holds a participant's identity (name, e-mail, NIP): only keyed pseudonyms, which
become unlinkable when their cohort key is destroyed. No column is binary, so no image can land
here either (a test checks every column of every table).
"""

from __future__ import annotations

from sqlalchemy import Column, DateTime, Index, Integer, String, Table, Text

from engagement.schema import metadata

# One row per consent given by a participant for one scope, or per attestation by a facilitator
# that everyone present in a session consented. Rows are never updated except to set
# `withdrawn_at`, so the table is itself the evidence of who consented to what and when.
consent_records = Table(
    "consent_records",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("kind", String(16), nullable=False),  # participant | attestation
    Column("cohort", String(64), nullable=False),
    # participant: the participant's pseudonym; attestation: NULL (the attestation covers
    # whoever was present; their tracks get session-scoped pseudonyms).
    Column("participant", String(64)),
    Column("session_name", String(200)),  # attestation only
    Column("attested_by", String(64)),  # attestation only: the facilitator's pseudonym
    Column("scope", String(32), nullable=False),  # facilitator_feedback | research
    Column("notice_version", String(64), nullable=False),
    Column("language", String(8), nullable=False),
    Column("evidence", String(300), nullable=False),  # where the signed form / click log lives
    Column("granted_at", DateTime(timezone=True), nullable=False),
    Column("withdrawn_at", DateTime(timezone=True)),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Index("ix_consent_participant", "participant"),
    Index("ix_consent_session", "session_name"),
)

# Append-only, hash-chained. `seq` is assigned by the writer (last + 1) rather than by the
# database so that two concurrent writers collide on the primary key instead of forking the chain.
audit_log = Table(
    "audit_log",
    metadata,
    Column("seq", Integer, primary_key=True, autoincrement=False),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("action", String(32), nullable=False),
    Column("actor", String(100), nullable=False),
    Column("details", Text, nullable=False),  # canonical JSON; pseudonyms only
    Column("correlation_id", String(64)),
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
)

# Where the chain starts after the audit tier's retention removed its oldest entries: the seq
# and hash of the last removed entry, so `audit verify` can still check the first remaining link.
audit_checkpoint = Table(
    "audit_checkpoint",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),  # always 1
    Column("seq", Integer, nullable=False),
    Column("hash", String(64), nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
)

# Receipts of purges, erasures and withdrawals: what was deleted (counts only), when, under which
# policy. The same JSON also goes to a file under data_dir()/receipts/.
purge_receipts = Table(
    "purge_receipts",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("kind", String(16), nullable=False),  # purge | erasure | withdrawal
    Column("at", DateTime(timezone=True), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("trigger", String(32), nullable=False),  # cli | analyze | dashboard | api
    Column("policy_hash", String(64)),
    Column("subject", String(64)),  # pseudonym for erasure/withdrawal, NULL for purges
    Column("counts_json", Text, nullable=False),
    Column("cutoffs_json", Text),
)

# Lifecycle of cohort keys: created / destroyed, with a fingerprint (never the key itself), so an
# auditor can see which key generation a pseudonym came from and that a destruction happened.
cohort_key_events = Table(
    "cohort_key_events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("cohort", String(64), nullable=False),
    Column("event", String(16), nullable=False),  # created | destroyed
    Column("fingerprint", String(16), nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

# The policy hash last seen, so a changed retention/compliance policy is audited once.
privacy_state = Table(
    "privacy_state",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)
