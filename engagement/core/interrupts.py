"""SIGTERM handled like Ctrl-C, and clean-up that a second signal cannot cut short.

`kill <pid>`, a service manager stopping the program, a logout: all send SIGTERM, whose default
action ends the process at once, leaving its run `running` with half its rows. The command line
turns SIGTERM into `Terminated` (a KeyboardInterrupt), so every command stops the way Ctrl-C
stops it: an analysis marks its run interrupted and removes its rows, transactions roll back.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Iterator

# Imported here, with this module, so that the handler below never imports while the command
# line's own modules are still loading (i18n needs only the standard library).
from engagement.core.i18n import cli_lang, translate


class Terminated(KeyboardInterrupt):
    """SIGTERM arrived."""


def exit_code(exc: KeyboardInterrupt) -> int:
    """The shell's convention: 128 + the signal's number (143 for SIGTERM, 130 for Ctrl-C)."""
    return 128 + (signal.SIGTERM if isinstance(exc, Terminated) else signal.SIGINT)


@contextlib.contextmanager
def signal_handlers(handlers: dict[int, object]) -> Iterator[None]:
    """Install `handlers` ({signal: handler}) while the block runs, then put the previous ones
    back (the default where there was none), for in-process callers. Only the main thread can
    set handlers; elsewhere nothing changes."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, handler) for sig, handler in handlers.items()}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, signal.SIG_DFL if handler is None else handler)


def sigterm_interrupts():
    """SIGTERM stops a command the way Ctrl-C does."""
    return signal_handlers({signal.SIGTERM: raise_on_sigterm})


def raise_on_sigterm(signum=None, frame=None) -> None:
    """The SIGTERM handler of the command line (`signal.signal(signal.SIGTERM, raise_on_sigterm)`)."""
    raise Terminated()


def deferred():
    """Run a short clean-up (a run being marked and emptied) without SIGINT/SIGTERM breaking in;
    a signal arriving meanwhile is dropped: the program is already on its way out."""
    return signal_handlers({signal.SIGINT: signal.SIG_IGN, signal.SIGTERM: signal.SIG_IGN})


def exit_while_starting(signum=None, frame=None) -> None:
    """SIGTERM before a command has started (the command line's modules are still loading, which
    takes seconds): nothing has been written yet, so end at once, with the message and exit code
    a command stopped by SIGTERM gives, instead of dying silently with -15."""
    try:
        text = translate("cli.terminated", cli_lang())
    except Exception:  # noqa: BLE001 - an unreadable catalogue must not hide the exit
        text = "terminated (SIGTERM)"
    os.write(2, (text + "\n").encode("utf-8", "replace"))
    os._exit(128 + signal.SIGTERM)


def handle_sigterm_while_starting() -> None:
    """Install `exit_while_starting` as early as the command line can (its package's first
    line), unless someone else already handles SIGTERM; `main` replaces it while it runs."""
    if threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:
        signal.signal(signal.SIGTERM, exit_while_starting)
