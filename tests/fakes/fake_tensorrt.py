"""A strict, recording fake of the `tensorrt` module, in a TensorRT 10 and a TensorRT 11 flavour.

It implements the slice of the Python API donkey uses, as the real bindings define it (read
from NVIDIA/TensorRT's headers, pybind sources and docstrings at 10.16 and 11.1): enum members
with their real values and without the members a version removed
(NetworkDefinitionCreationFlag.EXPLICIT_BATCH and BuilderFlag.FP16 are gone in 11,
STRONGLY_TYPED moved from 1 to 0), and the failure returns the real API documents:
`set_input_shape` -> False for a name that is no input tensor "or if some other error
occurred" (the fake: a shape outside the profile), `add_optimization_profile` -> -1 for an
invalid profile, `set_timing_cache` -> False for a cache from another device unless
ignore_mismatch (the fake also refuses another TensorRT version), `get_timing_cache` -> None
when no cache is set, `deserialize_cuda_engine` -> None when it cannot deserialize (the fake:
an engine from another version or GPU). The fake's `build_serialized_network` returns None
when it fails (a missing profile); the real docs do not say what a failed build returns, and
donkey treats None as failure. `fail` injects failure returns the fake cannot provoke itself.

Its parser rejects operators that onnx-tensorrt's docs/operators.md (10.1) marks unsupported,
custom domains and opsets outside 9..20. "Engines" are JSON naming the ONNX file, the profile,
tensor dtypes and shapes; an execution context runs that ONNX graph in ONNX Runtime on the
CPU, reading inputs from and writing outputs to the raw addresses it was given, in each
tensor's own dtype, with the shapes `get_tensor_shape` reports after `set_input_shape`.
`FakeGraph` / `capture` stand in for torch.cuda.CUDAGraph / torch.cuda.graph: an enqueue
during capture is recorded, not run, and a replay refuses to run if the context's shapes or
addresses changed since capture (a real graph would replay stale launches).
"""

from __future__ import annotations

import contextlib
import ctypes
import enum
import json
import sys
import types

import numpy as np

FLAVOURS = ("10", "11")
VERSIONS = {"10": "10.16.0-fake", "11": "11.1.0-fake"}
DEVICE = {"name": "Fake GPU 80GB", "compute_capability": "9.0"}

# onnx-tensorrt 10.1, docs/operators.md: operators marked N (not supported).
UNSUPPORTED_OPS = frozenset(
    """
AffineGrid Bernoulli BitShift BitwiseAnd BitwiseNot BitwiseOr BitwiseXor BlackmanWindow Col2Im
CenterCropPad Compress ConcatFromSequence ConvInteger DFT Det DynamicQuantizeLinear
HammingWindow HannWindow ImageDecoder MatMulInteger MaxRoiPool MaxUnpool MelWeightMatrix
Multinomial NegativeLogLikelihoodLoss Optional OptionalGetElement OptionalHasElement
QLinearConv QLinearMatMul RegexFullMatch STFT SequenceAt SequenceConstruct SequenceEmpty
SequenceErase SequenceInsert SequenceLength SequenceMap SoftmaxCrossEntropyLoss
SplitToSequence StringConcat StringNormalizer StringSplit TfIdfVectorizer Unique
""".split()
)
OPSETS = range(9, 21)  # "TensorRT 10.0 supports operators in the inclusive range of opset 9 to 20"

