"""The work behind the page: one model, loaded once, used by one request at a time.

Everything here takes files the web layer has already accepted (uploads in its own folder,
or bundled examples) and writes into a folder this process owns. Errors are DonkeyError with
one line naming the file by its own name, not by the server's temporary path.
"""

from __future__ import annotations

import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from donkey.core.vocab import (
    DEFAULT_REFERENCE,
    DEFAULT_SMOOTH,
    parse_output_size,
)
from donkey.data.frames import WHITE, frames_to_tensor
from donkey.data.media import (
    VIDEO_SUFFIXES,
    Clip,
    MediaError,
    SourceImage,
    read_source,
    read_video,
)
from donkey.data.writers import composite, write_image, write_video
from donkey.model.errors import DonkeyError
from donkey.runtime.animate_options import AnimateOptions, side_by_side
from donkey.runtime.animator import Animator, DrivingState
from donkey.runtime.batch import output_name
from donkey.runtime.loader import LoadedModel
from donkey.runtime.motion import MOTION_MODES

OUT_FORMATS = ("gif", "mp4")
# Decoded RGB bytes one upload may cost before it is resized to the model size.
DECODE_BUDGET = 1 << 30
# Finished requests whose files are kept; the page's own cache holds what it has shown.
_KEEP_REQUESTS = 16

Progress = Callable[[str, int, int], None]  # phase, frames done, frames in all


@dataclass
class Result:
    output: Path  # the result in the chosen format (side by side when asked)
    preview: Path  # source | driving | result as a GIF, for the page
    frames: int
    size: int  # the model's frame side in pixels
    seconds: dict[str, float]
    shape: tuple[int, int] = (0, 0)  # (height, width) of the downloaded result's frames
    reference: int | None = None  # the driving frame relative motion was measured from


def _peek(path: Path) -> tuple[int, int, int] | None:
    """(frames, width, height) from the file's header, without decoding its pixels; None when
    the header cannot be read (the reader then reports the problem in its own words)."""
    try:
        if path.suffix.lower() in VIDEO_SUFFIXES:
            import imageio_ffmpeg

            reader = imageio_ffmpeg.read_frames(str(path))
            try:
                meta = next(reader)
            finally:
                reader.close()
            width, height = meta["size"]
            return max(1, round(meta["duration"] * meta["fps"])), width, height
        with Image.open(path) as image:
            return getattr(image, "n_frames", 1), image.width, image.height
    except Image.DecompressionBombError:
        raise DonkeyError(f"{path.name}: too many pixels to decode (an image bomb?)") from None
    except Exception:  # noqa: BLE001 - any unreadable header is the reader's to report
        return None


def _named(exc: DonkeyError, path: Path) -> str:
    """The message with the upload's own file name in place of its temporary path."""
    if isinstance(exc, MediaError):
        return f"{exc.path.name}: {exc.cause}"
    return str(exc).replace(str(path), path.name)


