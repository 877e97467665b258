"""How much per-second values change when a recording is analysed at the gallery's sample rate
instead of every frame, on the shared face clips.

    python benchmarks/gallery_sample_rate.py [--sample-fps 5]

Each clip is analysed twice through `AnalysisPipeline` (attention only, one camera, consent
attested): every frame, and at `--sample-fps`. Per second and track, compared: the attention
state (same or not), the on-screen share (mean absolute difference) and whether a face was found
at all. A gallery tile is analysed exactly like one such clip, so this is what the gallery's
default rate costs in agreement.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from sqlalchemy import select  # noqa: E402

from clips import FACE_CLIPS  # noqa: E402
from engagement.app.pipeline import AnalysisPipeline  # noqa: E402
from engagement.core import schema  # noqa: E402
from engagement.core.config import AnalysisOptions, shared_data_dir  # noqa: E402
from engagement.core.store import Store  # noqa: E402
from engagement.vision.meeting import GALLERY_SAMPLE_FPS  # noqa: E402
from engagement.vision.sources import VideoFileSource  # noqa: E402
from privacy.consent import attest  # noqa: E402


def per_second(store: Store, clip: Path, session: str, fps: float | None) -> dict[int, tuple]:
    """{second: (attention, on_screen_ratio)} of the clip's first track."""
    attest(store, session, facilitator="benchmark", notice_version="b", language="id", evidence="benchmark")
    pipeline = AnalysisPipeline(store, AnalysisOptions(sample_fps=fps, expression=False), profile="eu-ai-act")
    run = pipeline.run(VideoFileSource(clip, fps), session).run_id
    t, w = schema.tracks, schema.window_features
    with store.engine.connect() as conn:
        first = conn.execute(select(t.c.id).where(t.c.run_id == run).order_by(t.c.id)).first()
        if first is None:
            return {}
        rows = conn.execute(select(w.c.second, w.c.attention, w.c.on_screen_ratio).where(w.c.track_id == first.id)).all()
    return {r.second: (r.attention, r.on_screen_ratio) for r in rows}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sample-fps", type=float, default=GALLERY_SAMPLE_FPS)
    args = ap.parse_args(argv)
    if not 0 < args.sample_fps <= 240:
        print("error: --sample-fps must be between 0 and 240", file=sys.stderr)
        return 2
    same = seconds = presence_same = 0
    diffs: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        store = Store.open(f"sqlite:///{Path(tmp) / 'b.sqlite'}")
        for k, name in enumerate(FACE_CLIPS):
            clip = shared_data_dir() / "videos" / name
            full = per_second(store, clip, f"all-{k}", None)
            sampled = per_second(store, clip, f"sampled-{k}", args.sample_fps)
            for second in sorted(set(full) & set(sampled)):
                (a, r), (b, q) = full[second], sampled[second]
                seconds += 1
                same += a == b
                presence_same += (a == "absent") == (b == "absent")
                if r is not None and q is not None:
                    diffs.append(abs(r - q))
        store.close()
    mean_diff = sum(diffs) / len(diffs) if diffs else float("nan")
    print(f"{len(FACE_CLIPS)} shared clips, {seconds} track-seconds: every frame against {args.sample_fps:g} fps")
    print(f"  same attention state   {same / seconds:.1%}")
    print(f"  same presence          {presence_same / seconds:.1%}")
    print(f"  on-screen share        mean |difference| {mean_diff:.3f} over {len(diffs)} seconds judged in both")
    return 0


if __name__ == "__main__":
    sys.exit(main())
