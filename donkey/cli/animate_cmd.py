"""`donkey animate`: move a source image the way a driving video moves."""

from __future__ import annotations

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
    motion_scale_option,
    output_size_option,
    precision_option,
    reference_option,
    smooth_option,
)
from donkey.cli.common import (
    MODEL_HELP,
    handles_errors,
    max_frame_pixels_option,
    max_frames_option,
    max_pixels_option,
    read_budget,
)

# donkey.app.animate imports PyTorch only after its checks: `donkey animate --help` and a
# refused option cost no heavy import.


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
    background: str | None = typer.Option(
        None,
        callback=check_colour,
        help="Colour behind padding and transparency: a name (white, pink, gray, ...) or hex "
        "(#ffc0cb, ffc0cb). Default: white, and a transparent source gives a transparent "
        "result (GIF, PNG strip; MP4 on white); given, everything is on that colour.",
    ),
    reference: str = reference_option(),
    smooth: float = smooth_option(),
    motion_scale: float = motion_scale_option(),
    output_size: str = output_size_option(),
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

    The output has as many frames as the driving video, at its frame rate, at the source
    picture's own size and shape (--output-size), transparent where the source is. Give folders (of sources and/or of driving videos) and an output folder for
    batch mode: every source with every driving (or the --pair-list pairs), one bad file
    reported without stopping the rest. An output that already exists is refused unless
    --overwrite or --skip-existing says what to do with it.
    """
    from donkey.app.animate import AnimateRequest, animate_files
    from donkey.cli.animate_report import BarEvents, print_result

    request = AnimateRequest(
        source, driving, output, model, engine, device, precision, allow_slow_precision,
        mode, adapt_scale, batch_size, fit, background, side_by_side, pair_list,
        skip_existing, overwrite, str(out_format), cuda_graphs,
        read_budget(max_pixels, max_frames, max_frame_pixels), reference, smooth,
        motion_scale, output_size,
    )  # fmt: skip
    with BarEvents() as events:
        result = animate_files(request, events)
    print_result(result)
