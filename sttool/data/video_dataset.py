"""Video datasets: clips of T frames sampled from listed video files, decoded with a deadline.

Training gives one clip (3, T, H, W) with random frames, crop and flip. Evaluation with
``test_clips x test_crops = V > 1`` gives (V, 3, T, H, W), clip-major (all crops of clip 0 first);
the frames of all clips are decoded in one pass.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from sttool.data.config import DataConfig, InputSpec
from sttool.data.loader import LabelledDataset
from sttool.data.transforms import clip_transform, clip_views
from sttool.data.video.backends import VideoBackend, VideoError, make_backend
from sttool.data.video.guarded import GuardedBackend
from sttool.data.video.sampling import sample_frames


def video_backend(config: DataConfig) -> VideoBackend:
    """The configured backend, in the bounded decode worker unless ``decode_timeout`` is 0."""
    if config.decode_timeout > 0:
        return GuardedBackend(config.video_backend, config.decode_timeout)
    return make_backend(config.video_backend)


class VideoFiles(LabelledDataset):
    """``frame_counts`` maps a path to its decodable frame count (from a manifest); sampling never
    goes past it, whatever the container claims."""

    def __init__(
        self,
        *args: Any,
        config: DataConfig,
        spec: InputSpec,
        train: bool,
        frame_counts: dict[str, int] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        assert spec.num_frames is not None
        self.T = spec.num_frames
        self.train = train
        self.mode = config.frame_sampling
        self.stride = config.frame_stride
        self.clips = 1 if train else config.test_clips
        self.backend = video_backend(config)
        self.frame_counts = frame_counts or {}
        self.repeat_frame = config.repeat_frame
        if train:
            self.transform = clip_transform(spec, config.augment, train=True, flip=config.flips())
        else:
            self.views = clip_views(spec, config.augment, config.test_crops)

    def __getitem__(self, index: int):
        entry = self.entries[index]
        # numpy draws come from torch's generator, which the DataLoader seeds per worker
        rng = np.random.default_rng(int(torch.randint(0, 2**62, ()))) if self.train else None
        try:
            video = self.backend.open(entry.path)
            count = min(video.num_frames, self.frame_counts.get(entry.path, video.num_frames))
            if count < 1:
                raise VideoError("no frames")
            plan = np.concatenate([sample_frames(count, self.T, self.mode, rng, self.stride, c, self.clips) for c in range(self.clips)])
            if self.repeat_frame:  # the no-motion control: each clip is its middle sampled frame, T times
                plan = np.repeat(plan.reshape(self.clips, self.T)[:, self.T // 2], self.T)
            wanted, inverse = np.unique(plan, return_inverse=True)
            frames = video.get_frames(wanted.tolist())[inverse]  # (clips * T, H, W, 3)
        except VideoError as err:
            return self.bad(index, str(err))
        clips = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2)  # (clips * T, 3, H, W)
        if self.train:
            return self.transform(clips), entry.label  # (3, T, H, W)
        views = [view for clip in clips.split(self.T) for view in self.views(clip)]
        return (views[0] if len(views) == 1 else torch.stack(views)), entry.label  # (3, T, H, W) or (V, 3, T, H, W)
