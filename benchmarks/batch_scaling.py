"""Throughput of `engagement batch` with 1 and 2 workers, on SQLite and on PostgreSQL.

    python benchmarks/batch_scaling.py [--recordings 8] [--clip PATH] [--repeat 4] [--sample-fps N] [--postgres]

Makes one recording from a real clip played --repeat times in a row (a class is longer than a
clip: a few seconds of start-up per recording would otherwise dominate), copies it under N
names (so N sessions), runs `engagement batch` on them with 1 and
then 2 workers into a fresh database each time, and prints recordings per minute, the speed-up,
the peak memory of one analysis (per worker), and the per-frame cost an analysis pays, which
docs/scale.md turns into a capacity plan. With --postgres it starts a throw-away PostgreSQL
server (Debian's postgresql binaries, as the test suite does) and repeats the runs there.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

from clips import read_frames, write_repeated  # noqa: E402
from engagement.app.batch import BatchOptions, Recording, run_batch  # noqa: E402
from engagement.core.config import AnalysisOptions, shared_data_dir  # noqa: E402


def frames_in(clip: Path, sample_fps: float | None) -> int:
    frames, fps = read_frames(clip)
    return int(len(frames) if sample_fps is None else len(frames) / fps * min(fps, sample_fps))


def measure(recordings: list[Recording], db_url: str, workers: int, sample_fps: float | None) -> dict:
    opts = BatchOptions(db_url=db_url, analysis=AnalysisOptions(sample_fps=sample_fps), force=True)
    t0 = time.monotonic()
    outcomes = run_batch(recordings, opts, workers=workers)
    wall = time.monotonic() - t0
    failed = [o for o in outcomes if o.status != "done"]
    if failed:
        raise SystemExit(f"{len(failed)} recording(s) failed: {failed[0].detail}")
    return {
        "wall_s": wall,
        "per_min": len(recordings) / wall * 60,
        "task_s": sum(o.wall_s for o in outcomes) / len(outcomes),
        "peak_mb": max(o.peak_mb for o in outcomes),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--recordings", type=int, default=8)
    ap.add_argument("--clip", type=Path, default=shared_data_dir() / "videos" / "liveportrait" / "d9.mp4")
    ap.add_argument("--repeat", type=int, default=4, help="play the clip this many times in one recording")
    ap.add_argument("--sample-fps", type=float, default=None, help="default: every frame")
    ap.add_argument("--postgres", action="store_true", help="also measure against a throw-away PostgreSQL server")
    args = ap.parse_args(argv)

    work = Path(tempfile.mkdtemp(prefix="batch-bench-"))
    source = write_repeated(args.clip, args.repeat, work / "source.mp4")
    recordings = []
    for i in range(args.recordings):
        copy = work / f"kelas-{i:02d}.mp4"
        shutil.copy(source, copy)
        recordings.append(Recording(copy, copy.stem))
    frames = frames_in(source, args.sample_fps)
    backends = [("sqlite", lambda w: f"sqlite:///{work / f'w{w}.db'}")]
    server = None
    if args.postgres:
        from postgres_server import PostgresServer

        server = PostgresServer().start()
        backends.append(("postgres", lambda w: server.create_database()))
    rate = f"{args.sample_fps:g} fps" if args.sample_fps else "every frame"
    print(f"{args.recordings} recordings of {args.clip.name} x{args.repeat} ({frames} frames analysed each, "
          f"{rate}), {subprocess.check_output(['nproc']).decode().strip()} cores")
    try:
        for name, url in backends:
            base = None
            for workers in (1, 2):
                r = measure(recordings, url(workers), workers, args.sample_fps)
                base = base or r
                print(
                    f"{name:8s} workers={workers}: {r['wall_s']:6.1f} s, {r['per_min']:5.2f} recordings/min, "
                    f"speed-up {base['wall_s'] / r['wall_s']:.2f}x, {r['task_s']:.1f} s per recording "
                    f"({r['task_s'] / frames * 1000:.1f} ms per frame incl. start-up), peak {r['peak_mb']:.0f} MB per worker"
                )
    finally:
        if server:
            server.stop()
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
