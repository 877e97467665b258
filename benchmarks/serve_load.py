"""`engagement serve` under load: N participants post a second of numbers each second (a script,
not a timed test).

    .venv/bin/python -m benchmarks.serve_load [--participants 10 50 100] [--seconds 30] [--postgres]

The numbers are a recorded signal stream: the shared clip d9 measured by the Python vision stage
at 15 frames a second (what the join page sends for the same clip, within the parity tolerances of
tests/test_serve_browser.py), replayed by every participant from its own start. The server runs
as `engagement serve` in its own process (its CPU time is read from /proc); the participants are
threads here, one keep-alive connection each, posting on the wall clock as a page does.

Prints per N: p50/p95/max ingest latency (request to response), refused or failed posts, seconds
stored against seconds sent, and the server's CPU seconds per participant-second. A floor is
measured in the same run: N=1's p95, against which every N's p95 is given as a ratio.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from engagement.app.join.ingest import wire_frame  # noqa: E402
from engagement.core.config import AnalysisOptions, shared_data_dir  # noqa: E402

CLIP = "videos/liveportrait/d9.mp4"
FPS = 15


def recorded_stream(clip: Path) -> list[dict]:
    """The clip's frames as the page's numbers, t from 0 (the Python stage measures them)."""
    import cv2

    from engagement.core.records import Frame
    from engagement.vision.stage import VisionStage, face_numbers

    stage = VisionStage.from_options(AnalysisOptions(expression=False, max_faces=1))
    capture = cv2.VideoCapture(str(clip))
    step, index, due, out = capture.get(cv2.CAP_PROP_FPS) / FPS, 0, 0.0, []
    try:
        while True:
            ok, image = capture.read()
            if not ok:
                break
            if index >= due:
                due += step
                t_ms = round(len(out) * 1000.0 / FPS, 1)
                faces = stage.observe(Frame(t_ms, index, image))
                gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
                h, w = gray.shape
                out.append(wire_frame(t_ms, face_numbers(faces[0], gray, w, h) if faces else None))
            index += 1
    finally:
        stage.close()
        capture.release()
    return out


class Participant(threading.Thread):
    def __init__(self, port: int, path: str, name: str, stream: list[dict], seconds: int, start_at: float):
        super().__init__(daemon=True)
        self.port, self.path, self.name, self.stream = port, path, name, stream
        self.seconds, self.start_at = seconds, start_at
        self.latencies: list[float] = []
        self.failed: list[str] = []
        self.sent = 0

    def post(self, conn, action: str, body: dict, token: str | None = None) -> dict:
        headers = {"Content-Type": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        conn.request("POST", self.path + "api/" + action, json.dumps(body), headers)
        response = conn.getresponse()
        data = json.loads(response.read())
        if response.status != 200:
            raise RuntimeError(f"{action}: {response.status} {data.get('error')}")
        return data

    def run(self) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            token = self.post(conn, "consent", {"identity": self.name, "lang": "id", "accept": True})["token"]
            time.sleep(max(0.0, self.start_at - time.monotonic()))
            stream = self.post(conn, "start", {}, token)["stream"]
            began = time.monotonic()
            whole = int(len(self.stream) / FPS)  # whole seconds of the recording; it loops
            for second in range(self.seconds):
                time.sleep(max(0.0, began + second + 1.0 - time.monotonic()))
                local, loop = second % whole, second // whole
                frames = [{**f, "t": f["t"] + loop * whole * 1000.0} for f in self.stream
                          if local * 1000.0 <= f["t"] < (local + 1) * 1000.0]  # fmt: skip
                sent = time.perf_counter()
                try:
                    self.post(conn, "frames", {"stream": stream, "seq": second, "w": 512, "h": 480, "frames": frames}, token)
                    self.latencies.append(time.perf_counter() - sent)
                    self.sent += 1
                except Exception as exc:  # noqa: BLE001 - counted: a lost second
                    self.failed.append(str(exc))
            self.post(conn, "stop", {}, token)
        except Exception as exc:  # noqa: BLE001
            self.failed.append(f"setup: {exc}")
        finally:
            conn.close()


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process and its threads, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def stored_seconds(db: str) -> int:
    from sqlalchemy import func, select

    from engagement.core import schema
    from engagement.core.store import Store

    store = Store.open(db)
    try:
        with store.transaction() as conn:
            return int(conn.execute(select(func.count()).select_from(schema.window_features)).scalar())
    finally:
        store.close()


def measure(n: int, seconds: int, db: str, stream: list[dict], port: int) -> dict:
    env = dict(os.environ, ENGAGEMENT_DB=db, ENGAGEMENT_LANG="en")
    server = subprocess.Popen(
        [sys.executable, "-m", "engagement.cli.main", "serve", "--session", f"load-{n}", "--port", str(port)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        url = server.stdout.readline().split(" ", 1)[1].strip()
        path = url.split(str(port), 1)[1]
        errors: list[str] = []  # the server's error lines, read as they come (a full pipe would block it)
        reader = threading.Thread(target=lambda: errors.extend(l for l in server.stdout if l.startswith("error")),
                                  daemon=True)  # fmt: skip
        reader.start()
        start_at = time.monotonic() + 2.0 + n * 0.01
        # Participants join spread over a second, as people clicking Start do.
        people = [Participant(port, path, f"peserta-{i:04d}", stream, seconds, start_at + (i % 100) / 100.0)
                  for i in range(n)]  # fmt: skip
        for p in people:
            p.start()
        time.sleep(max(0.0, start_at - time.monotonic()))
        cpu0 = cpu_seconds(server.pid)
        for p in people:
            p.join()
        cpu = cpu_seconds(server.pid) - cpu0
    finally:
        server.terminate()
        server.wait(timeout=120)
    latencies = np.array([x for p in people for x in p.latencies]) * 1000.0
    failed = [f for p in people for f in p.failed]
    return {
        "n": n, "p50": float(np.percentile(latencies, 50)) if len(latencies) else float("nan"),
        "p95": float(np.percentile(latencies, 95)) if len(latencies) else float("nan"),
        "max": float(latencies.max()) if len(latencies) else float("nan"),
        "sent": sum(p.sent for p in people), "failed": len(failed), "why": sorted(set(failed))[:3],
        "stored": stored_seconds(db), "cpu_per_participant_s": cpu / (n * seconds), "server_errors": errors[:3],
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--participants", type=int, nargs="+", default=[10, 50, 100])
    parser.add_argument("--seconds", type=int, default=30)
    parser.add_argument("--postgres", action="store_true", help="a throw-away PostgreSQL server, not SQLite")
    parser.add_argument("--port", type=int, default=8690)
    args = parser.parse_args()
    stream = recorded_stream(shared_data_dir() / CLIP)
    work = Path(tempfile.mkdtemp(prefix="serve-load-"))
    server = None
    if args.postgres:
        from postgres_server import PostgresServer

        server = PostgresServer().start()
    cores = subprocess.check_output(["nproc"]).decode().strip()
    print(f"{len(stream)} recorded frames ({FPS} fps) per participant, {args.seconds} s, {cores} cores, "
          f"{'PostgreSQL' if server else 'SQLite'}")  # fmt: skip
    floor = None
    try:
        for n in [1, *args.participants]:
            db = server.create_database() if server else f"sqlite:///{work / f'load-{n}.db'}"
            r = measure(n, args.seconds, db, stream, args.port)
            floor = floor or r["p95"]
            print(f"N={n:4d}  p50 {r['p50']:6.1f} ms  p95 {r['p95']:6.1f} ms ({r['p95'] / floor:4.1f}x N=1)  "
                  f"max {r['max']:7.1f} ms  sent {r['sent']}  refused/failed {r['failed']} {r['why']}  "
                  f"stored {r['stored']} s  server CPU {r['cpu_per_participant_s'] * 1000:.2f} ms per participant-second"
                  + (f"  server errors: {r['server_errors']}" if r["server_errors"] else ""),
                  flush=True)  # fmt: skip
    finally:
        if server:
            server.stop()


if __name__ == "__main__":
    main()
