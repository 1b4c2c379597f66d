"""`donkey eval` as one call: the mean L1 of a model and of the identity baseline (output =
source), by reconstruction over a folder of videos and by transfer over a pairs manifest.

Under torchrun each rank evaluates a share of the videos and pairs (`donkey.app.ranks`); the
numbers are merged back into file order on every rank, so rank 0 reports the same means as
one process. `evaluate` prints nothing itself: notes, skipped files and progress go through
`EvalEvents`.
"""

from __future__ import annotations

import copy
import shlex
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from donkey.model.errors import DonkeyError

if TYPE_CHECKING:
    from donkey.app.ranks import Ranks
    from donkey.data.budget import Budget
    from donkey.data.manifest import PairsManifest
    from donkey.runtime.loader import LoadedModel
    from donkey.train.evaluate import EvalResult


@dataclass(frozen=True)
class EvalRequest:
    """Everything `donkey eval` was asked; refused on creation when it cannot be evaluated."""

    model: str | None = None
    data: Path | None = None
    pairs: Path | None = None
    split: str = "all"  # which --data videos: all, val or train (as `donkey train` split them)
    val_fraction: float = 0.1
    limit: int | None = None
    engine: str | None = None
    device: str = "auto"
    batch_size: int = 16
    eval_size: int | None = None  # compare at N x N pixels (None: the model's size)
    transfer_mode: str = "relative"
    budget: Budget | None = None  # the read budget of every file (None: the environment's)

    def __post_init__(self) -> None:
        if self.data is None and self.pairs is None:
            raise DonkeyError("give --data DIR, --pairs MANIFEST, or both")
        # A negative --limit sliced files[:-1] (all but the last) and a --val-fraction outside
        # [0, 1) moved every video into one split, both silently.
        if self.limit is not None and self.limit < 1:
            raise DonkeyError(f"--limit must be >= 1, got {self.limit}")
        if not (0.0 <= self.val_fraction < 1.0):
            raise DonkeyError(f"--val-fraction must be in [0, 1), got {self.val_fraction}")


def _quiet(*_: object) -> None:
    return None


def _no_task(_description: str, _total: int) -> Callable[[int], None]:
    return _quiet


@dataclass
class EvalEvents:
    """How the caller hears of the work. `say(label, message)`: a note (a build into the
    cache); `skipped(message)`: a file or pair that could not be read (rank 0, each once);
    `task(description, total)`: a progress bar, giving `update(done)`."""

    say: Callable[[str, str], None] = _quiet
    skipped: Callable[[str], None] = _quiet
    task: Callable[[str, int], Callable[[int], None]] = _no_task


@dataclass
class Evaluation:
    """What `evaluate` measured, over every rank's items, and with what."""

    result: EvalResult
    model: Path
    engine: str
    device: str
    size: int  # the model's image size
    at: int | None  # the size compared at, when --size differs from the model's
    split: str
    data: Path | None
    skipped: list[str]  # files or pairs that could not be read; the means cover the rest

    def as_json(self, details: bool = False) -> dict:
        """The numbers and what gave them; `details`: per-video numbers too."""
        payload = self.result.as_dict(with_details=details)
        payload.update(
            model=str(self.model), engine=self.engine, split=self.split, size=self.at or self.size
        )
        payload["skipped"] = self.skipped
        return payload

    def next_steps(self) -> list[str]:
        """A note where the model does no better than the baseline, then commands to copy."""
        result = self.result
        worse = [
            name
            for name, mine, baseline in (
                ("reconstruction", result.l1, result.identity_l1),
                ("transfer", result.transfer_l1, result.transfer_identity_l1),
            )
            if mine is not None and baseline is not None and mine >= baseline
        ]
        lines = []
        if worse:
            lines.append(
                f"note: {' and '.join(worse)} L1 is no better than the identity baseline (output "
                "= source): the model has not learnt to move this data; train longer or on "
                "similar videos"
            )
        quoted = shlex.quote(str(self.model))
        if self.data is not None and self.split == "all":
            lines.append(
                f"next: donkey eval --model {quoted} --data {shlex.quote(str(self.data))} "
                "--split val   # only the videos training held out"
            )
        lines.append(f"next: donkey animate SOURCE DRIVING -o out.gif --model {quoted}")
        return lines


def evaluate(request: EvalRequest, events: EvalEvents | None = None) -> Evaluation:
    """Loads the model and evaluates reconstruction (request.data) and transfer (request.pairs).

    Under torchrun, ranks other than 0 exit at the end (status 1 if anything was skipped or
    failed on any rank); rank 0 returns the merged evaluation.
    """
    from donkey.app.process import start_torch

    start_torch()
    from donkey.app import ranks as ranked
    from donkey.train.evaluate import EvalResult

    events = events or EvalEvents()
    ranks, device = ranked.start(request.device)
    try:
        loaded = ranked.load_in_turn(
            ranks,
            request.model,
            request.engine,
            device,
            batch_size=request.batch_size,
            say=events.say,
        )
        size = loaded.config.image_size
        at = (
            request.eval_size
            if request.eval_size is not None and request.eval_size != size
            else None
        )
        result, skipped = EvalResult(), []
        if request.data is not None:
            result, notes = _reconstruction(request, ranks, loaded, at, events)
            skipped += notes
        if request.pairs is not None:
            (t_l1, t_id, n), notes = _transfer(request, ranks, loaded, at, events)
            result.transfer_l1, result.transfer_identity_l1, result.pairs = t_l1, t_id, n
            skipped += notes
    except DonkeyError:
        ranked.end_rank(ranks, failed=True)  # rank 0 prints it
        raise
    ranked.end_rank(ranks, failed=bool(skipped))  # every rank exits as rank 0 will
    return Evaluation(
        result=result,
        model=loaded.path,
        engine=loaded.engine,
        device=str(loaded.device),
        size=size,
        at=at,
        split=request.split,
        data=request.data,
        skipped=skipped,
    )


