"""Privacy tables, declared on the shared schema metadata so one database holds everything."""

from engagement.schema import metadata  # noqa: F401
