"""Contact sheets for writing a cluster CSV by hand: per cluster a PNG of first frames with
small motion strips, an HTML index over all clusters, and a CSV template to edit."""

from __future__ import annotations

import csv
import html
import io
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from donkey.data.writers import write_image
from donkey.model.files import atomic_output

THUMB = 64
STRIP = 32
STRIP_FRAMES = 6
LABEL = 12


def video_row(name: str, frames: np.ndarray, direction: str) -> np.ndarray:
    """One row: the first frame, then STRIP_FRAMES small frames across the video, a label."""
    first = Image.fromarray(frames[0]).resize((THUMB, THUMB), Image.Resampling.LANCZOS)
    picks = np.linspace(0, len(frames) - 1, STRIP_FRAMES).round().astype(int)
    width = THUMB + STRIP_FRAMES * STRIP
    row = Image.new("RGB", (width, THUMB + LABEL), (255, 255, 255))
    row.paste(first, (0, 0))
    for k, t in enumerate(picks):
        small = Image.fromarray(frames[t]).resize((STRIP, STRIP), Image.Resampling.LANCZOS)
        row.paste(small, (THUMB + k * STRIP, (THUMB - STRIP) // 2))
    ImageDraw.Draw(row).text((2, THUMB), f"{name} ({direction})"[:40], fill=(0, 0, 0))
    return np.asarray(row)


def cluster_sheet(rows: list[np.ndarray], columns: int = 3) -> np.ndarray:
    h, w, _ = rows[0].shape
    n_rows = -(-len(rows) // columns)
    sheet = np.full((n_rows * h, columns * w, 3), 255, dtype=np.uint8)
    for i, row in enumerate(rows):
        r, c = divmod(i, columns)
        sheet[r * h : (r + 1) * h, c * w : (c + 1) * w] = row
    return sheet


def write_sheets(
    out_dir: str | Path, clusters: dict[str, list[str]], frames_of, directions: dict[str, str]
) -> Path:
    """Writes cluster_<label>.png per cluster, index.html and clusters_template.csv.

    `frames_of(name)` returns the video's frames (T, S, S, 3) uint8.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    sections = []
    for label, names in sorted(clusters.items()):
        rows = [video_row(n, frames_of(n), directions.get(n, "?")) for n in names]
        image = f"cluster_{label}.png"
        write_image(out / image, cluster_sheet(rows))
        items = "".join(
            f"<li>{html.escape(n)} ({html.escape(directions.get(n, '?'))})</li>" for n in names
        )
        sections.append(
            f"<h2>{html.escape(label)} ({len(names)} videos)</h2>"
            f"<img src='{html.escape(image)}'><ul>{items}</ul>"
        )
    page = (
        "<!doctype html><meta charset='utf-8'><title>donkey pairs: clusters</title>"
        "<p>Each row: first frame, then frames across the video. Edit clusters_template.csv "
        "(file,cluster) and pass it back with <code>donkey pairs --clusters</code>.</p>"
        + "".join(sections)
    )
    with atomic_output(out / "index.html") as tmp:
        tmp.write_text(page)
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["file", "cluster"])
    for label, names in sorted(clusters.items()):
        for n in names:
            writer.writerow([n, label])
    with atomic_output(out / "clusters_template.csv") as tmp:
        tmp.write_text(buffer.getvalue())
    return out / "index.html"
