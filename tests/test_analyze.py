"""The `engagement analyze` path end to end on real faces, and bad input failing cleanly.

Acceptance figures checked here: one track present in >= 95 % of frames on a single-face clip,
a face leaving/arriving within 0.5 s of the cut, zero tracks on a no-face clip, frontal GRID
speakers at |yaw| and |pitch| under 15 degrees on average.
"""

from __future__ import annotations

import math
import subprocess
import sys

import pytest
from sqlalchemy import func, select

from engagement.cli.main import main
from engagement.core import schema
from engagement.core.repositories import runs as run_rows
from engagement.core.store import Store
from privacy.audit import AuditLog, resolve_actor
from privacy.consent import attest

from conftest import require_shared

# Scene cuts measured once by frame differencing (mean absolute grey-level change of ~145/255
# and ~77/255 between consecutive frames, every other change < 6): ground truth for presence.
FACE_LEAVES_S = 2.40  # pyfeat/face_noface.mov: face until the cut to a cartoon card
FACE_ARRIVES_S = 3.945  # pyfeat/noface_face.mov: cartoon card, then the face


def analyze(db_url: str, video, session: str, *extra: str) -> int:
    store = Store.open(db_url)
    attest(store, session, facilitator="test facilitator", notice_version="t1", language="id", evidence="test")
    store.close()
    return main(["analyze", str(video), "--session", session, "--db", db_url, "--no-progress", *extra])


def latest_run(db_url: str, session: str) -> dict:
    return run_rows.latest_run(Store.open(db_url), session)


def tracks_of(db_url: str, run_id: int) -> list:
    store = Store.open(db_url)
    with store.transaction() as conn:
        return conn.execute(select(schema.tracks).where(schema.tracks.c.run_id == run_id)).all()


def windows_of(db_url: str, track_id: int) -> list:
    store = Store.open(db_url)
    with store.transaction() as conn:
        return conn.execute(
            select(schema.window_features)
            .where(schema.window_features.c.track_id == track_id)
            .order_by(schema.window_features.c.second)
        ).all()


@pytest.fixture
def db_url(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'results.db'}"


@pytest.mark.slow
def test_single_face_gives_one_track_present_almost_always(db_url, capsys):
    video = require_shared("videos/pyfeat/single_face.mp4")
    assert analyze(db_url, video, "single") == 0
    out = capsys.readouterr().out
    assert "tracks: 1" in out
    run = latest_run(db_url, "single")
    (track,) = tracks_of(db_url, run["id"])
    windows = windows_of(db_url, track.id)
    n_frames = sum(w.n_frames for w in windows)
    n_face = sum(w.n_face for w in windows)
    assert n_frames == run["frames_analysed"] == 72
    assert n_face / n_frames >= 0.95
    assert track.participant  # a pseudonym from the session attestation, never empty
    assert all(abs(w.head_yaw_mean) < math.radians(20) for w in windows)


def _only_track(db_url, clip: str, session: str):
    """Analyse a shared clip of one person; the run's one track."""
    assert analyze(db_url, require_shared(clip), session) == 0
    (track,) = tracks_of(db_url, latest_run(db_url, session)["id"])
    return track


@pytest.mark.slow
def test_face_leaving_is_seen_at_the_cut_and_then_absent(db_url):
    track = _only_track(db_url, "videos/pyfeat/face_noface.mov", "leaves")
    assert abs(track.last_seen_ms / 1000 - FACE_LEAVES_S) <= 0.5
    assert track.first_seen_ms / 1000 <= 0.5
    windows = windows_of(db_url, track.id)
    after = [w for w in windows if w.second >= math.ceil(FACE_LEAVES_S + 0.5)]
    assert after and all(w.n_face == 0 and w.head_yaw_mean is None for w in after)  # absent, not zero


@pytest.mark.slow
def test_face_arriving_is_seen_at_the_cut(db_url):
    track = _only_track(db_url, "videos/pyfeat/noface_face.mov", "arrives")
    assert abs(track.first_seen_ms / 1000 - FACE_ARRIVES_S) <= 0.5
    assert track.first_second == 3


@pytest.mark.slow
def test_no_face_video_gives_zero_tracks_and_says_so(db_url, capsys):
    video = require_shared("videos/pyfeat/no_face.mp4")
    assert analyze(db_url, video, "empty") == 0
    assert "No face was found" in capsys.readouterr().out
    run = latest_run(db_url, "empty")
    assert run["status"] == "complete" and tracks_of(db_url, run["id"]) == []


