"""Work a run does beside its frames, every few seconds, in a daemon thread (a heartbeat, a poll)."""

from __future__ import annotations

import threading


class Periodic:
    """Calls `tick()` every `every_s` seconds from a daemon thread until `stop()`, or until a
    tick returns False."""

    def __init__(self, every_s: float, name: str):
        self.every_s = every_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def tick(self) -> bool:
        raise NotImplementedError

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout_s: float = 10.0) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=timeout_s)

    def _run(self) -> None:
        while not self._stop.wait(self.every_s):
            if self.tick() is False:
                return
