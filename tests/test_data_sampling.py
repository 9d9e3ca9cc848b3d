"""Frame samplers: hand-counted indices, then the same indices read back from stripe-coded videos."""

import numpy as np
import pytest

from sttool.data.video.backends import make_backend
from sttool.data.video.sampling import sample_frames
from tests.data_helpers import read_stripes, write_stripe_video


def test_segment_test_time_takes_segment_centres():
    # 32 frames in 8 segments of 4: centres at 2, 6, ..., 30
    assert sample_frames(32, 8, "segment", None).tolist() == [2, 6, 10, 14, 18, 22, 26, 30]
    # 30 frames in 4 segments of 7.5: floor(7.5 * (k + 0.5)) = 3, 11, 18, 26
    assert sample_frames(30, 4, "segment", None).tolist() == [3, 11, 18, 26]


def test_segment_views_shift_within_segments():
    # 32 frames, 4 segments of 8, 2 views at offsets 0.25 and 0.75 of each segment
    assert sample_frames(32, 4, "segment", None, view=0, views=2).tolist() == [2, 10, 18, 26]
    assert sample_frames(32, 4, "segment", None, view=1, views=2).tolist() == [6, 14, 22, 30]


def test_segment_training_draws_one_frame_per_segment_and_covers_each():
    rng = np.random.default_rng(0)
    seen = [set() for _ in range(8)]
    for _ in range(300):
        index = sample_frames(32, 8, "segment", rng)
        for k, i in enumerate(index.tolist()):
            assert 4 * k <= i < 4 * k + 4
            seen[k].add(i)
    assert all(s == set(range(4 * k, 4 * k + 4)) for k, s in enumerate(seen))


def test_segment_short_video_repeats_frames_in_order():
    # 5 frames, 8 segments: floor(5/8 * (k + 0.5)) by hand
    assert sample_frames(5, 8, "segment", None).tolist() == [0, 0, 1, 2, 2, 3, 4, 4]
    rng = np.random.default_rng(1)
    for _ in range(50):
        index = sample_frames(5, 8, "segment", rng)
        assert (np.diff(index) >= 0).all() and index.min() >= 0 and index.max() <= 4


def test_dense_test_time_centres_the_window():
    # 100 frames, 8 frames every 4: window of 29 frames, 71 spare, start 35
    assert sample_frames(100, 8, "dense", None, stride=4).tolist() == list(range(35, 64, 4))


def test_dense_views_spread_from_first_to_last_start():
    starts = [sample_frames(100, 8, "dense", None, stride=4, view=v, views=3)[0] for v in range(3)]
    assert starts == [0, 36, 71]  # round(71 / 2) = 36 (half to even), 71 = 100 - 29


def test_dense_training_start_is_random_and_stride_is_kept():
    rng = np.random.default_rng(0)
    starts = set()
    for _ in range(500):
        index = sample_frames(40, 4, "dense", rng, stride=4)
        assert np.diff(index).tolist() == [4, 4, 4] and 0 <= index[0] <= 27
        starts.add(int(index[0]))
    assert starts == set(range(28))


def test_dense_short_videos_clamp_the_stride_then_repeat_the_last_frame():
    # 20 frames cannot hold 8 frames every 4 (29); stride 2 fits (15 frames), centred: start 2
    assert sample_frames(20, 8, "dense", None, stride=4).tolist() == [2, 4, 6, 8, 10, 12, 14, 16]
    assert sample_frames(5, 8, "dense", None, stride=4).tolist() == [0, 1, 2, 3, 4, 4, 4, 4]
    assert sample_frames(1, 3, "dense", np.random.default_rng(0)).tolist() == [0, 0, 0]


def test_bad_requests_raise():
    with pytest.raises(ValueError):
        sample_frames(0, 8, "segment", None)
    with pytest.raises(ValueError):
        sample_frames(10, 8, "segment", None, view=2, views=2)


def _backends() -> list:
    from sttool.data.video.backends import torchcodec_available

    codec = pytest.param("torchcodec", marks=pytest.mark.skipif(not torchcodec_available(), reason="torchcodec or FFmpeg missing"))
    return ["pyav", "decord", codec, "auto"]


BACKENDS = _backends()
# (suffix, encoder, pixel format, encoder options): the lossless default, and the streams with B-frames
# and keyframe gaps that make random access go wrong in decoders
STREAMS = {
    "ffv1": (".avi", "ffv1", "bgr0", {}),
    "xvid": (".avi", "mpeg4", "yuv420p", {"bf": "2", "g": "12"}),
    "h264": (".mp4", "libx264", "yuv420p", {"bf": "3", "g": "16"}),
    "vp9": (".webm", "libvpx-vp9", "yuv420p", {"g": "16", "deadline": "realtime"}),
}


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("stream", list(STREAMS))
def test_every_backend_returns_the_exact_frames_of_every_stream(tmp_path, backend, stream):
    suffix, codec, pix_fmt, options = STREAMS[stream]
    path = write_stripe_video(tmp_path / f"{stream}{suffix}", 60, codec=codec, pix_fmt=pix_fmt, options=options)
    video = make_backend(backend).open(str(path))
    assert video.num_frames == 60
    for index in ([33, 49, 52, 56, 7, 7], [0, 59, 1, 58], list(range(10, 18))):
        assert [read_stripes(f) for f in video.get_frames(index)] == index, (backend, stream)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("mode", ["segment", "dense"])
def test_sampled_indices_are_the_frames_decoded(tmp_path, backend, mode):
    path = write_stripe_video(tmp_path / "stripes.avi", 45)
    video = make_backend(backend).open(str(path))
    assert video.num_frames == 45
    rng = np.random.default_rng(3)
    for trial in range(4):
        index = sample_frames(video.num_frames, 8, mode, rng if trial else None, stride=3)
        frames = video.get_frames(index.tolist())
        assert [read_stripes(f) for f in frames] == index.tolist()


def test_mpeg4_with_b_frames_is_read_sequentially_with_the_right_frames(tmp_path):
    # decord returns frames off by +2 on random access in such streams (decord issues #195 and #365); the decord
    # backend must detect the codec and hand the stream to PyAV.
    path = write_stripe_video(tmp_path / "xvid.avi", 60, codec="mpeg4", pix_fmt="yuv420p", options={"bf": "2", "g": "12"})
    video = make_backend("decord").open(str(path))
    assert video.codec == "mpeg4" and video.backend.startswith("pyav")
    index = [33, 49, 52, 56, 7, 7]
    assert [read_stripes(f) for f in video.get_frames(index)] == index
