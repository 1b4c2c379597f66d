"""Any `--model` with any `--engine`: exports a checkpoint to ONNX, or builds engines, into the
build-once cache (export layer) when the engine needs them, then loads (runtime layer).

Lives in the application layer because it is the one place that composes export and runtime
(docs/architecture.md, "Layers")."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from donkey.artifacts.manifest import Manifest, ManifestError
from donkey.artifacts.settings import BatchRange, EngineSettings
from donkey.model.errors import DonkeyError
from donkey.runtime.backend import LoadOptions
from donkey.runtime.loader import (
    LoadedModel,
    choose_engine,
    model_kind,
    openvino_installed,
    resolve_device,
    resolve_model,
)
from donkey.runtime.loader import load_model as load_built_model


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

    path = resolve_model(model)
    kind = model_kind(path)
    engine = choose_engine(path, kind, engine, precision, device)
    if engine == "trt" and resolve_device(device).type != "cuda":
        raise DonkeyError("--engine trt needs --device cuda (TensorRT runs on NVIDIA GPUs only)")
    if engine == "openvino":
        device = "cpu" if device == "auto" else device  # OpenVINO runs on the CPU only
        if resolve_device(device).type != "cpu":
            raise DonkeyError("--engine openvino runs on the CPU: use --device cpu")
        if not openvino_installed():  # before a checkpoint's export into the cache, not after
            from donkey.runtime.openvino_backend import OPENVINO_HINT

            raise DonkeyError(f"--engine openvino: OpenVINO is not installed: {OPENVINO_HINT}")
    resolve_device(device)  # a missing GPU is refused before anything is exported for it
    source = path
    try:
        path = _cached(path, kind, engine, precision, batch, batch_size, notice)
        return load_built_model(path, engine, device, precision, options)
    except ManifestError as exc:
        from donkey.export.cache import discard_entry

        # A cache entry that fails its check (a disk error, an edit) is built again, once: the
        # user never made it, so "export the model again" would not tell them what to do.
        if path == source or not discard_entry(path):
            raise
        say("rebuilding", f"{path} failed its check ({str(exc)[:160]}); building it again")
        path = _cached(source, kind, engine, precision, batch, batch_size, notice)
        return load_built_model(path, engine, device, precision, options)


def _cached(path, kind, engine, precision, batch, batch_size, notice) -> Path:
    """What `engine` runs for `path`: a checkpoint's ONNX export, an ONNX folder's engines
    (both built into the cache when missing), or `path` itself."""
    if engine in ("ort", "trt", "openvino") and kind == "checkpoint":
        from donkey.export.cache import cached_onnx

        variant = {"fp16": "fp16 ", "int8": "int8 "}.get(precision, "")
        built = cached_onnx(
            path,
            fp16=precision == "fp16",
            int8=precision == "int8",
            on_build=lambda: notice(f"the {variant}ONNX export of {path}"),
        )
        path, kind = built, "onnx"
    if engine == "trt" and kind == "onnx":
        from donkey.export.cache import cached_engines

        if batch is None:
            batch = BatchRange.covering(batch_size or 1)
        path = cached_engines(
            path,
            EngineSettings(batch=batch),
            on_build=lambda: notice(f"TensorRT engines (batch {batch.min}-{batch.max}) for {path}"),
        )
    elif engine == "trt" and kind == "trt" and batch_size is not None:
        engine_info = Manifest.read(path).engine
        problem = engine_info.batch.refuses(batch_size) if engine_info is not None else None
        if problem:
            raise DonkeyError(f"{path}: {problem}")
    return path