_NETWORK_FLAGS = {
    "10": {
        "EXPLICIT_BATCH": 0,
        "STRONGLY_TYPED": 1,
        "PREFER_JIT_PYTHON_PLUGINS": 2,
        "PREFER_AOT_PYTHON_PLUGINS": 3,
    },
    "11": {"STRONGLY_TYPED": 0, "PREFER_JIT_PYTHON_PLUGINS": 1, "PREFER_AOT_PYTHON_PLUGINS": 2},
}
_BUILDER_FLAGS = {
    "10": dict(
        FP16=0,
        INT8=1,
        DEBUG=2,
        GPU_FALLBACK=3,
        REFIT=4,
        DISABLE_TIMING_CACHE=5,
        TF32=6,
        SPARSE_WEIGHTS=7,
        SAFETY_SCOPE=8,
        OBEY_PRECISION_CONSTRAINTS=9,
        PREFER_PRECISION_CONSTRAINTS=10,
        DIRECT_IO=11,
        REJECT_EMPTY_ALGORITHMS=12,
        VERSION_COMPATIBLE=13,
        EXCLUDE_LEAN_RUNTIME=14,
        FP8=15,
        ERROR_ON_TIMING_CACHE_MISS=16,
        BF16=17,
        DISABLE_COMPILATION_CACHE=18,
        STRIP_PLAN=19,
        REFIT_IDENTICAL=20,
        WEIGHT_STREAMING=21,
        INT4=22,
        REFIT_INDIVIDUAL=23,
        STRICT_NANS=24,
        MONITOR_MEMORY=25,
        FP4=26,
        EDITABLE_TIMING_CACHE=27,
        DISTRIBUTIVE_INDEPENDENCE=28,
    ),  # fmt: skip
    "11": dict(
        DEBUG=2,
        GPU_FALLBACK=3,
        REFIT=4,
        DISABLE_TIMING_CACHE=5,
        TF32=6,
        SPARSE_WEIGHTS=7,
        SAFETY_SCOPE=8,
        DIRECT_IO=11,
        VERSION_COMPATIBLE=12,
        EXCLUDE_LEAN_RUNTIME=13,
        ERROR_ON_TIMING_CACHE_MISS=15,
        DISABLE_COMPILATION_CACHE=17,
        STRIP_PLAN=18,
        REFIT_IDENTICAL=19,
        WEIGHT_STREAMING=20,
        REFIT_INDIVIDUAL=22,
        STRICT_NANS=23,
        MONITOR_MEMORY=24,
        EDITABLE_TIMING_CACHE=26,
        DISTRIBUTIVE_INDEPENDENCE=27,
    ),  # fmt: skip
}

# Same in 10.16 and 11.1.
DataType = enum.IntEnum(
    "DataType",
    dict(FLOAT=0, HALF=1, INT8=2, INT32=3, BOOL=4, UINT8=5, FP8=6, BF16=7, INT64=8, INT4=9, FP4=10,
         E8M0=11),
)  # fmt: skip
TensorIOMode = enum.IntEnum("TensorIOMode", dict(NONE=0, INPUT=1, OUTPUT=2))
MemoryPoolType = enum.IntEnum("MemoryPoolType", dict(WORKSPACE=0))
NUMPY_DTYPES = {
    "FLOAT": np.float32,
    "HALF": np.float16,
    "INT8": np.int8,
    "INT32": np.int32,
    "INT64": np.int64,
    "BOOL": np.bool_,
    "UINT8": np.uint8,
}
ONNX_TO_TRT = {1: "FLOAT", 10: "HALF", 3: "INT8", 6: "INT32", 7: "INT64", 9: "BOOL", 2: "UINT8"}

__version__ = VERSIONS["11"]
NetworkDefinitionCreationFlag: type[enum.IntEnum]
BuilderFlag: type[enum.IntEnum]
calls: list[tuple] = []
fail: set[str] = set()  # call names that return their failure value
device = dict(DEVICE)
_capturing: list[FakeGraph] = []


def configure(flavour: str) -> types.ModuleType:
    """Switches this module to a flavour ("10" or "11") and clears recorded state."""
    global __version__, NetworkDefinitionCreationFlag, BuilderFlag
    __version__ = VERSIONS[flavour]
    NetworkDefinitionCreationFlag = enum.IntEnum(
        "NetworkDefinitionCreationFlag", _NETWORK_FLAGS[flavour]
    )
    BuilderFlag = enum.IntEnum("BuilderFlag", _BUILDER_FLAGS[flavour])
    reset()
    return sys.modules[__name__]


def reset() -> None:
    calls.clear()
    fail.clear()
    _capturing.clear()
    device.clear()
    device.update(DEVICE)


def flavour() -> str:
    return __version__.split(".")[0]


