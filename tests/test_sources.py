"""Frame sources: sampling, timestamps, and every kind of bad input failing clearly."""

import cv2
import numpy as np
import pytest

from engagement.core.errors import SourceError
from engagement.core.records import RunningMode
from engagement.vision.realtime import MAX_FRAME_PIXELS, FrameSampler
from engagement.vision.screen import ScreenSource, parse_screen_region
from engagement.vision.sources import (
    FramesSource,
    Source,
    VideoFileSource,
    VideoReplaySource,
    name_digest,
    open_source,
    recorded_name,
)
from engagement.vision.video_checks import mpeg_cut_warning

from conftest import require_shared


def write_video(path, frames=30, fps=25, size=(96, 64)):
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, size)
    for i in range(frames):
        img = np.full((size[1], size[0], 3), (i * 7) % 255, np.uint8)
        writer.write(img)
    writer.release()
    return path


def test_frames_have_increasing_times_and_sampling_keeps_the_rate(tmp_path):
    video = write_video(tmp_path / "clip.avi", frames=50, fps=25)
    all_frames = list(VideoFileSource(video).frames())
    assert len(all_frames) == 50
    times = [f.t_ms for f in all_frames]
    assert all(b > a for a, b in zip(times, times[1:]))
    assert times[1] - times[0] == pytest.approx(40.0, abs=1.0)
    sampled = list(VideoFileSource(video, sample_fps=5).frames())
    assert len(sampled) == 10  # 2 s at 5 fps


def test_sampler_never_bursts_after_a_gap():
    sampler = FrameSampler(10)
    kept = [t for t in range(0, 3000, 10) if sampler.keep(float(t))]
    assert len(kept) == 30
    sampler = FrameSampler(10)
    kept = [t for t in [0, 100, 200, 1200, 1210, 1220, 1300] if sampler.keep(float(t))]
    assert kept == [0, 100, 200, 1200, 1300]


def test_missing_file(tmp_path):
    with pytest.raises(SourceError, match="no such file"):
        VideoFileSource(tmp_path / "nope.mp4")


def test_text_file_renamed_mp4(tmp_path):
    fake = tmp_path / "notes.mp4"
    fake.write_text("this is not a video\n")
    with pytest.raises(SourceError, match="not a readable video"):
        VideoFileSource(fake)


def test_empty_file(tmp_path):
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    with pytest.raises(SourceError, match="empty"):
        VideoFileSource(empty)


def test_zero_frame_video(tmp_path):
    path = tmp_path / "zero.avi"
    cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 25, (64, 64)).release()
    with pytest.raises(SourceError, match="no decodable frames|not a readable video"):
        VideoFileSource(path)


def test_truncated_video_is_refused(tmp_path):
    video = write_video(tmp_path / "clip.avi", frames=60)
    data = video.read_bytes()
    cut = tmp_path / "cut.avi"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(SourceError, match="truncated|not a readable video|no decodable"):
        source = VideoFileSource(cut)
        for _ in source.frames():
            pass
        source.check_complete()


def test_check_complete_compares_decoded_with_declared_frames(tmp_path):
    source = VideoFileSource(write_video(tmp_path / "clip.avi", frames=20))
    list(source.frames())
    source.check_complete()  # whole file: fine
    source.declared_frames = 40  # as if the container promised more than the bytes held
    with pytest.raises(SourceError, match="truncated: decoded 20 of 40"):
        source.check_complete()


def test_webcam_spec_is_parsed():
    assert open_source("webcam:2").index == 2
    with pytest.raises(SourceError, match="webcam index"):
        open_source("webcam:front")


@pytest.mark.parametrize("ext,kind", [(".png", "PNG"), (".jpg", "JPEG"), (".bmp", "BMP"), (".tiff", "TIFF")])
def test_still_image_renamed_as_video_is_refused(tmp_path, ext, kind):
    image = tmp_path / f"slide{ext}"
    cv2.imwrite(str(image), np.full((120, 160, 3), 90, np.uint8))
    renamed = image.rename(tmp_path / "lecture.mp4")
    with pytest.raises(SourceError, match=rf"lecture.mp4 is a still image \({kind}\), not a video"):
        VideoFileSource(renamed)


