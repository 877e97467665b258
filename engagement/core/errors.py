"""Errors a user can act on. Each carries a one-line message; the CLI prints it and exits non-zero."""


class EngagementError(Exception):
    """Base class: anything raised with this type is shown to the user as one line."""


class SourceError(EngagementError):
    """A video file, camera or screen region cannot be read (missing, not a video, truncated, empty)."""


class ModelError(EngagementError):
    """A model file is missing, corrupt, or does not match its registry entry."""


class StoreError(EngagementError):
    """The database cannot be opened, written (locked, full, read-only) or has a newer schema."""


class ConfigError(EngagementError):
    """A configuration value or file is malformed."""
