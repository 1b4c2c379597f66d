"""docs/animating-your-pictures.png: a drawing of a standing horse (drawn here, 400 x 328,
transparent ground) driven by a real held-out MGIF clip, with `--reference first` and `auto`,
at the drawing's own size, shown on a checkerboard so the transparency can be seen.

    python scripts/user_pictures_figure.py [--driving ../shared/data/mgif128/train/00215.png]

Runs `donkey animate` (the application layer) as a user would; writes the drawing, the two
results and the sheet. The driving clip is development data (not in the repository)."""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageSequence

ROOT = Path(__file__).resolve().parents[1]
DRIVING = ROOT.parent / "shared" / "data" / "mgif128" / "train" / "00215.png"


def draw_horse(path: Path) -> Path:
    """A standing horse, brown with a dark mane, on a transparent 400 x 328 ground."""
    image = Image.new("RGBA", (400, 328), (0, 0, 0, 0))
    pen = ImageDraw.Draw(image)
    body, dark = (150, 90, 50, 255), (70, 40, 25, 255)
    pen.ellipse((110, 120, 300, 200), fill=body)  # barrel
    pen.polygon([(270, 140), (300, 60), (325, 55), (310, 150)], fill=body)  # neck
    pen.ellipse((295, 40, 370, 85), fill=body)  # head
    pen.polygon([(300, 55), (305, 30), (315, 52)], fill=body)  # ear
    pen.polygon([(280, 70), (300, 45), (300, 140), (280, 135)], fill=dark)  # mane
    for x in (125, 160, 245, 280):  # legs, standing square
        pen.rectangle((x, 185, x + 16, 300), fill=body)
        pen.rectangle((x - 2, 296, x + 18, 310), fill=dark)  # hooves
    pen.polygon([(115, 140), (70, 170), (80, 250), (100, 165)], fill=dark)  # tail
    image.save(path)
    return path


def animate(source: Path, driving: Path, output: Path, reference: str) -> Path:
    from donkey.app.animate import AnimateRequest, animate_files

    animate_files(AnimateRequest(source, driving, output, overwrite=True, reference=reference))
    return output


def checker(width: int, height: int) -> Image.Image:
    cells = np.indices((height, width)).sum(0) // 12 % 2
    return Image.fromarray(np.where(cells[..., None], 205, 245).repeat(3, -1).astype(np.uint8))


def frames_of(path: Path) -> list[Image.Image]:
    with Image.open(path) as image:
        return [frame.convert("RGBA") for frame in ImageSequence.Iterator(image)]


def sheet(source: Path, driving: Path, first: Path, auto: Path, out: Path, picks: int = 6) -> Path:
    from donkey.data.media import read_video

    drv = read_video(driving, 128).frames
    rows = {"first": frames_of(first), "auto": frames_of(auto)}
    count = len(rows["first"])
    chosen = np.linspace(0, count - 1, picks).round().astype(int)
    width, height = rows["first"][0].size
    scale = 0.5  # the results at half size keep the sheet readable
    w, h = int(width * scale), int(height * scale)
    label_w = 70
    canvas = Image.new("RGB", (label_w + w * (picks + 1), 128 + 2 * h), "white")
    pen = ImageDraw.Draw(canvas)
    drawing = Image.open(source).convert("RGBA").resize((w, h), Image.Resampling.LANCZOS)
    for row, (name, frames) in enumerate(rows.items()):
        top = 128 + row * h
        pen.text((4, top + h // 2), name, fill="black")
        ground = checker(w, h).convert("RGBA")
        canvas.paste(Image.alpha_composite(ground, drawing).convert("RGB"), (label_w, top))
        for i, k in enumerate(chosen):
            small = frames[k].resize((w, h), Image.Resampling.LANCZOS)
            tile = Image.alpha_composite(ground, small).convert("RGB")
            canvas.paste(tile, (label_w + (i + 1) * w, top))
    pen.text((4, 60), "driving", fill="black")
    for i, k in enumerate(chosen):
        frame = Image.fromarray(drv[k])
        canvas.paste(frame, (label_w + (i + 1) * w + (w - 128) // 2, 0))
    canvas.save(out)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--driving", type=Path, default=DRIVING)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "animating-your-pictures.png")
    args = parser.parse_args()
    if not args.driving.exists():
        raise SystemExit(
            f"{args.driving}: not found (the held-out MGIF clips are development data)"
        )
    work = Path(tempfile.mkdtemp(prefix="donkey-figure-"))
    source = draw_horse(work / "horse-drawing.png")
    first = animate(source, args.driving, work / "first.gif", "first")
    auto = animate(source, args.driving, work / "auto.gif", "auto")
    print(sheet(source, args.driving, first, auto, args.out), "from", work)


if __name__ == "__main__":
    main()
