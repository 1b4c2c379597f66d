"""`donkey animate` as one call: a source and a driving (or folders of them) -> written results.

`animate_files(request, events)` decides single file or batch, makes the checks that need no
model (before PyTorch is imported), loads the model once, animates through the Animator's one
path and writes each result atomically. It returns what happened; it prints nothing itself:
notes, warnings and progress go through `events`, which the command line turns into lines and
bars (docs/architecture.md, "Data flow: donkey animate").
"""

from __future__ import annotations

import time

from donkey.app import preflight
from donkey.app.animate_types import (
    AnimateRequest,
    BatchDone,
    Events,
    Kept,
    Written,
    animate_options,
    load_options,
    make_animator,
)
from donkey.model.errors import DonkeyError

__all__ = ["AnimateRequest", "BatchDone", "Events", "Kept", "Written", "animate_files"]


def is_batch(request: AnimateRequest) -> bool:
    """Folders of sources or of driving videos (a frame folder is one video), or a pair list."""
    driving = request.driving
    return bool(
        request.source.is_dir()
        or (driving.is_dir() and not preflight.is_frame_folder(driving))
        or request.pair_list
    )


def animate_files(
    request: AnimateRequest, events: Events | None = None
) -> Written | Kept | BatchDone:
    """Animates one pair into one file, or a batch into a folder (see AnimateRequest)."""
    events = events or Events()
    if request.batch_size < 1:
        raise DonkeyError(f"--batch-size must be at least 1, got {request.batch_size}")
    if request.skip_existing and request.overwrite:
        raise DonkeyError("--skip-existing and --overwrite contradict each other; give one")
    batch = is_batch(request)
    kept = _check_before_loading(request, batch, events)
    if kept is not None:
        return kept
    from donkey.app.process import start_torch

    start_torch()
    if batch:
        from donkey.app.animate_batch import animate_batch

        return animate_batch(request, events)
    return _animate_one(request, events)


def _check_before_loading(request: AnimateRequest, batch: bool, events: Events) -> Kept | None:
    """What needs no model: inputs exist, the output can be written, ffmpeg is there."""
    source, driving, output = request.source, request.driving, request.output
    preflight.check_paths(source, driving, None if batch or output.is_dir() else output)
    preflight.check_writable(output)
    if batch:
        videos = [p for p in (source, driving) if p.is_file()]
        if driving.is_dir():
            videos += [p for p in driving.iterdir() if p.is_file()]
        preflight.check_ffmpeg_for(videos, write=output / f"*.{request.out_format}")
        return None
    if output.is_dir():
        raise DonkeyError(f"{output}: is a folder; give a file name (or folder inputs for a batch)")
    if (output.exists() or output.is_symlink()) and not request.overwrite:
        if not request.skip_existing:
            raise DonkeyError(
                f"{output}: exists; pass --overwrite to replace it (or --skip-existing to keep it)"
            )
        return Kept(output)
    preflight.check_ffmpeg_for([driving], write=output)
    return None


def _animate_one(request: AnimateRequest, events: Events) -> Written:
    """One pair, read, animated and written in this thread: errors are raised as they happen."""
    from donkey.app.models import load_model
    from donkey.data.frames import frames_to_tensor
    from donkey.data.writers import check_output_suffix
    from donkey.runtime.batch import (
        Job,
        check_folder_location,
        read_input,
        remove_stale_temporaries,
        render,
        write_result,
    )

    output = request.output
    check_output_suffix(output)
    check_folder_location(output.parent)
    options = animate_options(request)
    job = Job(request.source, request.driving, output.resolve())
    seconds = {"load": 0.0, "read": 0.0, "model": 0.0, "write": 0.0}
    started = time.perf_counter()
    loaded = load_model(
        request.model,
        request.engine,
        request.device,
        request.precision,
        load_options(request),
        batch_size=request.batch_size,
        say=events.say,
    )
    loaded.open()
    seconds["load"] = time.perf_counter() - started
    animator = make_animator(loaded, request)
    # Each input is decoded once; the warnings use the decoded frame count rather than probing
    # the file's headers again.
    size = loaded.config.image_size
    source, clip = read_input(job, size, options, request.budget, seconds)
    preflight.warn_swapped(
        request.source, request.driving, events.warn, len(clip.frames), source.frames
    )
    events.begin(None, len(clip.frames))
    remove_stale_temporaries([job])
    started = time.perf_counter()
    state = animator.prepare_source(frames_to_tensor(source.image[None]))
    motion = animator.driving_keypoints(frames_to_tensor(clip.frames))
    frames = render(
        animator,
        source,
        state,
        motion,
        clip.frames,
        options,
        lambda n: events.progress("frames", job, n),
        request.driving,
    )
    reference = animator.reference_for(state, motion) if request.mode == "relative" else None
    seconds["model"] = time.perf_counter() - started
    write_result(job, frames, clip, options, seconds)
    events.progress("done", job, -1 if reference is None else reference)
    return Written(
        output,
        len(frames),
        loaded.engine,
        str(loaded.device),
        seconds,
        reference=reference,
        reference_setting=str(animator.reference),
        shape=frames.shape[1:3],
        alpha=frames.shape[-1] == 4 and output.suffix.lower() != ".mp4",  # MP4 has none
    )
