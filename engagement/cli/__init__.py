"""The `engagement` command (`main`) and its subcommands, one module per command group."""

from engagement.core.interrupts import handle_sigterm_while_starting

# Loading the commands takes seconds; a SIGTERM meanwhile ends with a message and 143, not -15.
handle_sigterm_while_starting()