def _reconstruction(
    request: EvalRequest, ranks: Ranks, loaded: LoadedModel, at: int | None, events: EvalEvents
) -> tuple[EvalResult, list[str]]:
    """Reconstruction L1 over the folder's split: each rank its share, merged in file order."""
    from donkey.app import ranks as ranked
    from donkey.data.datasets import list_videos, select_split
    from donkey.train.evaluate import summarize_videos

    files = select_split(list_videos(request.data), request.split, request.val_fraction)
    files = files[: request.limit]
    if not files:
        raise DonkeyError(f"{request.data}: no videos in split {str(request.split)!r}")
    share = ranked.shard_items(ranks, files)
    parts = ranked.gather_results(
        ranks, lambda: _reconstruct_share(request, loaded, files, share, at, events)
    )
    notes = _gather_skipped(ranks, parts, events)
    per_video = sorted((i, v) for p in parts for i, v in p["per_video"])
    if not per_video:
        first = notes[0] if notes else "no videos"
        raise DonkeyError(f"none of the {len(files)} files could be used: {first}")
    return summarize_videos([v for _, v in per_video]), notes


def _reconstruct_share(
    request: EvalRequest,
    loaded: LoadedModel,
    files: list[Path],
    share: list[int],
    at: int | None,
    events: EvalEvents,
) -> dict:
    """This rank's videos: per-video numbers under their index in `files`, and the files it
    could not read (JSON, for the exchange between ranks)."""
    from donkey.data.datasets import load_videos
    from donkey.runtime.animator import Animator
    from donkey.train.evaluate import reconstruction_l1

    mine = [files[i] for i in share]
    update = events.task("reading", len(mine))
    videos, unread = load_videos(
        mine,
        loaded.config.image_size,
        progress=lambda i, n: update(i),
        allow_empty=True,  # one rank's share may hold only bad files
        budget=request.budget,
    )
    targets = None
    if at is not None:
        names = {v.name for v in videos}
        targets, more = load_videos(
            [f for f in mine if f.name in names], at, allow_empty=True, budget=request.budget
        )
        unread += more
        kept = {t.name for t in targets}
        videos = [v for v in videos if v.name in kept]
    update = events.task("reconstruction", len(videos))
    # The model's own motion: no smoothing of the driving keypoints (animate's --smooth).
    animator = Animator(loaded, batch_size=request.batch_size, mode="absolute", smooth=0.0)
    part = reconstruction_l1(animator, videos, lambda i, n: update(i), targets)
    index = {files[i].name: i for i in share}
    return {"per_video": [[index[v["video"]], v] for v in part.per_video], "skipped": unread}


def _transfer(
    request: EvalRequest, ranks: Ranks, loaded: LoadedModel, at: int | None, events: EvalEvents
) -> tuple[tuple[float, float, int], list[str]]:
    """Transfer L1 over the manifest's pairs (model, identity, count): shared by frames."""
    from donkey.app import ranks as ranked
    from donkey.data.manifest import load_manifest
    from donkey.train.evaluate import summarize_pairs

    manifest = load_manifest(request.pairs)
    manifest.pairs = manifest.pairs[: request.limit]
    if not manifest.pairs:
        raise DonkeyError(f"{request.pairs}: lists no pairs to evaluate")
    share = ranked.shard_weighted(ranks, [len(p.b_for_a) for p in manifest.pairs])
    parts = ranked.gather_results(
        ranks, lambda: _transfer_share(request, loaded, manifest, share, at, events)
    )
    notes = _gather_skipped(ranks, parts, events)
    items = [item for _, item in sorted(tuple(x) for p in parts for x in p["items"])]
    if not items:
        raise DonkeyError(
            f"{request.pairs}: none of the {len(manifest.pairs)} pairs could be used: {notes[0]}"
        )
    return summarize_pairs(items), notes


def _transfer_share(
    request: EvalRequest,
    loaded: LoadedModel,
    manifest: PairsManifest,
    share: list[int],
    at: int | None,
    events: EvalEvents,
) -> dict:
    """This rank's pairs: (model, identity) L1 under their index in the manifest, and the
    pairs it could not read (JSON)."""
    from donkey.runtime.animator import Animator
    from donkey.train.evaluate import transfer_items

    mine = copy.copy(manifest)
    mine.pairs = [manifest.pairs[i] for i in share]
    update = events.task("transfer", len(mine.pairs))
    animator = Animator(
        loaded, batch_size=request.batch_size, mode=request.transfer_mode, smooth=0.0
    )
    notes: list[str] = []
    items = transfer_items(
        animator,
        mine,
        loaded.config.image_size,
        lambda i, n: update(i),
        at,
        notes,
        budget=request.budget,
    )
    return {
        "items": [[i, list(x)] for i, x in zip(share, items) if x is not None],
        "skipped": notes,
    }


def _gather_skipped(ranks: Ranks, parts: list[dict], events: EvalEvents) -> list[str]:
    """Every rank's skipped items, in rank order; rank 0 tells each once."""
    notes = [note for p in parts for note in p["skipped"]]
    if ranks.main:
        for note in notes:
            events.skipped(note)
    return notes
