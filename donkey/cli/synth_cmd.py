"""`donkey synth`: synthetic creature videos with pose JSON, optionally as exact pairs."""

from __future__ import annotations

from pathlib import Path

import typer

from donkey.app.synth import RECORD
from donkey.cli.choices import GAITS, SynthFormat, check_gaits
from donkey.cli.common import check_seed, handles_errors, out, progress_bar


@handles_errors
def synth(
    output: Path = typer.Argument(
        ..., help="Folder to write videos (+ a .json of poses beside each)."
    ),
    count: int = typer.Option(
        16, "--count", "-n", help="Number of videos, or of pairs with --pairs."
    ),
    pairs: bool = typer.Option(
        False, "--pairs", help="Two creatures per pose sequence, plus OUTPUT/pairs.json."
    ),
    size: int = typer.Option(128, help="Frame side in pixels."),
    seed: int = typer.Option(0, help="Seed: the same seed writes byte-identical files."),
    min_frames: int = typer.Option(16, help="Shortest video."),
    max_frames: int = typer.Option(32, help="Longest video."),
    fmt: SynthFormat = typer.Option(SynthFormat.gif, "--format", help="png: a lossless PNG strip."),
    gaits: str = typer.Option(
        ",".join(GAITS),
        callback=check_gaits,
        help=f"Comma-separated gaits to draw from: {', '.join(GAITS)}.",
    ),
    transparent: bool = typer.Option(
        False,
        "--transparent",
        help="Creatures on a transparent ground (RGBA; their exact mask is the alpha): "
        "sprites for trying transparent sources.",
    ),
    overwrite: bool = typer.Option(
        False,
        "--overwrite",
        help="Remove what earlier synth runs wrote into OUTPUT (the files listed in "
        f"OUTPUT/{RECORD}; nothing else) before writing. A file this run would write that "
        "synth did not write is never replaced: the run is refused.",
    ),
) -> None:
    """Render animal-like creatures (body, head, ears, tail, wings, 2-4 legs) walking, galloping,
    hopping or flapping, with their joint positions per frame."""
    from donkey.app.synth import SynthOptions, check_options, make_synth, next_steps

    options = SynthOptions(
        output=output,
        count=count,
        pairs=pairs,
        size=size,
        seed=seed,
        min_frames=min_frames,
        max_frames=max_frames,
        fmt=f".{fmt}",
        gaits=tuple(gaits.split(",")),  # checked while parsing (check_gaits)
        overwrite=overwrite,
        transparent=transparent,
    )
    check_options(options)
    check_seed(seed)
    with progress_bar() as bar:
        task = bar.add_task("rendering", total=count)
        written = make_synth(options, lambda i, n: bar.update(task, completed=i))
    extra = f" and {output / 'pairs.json'}" if pairs else ""
    videos = "video" if len(written) == 1 else "videos"
    out.print(f"wrote {len(written)} {videos} to {output}{extra}")
    for line in next_steps(output, pairs):
        out.print(line)
