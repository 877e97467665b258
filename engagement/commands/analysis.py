"""`engagement analyze`, `engagement sessions list`, `engagement export`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from engagement.config import AnalysisOptions, data_dir, default_db_url, parse_sample_fps
from engagement.demo import demo_db_url
from engagement.errors import ConfigError
from engagement.reaper import reap_and_report
from engagement.registry import sha256_file


def register(sub: argparse._SubParsersAction) -> None:
    analyze = sub.add_parser(
        "analyze",
        help="analyse a video file (or, with no argument, the offline demo) into the database",
        description=(
            "Find faces, measure attention signals per participant and second, and store them. "
            "Faces without recorded consent are not analysed (see `engagement privacy consent`). "
            "With no VIDEO, a labelled demo video made from a public-domain face image is analysed "
            "into the session 'demo'."
        ),
    )
    analyze.add_argument("video", nargs="?", help="video file (mp4, mov, avi, mpg, ...); omit for the demo")
    analyze.add_argument(
        "--session", help="session name, at most 200 characters (default: video-<hash of the file name>, or the "
        "file name with --store-file-name)"
    )
    analyze.add_argument("--cohort", help="cohort / class the session belongs to")
    add_db_argument(analyze)
    analyze.add_argument("--sample-fps", metavar="N", help="analyse at most N frames per second (default: all)")
    analyze.add_argument("--max-faces", type=int, default=8, metavar="N", help="most faces per frame (default 8)")
    analyze.add_argument("--profile", default="id-pdp", help="compliance profile: id-pdp (default) or eu-ai-act")
    analyze.add_argument("--participant", help="this is one participant on their own device: their identifier")
    analyze.add_argument("--roster", type=Path, help="roster file tying gallery tile positions to participants")
    add_store_file_name_argument(analyze)
    analyze.add_argument("--no-progress", action="store_true", help="no progress bar")
    analyze.set_defaults(handler=run_analyze)

    sessions = sub.add_parser("sessions", help="list analysed sessions")
    sessions_sub = sessions.add_subparsers(dest="sessions_command", required=True, metavar="ACTION")
    listing = sessions_sub.add_parser("list", help="list sessions with their newest run")
    add_db_argument(listing)
    listing.set_defaults(handler=run_sessions_list)

    export = sub.add_parser(
        "export",
        help="export a session's per-second data with its schema and a reproducibility manifest",
    )
    export.add_argument("session", help="session name (see `engagement sessions list`)")
    export.add_argument("--format", default="csv", help="csv (default) or parquet")
    export.add_argument("--out", type=Path, default=Path("exports"), help="output directory (default ./exports)")
    add_db_argument(export)
    export.set_defaults(handler=run_export)


def add_db_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--db",
        metavar="URL",
        default=None,
        help="SQLAlchemy database URL (default: SQLite file in the data directory, or $ENGAGEMENT_DB)",
    )


def add_store_file_name_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--store-file-name",
        action="store_true",
        help="record the video's file name with the run (default: only a short hash of it and its "
        "extension, since file names often name a person)",
    )


def open_store(url: str | None, *, create: bool = True, read_only: bool = False):
    """Open the database; unless read-only, first reap runs whose writer is gone."""
    from engagement.store import Store

    store = Store.open(url or default_db_url(), create=create, read_only=read_only)
    if not read_only:
        reap_and_report(store)
    return store


def run_analyze(args: argparse.Namespace) -> int:
    from engagement.pipeline import AnalysisPipeline, ConsentOptions
    from engagement.store import check_session_name
    from engagement.vision.sources import name_digest, open_source

    # Validate the input before touching the database: bad input writes nothing.
    sample_fps = parse_sample_fps(args.sample_fps) if args.sample_fps is not None else None
    options = AnalysisOptions(sample_fps=sample_fps, max_faces=args.max_faces)
    if args.session is not None:
        check_session_name(args.session)
    roster = load_roster(args.roster)
    demo = args.video is None
    if demo:
        from engagement.demo import DEMO_SESSION, make_demo_video

        video = data_dir() / "demo" / "demo-session.mp4"
        if not video.exists():
            print(f"Making the demo video (public-domain face image, labelled DEMO): {video}", file=sys.stderr)
            make_demo_video(video)
        session = args.session or DEMO_SESSION
    else:
        video = Path(args.video)
        if args.session:
            session = args.session
        elif args.store_file_name:
            session = check_session_name(video.stem)
        else:
            session = f"video-{name_digest(video)}"
    source = open_source(video, sample_fps, keep_name=demo or args.store_file_name)
    # The demo lives in its own database, never beside real participants' data.
    store = open_store(args.db or (demo_db_url() if demo else None))
    startup_purge(store)
    if demo:
        record_demo_attestation(store, session)
    pipeline = AnalysisPipeline(
        store,
        options,
        profile=args.profile,
        consent=ConsentOptions(device_participant=args.participant, roster=roster),
    )
    show = not args.no_progress and sys.stderr.isatty()
    summary = pipeline.run(
        source, session, cohort=args.cohort, hook=ProgressBar() if show else None, source_sha256=sha256_file(video)
    )
    if not (demo or args.session or args.store_file_name):
        summary.notes.append(
            "the session is named after a hash of the file name, which is not recorded "
            "(--session NAME names it; --store-file-name records the file name)"
        )
    if show:
        print(file=sys.stderr)
    print(format_summary(summary, source))
    return 0


def load_roster(path: Path | None):
    """The roster, read and checked before anything is written (None without --roster)."""
    if path is None:
        return None
    from privacy.roster import load_roster as load

    return load(path)


def startup_purge(store) -> None:
    """Retention is enforced every time data is touched, not only when someone remembers."""
    from privacy.retention import load_policy, purge

    receipt = purge(store, load_policy(None), trigger="analyze")
    if receipt.total:
        print(f"Retention policy: purged {receipt.total} expired rows (receipt {receipt.receipt_id}).", file=sys.stderr)


def record_demo_attestation(store, session: str) -> None:
    """The demo's only 'participant' is a public-domain photo; record that as its attestation."""
    from privacy.consent import attest

    # attest() keeps an existing active attestation instead of adding a second one.
    attest(
        store,
        session,
        facilitator="demo",
        notice_version="demo",
        language="en",
        evidence="DEMO: public-domain image (scikit-image astronaut), no real participant",
        actor="demo",
    )


