"""Draw the kept-token picture: the input, then one panel per pruning stage in which the dropped patches
are darkened and the patch grid is drawn, as in EViT's figures; a clip gives one row per frame.

Panels have a fixed size in pixels whatever the model's input size: a small input is enlarged crisply
(nearest neighbour, so patches stay sharp squares), and a photo is drawn from the original file
(the region the model's evaluation crop saw), not from the model's 64 or 224 pixels. Captions use
a scalable font sized to the panel. The picture is written as PNG (with its dpi), and as PDF or SVG
(in the SVG, the shading, grid and text are vector shapes over the embedded images).
"""

from __future__ import annotations

import base64
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal
from xml.sax.saxutils import escape

import numpy as np
from PIL import Image, ImageDraw, ImageFont

DROPPED_SHADE = 0.3  # a dropped patch keeps this share of its brightness
BACKGROUND = (255, 255, 255)
TEXT = (20, 20, 20)
GRID = (255, 255, 255)
FORMATS = ("png", "pdf", "svg")

Box = tuple[int, int, int, int]


@dataclass
class Style:
    """How large and how the picture is drawn."""

    panel: int = 320  # px per panel side
    grid: bool = True  # draw the patch grid
    source: Literal["auto", "input", "original"] = "auto"  # what a panel shows: the model's input or the original photo
    dpi: int = 300  # written into the PNG and used for the PDF's page size

    @property
    def font_size(self) -> int:
        return max(12, self.panel // 16)

    @property
    def gap(self) -> int:
        return max(6, self.panel // 40)


@dataclass
class Panel:
    """One column of the picture: its caption and, per frame, which patches are kept (None: all, the input)."""

    caption: list[str]
    kept: np.ndarray | None  # bool (T', h, w) per time slot, or None for the unmasked input


@dataclass
class Figure:
    image: Image.Image
    boxes: list[list[Box]]  # boxes[panel][frame]: where each frame of each panel was drawn
    scale: int  # enlargement factor of the input pixels (panels drawn from the model's input)
    grid: tuple[int, int]  # (h, w) patches
    panels: list[Panel] = field(default_factory=list)
    backgrounds: list[Image.Image] = field(default_factory=list)  # per frame, the unshaded panel image
    tubelet: int = 1
    style: Style = field(default_factory=Style)


def shade_dropped(frame: np.ndarray, kept: np.ndarray) -> np.ndarray:
    """Darken the patches of ``frame`` (H, W, 3) that ``kept`` (h, w) marks False (H, W multiples of h, w)."""
    h, w = kept.shape
    ph, pw = frame.shape[0] // h, frame.shape[1] // w
    keep_pixels = kept.repeat(ph, axis=0).repeat(pw, axis=1)  # (H, W)
    out = frame.copy()
    out[~keep_pixels] = (frame[~keep_pixels] * DROPPED_SHADE).astype(np.uint8)
    return out


def _backgrounds(frames: np.ndarray, original: Image.Image | None, grid: tuple[int, int],
                 style: Style) -> tuple[list[Image.Image], int]:
    """Per frame the panel image the shading is drawn on, and the enlargement factor of the model's input
    (panels drawn from the input are an integer multiple of it, so each pixel becomes a sharp square)."""
    count, height, width = frames.shape[:3]
    scale = max(1, round(style.panel / width))
    use_original = original is not None and count == 1 and (
        style.source == "original" or (style.source == "auto" and min(original.size) > max(height, width)))
    if use_original:
        assert original is not None
        cell = max(1, round(style.panel / grid[1]))  # the panel as close to its size as whole patches allow
        size = (cell * grid[1], round(cell * grid[1] * height / width) // grid[0] * grid[0])
        return [original.convert("RGB").resize(size, Image.Resampling.LANCZOS)], scale
    return [Image.fromarray(frame).resize((width * scale, height * scale), Image.Resampling.NEAREST) for frame in frames], scale


def draw_panels(frames: np.ndarray, panels: list[Panel], grid: tuple[int, int], tubelet: int = 1,
                original: Image.Image | None = None, style: Style | None = None) -> Figure:
    """Compose ``panels`` side by side over ``frames`` (T, H, W, 3); frame f uses time slot f // tubelet.
    ``original`` is the photo region the model's input shows (drawn instead of the input for photos)."""
    style = style or Style()
    backgrounds, scale = _backgrounds(frames, original, grid, style)
    pw, ph = backgrounds[0].size
    gap, font = style.gap, ImageFont.load_default(size=style.font_size)
    line_height = int(style.font_size * 1.3)
    lines = max(len(p.caption) for p in panels)
    top = gap + lines * line_height
    canvas = Image.new("RGB", (gap + len(panels) * (pw + gap), top + len(backgrounds) * (ph + gap)), BACKGROUND)
    draw = ImageDraw.Draw(canvas)
    boxes = []
    h, w = grid
    for column, panel in enumerate(panels):
        left = gap + column * (pw + gap)
        for line, text in enumerate(panel.caption):
            draw.text((left, gap // 2 + line * line_height), text, fill=TEXT, font=font)
        column_boxes = []
        for f, background in enumerate(backgrounds):
            pixels = np.asarray(background)
            if panel.kept is not None:
                pixels = shade_dropped(pixels, panel.kept[f // tubelet])
            y = top + f * (ph + gap)
            canvas.paste(Image.fromarray(pixels), (left, y))
            if style.grid:
                for i in range(1, h):
                    draw.line([(left, y + i * ph // h), (left + pw - 1, y + i * ph // h)], fill=GRID, width=1)
                for j in range(1, w):
                    draw.line([(left + j * pw // w, y), (left + j * pw // w, y + ph - 1)], fill=GRID, width=1)
            column_boxes.append((left, y, left + pw, y + ph))
        boxes.append(column_boxes)
    return Figure(canvas, boxes, scale, grid, panels, backgrounds, tubelet, style)


def save_figure(figure: Figure, png: Path, formats: tuple[str, ...] = ("png",)) -> list[Path]:
    """Write the figure as ``png`` and, for the other ``formats``, beside it with their suffix."""
    unknown = [f for f in formats if f not in FORMATS]
    if unknown:
        raise ValueError(f"format {unknown[0]} is not one of {', '.join(FORMATS)}")
    written = []
    dpi = figure.style.dpi
    for fmt in formats:
        path = png if fmt == "png" else png.with_suffix(f".{fmt}")
        if fmt == "png":
            figure.image.save(path, dpi=(dpi, dpi))
        elif fmt == "pdf":
            figure.image.save(path, resolution=dpi)
        else:
            path.write_text(to_svg(figure), encoding="utf-8")
        written.append(path)
    return written


def to_svg(figure: Figure) -> str:
    """The figure as SVG: each panel's image embedded once per frame, dropped patches, grid and captions as vectors."""
    width, height = figure.image.size
    style = figure.style
    h, w = figure.grid
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}">',
             f'<rect width="{width}" height="{height}" fill="white"/>']
    line_height = int(style.font_size * 1.3)
    images = []
    for background in figure.backgrounds:
        buffer = io.BytesIO()
        background.save(buffer, format="PNG")
        images.append(base64.b64encode(buffer.getvalue()).decode("ascii"))
    for panel, boxes in zip(figure.panels, figure.boxes, strict=True):
        left = boxes[0][0]
        for line, text in enumerate(panel.caption):
            y = style.gap // 2 + line * line_height + style.font_size
            parts.append(f'<text x="{left}" y="{y}" font-family="sans-serif" font-size="{style.font_size}">{escape(text)}</text>')
        for f, (x0, y0, x1, y1) in enumerate(boxes):
            pw, ph = x1 - x0, y1 - y0
            parts.append(f'<image x="{x0}" y="{y0}" width="{pw}" height="{ph}" href="data:image/png;base64,{images[f]}"/>')
            if panel.kept is not None:
                kept = panel.kept[f // figure.tubelet]
                for i, j in zip(*np.nonzero(~kept), strict=True):
                    parts.append(f'<rect x="{x0 + j * pw / w:.2f}" y="{y0 + i * ph / h:.2f}" width="{pw / w:.2f}" '
                                 f'height="{ph / h:.2f}" fill="black" fill-opacity="{1 - DROPPED_SHADE}"/>')
            if style.grid:
                for i in range(1, h):
                    parts.append(f'<line x1="{x0}" y1="{y0 + i * ph / h:.2f}" x2="{x1}" y2="{y0 + i * ph / h:.2f}" stroke="white" stroke-width="1"/>')
                for j in range(1, w):
                    parts.append(f'<line x1="{x0 + j * pw / w:.2f}" y1="{y0}" x2="{x0 + j * pw / w:.2f}" y2="{y1}" stroke="white" stroke-width="1"/>')
    parts.append("</svg>")
    return "\n".join(parts) + "\n"