def install(monkeypatch, flavour_name: str) -> types.ModuleType:
    """sys.modules['tensorrt'] = this fake in that flavour; donkey sees the fake GPU."""
    module = configure(flavour_name)
    monkeypatch.setitem(sys.modules, "tensorrt", module)
    # Every place that asks which GPU this is (the builder, the cache, the runtime's check).
    for where in ("export.tensorrt_build", "artifacts.gpu", "runtime.trt_backend"):
        monkeypatch.setattr(f"donkey.{where}.gpu_identity", lambda index=None: dict(device))
    return module


class Logger:
    INTERNAL_ERROR, ERROR, WARNING, INFO, VERBOSE = range(5)

    def __init__(self, level=WARNING):
        self.level = level


class _Network:
    def __init__(self, flags):
        self.flags = flags
        self.onnx_path = None
        self.inputs: dict[str, list[int]] = {}
        self.outputs: dict[str, list[int]] = {}
        self.dtypes: dict[str, str] = {}


class _Error:
    def __init__(self, text):
        self.text = text

    def desc(self):
        return self.text


def _dims(value_info) -> list[int]:
    return [
        d.dim_value if d.HasField("dim_value") else -1
        for d in value_info.type.tensor_type.shape.dim
    ]


class OnnxParser:
    def __init__(self, network, logger):
        self.network = network
        self.errors: list[_Error] = []

    def parse_from_file(self, path):
        import onnx

        calls.append(("parse_from_file", path))
        try:
            model = onnx.load(path)
        except Exception as exc:  # noqa: BLE001
            self.errors.append(_Error(str(exc)))
            return False
        opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
        if opset not in OPSETS:
            self.errors.append(_Error(f"unsupported opset {opset}"))
        for node in model.graph.node:
            if node.domain not in ("", "ai.onnx"):
                self.errors.append(
                    _Error(f"{node.name}: no importer for {node.domain}.{node.op_type}")
                )
            elif node.op_type in UNSUPPORTED_OPS:
                self.errors.append(_Error(f"{node.name}: no importer for op {node.op_type}"))
        if self.errors:
            return False
        net = self.network
        net.onnx_path = path
        net.inputs = {i.name: _dims(i) for i in model.graph.input}
        net.outputs = {o.name: _dims(o) for o in model.graph.output}
        for info in list(model.graph.input) + list(model.graph.output):
            net.dtypes[info.name] = ONNX_TO_TRT[info.type.tensor_type.elem_type]
        return True

    @property
    def num_errors(self):
        return len(self.errors)

    def get_error(self, i):
        return self.errors[i]


class _Profile:
    def __init__(self):
        self.shapes: dict[str, list[list[int]]] = {}

    def set_shape(self, input, min, opt, max):  # noqa: A002 - the real keyword names
        calls.append(("set_shape", input, tuple(min), tuple(opt), tuple(max)))
        self.shapes[input] = [list(min), list(opt), list(max)]

    def __bool__(self):
        return bool(self.shapes) and all(
            len(lo) == len(opt) == len(hi) and all(0 <= a <= b <= c for a, b, c in zip(lo, opt, hi))
            for lo, opt, hi in self.shapes.values()
        )


class _TimingCache:
    """Serialized as b"fake-timing-cache|<version>|<device>|<entries>"."""

    def __init__(self, version, device_key, entries):
        self.version, self.device_key, self.entries = version, device_key, entries

    def serialize(self):
        return memoryview(
            f"fake-timing-cache|{self.version}|{self.device_key}|{self.entries}".encode()
        )


def _device_key():
    return f"{device['name']} sm{device['compute_capability']}"


