"""Privacy errors. All are `EngagementError`s, so the CLI prints one line and exits 2."""

from __future__ import annotations

from engagement.core.errors import ConfigError, EngagementError


class ConsentError(ConfigError):
    """A consent record, roster or attestation is malformed or contradicts the recorded state."""


class PolicyError(ConfigError):
    """The retention/compliance policy file is malformed."""


class CohortKeyError(EngagementError):
    """A cohort key is missing, unreadable, too widely readable, or was destroyed."""


class AuditError(EngagementError):
    """An audit entry cannot be written (e.g. it would carry personal data)."""
