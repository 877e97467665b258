"""`engagement serve`: a participant's stream of numbers runs through the same attention tracker,
windows and temporal stage as every run, and the server refuses everything it does not expect.

Smoke: a stream of numbers becomes per-second rows with attention states; withdrawal deletes them.
Exception: unexpected fields, malformed and out-of-range numbers, times out of order or ahead of
the clock, replayed and foreign tokens, a second tab, a flood: 4xx, nothing stored, audited where
it matters. The clock is injected, so no test waits on real time.
"""

from __future__ import annotations

import json
import math
import threading
import urllib.error
import urllib.request

import pytest
from sqlalchemy import func, select

from engagement.app.join.ingest import Refused, load_json
from engagement.app.join.server import JoinServer
from engagement.app.join.streams import JoinLimits, JoinSession
from engagement.core import schema
from engagement.core.config import AnalysisOptions
from engagement.core.records import ATTENTION_STATES
from engagement.core.store import Store
from engagement.vision.browser import BrowserVisionStage, NumbersFrame
from engagement.vision.signals import FaceNumbers
from engagement.vision.stage import VisionStage
from privacy.audit import AuditAction, AuditLog

IDENTITY = "siti@example.id"


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def face(t_ms: float, *, yaw: float = 0.05, ear: float = 0.3) -> dict:
    """One frame of a participant looking at their screen (the numbers a browser sends)."""
    return {
        "t": t_ms, "face": True, "yaw": yaw, "pitch": 0.1, "roll": 0.0, "tz": 550.0,
        "gaze_yaw": yaw, "gaze_pitch": 0.1, "ear_l": ear, "ear_r": ear,
        "lids_l": [0.05] * 5, "lids_r": [0.05] * 5, "iod": 120.0, "blur": 300.0, "bright": 120.0,
        "pivot": [0.0, 0.0, 640.0],
    }  # fmt: skip


def batch(stream: str, seq: int, second: int, fps: int = 10, **kw) -> dict:
    frames = [face(second * 1000.0 + i * 1000.0 / fps + 1.0, **kw) for i in range(fps)]
    return {"stream": stream, "seq": seq, "w": 640, "h": 480, "frames": frames}


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def join(tmp_path, clock):
    """A served session on its own SQLite file; every stream it started ends with the test."""
    j = JoinSession(Store.open(f"sqlite:///{tmp_path / 'e.db'}"), "kelas-a", cohort="angkatan-1", clock=clock)
    yield j
    j.close()
    j.store.close()


@pytest.fixture
def store(join):
    return join.store


def seconds_stored(store) -> list[tuple[int, str]]:
    w = schema.window_features.c
    with store.transaction() as conn:
        return [tuple(r) for r in conn.execute(select(w.second, w.attention).order_by(w.second)).all()]


def stream_seconds(join, clock, token, stream, n: int, **kw) -> None:
    for second in range(n):
        clock.now += 1.0
        join.ingest(token, batch(stream, second, second, **kw))
        join.participant(token, charge=False).stream.source.settled()


def refusals(store) -> list[str]:
    return [e.details["refused"] for e in AuditLog(store).entries(action=AuditAction.PARTICIPANT_REFUSED.value)]


# -- smoke ---------------------------------------------------------------------------------------


def test_stream_becomes_per_second_rows_with_attention_and_withdraw_deletes_them(store, join, clock):
    p = join.consent(IDENTITY, "id", True)
    stream = join.start(p.token)
    stream_seconds(join, clock, p.token, stream.id, 12)
    done = join.stop(p.token)
    assert done.error is None
    rows = seconds_stored(store)
    assert len(rows) >= 11
    assert {state for _, state in rows} <= set(ATTENTION_STATES)
    # Past the warm-up the steady gaze is the participant's screen direction: on screen.
    assert rows[-1][1] == "on_screen"
    # The page's live view: the participant's own last stored seconds, newest first.
    shown = join.recent(p.token)
    assert [r["second"] for r in shown] == [r[0] for r in rows[::-1][:5]] and shown[0]["attention"] == "on_screen"
    # The participant's own grant, with notice version and language, was audited.
    granted = AuditLog(store).entries(action=AuditAction.CONSENT_GRANTED.value)
    assert granted[-1].details["language"] == "id" and granted[-1].details["notice_version"]
    receipt = join.withdraw(p.token)
    assert receipt["kind"] == "erasure" and sum(receipt["counts"].values()) > 0
    assert seconds_stored(store) == []
    with pytest.raises(Refused) as refused:
        join.start(p.token)  # the token died with the consent
    assert refused.value.status == 403


def test_seconds_without_the_face_are_absent_not_missing(store, join, clock):
    p = join.consent(IDENTITY, "en", True)
    stream = join.start(p.token)
    for second in range(4):
        clock.now += 1.0
        frames = [{"t": second * 1000.0 + i * 100.0 + 1.0, "face": False} for i in range(10)]
        join.ingest(p.token, {"stream": stream.id, "seq": second, "w": 640, "h": 480, "frames": frames})
    join.stop(p.token)
    assert [state for _, state in seconds_stored(store)] == ["absent"] * 4


