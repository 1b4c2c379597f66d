"""Any `--model` with any `--engine`: exports a checkpoint to ONNX, or builds engines, into the
build-once cache (export layer) when the engine needs them, then loads (runtime layer).

Lives in the application layer because it is the one place that composes export and runtime
(docs/architecture.md, "Layers")."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from donkey.artifacts.manifest import ManifestError
from donkey.artifacts.settings import BatchRange, EngineSettings
from donkey.core import engines
from donkey.core.engines import ONNX, TRT
from donkey.model.errors import DonkeyError
from donkey.runtime.backend import LoadOptions
from donkey.runtime.loader import LoadedModel, ResolvedModel, load_resolved, resolve

Notice = Callable[[str], None]


def load_model(
    model: str | Path | None = None,
    engine: str | None = None,
    device: str = "auto",
    precision: str = "fp32",
    options: LoadOptions | None = None,
    batch: BatchRange | None = None,
    batch_size: int | None = None,
    say: Callable[[str, str], None] | None = None,
) -> LoadedModel:
    """`runtime.loader.load_model`, after exporting/building what `engine` runs when `model` is
    a checkpoint (ort, trt) or an ONNX folder (trt). `batch`: the engines' profile range.

    `batch_size`: the largest batch the caller will run (animate, eval, serve). Engines built
    here cover it; an engine folder that cannot run it is refused now, in one line, rather
    than at the first batch after loading (and, through the cache, building) everything.

    A build into the cache is announced first through `say(label, message)` (it takes from
    seconds to minutes, once); the Python API passes nothing and stays quiet.
    """
    say = say or (lambda label, message: None)

    def notice(what: str) -> None:
        say("building", f"{what} into the cache, once (later runs reuse it)")

    # Every refusal that needs nothing built (engine, precision, a missing GPU) comes first.
    resolved = resolve(model, engine, device, precision)
    runs = engines.ENGINES[resolved.engine].runs
    if runs == ONNX and not engines.installed(resolved.engine):
        # Before a checkpoint's export into the cache, not after. (TensorRT's own build says
        # that it is missing.)
        raise DonkeyError(f"--engine {resolved.engine}: {engines.not_installed(resolved.engine)}")
    path = resolved.path
    try:
        path = _built(resolved, batch, batch_size, notice)
        return load_resolved(resolved.at(path), options)
    except ManifestError as exc:
        from donkey.export.cache import discard_entry

        # A cache entry that fails its check (a disk error, an edit) is built again, once: the
        # user never made it, so "export the model again" would not tell them what to do.
        if path == resolved.path or not discard_entry(path):
            raise
        say("rebuilding", f"{path} failed its check ({str(exc)[:160]}); building it again")
        path = _built(resolved, batch, batch_size, notice)
        return load_resolved(resolved.at(path), options)


def _built(
    resolved: ResolvedModel, batch: BatchRange | None, batch_size: int | None, notice: Notice
) -> Path:
    """What the engine loads for the model: a checkpoint's ONNX export, an ONNX folder's
    engines (each built into the cache when missing: core/engines.py `builds`), or the model
    itself."""
    path, steps = resolved.path, engines.builds(resolved.engine, resolved.kind)
    for step in steps:
        if step == ONNX:
            path = _onnx_export(path, resolved.precision, notice)
        elif step == TRT:
            path = _engines(path, batch or BatchRange.covering(batch_size or 1), notice)
    if resolved.kind == TRT and resolved.engine == "trt" and batch_size is not None:
        engine_info = resolved.manifest.engine if resolved.manifest is not None else None
        problem = engine_info.batch.refuses(batch_size) if engine_info is not None else None
        if problem:
            raise DonkeyError(f"{path}: {problem}")
    return path


def _onnx_export(checkpoint: Path, precision: str, notice: Notice) -> Path:
    from donkey.export.cache import cached_onnx

    variant = {"fp16": "fp16 ", "int8": "int8 "}.get(precision, "")
    return cached_onnx(
        checkpoint,
        fp16=precision == "fp16",
        int8=precision == "int8",
        on_build=lambda: notice(f"the {variant}ONNX export of {checkpoint}"),
    )


def _engines(onnx_dir: Path, batch: BatchRange, notice: Notice) -> Path:
    from donkey.export.cache import cached_engines

    return cached_engines(
        onnx_dir,
        EngineSettings(batch=batch),
        on_build=lambda: notice(f"TensorRT engines (batch {batch.min}-{batch.max}) for {onnx_dir}"),
    )
