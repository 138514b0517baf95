"""The confusion matrix as a PNG heat map: rows gold, columns predicted, each cell coloured
by its share of the gold row, counts written in the cells of a small matrix. Readable from
2 labels to Banking77's 77 (the cells shrink, to 4 px at the least; the image stays under
about 3000 px a side up to about 550 labels).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from feldspar.errors import UserError
from feldspar.extras import require

if TYPE_CHECKING:
    from PIL import Image, ImageDraw, ImageFont

    Font = ImageFont.FreeTypeFont | ImageFont.ImageFont

GRID = 2200
"""The grid's side in pixels, at most (cells are 80 px at most, 4 at least)."""
MAX_COUNTS = 20
"""Counts are written in the cells of a matrix of at most this many labels."""
LABEL_CHARS = 24
PAD = 12
DARK = np.array([8, 48, 107])
"""The colour of a share of 1.0 (0.0 is white)."""
EMPTY = (236, 236, 236)
"""The cells of a gold label with no texts."""


def _font(size: int) -> Font:
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except (ImportError, OSError):  # Pillow without FreeType: the fixed bitmap font
        return ImageFont.load_default()


def _short(label: str) -> str:
    return label if len(label) <= LABEL_CHARS else label[: LABEL_CHARS - 3] + "..."


def _text(draw: ImageDraw.ImageDraw, x: float, y_mid: float, text: str, font: Font,
          fill: int | tuple[int, int, int], align: str = "left") -> None:
    """Draw text vertically centred on y_mid; x is its left, centre or right edge."""
    left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
    shift = {"left": left, "center": (left + right) / 2, "right": right}[align]
    draw.text((x - shift, y_mid - (top + bottom) / 2), text, font=font, fill=fill)


def _width(text: str, font: Font) -> int:
    left, _, right, _ = font.getbbox(text)
    return int(right - left)


def save_confusion_png(matrix: np.ndarray, labels: Sequence[str], path: Path, *,
                       title: str = "") -> Path:
    """Draw a confusion matrix (counts; rows gold, columns predicted) as a PNG at `path`,
    written atomically, its folders created. Returns the path.

    Raises:
        ValueError: the matrix is not square over the labels.
        UserError: the path cannot be written.
        MissingDependency: Pillow is not installed.
    """
    require("PIL", extra="classify", purpose="The confusion matrix PNG needs Pillow")
    from PIL import Image, ImageDraw

    counts = np.asarray(matrix)
    k = len(labels)
    if counts.shape != (k, k):
        raise ValueError(f"A confusion matrix over {k} labels must be {k}x{k}, "
                         f"not {'x'.join(map(str, counts.shape))}")
    cell = max(4, min(80, GRID // max(k, 1)))
    label_font, caption_font = _font(max(6, min(15, cell * 2 // 3))), _font(16)
    title_font, count_font = _font(20), _font(max(8, min(18, cell // 3)))
    names = [_short(str(label)) for label in labels]
    label_w = max((_width(n, label_font) for n in names), default=0) + 8
    caption_h = 24
    title_h = 32 if title else 0
    grid = k * cell
    support = counts.sum(axis=1, keepdims=True)
    legend = "colour: share of the gold label's texts" + (
        "; numbers: counts" if k <= MAX_COUNTS else "") + (
        "; grey row: no gold texts" if (support == 0).any() else "")
    left = PAD + caption_h + label_w
    top = PAD + title_h + caption_h + label_w
    width = max(left + grid + PAD, _width(title, title_font) + 2 * PAD,
                _width(legend, label_font) + 2 * PAD)
    height = top + grid + PAD + caption_h
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)

    share = np.divide(counts, support, out=np.zeros(counts.shape), where=support > 0)
    colours = np.rint(255 - (255 - DARK) * share[..., None]).astype(int)
    for i in range(k):
        for j in range(k):
            x, y = left + j * cell, top + i * cell
            fill = tuple(colours[i, j]) if support[i, 0] else EMPTY
            draw.rectangle((x, y, x + cell - 1, y + cell - 1), fill=fill,
                           outline=(215, 215, 215) if cell >= 8 else None)
            if k <= MAX_COUNTS:
                ink = (255, 255, 255) if share[i, j] > 0.5 else (
                    (40, 40, 40) if counts[i, j] else (185, 185, 185))
                _text(draw, x + cell / 2, y + cell / 2, str(int(counts[i, j])), count_font,
                      ink, "center")
    draw.rectangle((left - 1, top - 1, left + grid, top + grid), outline=(90, 90, 90))

    for i, name in enumerate(names):  # gold labels on the left, right-aligned to the grid
        _text(draw, left - 5, top + i * cell + cell / 2, name, label_font, (0, 0, 0), "right")
    # Predicted labels on top, reading upwards: drawn as rows, then turned 90 degrees.
    columns = Image.new("L", (label_w, max(grid, 1)), 0)
    column_draw = ImageDraw.Draw(columns)
    for j, name in enumerate(names):
        _text(column_draw, 5, j * cell + cell / 2, name, label_font, 255)
    image.paste((0, 0, 0), (left, top - label_w), columns.rotate(90, expand=True))

    if title:
        _text(draw, width / 2, PAD + title_h / 2 - 4, title, title_font, (0, 0, 0), "center")
    _text(draw, left + grid / 2, PAD + title_h + caption_h / 2, "predicted", caption_font,
          (0, 0, 0), "center")
    gold = Image.new("L", (max(grid, 1), caption_h), 0)
    _text(ImageDraw.Draw(gold), grid / 2, caption_h / 2, "gold", caption_font, 255, "center")
    image.paste((0, 0, 0), (PAD, top), gold.rotate(90, expand=True))
    _text(draw, PAD, top + grid + PAD + caption_h / 2, legend, label_font, (90, 90, 90))
    return _write(image, Path(path))


def _write(image: Image.Image, path: Path) -> Path:
    """Save a PIL image as PNG through a temporary file in the same folder."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp",
                                        dir=path.parent)
        try:
            with os.fdopen(handle, "wb") as out:
                image.save(out, format="PNG")
            os.chmod(temp, 0o644)
            os.replace(temp, path)
        except BaseException:
            Path(temp).unlink(missing_ok=True)
            raise
    except OSError as exc:
        raise UserError(f"Cannot write {path}: {exc.strerror or exc}; choose a writable "
                        "path") from exc
    return path