def test_browser_numbers_are_judged_by_the_vision_stage_itself():
    """One implementation: numbers through BrowserVisionStage give the verdicts VisionStage.judge gives."""
    options = AnalysisOptions(expression=False)
    browser = BrowserVisionStage(options, runtime="test")
    python = VisionStage(options, landmarker=None)
    verdicts = []
    for i in range(80):
        yaw = 0.05 if i < 50 else 0.9  # looks at the screen, then turns well away
        n = FaceNumbers(yaw, 0.1, 0.0, 550.0, yaw, 0.1, 0.3, 0.3, (0.05,) * 5, (0.05,) * 5, 120.0, 300.0, 120.0,
                        (0.0, 0.0, 640.0))  # fmt: skip
        frame = NumbersFrame(i * 100.0, i, n, (640, 480))
        [got] = browser.measure(frame, browser.observe(frame))
        expected = python.judge(i * 100.0, 1, n)
        assert got == expected
        verdicts.append(got.attention)
    assert verdicts[45] == "on_screen" and verdicts[-1] == "looking_away"


# -- exception: what the server refuses ----------------------------------------------------------


@pytest.fixture
def streaming(join, clock):
    p = join.consent(IDENTITY, "en", True)
    stream = join.start(p.token)
    clock.now += 1.0
    return p, stream


def refused(call, *args) -> Refused:
    with pytest.raises(Refused) as caught:
        call(*args)
    return caught.value


@pytest.mark.parametrize("field", ["landmarks", "image", "blendshapes", "jpeg"])
def test_unexpected_fields_are_refused_by_name(join, streaming, field):
    p, stream = streaming
    data = batch(stream.id, 0, 0)
    data["frames"][3][field] = [0.1] * 478
    r = refused(join.ingest, p.token, data)
    assert (r.status, r.code) == (400, "unexpected_field") and field in r.detail
    top = {**batch(stream.id, 0, 0), field: "x"}
    assert refused(join.ingest, p.token, top).code == "unexpected_field"
    no_face = batch(stream.id, 0, 0)
    no_face["frames"][0] = {"t": 1.0, "face": False, "yaw": 0.1}  # numbers on a frame without a face
    assert refused(join.ingest, p.token, no_face).code == "unexpected_field"


@pytest.mark.parametrize(("field", "value", "code"), [
    ("yaw", 7.0, "out_of_range"), ("bright", 300.0, "out_of_range"), ("ear_l", -0.1, "out_of_range"),
    ("iod", 1e9, "out_of_range"), ("tz", "far", "malformed"), ("blur", True, "malformed"),
    ("lids_l", [0.1, 0.1], "malformed"), ("pivot", [0, 0, 1e12], "out_of_range"), ("t", -5.0, "out_of_range"),
    ("face", 1, "malformed"),
])  # fmt: skip
def test_malformed_and_out_of_range_numbers_are_refused(join, streaming, field, value, code):
    p, stream = streaming
    data = batch(stream.id, 0, 0)
    data["frames"][2][field] = value
    r = refused(join.ingest, p.token, data)
    assert (r.status, r.code) == (400, code) and field in r.detail


def test_non_numbers_in_json_are_refused():
    for body in (b"{\"frames\": NaN}", b"{\"a\": Infinity}", b"[1, 2]", b"\xff", b"x" * 70_000):
        assert 400 <= refused(load_json, body).status < 500


def test_times_out_of_order_or_ahead_of_the_clock_are_refused_and_nothing_is_stored(store, join, clock, streaming):
    p, stream = streaming
    data = batch(stream.id, 0, 0)
    data["frames"][4]["t"] = data["frames"][3]["t"]
    assert refused(join.ingest, p.token, data).code == "time_order"
    join.ingest(p.token, batch(stream.id, 0, 0))
    clock.now += 1.0
    earlier = batch(stream.id, 1, 0)  # a new batch number, but times already sent
    assert refused(join.ingest, p.token, earlier).code == "time_order"
    ahead = batch(stream.id, 2, 30)  # 30 s of stream after 2 s of wall clock
    assert refused(join.ingest, p.token, ahead).code == "time_ahead"
    assert stream.last_seq == 0 and stream.source.frames_read <= 10  # only the good batch went in


def test_replayed_batches_and_foreign_tokens_are_refused_and_audited(store, join, clock, streaming):
    p, stream = streaming
    join.ingest(p.token, batch(stream.id, 0, 0))
    clock.now += 1.0
    r = refused(join.ingest, p.token, batch(stream.id, 0, 1))
    assert (r.status, r.code) == (409, "replayed")
    assert refused(join.ingest, "not-a-token-of-ours", batch(stream.id, 1, 1)).status == 403
    assert refused(join.start, None).code == "foreign_token"
    other = JoinSession(store, "kelas-b", cohort="angkatan-1", clock=clock)  # another session's token
    assert refused(other.start, p.token).code == "foreign_token"
    assert refused(join.ingest, p.token, batch("another-stream-id", 1, 1)).code == "not_streaming"
    assert {"replayed", "foreign_token"} <= set(refusals(store))
    assert not any("participant" in e.details and e.details["participant"] == IDENTITY
                   for e in AuditLog(store).entries(action=AuditAction.PARTICIPANT_REFUSED.value))  # fmt: skip


