"""`engagement live`: analyse a camera, a screen region (gallery view) or a replayed video as it
happens; per-second rows land in the store within about a second, for the live dashboard."""

from __future__ import annotations

from typing import Annotated

import typer

from engagement.app.live.session import LiveLoopOptions, open_live_source, run_live
from engagement.app.pipeline import ConsentOptions
from engagement.cli.analysis import format_summary, layout_option
from engagement.cli.common import (
    Cohort, Db, Participant, Profile, Roster, StoreFileName, command, load_roster, open_store, option, say,
    startup_purge, warn,
)
from engagement.core.config import AnalysisOptions
from engagement.core.errors import ConfigError
from engagement.core.repositories.runs import check_session_name
from engagement.vision.gallery import GalleryLayout, parse_grid


def register(app: typer.Typer) -> None:
    command(app, "live", live, "cli.live.help", description="cli.live.description")


def live(
    source: Annotated[str, option("--source", metavar="SPEC", key="cli.live.opt_source")],
    session: Annotated[str, option("--session", key="cli.live.opt_session")],
    cohort: Cohort = None,
    grid: Annotated[str | None, option("--grid", metavar="COLSxROWS", key="cli.live.opt_grid")] = None,
    layout: Annotated[
        str | None, option("--layout", metavar="auto|single|grid:COLSxROWS", key="cli.live.opt_layout")
    ] = None,
    roster: Roster = None,
    participant: Participant = None,
    profile: Profile = "id-pdp",
    max_fps: Annotated[float, option("--max-fps", metavar="N", key="cli.live.opt_max_fps")] = 15.0,
    max_faces: Annotated[int, option("--max-faces", metavar="N", key="cli.live.opt_max_faces")] = 8,
    screen_fps: Annotated[float, option("--screen-fps", metavar="N", key="cli.live.opt_screen_fps")] = 10.0,
    give_up_after: Annotated[
        float | None, option("--give-up-after", metavar="S", key="cli.live.opt_give_up_after")
    ] = None,
    no_status: Annotated[bool, option("--no-status", key="cli.live.opt_no_status")] = False,
    store_file_name: StoreFileName = False,
    db: Db = None,
) -> int:
    # Validate the input before touching the database: bad input writes nothing.
    if not 0 < max_fps <= 120:
        raise ConfigError(say("cli.live.bad_max_fps", got=max_fps))
    if not 0 < screen_fps <= 60:
        raise ConfigError(say("cli.live.bad_screen_fps", got=screen_fps))
    check_session_name(session)
    rostered = load_roster(roster)
    options = LiveLoopOptions(max_fps=max_fps, status=not no_status, give_up_after_s=give_up_after)
    if layout is not None and grid is not None:
        raise ConfigError(say("cli.live.grid_or_layout"))
    spec = layout_option(layout) if layout is not None else None
    capture = open_live_source(source, options, screen_fps=screen_fps, keep_name=store_file_name)
    chosen = spec or gallery_layout(grid, capture, rostered)
    store = open_store(db)
    startup_purge(store)
    result = run_live(
        store,
        capture,
        session,
        layout=chosen,
        analysis=AnalysisOptions(max_faces=max_faces),
        options=options,
        profile=profile,
        consent=ConsentOptions(device_participant=participant, roster=rostered),
        cohort=cohort,
    )
    print(format_summary(result.summary))
    print(say(
        "cli.live.stats", fps=f"{result.effective_fps:.1f}", captured=result.captured, dropped=result.dropped,
        garbage=result.rejected, reconnects=result.reconnects, retries=result.store_retries,
    ))
    return 0


def gallery_layout(grid_spec: str | None, source, roster=None) -> GalleryLayout | None:
    """The gallery grid over the captured size, from --grid or the roster's grid; None: not gallery."""
    grid = parse_grid(grid_spec) if grid_spec else None
    if grid is None and roster is not None:
        grid = roster.grid
    if grid is None:
        return None
    # Unknown before the first frame (a webcam): the gallery stage adapts to the frame's size.
    width, height = source.frame_size or (1280, 720)
    if grid_spec is None:
        warn("cli.live.grid_from_roster", cols=grid[0], rows=grid[1])
    return GalleryLayout(grid[0], grid[1], width, height)
