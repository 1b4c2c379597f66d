"""The engines that run a model, in one table: what each loads, on which devices, at which
precisions, what must be built for it first and how to install it.

`--engine`'s choices, the default engine, the refusals that need nothing loaded, the bench
variants and the build-once cache's decisions (donkey/app/models.py) all read this table.
Standard library only: `donkey --help` loads it. Functions here answer with refusal messages
(None when fine) rather than raising: the errors module lives in a layer above this one.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass

from donkey.core.vocab import PRECISIONS

# What `--model` names, each built from the one before: a checkpoint is exported to an ONNX
# folder (`donkey export`), an ONNX folder is built into a TensorRT engine folder.
CHECKPOINT, ONNX, TRT = "checkpoint", "onnx", "trt"
KINDS = (CHECKPOINT, ONNX, TRT)
# Export folders say which they are in manifest.json's "format".
FOLDER_KINDS = (ONNX, TRT)


@dataclass(frozen=True)
class EngineSpec:
    name: str
    runs: str  # the kind of model it loads (KINDS); others are built into it first
    devices: tuple[str, ...]  # torch device types
    precisions: tuple[str, ...]
    package: str = ""  # the runtime it imports, as its makers name it ("": PyTorch itself)
    module: str = ""  # ... and its import name
    install: str = ""  # how to install that runtime
    wrong_device: str = ""  # the refusal on a device type it does not run on


ENGINES: dict[str, EngineSpec] = {
    spec.name: spec
    for spec in (
        EngineSpec(
            "torch",
            runs=CHECKPOINT,
            devices=("cpu", "cuda"),
            # bf16: autocast (CPU or CUDA); fp16: autocast on CUDA only.
            precisions=("fp32", "fp16", "bf16"),
        ),
        EngineSpec(
            "ort",
            runs=ONNX,
            devices=("cpu", "cuda"),
            precisions=("fp32", "fp16", "int8"),
            package="ONNX Runtime",
            module="onnxruntime",
            install="pip install onnxruntime-gpu (or onnxruntime for CPU only)",
        ),
        EngineSpec(
            "trt",
            runs=TRT,
            devices=("cuda",),
            precisions=("fp32", "fp16"),
            package="TensorRT",
            module="tensorrt",
            install="pip install 'donkey[trt]' (TensorRT wheels for your CUDA; needs an NVIDIA GPU)",
            wrong_device="--engine trt needs --device cuda (TensorRT runs on NVIDIA GPUs only)",
        ),
        EngineSpec(
            "openvino",
            runs=ONNX,
            devices=("cpu",),
            precisions=("fp32", "int8"),
            package="OpenVINO",
            module="openvino",
            install="pip install openvino (or pip install 'donkey[openvino]')",
            wrong_device="--engine openvino runs on the CPU: use --device cpu",
        ),
    )
}
ENGINE_NAMES = tuple(ENGINES)

# Precisions only some engines run: refusing one names those engines ("--precision int8 runs
# on --engine ort or openvino, not torch"); refusing another names what the engine runs.
ENGINE_BOUND_PRECISIONS = ("bf16", "int8")
# int8 on the CPU, best first: ONNX Runtime runs the export's int8 graphs at about fp32 speed
# on CPUs without VNNI, OpenVINO as int8 (benchmarks/README.md). The last is the fallback.
CPU_INT8_ENGINES = ("openvino", "ort")


def engines_running(precision: str) -> tuple[str, ...]:
    """The engines that run `precision`, in table order."""
    return tuple(name for name, spec in ENGINES.items() if precision in spec.precisions)


def folder_precisions(kind: str) -> tuple[str, ...]:
    """The precisions a graph of an export folder of `kind` may have: those of the engines
    that load such folders."""
    held = {p for spec in ENGINES.values() if spec.runs == kind for p in spec.precisions}
    return tuple(p for p in PRECISIONS if p in held)


def installed(name: str) -> bool:
    """Whether the runtime `name` imports is installed (found, not imported)."""
    module = ENGINES[name].module
    return not module or importlib.util.find_spec(module) is not None


def not_installed(name: str) -> str:
    spec = ENGINES[name]
    return f"{spec.package} is not installed: {spec.install}"


def default_engine(kind: str, int8: bool, device_type: str) -> str:
    """What the model is (the first engine in the table that loads `kind`); but int8 (asked
    for, or held by an ONNX folder) from a checkpoint or ONNX folder goes to the first of
    CPU_INT8_ENGINES that runs on `device_type` and is installed."""
    if int8 and kind in (CHECKPOINT, ONNX):
        usable = [
            name
            for name in CPU_INT8_ENGINES
            if device_type in ENGINES[name].devices and installed(name)
        ]
        return usable[0] if usable else CPU_INT8_ENGINES[-1]
    return next(name for name, spec in ENGINES.items() if spec.runs == kind)


def engine_refusal(name: str) -> str | None:
    if name not in ENGINES:
        return f"--engine must be one of {', '.join(ENGINE_NAMES)}, got {name!r}"
    return None


def precision_refusal(precision: str, engine: str) -> str | None:
    """Why `engine` cannot run `precision` (None when it can)."""
    if precision not in PRECISIONS:
        return f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}"
    if precision in ENGINE_BOUND_PRECISIONS and engine not in engines_running(precision):
        names = " or ".join(engines_running(precision))
        return f"--precision {precision} runs on --engine {names}, not {engine}"
    runs = ENGINES[engine].precisions
    if precision not in runs:
        return f"--engine {engine} runs {', '.join(runs)}, not --precision {precision}"
    return None


def device_refusal(engine: str, device_type: str) -> str | None:
    spec = ENGINES[engine]
    return None if device_type in spec.devices else spec.wrong_device


def auto_device(engine: str, cuda_available: bool) -> str:
    """What `--device auto` means for `engine`: its GPU where it runs on one and there is one."""
    return "cuda" if cuda_available and "cuda" in ENGINES[engine].devices else "cpu"


def builds(engine: str, kind: str) -> tuple[str, ...]:
    """The kinds to build, in order, before `engine` can load a model of `kind`: () when it
    loads that kind, or when nothing built from it is what the engine loads (its loader then
    refuses the model in its own words)."""
    start, target = KINDS.index(kind), KINDS.index(ENGINES[engine].runs)
    return KINDS[start + 1 : target + 1]