class _Config:
    def __init__(self):
        self.cleared = set()
        self.profiles = []
        self.cache = None

    def set_memory_pool_limit(self, pool, size):
        calls.append(("set_memory_pool_limit", int(pool), int(size)))

    def clear_flag(self, flag):
        calls.append(("clear_flag", flag.name))
        self.cleared.add(flag.name)

    def add_optimization_profile(self, profile):
        calls.append(("add_optimization_profile",))
        if "add_optimization_profile" in fail or not profile:
            return -1
        self.profiles.append(profile)
        return len(self.profiles) - 1

    def create_timing_cache(self, serialized_timing_cache):
        blob = bytes(serialized_timing_cache)
        calls.append(("create_timing_cache", blob))
        if "create_timing_cache" in fail:
            return None
        if not blob:
            return _TimingCache(__version__, _device_key(), 0)
        parts = blob.split(b"|")
        if len(parts) != 4 or parts[0] != b"fake-timing-cache" or not parts[3].isdigit():
            return None
        return _TimingCache(parts[1].decode(), parts[2].decode(), int(parts[3]))

    def set_timing_cache(self, cache, ignore_mismatch):
        calls.append(("set_timing_cache", bool(ignore_mismatch)))
        if "set_timing_cache" in fail:
            return False
        if not ignore_mismatch and (cache.version, cache.device_key) != (
            __version__,
            _device_key(),
        ):
            return False
        self.cache = cache
        return True

    def get_timing_cache(self):
        if "get_timing_cache" in fail:
            return None
        return self.cache


class Builder:
    def __init__(self, logger):
        self.logger = logger

    def create_network(self, flags=0):
        calls.append(("create_network", flags))
        if flags >> len(NetworkDefinitionCreationFlag.__members__):
            raise ValueError(f"invalid network creation flags {flags}")
        return _Network(flags)

    def create_builder_config(self):
        return _Config()

    def create_optimization_profile(self):
        return _Profile()

    def build_serialized_network(self, network, config):
        calls.append(("build_serialized_network", network.onnx_path))
        if "build_serialized_network" in fail or not config.profiles:
            return None
        profile = config.profiles[0].shapes
        for name, dims in network.inputs.items():  # every dynamic input needs its range
            shapes = profile.get(name)
            if (
                shapes is None
                or any(d != -1 and any(s[i] != d for s in shapes) for i, d in enumerate(dims))
                or any(len(s) != len(dims) for s in shapes)
            ):
                return None
        if config.cache is not None:
            config.cache.entries += 1
        engine = {
            "onnx": network.onnx_path,
            "inputs": list(network.inputs),
            "outputs": list(network.outputs),
            "shapes": {**network.inputs, **network.outputs},
            "profile": profile,
            "dtypes": dict(network.dtypes),
            "version": __version__,
            "device": _device_key(),
        }
        return memoryview(json.dumps(engine).encode())


def _view(address, shape, dtype):
    count = int(np.prod(shape))
    nbytes = count * np.dtype(dtype).itemsize
    raw = (ctypes.c_uint8 * nbytes).from_address(address)
    return np.frombuffer(raw, dtype=dtype, count=count).reshape(shape)