@pytest.mark.slow
def test_frontal_grid_speakers_face_the_camera(db_url):
    videos = sorted(require_shared("videos/grid").glob("*.mpg"))
    assert videos
    for video in videos:
        assert analyze(db_url, video, video.stem) == 0
        run = latest_run(db_url, video.stem)
        (track,) = tracks_of(db_url, run["id"])
        windows = [w for w in windows_of(db_url, track.id) if w.n_face]
        yaw = sum(abs(w.head_yaw_mean) * w.n_face for w in windows) / sum(w.n_face for w in windows)
        pitch = sum(abs(w.head_pitch_mean) * w.n_face for w in windows) / sum(w.n_face for w in windows)
        assert math.degrees(yaw) < 15 and math.degrees(pitch) < 15, (video.name, math.degrees(yaw), math.degrees(pitch))


@pytest.mark.slow
def test_without_consent_nothing_is_computed(db_url, capsys):
    video = require_shared("videos/pyfeat/single_face.mp4")
    assert main(["analyze", str(video), "--session", "no-consent", "--db", db_url, "--no-progress"]) == 0
    assert "no recorded consent" in capsys.readouterr().out
    store = Store.open(db_url)
    with store.transaction() as conn:
        assert conn.execute(select(func.count()).select_from(schema.window_features)).scalar_one() == 0
        assert conn.execute(select(func.count()).select_from(schema.tracks)).scalar_one() == 0


@pytest.mark.slow
def test_export_writes_data_schema_and_manifest(db_url, tmp_path):
    import json

    import pandas as pd

    video = require_shared("videos/pyfeat/single_face.mp4")
    assert analyze(db_url, video, "exported", "--sample-fps", "10") == 0
    # Exports are research use: they keep only research-consented people (docs/privacy.md).
    store = Store.open(db_url)
    attest(store, "exported", facilitator="test facilitator", scopes=["research"], notice_version="t1",
           language="id", evidence="test")
    store.close()
    out = tmp_path / "exports"
    for fmt in ("csv", "parquet"):
        assert main(["export", "exported", "--format", fmt, "--out", str(out), "--db", db_url]) == 0
    frame = pd.read_parquet(out / "exported.parquet")
    manifest = json.loads((out / "exported.manifest.json").read_text())
    columns = json.loads((out / "exported.schema.json").read_text())["columns"]
    assert list(frame.columns) == [c["name"] for c in columns]
    assert len(frame) == 3 and set(frame["track"]) == {"T1"}
    assert manifest["data"]["rows"] == 3 and manifest["config"]["sample_fps"] == 10.0
    assert manifest["config_hash"] and manifest["software"]["version"]
    assert pd.read_csv(out / "exported.csv").shape == frame.shape
    # One actor name for every command-line action, exports and analyses included.
    audit = AuditLog(Store.open(db_url))
    assert {e.actor for e in audit.entries(action="export")} == {resolve_actor()}
    assert {e.actor for e in audit.entries(action="analysis_run")} == {resolve_actor()}


@pytest.mark.slow
@pytest.mark.parametrize("profile", ["id-pdp", "eu-ai-act"])
def test_blendshape_means_per_second_and_the_profile_gate(db_url, profile):
    """Eye blendshapes are physical states, kept under every profile; mouth and brow ones are
    expressions, NULL in every row under eu-ai-act."""
    video = require_shared("videos/pyfeat/single_face.mp4")
    assert analyze(db_url, video, "shapes", "--sample-fps", "10", "--profile", profile) == 0
    (track,) = tracks_of(db_url, latest_run(db_url, "shapes")["id"])
    windows = windows_of(db_url, track.id)
    assert windows and all(w.n_face > 0 for w in windows)
    for w in windows:
        assert 0.0 <= w.bs_eyeBlinkLeft <= 1.0 and 0.0 <= w.bs_eyeLookOutRight <= 1.0
        if profile == "eu-ai-act":
            assert w.bs_mouthSmileLeft is None and w.bs_browInnerUp is None and w.bs_jawOpen is None
        else:
            assert 0.0 <= w.bs_mouthSmileLeft <= 1.0 and 0.0 <= w.bs_browInnerUp <= 1.0


