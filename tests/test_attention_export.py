"""Attention signals end to end: a real clip through `engagement analyze` under the attention-only
profile, into the store and out through `engagement export`, with the documented column names and
values."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from sqlalchemy import select

from engagement.cli.main import main
from engagement.core import schema
from engagement.core.records import ATTENTION_STATES
from engagement.core.store import Store
from privacy.consent import attest

from conftest import require_shared


@pytest.mark.slow
def test_attention_columns_in_store_and_export_under_the_eu_ai_act_profile(tmp_path):
    # WolfgangLanger_Pexels.mp4, labelled by eye: eyes only turned aside at 9.3-10.2 s and
    # 15.0-16.3 s, eyes closed from 18.5 s to the end.
    video = require_shared("videos/pyfeat/WolfgangLanger_Pexels.mp4")
    db_url = f"sqlite:///{tmp_path / 'results.db'}"
    store = Store.open(db_url)
    attest(store, "attention", facilitator="test facilitator", scopes=["facilitator_feedback", "research"],
           notice_version="t1", language="id", evidence="test")
    store.close()
    args = ["analyze", str(video), "--session", "attention", "--db", db_url, "--no-progress", "--profile", "eu-ai-act"]
    assert main(args) == 0
    out = tmp_path / "exports"
    assert main(["export", "attention", "--format", "csv", "--out", str(out), "--db", db_url]) == 0

    frame = pd.read_csv(out / "attention.csv")
    columns = {c["name"]: c for c in json.loads((out / "attention.schema.json").read_text())["columns"]}
    for name in ("on_screen_ratio", "eyes_closed_ratio", "attention"):
        assert name in frame.columns and columns[name]["description"]
    assert set(frame["attention"]) <= set(ATTENTION_STATES)
    for name in ("on_screen_ratio", "eyes_closed_ratio"):
        values = frame[name].dropna()
        assert ((values >= 0) & (values <= 1)).all()
    # No expression under this profile, and the attention states are there all the same.
    assert frame["expr_happy"].isna().all()
    by_second = frame.set_index("second")
    assert by_second.loc[19, "attention"] == "eyes_closed"
    assert by_second.loc[9, "attention"] == "looking_away" and by_second.loc[15, "attention"] == "looking_away"
    # Fatigue: physical states kept, the smile (an expression) never stored; no yawn in the clip.
    for name in ("yawn", "perclos", "long_closures", "blink_rate", "blink_ms", "smile"):
        assert name in frame.columns and columns[name]["description"]
    assert frame["smile"].isna().all() and set(frame["yawn"].dropna()) == {0}
    # Eyes read against her open level from 9 s on (warm-up, a hand over the face): under the
    # 15 s of readable eyes a PERCLOS figure needs, so none; missing, never zero.
    assert frame["perclos"].isna().all() and frame["blink_rate"].isna().all()
    unjudged = frame[frame["attention"].isin(["unknown", "absent"])]
    assert unjudged["on_screen_ratio"].isna().all() and unjudged["eyes_closed_ratio"].isna().all()

    # One participant, k = 3: the class figures are hidden, never a lone person's state.
    store = Store.open(db_url)
    with store.transaction() as conn:
        rows = conn.execute(select(schema.class_timeline)).mappings().all()
    assert rows and all(r["on_screen_share"] is None and r["n_absent"] is None for r in rows)
    assert all(r["n_yawns"] is None and r["perclos_share"] is None and r["smile_share"] is None for r in rows)
    assert all(r["n_judged"] in (0, 1) for r in rows)
