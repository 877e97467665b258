"""`engagement analyze`, `engagement sessions list`, `engagement export`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from engagement.app.demo import DEMO_SESSION, demo_db_url, demo_video_path, make_demo_video, write_demo_agenda
from engagement.app.export import FORMATS, export_session
from engagement.app.pipeline import AnalysisPipeline, ConsentOptions, meeting_vision
from engagement.cli.common import (
    Cohort, Db, MaxFaces, Participant, Profile, Roster, SampleFps, StoreFileName, command, group, load_roster,
    open_store, option, progress_bar, say, startup_purge, warn,
)
from engagement.core.config import AnalysisOptions, data_dir, parse_sample_fps
from engagement.core.errors import ConfigError
from engagement.core.registry import sha256_file
from engagement.core.repositories import runs as run_rows
from engagement.core.repositories.runs import check_session_name, printable
from engagement.vision.layout import parse_layout
from engagement.vision.meeting import layout_at_start, options_for
from engagement.vision.sources import VideoFileSource, name_digest, open_source
from privacy.audit import AuditAction, AuditLog, resolve_actor
from privacy.consent import attest


def register(app: typer.Typer) -> None:
    command(app, "analyze", analyze, "cli.analyze.help", description="cli.analyze.description")
    sessions = group("sessions")
    command(sessions, "list", sessions_list, "cli.sessions.list_help")
    app.add_typer(sessions)
    command(app, "export", export, "cli.export.help")


def analyze(
    video: Annotated[str | None, typer.Argument(metavar="VIDEO", help=say("cli.analyze.opt_video"))] = None,
    session: Annotated[str | None, option("--session", key="cli.analyze.opt_session")] = None,
    cohort: Cohort = None,
    db: Db = None,
    sample_fps: SampleFps = None,
    max_faces: MaxFaces = 8,
    profile: Profile = "id-pdp",
    participant: Participant = None,
    roster: Roster = None,
    store_file_name: StoreFileName = False,
    layout: Annotated[
        str, option("--layout", metavar="auto|single|grid:COLSxROWS", key="cli.analyze.opt_layout")
    ] = "auto",
    no_progress: Annotated[bool, option("--no-progress", key="cli.opt.no_progress")] = False,
) -> int:
    # Validate the input before touching the database: bad input writes nothing.
    fps = parse_sample_fps(sample_fps) if sample_fps is not None else None
    options = AnalysisOptions(sample_fps=fps, max_faces=max_faces)
    spec = layout_option(layout)
    if session is not None:
        check_session_name(session)
    consent = ConsentOptions(device_participant=participant, roster=load_roster(roster))
    demo = video is None
    if demo:
        path = demo_video_path()
        if not path.exists():
            warn("cli.analyze.making_demo", path=path)
            make_demo_video(path)
        name = session or DEMO_SESSION
    else:
        path = Path(video)
        if session:
            name = session
        elif store_file_name:
            name = check_session_name(path.stem)
        else:
            name = f"video-{name_digest(path)}"
    source = open_source(path, fps, keep_name=demo or store_file_name)
    opening = layout_at_start(source.opening_images(), spec) if isinstance(source, VideoFileSource) else None
    if options_for(options, opening) != options:
        options = gallery_rate(source, opening, options)
    # The demo lives in its own database, never beside real participants' data.
    store = open_store(db or (demo_db_url() if demo else None))
    startup_purge(store)
    if demo:
        record_demo_attestation(store, name)
        write_demo_agenda(store, name)
    pipeline = AnalysisPipeline(
        store, options, profile=profile, consent=consent, vision_factory=meeting_vision(spec, opening)
    )
    with progress_bar(enabled=not no_progress) as bar:
        hook = AnalysisProgress(bar) if not bar.disable else None
        summary = pipeline.run(source, name, cohort=cohort, hook=hook, source_sha256=sha256_file(path))
        if hook:
            hook.finish()
    if not (demo or session or store_file_name):
        summary.notes.append(say("cli.analyze.hashed_name"))
    print(format_summary(summary))
    return 0


def layout_option(text: str):
    """`--layout` read, or one `error:` line in the operator's language."""
    try:
        return parse_layout(text)
    except ConfigError:
        raise ConfigError(say("cli.analyze.bad_layout", got=repr(text))) from None


def gallery_rate(source: VideoFileSource, opening, options: AnalysisOptions) -> AnalysisOptions:
    """A gallery recording is analysed at the gallery's rate unless --sample-fps says otherwise:
    every tile costs a landmarker pass per analysed frame, and every frame would fall behind."""
    chosen = options_for(options, opening)
    if options.sample_fps is None:
        source.sample_fps = chosen.sample_fps
        warn("cli.analyze.gallery_fps", layout=opening.describe(), fps=f"{chosen.sample_fps:g}")
    return chosen