class AnimationService:
    def __init__(
        self,
        model: LoadedModel,
        work_dir: Path | None = None,
        batch_size: int = 8,
        max_frames: int = 1000,
        decode_budget: int = DECODE_BUDGET,
    ) -> None:
        if max_frames < 1:
            raise DonkeyError(f"--max-frames must be at least 1, got {max_frames}")
        self.model = model
        self.size = model.config.image_size
        self.batch_size = batch_size
        self.max_frames = max_frames
        self.decode_budget = decode_budget
        self._own_dir = work_dir is None
        self.work_dir = Path(work_dir or tempfile.mkdtemp(prefix="donkey-serve-"))
        self.work_dir.mkdir(parents=True, exist_ok=True)
        # The page queues requests too; this lock also covers callers that bypass the queue,
        # so two requests never share the device or the model's buffers.
        self._device = threading.Lock()
        self._count = 0
        self._count_lock = threading.Lock()
        # Validates batch size now, at start-up, rather than in the first request.
        Animator(model, batch_size=batch_size)

    def close(self) -> None:
        if self._own_dir:
            shutil.rmtree(self.work_dir, ignore_errors=True)

    def _request_dir(self) -> Path:
        with self._count_lock:
            self._count += 1
            number = self._count
        folder = self.work_dir / f"{number:06d}"
        folder.mkdir()
        stale = sorted(p for p in self.work_dir.iterdir() if p.is_dir())[:-_KEEP_REQUESTS]
        for old in stale:
            shutil.rmtree(old, ignore_errors=True)
        return folder

    def warm_up(self) -> float:
        """One small animation on blank frames at start-up: a model that cannot run fails
        before the page opens, and the first user does not pay for first-call set-up.
        Returns the seconds it took."""
        started = time.perf_counter()
        blank = torch.full((self.batch_size, 3, self.size, self.size), 0.5)
        animator = Animator(self.model, batch_size=self.batch_size, mode="relative")
        with self._device, torch.inference_mode():
            torch.set_flush_denormal(True)
            animator.animate(blank[:1], blank)
        return time.perf_counter() - started

    def _check_size(self, path: Path, max_frames: int | None) -> None:
        """Refuses, before decoding, clips longer than the page takes or too large to decode."""
        found = _peek(path) if path.is_file() else None
        if found is None:
            return
        frames, width, height = found
        if max_frames is not None and frames > max_frames:
            raise DonkeyError(
                f"{path.name}: {frames} frames; this page takes at most {max_frames} "
                "(`donkey animate` takes any length)"
            )
        # Every frame is decoded at its own size before any resizing (a source's too).
        decoded = frames * width * height * 3
        if decoded > self.decode_budget:
            raise DonkeyError(
                f"{path.name}: too large to decode here ({frames} frame{'s' * (frames != 1)} of {width}x{height} "
                f"= {decoded / 2**30:.1f} GiB; this page decodes at most "
                f"{self.decode_budget / 2**30:.1f} GiB per file)"
            )

    def read_source(self, path: Path) -> SourceImage:
        """The source as the model will see it ((size, size, 3) uint8), with its alpha."""
        self._check_size(path, None)
        try:
            return read_source(path, self.size, "pad", WHITE)
        except DonkeyError as exc:
            raise DonkeyError(_named(exc, path)) from None

    def read_driving(self, path: Path) -> Clip:
        self._check_size(path, self.max_frames)
        try:
            clip = read_video(path, self.size, "pad", WHITE)
        except DonkeyError as exc:
            raise DonkeyError(_named(exc, path)) from None
        if len(clip.frames) > self.max_frames:
            raise DonkeyError(
                f"{path.name}: {len(clip.frames)} frames; this page takes at most "
                f"{self.max_frames} (`donkey animate` takes any length)"
            )
        return clip

    def preview_source(self, path: Path) -> Path:
        image = self.read_source(path).image
        return write_image(self._request_dir() / "source.png", image)

    def preview_driving(self, path: Path) -> Path:
        clip = self.read_driving(path)
        return write_video(self._request_dir() / "driving.gif", clip.frames, clip.fps)

    def _keypoints(self, animator: Animator, frames: np.ndarray, notify: Progress) -> DrivingState:
        """The driving's keypoints a batch at a time, so the progress bar moves during this
        phase too (about a third of the model's time)."""
        means, variances = [], []
        for start in range(0, len(frames), self.batch_size):
            part = frames[start : start + self.batch_size]
            found = animator.driving_keypoints(frames_to_tensor(part))
            means.append(found.kp_mean)
            variances.append(found.kp_var)
            notify("keypoints", start + len(part), len(frames))
        return DrivingState(torch.cat(means), torch.cat(variances))

    def animate(
        self,
        source: Path,
        driving: Path,
        mode: str = "relative",
        adapt_scale: bool = False,
        out_format: str = "gif",
        side: bool = False,
        progress: Progress | None = None,
        reference: str | int = DEFAULT_REFERENCE,
        smooth: float = DEFAULT_SMOOTH,
        motion_scale: float = 1.0,
        output_size: str | int = "model",
        keep_alpha: bool = True,
    ) -> Result:
        """Animates SOURCE with DRIVING; writes the result (at `output_size`, transparent where
        the source is when `keep_alpha`) and a side-by-side preview GIF at the model size.
        The page passes every setting; called directly, the result is the model's square."""
        if mode not in MOTION_MODES:
            raise DonkeyError(
                f"motion must be one of {', '.join(sorted(MOTION_MODES))}, got {mode!r}"
            )
        if out_format not in OUT_FORMATS:
            raise DonkeyError(f"output format must be gif or mp4, got {out_format!r}")
        notify = progress or (lambda phase, done, total: None)
        seconds = {"read": 0.0, "wait": 0.0, "model": 0.0, "write": 0.0}
        started = time.perf_counter()
        try:
            size_spec = parse_output_size(output_size)
        except ValueError as exc:
            raise DonkeyError(str(exc)) from None
        options = AnimateOptions(output_size=size_spec, keep_alpha=keep_alpha)
        animator = Animator(
            self.model,
            batch_size=self.batch_size,
            mode=mode,
            adapt_scale=adapt_scale,
            reference=reference,
            smooth=smooth,
            motion_scale=motion_scale,
        )
        picture = self.read_source(source)
        clip = self.read_driving(driving)
        seconds["read"] = time.perf_counter() - started
        total = len(clip.frames)
        notify("keypoints", 0, total)
        started = time.perf_counter()
        with self._device:
            seconds["wait"] = time.perf_counter() - started
            started = time.perf_counter()
            # Per thread: web requests run on worker threads, not the CLI's main thread.
            torch.set_flush_denormal(True)
            with torch.inference_mode():
                motion = self._keypoints(animator, clip.frames, notify)
                state = animator.prepare_source(frames_to_tensor(picture.image[None]))
                relative = mode == "relative"
                reference_frame = animator.reference_for(state, motion) if relative else None
                done = [0]

                def rendered(count: int) -> None:
                    done[0] += count
                    notify("animating", done[0], total)

                alpha = picture.alpha if options.wants_alpha(picture) else None
                square = animator.animate_frames(state, motion, rendered, alpha=alpha)
            seconds["model"] = time.perf_counter() - started
        # The page's preview: opaque panels at the model size.
        both = side_by_side(picture.image, clip.frames, composite(square))
        result = both if side else options.finish(square, picture, clip.frames)
        started = time.perf_counter()
        folder = self._request_dir()
        output = folder / output_name(source, driving, f".{out_format}")
        write_video(output, result, clip.fps)
        preview = write_video(folder / "preview.gif", both, clip.fps)
        seconds["write"] = time.perf_counter() - started
        shape = (int(result.shape[1]), int(result.shape[2]))
        return Result(output, preview, len(result), self.size, seconds, shape, reference_frame)