def test_a_second_tab_for_the_same_participant_is_refused(store, join, streaming):
    p, stream = streaming
    again = join.consent(" siti@example.id ", "id", True)  # the same person, a second tab
    r = refused(join.start, again.token)
    assert (r.status, r.code) == (409, "second_stream")
    assert refused(join.start, p.token).code == "second_stream"
    assert "second_stream" in refusals(store)
    join.stop(p.token)
    assert join.start(again.token).id != stream.id  # once the first stops, the other tab may start


def test_a_flood_is_rate_limited_per_token(store, clock):
    join = JoinSession(store, "kelas-c", cohort="angkatan-1", clock=clock, limits=JoinLimits(rate_per_s=2, burst=3))
    try:
        p = join.consent(IDENTITY, "en", True)
        stream = join.start(p.token)  # 1 of the burst of 3
        clock.now += 0.5  # one more request's worth
        join.ingest(p.token, batch(stream.id, 0, 0))
        codes = []
        for seq in range(1, 6):
            try:
                join.ingest(p.token, batch(stream.id, seq, 0) | {"frames": [face(100.0 * seq + 1000.0)]})
                codes.append("ok")
            except Refused as exc:
                codes.append(exc.code)
        assert codes[0] == "ok" and set(codes[2:]) == {"rate_limited"}
        assert refusals(store).count("rate_limited") == 1  # audited once, not once per request
        other = join.consent("budi@example.id", "en", True)
        join.start(other.token)  # another participant's token is not limited by the first's flood
        clock.now += 2.0
        join.ingest(p.token, batch(stream.id, 10, 2))  # and the first may send again after a while
    finally:
        join.close()


def test_consent_must_be_explicit_and_name_someone(join):
    assert refused(join.consent, IDENTITY, "id", "yes").code == "no_consent"
    assert refused(join.consent, "   ", "id", True).code == "bad_identity"
    assert refused(join.consent, "x" * 500, "id", True).code == "bad_identity"
    assert refused(join.consent, IDENTITY, "fr", True).code == "malformed"


# -- over HTTP -----------------------------------------------------------------------------------


@pytest.fixture
def http(join):
    server = JoinServer(("127.0.0.1", 0), join)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def call(server, path: str, data=None, token: str | None = None, raw: bytes | None = None):
    url = f"http://127.0.0.1:{server.server_address[1]}{path}"
    body = raw if raw is not None else (json.dumps(data).encode() if data is not None else None)
    request = urllib.request.Request(url, data=body, method="POST" if body is not None else "GET")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def test_http_page_consent_and_refusals(http, join, store):
    base = f"/j/{join.token}/"
    status, page = call(http, base + "?lang=en")
    assert status == 200
    text = page.decode()
    for testid in ("participant-id", "consent-accept", "start", "stop", "withdraw"):
        assert f'data-testid="{testid}"' in text
    assert "What the facilitator sees about you" in text
    assert "Yang dilihat fasilitator" in call(http, base)[1].decode()  # Bahasa Indonesia first
    assert call(http, "/j/wrong-token/")[0] == 404
    status, body = call(http, base + "api/consent", {"identity": IDENTITY, "lang": "en", "accept": True})
    token = json.loads(body)["token"]
    status, body = call(http, base + "api/start", {}, token)
    stream = json.loads(body)["stream"]
    bad = batch(stream, 0, 0)
    bad["frames"][0]["landmarks"] = [[0.0, 0.0, 0.0]] * 478
    status, body = call(http, base + "api/frames", bad, token)
    assert status == 400 and json.loads(body)["error"] == "unexpected_field"
    assert call(http, base + "api/frames", raw=b"{not json", token=token)[0] == 400
    assert call(http, base + "api/consent", {"identity": IDENTITY, "lang": "en", "accept": True, "photo": "x"})[0] == 400
    assert call(http, base + "api/start", {"image": "x"}, token)[0] == 400
    assert call(http, base + "api/stop", {}, "forged")[0] == 403
    assert call(http, base + "api/stop", {}, token)[0] == 200
    assert seconds_stored(store) == []  # nothing refused was stored


def test_serve_command_refuses_bad_input_with_one_error_line(tmp_path, capsys):
    from engagement.cli.main import main

    db = ["--db", f"sqlite:///{tmp_path / 'never.db'}"]
    for args, message in (
        (["--port", "99999"], "--port must be 0-65535"),
        (["--certfile", "cert.pem"], "give --certfile and --keyfile together"),
        (["--certfile", "a.pem", "--keyfile", "b.pem"], "file not found: a.pem"),
        (["--session", "bad\x00name"], "session name"),
    ):
        session = [] if "--session" in args else ["--session", "kelas"]
        assert main(["serve", *session, *args, *db]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("error:") and message in err[0], err
    assert not (tmp_path / "never.db").exists()  # bad input touched no database