def test_oversized_frames_are_refused_before_decoding(tmp_path):
    # A YUV4MPEG2 header promising 16000x16000 frames and only a few bytes of pixels: FFmpeg
    # reads the size from the header; decoding one frame would take 384 MB and its BGR copy 768 MB.
    big = tmp_path / "big.mp4"
    big.write_bytes(b"YUV4MPEG2 W16000 H16000 F25:1 Ip A1:1 C420jpeg\nFRAME\n" + b"\x80" * 1000)
    with pytest.raises(SourceError, match=r"16000x16000 frames, more than the 33 megapixels \(8K\)"):
        VideoFileSource(big)
    assert MAX_FRAME_PIXELS == 7680 * 4320
    with pytest.raises(SourceError, match="larger than the 8K"):
        parse_screen_region("screen:0,0,16000,16000")


def test_cut_mpeg_program_stream_is_warned_about(tmp_path):
    original = require_shared("videos/grid/brbk7n.mpg")
    assert VideoFileSource(original).warnings == []
    data = original.read_bytes()
    cut = tmp_path / "cut.mpg"
    cut.write_bytes(data[: len(data) // 2 + 1000])  # inside a packet, as a copy that stopped would
    source = VideoFileSource(cut)
    frames = list(source.frames())
    source.check_complete()  # FFmpeg's duration estimate comes from the file size: it agrees
    assert 0 < len(frames) < 60
    (warning,) = source.warnings
    assert "cut.mpg ends inside an MPEG packet" in warning and "cut short" in warning
    at_boundary = tmp_path / "boundary.mpg"  # a cut between packets is not detectable
    at_boundary.write_bytes(data[: 2048 * 50])
    assert VideoFileSource(at_boundary).warnings == []


def test_cut_transport_stream_is_warned_about(tmp_path):
    packets = bytearray()
    for i in range(20):
        packets += bytes([0x47, 0x40 if i == 0 else 0x00, 0x11, 0x10 | (i % 16)]) + b"\xff" * 184
    stream = tmp_path / "whole.ts"
    stream.write_bytes(bytes(packets))
    assert mpeg_cut_warning(stream) is None
    stream.write_bytes(bytes(packets[:-100]))
    assert "ends inside a transport-stream packet" in mpeg_cut_warning(stream)


def test_run_records_a_hash_of_the_file_name_unless_asked(tmp_path):
    video = write_video(tmp_path / "Budi Santoso - kelas 3.avi")
    hidden = VideoFileSource(video)
    assert hidden.name == recorded_name(video, keep=False) == f"file-{name_digest(video)}.avi"
    assert "Budi" not in hidden.name and len(hidden.name) == len("file-0123456789.avi")
    assert hidden.redact("Budi Santoso - kelas 3.avi is truncated") == f"{hidden.name} is truncated"
    assert VideoFileSource(video, keep_name=True).name == "Budi Santoso - kelas 3.avi"


def test_every_source_is_a_source_with_its_running_mode(tmp_path):
    video = write_video(tmp_path / "Budi Santoso.avi", frames=20)
    image = np.random.default_rng(0).integers(0, 255, (48, 64, 3), dtype=np.uint8)
    cases = [
        (VideoFileSource(video), RunningMode.VIDEO_FILE, True),
        (VideoReplaySource(video), RunningMode.LIVE, True),
        (FramesSource([image], 10.0, 1.0), RunningMode.LIVE, True),
        (open_source("webcam:1"), RunningMode.LIVE, False),
        (ScreenSource((0, 0, 64, 48), grab=lambda region: image), RunningMode.LIVE, False),
    ]
    for source, mode, finite in cases:
        assert isinstance(source, Source), type(source).__name__
        assert (source.running_mode, source.finite) == (mode, finite), type(source).__name__
    # A replayed file is recorded like an analysed one: a hash of its name, messages redacted.
    replay = VideoReplaySource(video)
    assert replay.name == VideoFileSource(video).name and "Budi" not in replay.redact("Budi Santoso.avi ended")
    assert replay.frame_size == (96, 64) and replay.fps == 25


def test_real_time_sources_stamp_frames_by_the_wall_clock_and_end_when_finite():
    image = np.random.default_rng(1).integers(0, 255, (48, 64, 3), dtype=np.uint8)
    frames = list(FramesSource([image], 100.0, 0.05).frames())
    assert len(frames) == 5 and [f.index for f in frames] == [0, 1, 2, 3, 4]
    times = [f.t_ms for f in frames]
    assert times == sorted(set(times)) and times[0] >= 0
    screen = ScreenSource((0, 0, 64, 48), fps=1000, grab=lambda region: None).frames()
    with pytest.raises(SourceError, match="returned no image"):
        next(screen)  # a device never ends: no image is a failure
