"""Draw the kept-token picture with PIL: the model's input, then one panel per pruning stage in which
the dropped patches are darkened, as in EViT's figures. A clip gives one row per frame.

Small inputs are enlarged by an integer factor (nearest neighbour) so that patches stay visible;
kept patches keep their pixels exactly, so the picture can be checked against the model's choice.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFont

MIN_PANEL = 192  # px: panels are enlarged to at least this width
DROPPED_SHADE = 0.3  # a dropped patch keeps this share of its brightness
GAP = 6
CAPTION_LINES = 2
LINE_HEIGHT = 14
BACKGROUND = (255, 255, 255)
TEXT = (20, 20, 20)

Box = tuple[int, int, int, int]


@dataclass
class Panel:
    """One column of the picture: its caption and, per frame, which patches are kept (None: all, the input)."""

    caption: list[str]
    kept: np.ndarray | None  # bool (T', h, w) per time slot, or None for the unmasked input


@dataclass
class Figure:
    image: Image.Image
    boxes: list[list[Box]]  # boxes[panel][frame]: where each frame of each panel was drawn
    scale: int  # enlargement factor of the input pixels


def shade_dropped(frame: np.ndarray, kept: np.ndarray) -> np.ndarray:
    """Darken the patches of ``frame`` (H, W, 3) that ``kept`` (h, w) marks False."""
    h, w = kept.shape
    ph, pw = frame.shape[0] // h, frame.shape[1] // w
    keep_pixels = kept.repeat(ph, axis=0).repeat(pw, axis=1)  # (H, W)
    out = frame.copy()
    out[~keep_pixels] = (frame[~keep_pixels] * DROPPED_SHADE).astype(np.uint8)
    return out


def draw_panels(frames: np.ndarray, panels: list[Panel], tubelet: int = 1) -> Figure:
    """Compose ``panels`` side by side over ``frames`` (T, H, W, 3); frame f uses time slot f // tubelet."""
    count, height, width = frames.shape[:3]
    scale = max(1, math.ceil(MIN_PANEL / width))
    pw, ph = width * scale, height * scale
    top = GAP + CAPTION_LINES * LINE_HEIGHT
    canvas = Image.new("RGB", (GAP + len(panels) * (pw + GAP), top + count * (ph + GAP)), BACKGROUND)
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default()
    boxes = []
    for column, panel in enumerate(panels):
        left = GAP + column * (pw + GAP)
        for line, text in enumerate(panel.caption[:CAPTION_LINES]):
            draw.text((left, GAP // 2 + line * LINE_HEIGHT), text, fill=TEXT, font=font)
        column_boxes = []
        for f in range(count):
            pixels = frames[f] if panel.kept is None else shade_dropped(frames[f], panel.kept[f // tubelet])
            y = top + f * (ph + GAP)
            canvas.paste(Image.fromarray(pixels).resize((pw, ph), Image.NEAREST), (left, y))
            column_boxes.append((left, y, left + pw, y + ph))
        boxes.append(column_boxes)
    return Figure(canvas, boxes, scale)