def record_demo_attestation(store, session: str) -> None:
    """The demo's 'participants' are one public-domain photo; record that as its attestation."""
    # attest() keeps an existing active attestation instead of adding a second one.
    attest(
        store,
        session,
        facilitator="demo",
        notice_version="demo",
        language="en",
        evidence="DEMO: nine tiles drawn from one public-domain image (scikit-image astronaut), no real participant",
        actor="demo",
    )


class AnalysisProgress:
    """Turns the pipeline's progress hook into the command line's progress bar."""

    def __init__(self, bar):
        self.bar = bar
        self.task = bar.add_task(say("cli.analyze.progress"), total=None, detail="")

    def __call__(self, p) -> None:
        seconds = f"{p.t_ms / 1000:.1f}/{p.duration_ms / 1000:.1f} s" if p.duration_ms else f"{p.t_ms / 1000:.1f} s"
        detail = say("cli.analyze.progress_detail", seconds=seconds, faces=p.faces, tracks=p.tracks)
        self.bar.update(self.task, completed=p.t_ms, total=p.duration_ms or None, detail=detail)

    def finish(self) -> None:
        """The last frame reports its start, not the video's end: show the bar full."""
        total = self.bar.tasks[0].total  # the one task of this bar
        self.bar.update(self.task, completed=total or 0, total=total or 1)


def format_summary(summary) -> str:
    lines = [say("cli.summary.complete", session=repr(summary.session), run=summary.run_id)]
    realtime = ""
    if summary.wall_s > 0 and summary.seconds:
        realtime = say("cli.summary.realtime", factor=f"{summary.seconds / summary.wall_s:.1f}")
    lines.append(say(
        "cli.summary.seconds", seconds=summary.seconds, read=summary.frames_read, analysed=summary.frames_analysed,
        wall=f"{summary.wall_s:.1f}", fps=f"{summary.speed_fps:.1f}", realtime=realtime,
    ))
    if summary.tracks == 0:
        lines.append(say("cli.summary.no_tracks") + ("" if summary.notes else say("cli.summary.no_face_found")))
    else:
        lines.append(say("cli.summary.tracks", tracks=summary.tracks, share=f"{summary.face_present_share:.1%}"))
        for label, (first, last) in sorted(summary.track_spans.items(), key=lambda kv: int(kv[0][1:])):
            first_s, last_s = f"{first / 1000:.2f}", f"{last / 1000:.2f}"
            lines.append(say("cli.summary.track_span", label=label, first=first_s, last=last_s))
    if any(text != "single" for _, text in summary.layouts):  # one camera prints as it always has
        lines.extend(say("cli.summary.layout", at=f"{t_ms / 1000:.1f}", layout=text) for t_ms, text in summary.layouts)
    lines.extend(say("cli.summary.note", note=note) for note in summary.notes)
    return "\n".join(lines)


def sessions_list(db: Db = None) -> int:
    store = open_store(db, create=False, read_only=True)  # reads only: works on a read-only directory
    for run in run_rows.dead_runs(store):
        warn("cli.sessions.dead_run", run=run.id, session=repr(run.session), reason=run.reason)
    sessions = run_rows.list_sessions(store)
    if not sessions:
        print(say("cli.sessions.none"))
        return 0
    print(f"{'session':30} {'cohort':15} {'created (UTC)':20} {'runs':>4} {'last run':12} {'seconds':>8} {'tracks':>6}")
    for s in sessions:
        print(
            f"{printable(s.name)[:30]:30} {printable(s.cohort or '-')[:15]:15} {s.created_at:%Y-%m-%d %H:%M:%S}  "
            f"{s.runs:>4} {s.last_status or '-':12} {s.seconds:>8} {s.tracks:>6}"
        )
    return 0


def export(
    session: Annotated[str, typer.Argument(help=say("cli.export.opt_session"))],
    fmt: Annotated[str, option("--format", key="cli.export.opt_format")] = "csv",
    out: Annotated[Path, option("--out", key="cli.export.opt_out")] = Path("exports"),
    db: Db = None,
) -> int:
    if fmt not in FORMATS:
        raise ConfigError(say("cli.export.bad_format", formats=", ".join(FORMATS), got=repr(fmt)))
    store = open_store(db, create=False)
    result = export_session(store, session, fmt, out)
    AuditLog(store).record(
        AuditAction.EXPORT,
        resolve_actor(),
        {"session": session, "format": fmt, "rows": result.rows, "file": result.data.name},
    )
    print(say("cli.export.done", rows=result.rows, data=result.data, schema=result.schema, manifest=result.manifest))
    return 0

