"""`engagement live`: analyse a camera, a screen region (gallery view) or a replayed video as it
happens; per-second rows land in the store within about a second, for the live dashboard."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from engagement.config import AnalysisOptions
from engagement.errors import ConfigError


def register(sub: argparse._SubParsersAction) -> None:
    live = sub.add_parser(
        "live",
        help="analyse a webcam, a screen region (meeting gallery view) or a video in real time",
        description=(
            "Capture continuously and analyse on this device; each second's numbers are stored as soon "
            "as it ends, so the dashboard shows them within about two seconds. Frames the analysis "
            "cannot keep up with are dropped (the newest frame is always taken), so it never falls "
            "behind. A camera or screen capture that fails is retried until it comes back. "
            "Ctrl-C stops, stores the current second and ends the run. Faces without recorded "
            "consent are not analysed."
        ),
    )
    live.add_argument(
        "--source",
        required=True,
        metavar="SPEC",
        help="webcam[:N] (camera N, default 0), screen[:X,Y,W,H] (a screen region), or a video file",
    )
    live.add_argument("--session", required=True, help="session name")
    live.add_argument("--cohort", help="cohort / class the session belongs to")
    live.add_argument("--grid", metavar="COLSxROWS", help="gallery view: the meeting grid, e.g. 3x3 (default: the roster's grid)")
    live.add_argument("--roster", type=Path, help="roster file tying gallery tile positions to participants")
    live.add_argument("--participant", help="this is one participant on their own device: their identifier")
    live.add_argument("--profile", default="id-pdp", help="compliance profile: id-pdp (default) or eu-ai-act")
    live.add_argument("--max-fps", type=float, default=15.0, metavar="N", help="analyse at most N frames per second (default 15)")
    live.add_argument("--max-faces", type=int, default=8, metavar="N", help="most faces per frame outside gallery view (default 8)")
    live.add_argument("--screen-fps", type=float, default=10.0, metavar="N", help="screen grabs per second (default 10)")
    live.add_argument(
        "--give-up-after", type=float, metavar="S", help="end the run after S seconds without frames (default: keep retrying)"
    )
    live.add_argument("--no-status", action="store_true", help="no status line")
    from engagement.commands.analysis import add_db_argument, add_store_file_name_argument

    add_store_file_name_argument(live)
    add_db_argument(live)
    live.set_defaults(handler=run_live_command)


def run_live_command(args: argparse.Namespace) -> int:
    from engagement.commands.analysis import load_roster, open_store, startup_purge
    from engagement.live import LiveLoopOptions, open_live_source, run_live
    from engagement.pipeline import ConsentOptions
    from engagement.store import check_session_name

    # Validate the input before touching the database: bad input writes nothing.
    if not 0 < args.max_fps <= 120:
        raise ConfigError(f"--max-fps must be between 0 and 120, got {args.max_fps}")
    if not 0 < args.screen_fps <= 60:
        raise ConfigError(f"--screen-fps must be between 0 and 60, got {args.screen_fps}")
    check_session_name(args.session)
    roster = load_roster(args.roster)
    options = LiveLoopOptions(
        max_fps=args.max_fps, status=not args.no_status, give_up_after_s=args.give_up_after
    )
    source = open_live_source(args.source, options, screen_fps=args.screen_fps, keep_name=args.store_file_name)
    layout = gallery_layout(args, source, roster)
    store = open_store(args.db)
    startup_purge(store)
    result = run_live(
        store,
        source,
        args.session,
        layout=layout,
        analysis=AnalysisOptions(max_faces=args.max_faces),
        options=options,
        profile=args.profile,
        consent=ConsentOptions(device_participant=args.participant, roster=roster),
        cohort=args.cohort,
    )
    from engagement.commands.analysis import format_summary

    print(format_summary(result.summary, source))
    print(
        f"  live: analysed {result.effective_fps:.1f} frames/s per face; captured {result.captured}, "
        f"dropped {result.dropped}, garbage {result.rejected}, reconnects {result.reconnects}, "
        f"database retries {result.store_retries}"
    )
    return 0


def gallery_layout(args: argparse.Namespace, source, roster=None):
    """The gallery grid over the captured size, from --grid or the roster's grid; None: not gallery."""
    from engagement.vision.gallery import GalleryLayout, parse_grid

    grid = parse_grid(args.grid) if args.grid else None
    if grid is None and roster is not None:
        grid = roster.grid
    if grid is None:
        return None
    # Unknown before the first frame (a webcam): the gallery stage adapts to the frame's size.
    width, height = source.frame_size or (1280, 720)
    if args.grid is None:
        print(f"Gallery view: {grid[0]}x{grid[1]} grid from the roster.", file=sys.stderr)
    return GalleryLayout(grid[0], grid[1], width, height)
