"""Video backends: exact round trips, bad files, the decode deadline, and clamping to decodable frames."""

import os
import time

import numpy as np
import pytest

from sttool.data.video.backends import (
    PyAVVideo,
    VideoError,
    count_decodable,
    make_backend,
    probe,
    torchcodec_available,
)
from sttool.data.video.guarded import DecodeTimeout, GuardedBackend
from sttool.data.video.write import write_video
from tests.data_helpers import read_stripes, stripe_frames

BACKENDS = ["pyav", "decord", pytest.param("torchcodec", marks=pytest.mark.skipif(not torchcodec_available(),
                                                                              reason="torchcodec or FFmpeg missing")), "auto"]
AUTO = "torchcodec" if torchcodec_available() else "decord"  # what auto picks first here


@pytest.fixture(scope="module")
def random_video(tmp_path_factory):
    frames = np.random.default_rng(0).integers(0, 256, (12, 24, 40, 3), dtype=np.uint8)
    path = tmp_path_factory.mktemp("video") / "noise.avi"
    write_video(path, frames, fps=6)
    return str(path), frames


@pytest.mark.parametrize("backend", BACKENDS)
def test_decoded_frames_equal_the_frames_written(random_video, backend):
    path, frames = random_video
    video = make_backend(backend).open(path)
    assert (video.num_frames, video.fps, video.width, video.height, video.codec) == (12, 6.0, 40, 24, "ffv1")
    assert np.array_equal(video.get_frames(range(12)), frames)
    index = [11, 3, 3, 0, 7]  # random order, repeats
    assert np.array_equal(video.get_frames(index), frames[index])


def test_the_bounded_worker_returns_the_same_frames(random_video):
    path, frames = random_video
    video = GuardedBackend("auto", 30.0).open(path)
    assert video.num_frames == 12 and video.backend == AUTO
    assert np.array_equal(video.get_frames([5, 1, 11]), frames[[5, 1, 11]])


@pytest.fixture(scope="module")
def bad_videos(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bad")
    good = folder / "good.mp4"
    noise = np.random.default_rng(1).integers(-20, 21, (30, 32, 64, 3))  # every frame costs bytes, so a cut keeps some
    frames = np.clip(stripe_frames(30) + noise, 0, 255).astype(np.uint8)
    write_video(good, frames, codec="libx264", pix_fmt="yuv420p", container_options={"movflags": "+faststart"})
    data = good.read_bytes()
    (folder / "garbage.mp4").write_bytes(os.urandom(2000))
    (folder / "empty.mp4").write_bytes(b"")
    (folder / "half.mp4").write_bytes(data[: len(data) // 2])
    return folder


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name,reason", [("missing.mp4", "file not found"), ("garbage.mp4", "cannot open"), ("empty.mp4", "cannot open")])
def test_unreadable_files_raise_video_error(bad_videos, backend, name, reason):
    with pytest.raises(VideoError, match=reason):
        make_backend(backend).open(str(bad_videos / name)).get_frames([0])


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_truncated_video_fails_or_yields_only_real_frames(bad_videos, backend):
    # decord raises DECORDError (not a RuntimeError) here; auto falls back to PyAV, which decodes
    # what is there. Either way the caller sees a VideoError or genuine frames, never a crash.
    path = str(bad_videos / "half.mp4")
    try:
        frames = make_backend(backend).open(path).get_frames([0, 1])
    except VideoError:
        assert backend == "decord"
        return
    assert [read_stripes(f) for f in frames] == [0, 1]


def test_probe_counts_the_frames_that_really_decode(bad_videos):
    full = probe(make_backend("auto"), str(bad_videos / "good.mp4"))
    assert full["num_frames"] == full["reported_frames"] == 30
    cut = probe(make_backend("auto"), str(bad_videos / "half.mp4"))
    assert 0 < cut["num_frames"] < 30 and cut["num_frames"] == count_decodable(str(bad_videos / "half.mp4"))


def test_pyav_clamps_indices_past_the_real_end(random_video):
    path, frames = random_video
    overclaiming = PyAVVideo(path, num_frames=20, fps=6.0, width=40, height=24, codec="ffv1")
    assert np.array_equal(overclaiming.get_frames([2, 15, 19]), frames[[2, 11, 11]])


def test_a_hanging_open_is_cut_at_the_deadline_and_the_worker_recovers(tmp_path, random_video):
    fifo = tmp_path / "never-written.mp4"
    os.mkfifo(fifo)  # opening a FIFO blocks until a writer appears: a genuine hang inside FFmpeg
    backend = GuardedBackend("auto", 1.0)
    start = time.monotonic()
    with pytest.raises(DecodeTimeout, match="no answer within 1 s"):
        backend.open(str(fifo))
    assert time.monotonic() - start < 5.0
    path, frames = random_video
    assert np.array_equal(backend.open(path).get_frames([4]), frames[[4]])  # a fresh worker


def test_worker_reports_bad_files_as_video_errors(bad_videos):
    with pytest.raises(VideoError, match="cannot open"):
        GuardedBackend("auto", 30.0).open(str(bad_videos / "garbage.mp4"))
