"""Output records of the temporal stage. `to_dict()` keys are the columns of
`engagement_estimates`, `class_timeline` and `alerts` in engagement/core/schema.py, less the ones the
writer adds (run_id, created_at, id)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

STATES = ("present", "absent", "unknown")


@dataclass(frozen=True)
class EngagementEstimate:
    """One track in one second. `absent` (no face) and `unknown` (too little signal) carry no score."""

    track_id: int
    second: int
    state: str
    score: float | None = None
    level: int | None = None
    p_levels: tuple[float, float, float, float] | None = None
    uncertainty: float | None = None

    def __post_init__(self) -> None:
        if self.state not in STATES:
            raise ValueError(f"state must be one of {STATES}, got {self.state!r}")
        if self.state != "present" and self.score is not None:
            raise ValueError("only a present track can have a score: missing is missing")

    def to_dict(self) -> dict[str, int | float | str | None]:
        p = self.p_levels or (None, None, None, None)
        return {
            "track_id": self.track_id,
            "second": self.second,
            "state": self.state,
            "score": self.score,
            "level": self.level,
            "p_level0": p[0],
            "p_level1": p[1],
            "p_level2": p[2],
            "p_level3": p[3],
            "uncertainty": self.uncertainty,
        }


@dataclass(frozen=True)
class ClassPoint:
    """The class in one second: mean score over present consenting tracks, None when suppressed;
    the on-screen share over the `n_judged` participants whose attention could be judged and the
    count of cameras off / faces lost, each None below the minimum group size (timeline.py)."""

    second: int
    n_present: int
    n_tracked: int
    score: float | None
    suppressed: bool
    n_judged: int = 0
    on_screen_share: float | None = None
    n_absent: int | None = None
    # Fatigue (timeline.py), each None below the minimum group size: participants with a face,
    # yawns that began this second, the share of participants with a PERCLOS figure whose PERCLOS
    # is raised, and the share smiling (None wherever expressions are not measured).
    n_seen: int = 0
    n_yawns: int | None = None
    perclos_share: float | None = None
    smile_share: float | None = None

    def to_dict(self) -> dict[str, int | float | None]:
        # `suppressed` is an Integer column (portable to PostgreSQL).
        return {**asdict(self), "suppressed": int(self.suppressed)}


@dataclass(frozen=True)
class Alert:
    """An event on the class timeline, e.g. a sustained attention drop from start to end."""

    kind: str
    start_second: int
    end_second: int
    # attention_drop: score at the start minus the lowest score; on_screen_drop: the same for the
    # on-screen share; cameras_off_rise: rise of the share of participants with camera off;
    # fatigue_rising: the larger of the yawn rate and the heavy-eyed share over its threshold. > 0
    magnitude: float

    def to_dict(self) -> dict[str, int | float | str]:
        return asdict(self)


@dataclass(frozen=True)
class SecondOutput:
    """What `TemporalStage.process_second` returns for one second."""

    second: int
    estimates: tuple[EngagementEstimate, ...]
    class_point: ClassPoint
