"""The `engagement` command (`main`) and its subcommands, one module per command group."""

from engagement.core import i18n as _i18n  # noqa: F401 - loaded now, so the handler below can speak
from engagement.core.interrupts import handle_sigterm_while_starting

# Loading the commands takes seconds; a SIGTERM meanwhile ends with a message and 143, not -15.
handle_sigterm_while_starting()