class _Context:
    def __init__(self, engine):
        import onnxruntime

        self.engine = engine
        self.shapes: dict[str, tuple[int, ...]] = {}
        self.addresses: dict[str, int] = {}
        self.session = onnxruntime.InferenceSession(
            engine.spec["onnx"], providers=["CPUExecutionProvider"]
        )

    def set_input_shape(self, name, shape):
        shape = tuple(int(s) for s in shape)
        calls.append(("set_input_shape", name, shape))
        spec = self.engine.spec
        if "set_input_shape" in fail or name not in spec["inputs"]:
            return False
        lo, _, hi = spec["profile"][name]
        if len(shape) != len(lo) or any(not a <= s <= b for a, s, b in zip(lo, shape, hi)):
            return False
        self.shapes[name] = shape
        return True

    def get_tensor_shape(self, name):
        spec = self.engine.spec
        dims = spec["shapes"].get(name)
        if dims is None:
            return (-1,)  # Dims{-1, {}}: the name maps to no tensor
        if name in self.shapes:
            return self.shapes[name]
        if name in spec["inputs"] or len(self.shapes) < len(spec["inputs"]):
            return tuple(dims)
        batch = self.shapes[spec["inputs"][0]][0]
        return tuple(batch if d == -1 else d for d in dims)

    def set_tensor_address(self, name, memory):
        calls.append(("set_tensor_address", name))
        if name not in self.engine.names:
            return False
        self.addresses[name] = int(memory)
        return True

    def _state(self):
        return dict(self.shapes), dict(self.addresses)

    def execute_async_v3(self, stream_handle):
        calls.append(("execute_async_v3", stream_handle, bool(_capturing)))
        if "execute_async_v3" in fail:
            return False
        spec = self.engine.spec
        if set(self.shapes) != set(spec["inputs"]) or set(self.addresses) != set(self.engine.names):
            return False
        if _capturing:
            if "capture" in fail:
                _capturing[-1].broken = True
                return False
            _capturing[-1].launches.append((self, self._state()))
            return True
        self._run()
        return True

    def _run(self):
        spec = self.engine.spec
        feeds = {}
        wanted = {i.name: i.type for i in self.session.get_inputs()}
        for name in spec["inputs"]:
            value = _view(
                self.addresses[name], self.shapes[name], NUMPY_DTYPES[spec["dtypes"][name]]
            )
            feeds[name] = value.astype(np.float16 if "float16" in wanted[name] else np.float32)
        outputs = self.session.run(spec["outputs"], feeds)
        for name, value in zip(spec["outputs"], outputs):
            shape = self.get_tensor_shape(name)
            if tuple(value.shape) != tuple(shape):
                raise AssertionError(f"fake: {name} computed {value.shape}, engine says {shape}")
            target = _view(self.addresses[name], shape, NUMPY_DTYPES[spec["dtypes"][name]])
            target[...] = value


class _Engine:
    def __init__(self, spec):
        self.spec = spec
        self.names = spec["inputs"] + spec["outputs"]
        self.contexts = 0

    @property
    def num_io_tensors(self):
        return len(self.names)

    def get_tensor_name(self, index):
        return self.names[index]

    def get_tensor_mode(self, name):
        if name not in self.names:
            return TensorIOMode.NONE
        return TensorIOMode.INPUT if name in self.spec["inputs"] else TensorIOMode.OUTPUT

    def get_tensor_dtype(self, name):
        return DataType[self.spec["dtypes"].get(name, "FLOAT")]

    def get_tensor_shape(self, name):
        return tuple(self.spec["shapes"].get(name, (-1,)))

    def get_tensor_profile_shape(self, name, profile_index):
        return self.spec["profile"][name]

    def create_execution_context(self):
        calls.append(("create_execution_context",))
        self.contexts += 1
        return _Context(self)


class Runtime:
    def __init__(self, logger):
        self.logger = logger

    def deserialize_cuda_engine(self, serialized_engine):
        calls.append(("deserialize_cuda_engine", len(serialized_engine)))
        try:
            spec = json.loads(bytes(serialized_engine))
        except ValueError:
            return None
        if spec.get("version") != __version__ or spec.get("device") != _device_key():
            return None  # plans are tied to the TensorRT version and the device
        return _Engine(spec)


class FakeGraph:
    """Stands in for torch.cuda.CUDAGraph: replays the launches recorded during capture."""

    def __init__(self):
        self.launches: list[tuple[_Context, tuple]] = []
        self.broken = False

    def replay(self):
        calls.append(("replay", len(self.launches)))
        for context, state in self.launches:
            if context._state() != state:
                raise AssertionError(
                    "fake: graph replayed after its context's shapes/addresses changed"
                )
            context._run()


@contextlib.contextmanager
def capture(graph: FakeGraph, stream=None):
    """Stands in for torch.cuda.graph: a failed launch invalidates the capture, and ending it
    then raises, as cudaStreamEndCapture does."""
    _capturing.append(graph)
    try:
        yield graph
    except BaseException:
        if not graph.broken:
            raise
    finally:
        _capturing.pop()
    if graph.broken:  # the capture's own error replaces whatever the body raised
        raise RuntimeError("CUDA error: operation failed due to a previous error during capture")


def as_module() -> types.ModuleType:
    """This file as a module object, ready for sys.modules['tensorrt'] (flavour 11)."""
    return configure("11")


configure("11")
