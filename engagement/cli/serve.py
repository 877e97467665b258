"""`engagement serve`: participants measure themselves. Serves the join page and takes the
numbers their browsers send; prints `join: <url>` for the facilitator to paste into the chat."""

from __future__ import annotations

import os
import signal
import sys
import threading
from typing import Annotated

import typer

from engagement.app.join.server import JoinServer
from engagement.app.join.streams import JoinSession
from engagement.app.live.session import LIVE_BUSY_TIMEOUT_MS
from engagement.cli.common import Cohort, Db, Profile, command, open_store, option, say, startup_purge
from engagement.core.errors import ConfigError
from engagement.core.interrupts import signal_handlers
from engagement.core.repositories.runs import check_session_name


def register(app: typer.Typer) -> None:
    command(app, "serve", serve, "cli.serve.help", description="cli.serve.description")


def serve(
    session: Annotated[str, option("--session", key="cli.serve.opt_session")],
    cohort: Cohort = None,
    port: Annotated[int, option("--port", metavar="N", key="cli.serve.opt_port")] = 8600,
    host: Annotated[str, option("--host", metavar="ADDRESS", key="cli.serve.opt_host")] = "127.0.0.1",
    certfile: Annotated[str | None, option("--certfile", metavar="PEM", key="cli.serve.opt_certfile")] = None,
    keyfile: Annotated[str | None, option("--keyfile", metavar="PEM", key="cli.serve.opt_keyfile")] = None,
    profile: Profile = "id-pdp",
    db: Db = None,
) -> int:
    # Bad input is refused before the database is touched.
    check_session_name(session)
    if not 0 <= port <= 65535:
        raise ConfigError(say("cli.serve.bad_port", got=port))
    if (certfile is None) != (keyfile is None):
        raise ConfigError(say("cli.serve.cert_and_key"))
    for path in (certfile, keyfile):
        if path is not None and not os.path.isfile(path):
            raise ConfigError(say("cli.serve.no_file", path=path))
    store = open_store(db)
    startup_purge(store)
    join = JoinSession(store, session, cohort=cohort, profile=profile)
    try:
        server = JoinServer((host, port), join, certfile=certfile, keyfile=keyfile)
    except OSError as exc:
        raise ConfigError(say("cli.serve.cannot_listen", host=host, port=port, error=exc.strerror or exc)) from None
    shown = "localhost" if host in ("127.0.0.1", "0.0.0.0", "::") else host
    print(say("cli.serve.join", url=server.url(shown)), flush=True)
    if not server.tls and host not in ("127.0.0.1", "localhost", "::1"):
        print(say("cli.serve.needs_tls"), file=sys.stderr, flush=True)
    # As `live`: a stream's second waits at most this long for SQLite's lock, then stays buffered
    # for the next second, so that writers do not pile up holding connections.
    with store.busy_timeout(LIVE_BUSY_TIMEOUT_MS):
        _serve_until_signal(server)
        join.close()  # every running stream ends its run complete
    print(say("cli.serve.stopped"), flush=True)
    return 0


def _serve_until_signal(server: JoinServer) -> None:
    """Serve until Ctrl-C or SIGTERM; then stop taking requests (the streams end after)."""
    thread = threading.Thread(target=server.serve_forever, name="join-server", daemon=True)
    stopping = threading.Event()

    def handler(signum, frame) -> None:
        stopping.set()

    with signal_handlers({signal.SIGINT: handler, signal.SIGTERM: handler}):
        thread.start()
        while not stopping.wait(0.5):  # a timed wait: the signal handler runs in between
            pass
    server.shutdown()
    server.server_close()
