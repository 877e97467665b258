"""Gallery view through the whole live loop: a 2x2 meeting grid from real clips, a roster tying
two tile positions to consenting participants, a third face without consent, an empty tile, and
the two consenting feeds swapping places half-way. Ids and consent must follow the feeds."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from engagement.app.live.capture import LiveCapture, LiveLoopOptions
from engagement.app.live.session import run_live
from engagement.app.pipeline import ConsentOptions
from engagement.core import schema
from engagement.core.config import AnalysisOptions
from engagement.core.store import Store
from engagement.vision.gallery import GalleryLayout, compose_gallery
from engagement.vision.sources import FramesSource
from test_gallery import _clip
from conftest import require_shared

ROSTER = """
cohort = "latsar"
grid = "2x2"
notice_version = "v1"
language = "en"
evidence = "signed consent forms"

[[participants]]
identity = "ani@example.org"
tile = "1,1"

[[participants]]
identity = "budi@example.org"
tile = "1,2"
"""


@pytest.mark.slow
def test_gallery_live_ids_and_consent_follow_swapped_tiles(tmp_path):
    from privacy.pseudonym import KeyRing
    from privacy.roster import import_roster, load_roster

    n = 40
    layout = GalleryLayout(2, 2, 1280, 720)
    ani = _clip(require_shared("videos/pyfeat/single_face.mp4"), n, 0)
    budi = _clip(require_shared("videos/liveportrait/d9.mp4"), n, 0)
    guest = _clip(require_shared("videos/pyfeat/WolfgangLanger_Pexels.mp4"), n, 0)
    cartoon = _clip(require_shared("videos/pyfeat/no_face.mp4"), n, 0)
    frames = []
    for i in range(n):
        first, second = (ani[i], budi[i]) if i < n // 2 else (budi[i], ani[i])  # the app reorders tiles
        frames.append(compose_gallery([first, second, guest[i], cartoon[i]], layout))

    roster_path = tmp_path / "roster.toml"
    roster_path.write_text(ROSTER)
    store = Store.open(f"sqlite:///{tmp_path / 'live.db'}")
    import_roster(store, load_roster(roster_path))
    options = LiveLoopOptions(status=False)
    source = LiveCapture(FramesSource(frames, 10.0, n / 10.0), options)
    result = run_live(
        store,
        source,
        "gallery-class",
        layout=layout,
        analysis=AnalysisOptions(expression=False),
        options=options,
        consent=ConsentOptions(roster=roster_path),
        cohort="latsar",
    )
    ring = KeyRing(store)
    expected = {"T1": ring.pseudonym("ani@example.org", "latsar"), "T2": ring.pseudonym("budi@example.org", "latsar")}
    with store.engine.connect() as conn:
        tracks = conn.execute(
            select(schema.tracks.c.label, schema.tracks.c.participant, schema.tracks.c.first_seen_ms, schema.tracks.c.last_seen_ms)
            .where(schema.tracks.c.run_id == result.summary.run_id)
        ).all()
    # Exactly the two consenting feeds, each under its own pseudonym for the whole run; the
    # guest (no consent) is not stored at all.
    assert {t.label: t.participant for t in tracks} == expected
    for t in tracks:
        assert t.first_seen_ms < 500 and t.last_seen_ms > 3000, t
    assert any("no recorded consent" in note for note in result.summary.notes)
    store.close()