class ProgressBar:
    """Turns pipeline progress into one self-overwriting line on stderr."""

    def __init__(self, width: int = 30):
        self.width = width
        self.last = -1.0

    def __call__(self, p) -> None:
        if p.t_ms - self.last < 250 and p.duration_ms and p.t_ms < p.duration_ms - 1:
            return
        self.last = p.t_ms
        if p.duration_ms:
            share = min(1.0, p.t_ms / p.duration_ms)
            filled = int(share * self.width)
            bar = "#" * filled + "." * (self.width - filled)
            head = f"[{bar}] {share:4.0%} {p.t_ms / 1000:6.1f}/{p.duration_ms / 1000:.1f} s"
        else:
            head = f"{p.t_ms / 1000:8.1f} s"
        sys.stderr.write(f"\r{head}  faces {p.faces}  tracks {p.tracks}  ")
        sys.stderr.flush()


def format_summary(summary, source) -> str:
    lines = [f"Session {summary.session!r}, run {summary.run_id}: complete"]
    speed = summary.speed_fps
    realtime = ""
    if summary.wall_s > 0 and summary.seconds:
        realtime = f", {summary.seconds / summary.wall_s:.1f}x real time"
    lines.append(
        f"  seconds analysed: {summary.seconds}   frames: {summary.frames_read} read, "
        f"{summary.frames_analysed} analysed in {summary.wall_s:.1f} s ({speed:.1f} fps{realtime})"
    )
    if summary.tracks == 0:
        lines.append("  No faces were analysed: 0 tracks." + ("" if summary.notes else " No face was found in this video."))
    else:
        lines.append(
            f"  tracks: {summary.tracks}   face present in {summary.face_present_share:.1%} of analysed frames"
        )
        for label, (first, last) in sorted(summary.track_spans.items(), key=lambda kv: int(kv[0][1:])):
            lines.append(f"    {label}: seen from {first / 1000:.2f} s to {last / 1000:.2f} s")
    for note in summary.notes:
        lines.append(f"  note: {note}")
    return "\n".join(lines)


def run_sessions_list(args: argparse.Namespace) -> int:
    store = open_store(args.db, create=False, read_only=True)  # reads only: works on a read-only directory
    for run in store.dead_runs():
        print(
            f"note: run {run.id} of session {run.session!r} shows as running but its writer is gone "
            f"({run.reason}); the next command that writes to the database marks it interrupted",
            file=sys.stderr,
        )
    sessions = store.list_sessions()
    if not sessions:
        print("No sessions yet. Analyse a video: engagement analyze VIDEO --session NAME")
        return 0
    print(f"{'session':30} {'cohort':15} {'created (UTC)':20} {'runs':>4} {'last run':12} {'seconds':>8} {'tracks':>6}")
    for s in sessions:
        print(
            f"{s.name[:30]:30} {(s.cohort or '-')[:15]:15} {s.created_at:%Y-%m-%d %H:%M:%S}  "
            f"{s.runs:>4} {s.last_status or '-':12} {s.seconds:>8} {s.tracks:>6}"
        )
    return 0


def run_export(args: argparse.Namespace) -> int:
    from privacy.audit import AuditAction, AuditLog, resolve_actor

    from engagement.export import FORMATS, export_session

    if args.format not in FORMATS:
        raise ConfigError(f"--format must be one of {', '.join(FORMATS)}, got {args.format!r}")
    store = open_store(args.db, create=False)
    result = export_session(store, args.session, args.format, args.out)
    AuditLog(store).record(
        AuditAction.EXPORT,
        resolve_actor(),
        {"session": args.session, "format": args.format, "rows": result.rows, "file": result.data.name},
    )
    print(f"Exported {result.rows} rows to {result.data}")
    print(f"  schema:   {result.schema}")
    print(f"  manifest: {result.manifest}")
    return 0
