"""`donkey animate`: move a source image the way a driving video moves."""

from __future__ import annotations

import time
from pathlib import Path

import typer

from donkey.cli.choices import (
    ENGINE_HELP,
    Engine,
    Fit,
    Motion,
    OutFormat,
    Precision,
    allow_slow_option,
    check_colour,
    device_option,
    precision_option,
)
from donkey.cli.common import (
    MODEL_HELP,
    handles_errors,
    max_frame_pixels_option,
    max_frames_option,
    max_pixels_option,
    out,
    progress_bar,
    say,
    set_read_budget,
    start_torch,
)
from donkey.model.errors import DonkeyError

# PyTorch, numpy and the runtime are imported inside animate(), after the options are checked:
# `donkey animate --help` and a refused option cost no heavy import.


def _options(fit: str, background: str, side: bool):
    from donkey.data.colours import parse_colour
    from donkey.runtime.animate_options import AnimateOptions

    try:
        colour = parse_colour(background)
    except ValueError as exc:
        raise DonkeyError(f"--background: {exc}") from None
    return AnimateOptions(fit=str(fit), background=colour, side_by_side=side)


@handles_errors
def animate(
    source: Path = typer.Argument(
        ..., help="Source image (PNG/JPG/GIF first frame) or a folder of them."
    ),
    driving: Path = typer.Argument(
        ..., help="Driving video (GIF, MP4, PNG strip, frame folder) or a folder of them."
    ),
    output: Path = typer.Option(
        ..., "-o", "--output", help="Output file (.gif, .mp4, .png strip) or folder for batches."
    ),
    model: str | None = typer.Option(None, "--model", "-m", help=MODEL_HELP),
    engine: Engine | None = typer.Option(None, help=ENGINE_HELP),
    device: str = device_option(),
    precision: Precision = precision_option(),
    allow_slow_precision: bool = allow_slow_option(),
    mode: Motion = typer.Option(
        Motion.relative,
        help="absolute: copy driving keypoints; relative: apply their motion since frame 0 to the source's keypoints.",
    ),
    adapt_scale: bool = typer.Option(
        False,
        "--adapt-scale",
        help="Relative mode: scale movement by the keypoint-hull size ratio of source and first driving frame.",
    ),
    batch_size: int = typer.Option(
        8, "--batch-size", "-b", help="Driving frames per inference batch."
    ),
    fit: Fit = typer.Option(
        Fit.pad,
        help="Non-square input: pad (to square, background colour), crop (centre) or stretch.",
    ),
    background: str = typer.Option(
        "white",
        callback=check_colour,
        help="Colour behind alpha and padding: a name (white, pink, gray, ...) or hex (#ffc0cb, ffc0cb).",
    ),
    side_by_side: bool = typer.Option(
        False, "--side-by-side", help="Write source | driving | result side by side."
    ),
    pair_list: Path | None = typer.Option(
        None,
        "--pair-list",
        help="Batch mode: CSV of source,driving file names instead of the cross product.",
    ),
    skip_existing: bool = typer.Option(
        False,
        "--skip-existing",
        help="Leave outputs that already exist and do the rest (batch mode keeps only those "
        "that decode to the frames this run would write; others are written again).",
    ),
    overwrite: bool = typer.Option(
        False,
        "--overwrite",
        help="Replace outputs that already exist (each written to a temporary file, then "
        "renamed over the old one). Without it or --skip-existing, an existing output is "
        "refused before any work.",
    ),
    out_format: OutFormat = typer.Option(
        OutFormat.gif, "--out-format", help="Batch mode: output files (png: a strip)."
    ),
    cuda_graphs: bool = typer.Option(
        False,
        "--cuda-graphs",
        help="--engine trt: capture one CUDA graph per batch size and replay it.",
    ),
    max_pixels: str | None = max_pixels_option(),
    max_frames: str | None = max_frames_option(),
    max_frame_pixels: str | None = max_frame_pixels_option(),
) -> None:
    """Animate SOURCE with the motion of DRIVING and write OUTPUT.

    The output has as many frames as the driving video, at its frame rate, at the model's
    image size. Give folders (of sources and/or of driving videos) and an output folder for
    batch mode: every source with every driving (or the --pair-list pairs), one bad file
    reported without stopping the rest. An output that already exists is refused unless
    --overwrite or --skip-existing says what to do with it.
    """
    if batch_size < 1:
        raise DonkeyError(f"--batch-size must be at least 1, got {batch_size}")
    if skip_existing and overwrite:
        raise DonkeyError("--skip-existing and --overwrite contradict each other; give one")
    from donkey.cli.preflight import check_ffmpeg_for, check_paths, check_writable, warn_swapped

    # Checks that need no heavy import come first: a refusal is immediate.
    batch = source.is_dir() or (driving.is_dir() and not _is_frame_folder(driving)) or pair_list
    check_paths(source, driving, None if batch or output.is_dir() else output)
    check_writable(output)
    if batch:
        videos = [p for p in (source, driving) if p.is_file()]
        if driving.is_dir():
            videos += [p for p in driving.iterdir() if p.is_file()]
        check_ffmpeg_for(videos, write=output / f"*.{out_format}")
    else:
        if output.is_dir():
            raise DonkeyError(
                f"{output}: is a folder; give a file name (or folder inputs for a batch)"
            )
        if (output.exists() or output.is_symlink()) and not overwrite:
            if not skip_existing:
                raise DonkeyError(
                    f"{output}: exists; pass --overwrite to replace it "
                    "(or --skip-existing to keep it)"
                )
            out.print(f"{output}: exists; left as it is (--skip-existing)")
            return
        check_ffmpeg_for([driving], write=output)
    start_torch()
    options = _options(fit, background, side_by_side)
    set_read_budget(max_pixels, max_frames, max_frame_pixels)
    if batch:
        from donkey.cli.animate_batch import animate_batch
        from donkey.runtime.backend import LoadOptions

        animate_batch(
            source,
            driving,
            output,
            model,
            engine,
            device,
            precision,
            mode,
            adapt_scale,
            batch_size,
            options,
            pair_list,
            skip_existing,
            f".{out_format}",
            LoadOptions(cuda_graphs=cuda_graphs, allow_slow_precision=allow_slow_precision),
            overwrite=overwrite,
        )
        return
    from donkey.app.models import load_model
    from donkey.data.writers import check_output_suffix
    from donkey.runtime.animator import Animator
    from donkey.runtime.backend import LoadOptions
    from donkey.runtime.batch import Job, check_folder_location, run_jobs

    check_output_suffix(output)
    check_folder_location(output.parent)
    expected = warn_swapped(source, driving)
    started = time.perf_counter()
    load_options = LoadOptions(cuda_graphs=cuda_graphs, allow_slow_precision=allow_slow_precision)
    loaded = load_model(
        model, engine, device, precision, load_options, batch_size=batch_size, say=say
    )
    for backend in loaded.graphs.values():
        backend.activate()
    load_seconds = time.perf_counter() - started
    animator = Animator(loaded, batch_size=batch_size, mode=mode, adapt_scale=adapt_scale)
    job = Job(source, driving, output.resolve())
    with progress_bar() as progress:
        task = progress.add_task("animating (frames)", total=expected)
        report = run_jobs(
            animator,
            [job],
            options,
            progress=lambda event, _job, n: (
                progress.advance(task, n) if event == "frames" else None
            ),
        )
    if report.failed:
        raise DonkeyError(report.failed[0][1])
    t = report.seconds
    total = load_seconds + sum(t.values())
    out.print(
        f"wrote {output} ({report.frames} frame{'' if report.frames == 1 else 's'}, engine {loaded.engine} on {loaded.device}; "
        f"load {load_seconds:.2f}s, read {t['read']:.2f}s, model {t['model']:.2f}s, write {t['write']:.2f}s: "
        f"model {100 * t['model'] / total:.0f}% of {total:.2f}s)"
    )


def _is_frame_folder(path: Path) -> bool:
    """A folder of still frames is one driving video; a folder of videos is a batch."""
    from donkey.cli.preflight import FFMPEG_SUFFIXES

    try:
        files = [p for p in path.iterdir() if p.is_file()]
    except OSError as exc:
        raise DonkeyError(f"{path}: cannot list the folder ({exc.strerror or exc})") from None
    has_videos = any(p.suffix.lower() in FFMPEG_SUFFIXES | {".gif"} for p in files)
    return bool(files) and not has_videos