# -- bad input: one line, exit code 2, nothing half-written -------------------------------------


def run_cli(*args: str, env=None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "engagement.cli.main", *args], capture_output=True, text=True, env=env, timeout=120
    )


def assert_one_line_error(result: subprocess.CompletedProcess, pattern: str) -> None:
    assert result.returncode == 2, result
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), result.stderr
    assert pattern in lines[0], lines[0]


def test_missing_file(tmp_path):
    db = tmp_path / "r.db"
    assert_one_line_error(run_cli("analyze", str(tmp_path / "nope.mp4"), "--db", f"sqlite:///{db}"), "no such file")
    assert not db.exists()


def test_text_file_renamed_mp4(tmp_path):
    fake = tmp_path / "lecture.mp4"
    fake.write_text("not a video\n" * 100)
    db = tmp_path / "r.db"
    assert_one_line_error(run_cli("analyze", str(fake), "--db", f"sqlite:///{db}"), "not a readable video")
    assert not db.exists()


def test_truncated_video(tmp_path):
    video = require_shared("videos/pyfeat/single_face.mp4")
    data = video.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) * 6 // 10])
    assert_one_line_error(run_cli("analyze", str(cut), "--db", f"sqlite:///{tmp_path / 'r.db'}"), "cut.mp4")


def test_zero_frame_video(tmp_path):
    import cv2

    path = tmp_path / "zero.avi"
    cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 25, (64, 64)).release()
    assert_one_line_error(run_cli("analyze", str(path), "--db", f"sqlite:///{tmp_path / 'r.db'}"), "zero.avi")


def test_unwritable_database_path(tmp_path):
    video = require_shared("videos/pyfeat/single_face.mp4")
    blocker = tmp_path / "file"
    blocker.write_text("a file where a directory should be")
    result = run_cli("analyze", str(video), "--db", f"sqlite:///{blocker}/sub/r.db")
    assert_one_line_error(result, "database")


@pytest.mark.parametrize("value", ["abc", "-3", "0", "1e9", "nan"])
def test_malformed_sample_fps(tmp_path, value):
    video = require_shared("videos/pyfeat/single_face.mp4")
    db = tmp_path / "r.db"
    result = run_cli("analyze", str(video), "--sample-fps", value, "--db", f"sqlite:///{db}")
    assert_one_line_error(result, "--sample-fps")
    assert not db.exists()


def test_truncated_video_midway_leaves_a_failed_run_without_rows(db_url, monkeypatch):
    """A video that turns out truncated at its end: the run is marked failed, its rows removed."""
    video = require_shared("videos/pyfeat/single_face.mp4")
    from engagement.vision import sources

    real = sources.VideoFileSource._open

    def lying_open(self):
        cap = real(self)
        self.declared_frames = 500  # as if the container promised far more than it holds
        return cap

    monkeypatch.setattr(sources.VideoFileSource, "_open", lying_open)
    assert analyze(db_url, video, "cut") == 2
    store = Store.open(db_url)
    with store.transaction() as conn:
        runs = conn.execute(select(schema.runs)).all()
        assert [r.status for r in runs] == ["failed"] and "truncated" in runs[0].error
        for table in (schema.window_features, schema.tracks, schema.engagement_estimates, schema.class_timeline):
            assert conn.execute(select(func.count()).select_from(table)).scalar_one() == 0
    # A failed run is audited like a complete one (it used to leave no entry at all).
    (entry,) = AuditLog(store).entries(action="analysis_run")
    assert entry.actor == resolve_actor()
    assert entry.details["status"] == "failed" and entry.details["error"] == "SourceError"
    assert entry.details["run_id"] == runs[0].id


def test_cut_mpeg_file_completes_with_a_warning(db_url, tmp_path, capsys):
    data = require_shared("videos/grid/brbk7n.mpg").read_bytes()
    cut = tmp_path / "cut.mpg"
    cut.write_bytes(data[: len(data) // 2 + 1000])  # half the file, ending inside a packet
    assert analyze(db_url, cut, "cut-mpg", "--profile", "eu-ai-act") == 0
    out = capsys.readouterr().out
    assert ": complete" in out
    assert "note: cut.mpg ends inside an MPEG packet: it was probably cut short; its end is missing" in out
