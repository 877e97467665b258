"""Frame sources: sampling, timestamps, and every kind of bad input failing clearly."""

import cv2
import numpy as np
import pytest

from engagement.errors import SourceError
from engagement.vision.sources import FrameSampler, VideoFileSource, open_source


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
