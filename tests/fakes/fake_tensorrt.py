"""A small recording fake of the `tensorrt` module, for what needs no GPU.

It implements the slice of the TensorRT 10 Python API that donkey uses. "Engines" it builds
are JSON naming the ONNX file and the profile; its execution context runs that ONNX graph in
ONNX Runtime on the CPU, reading inputs from and writing outputs to the raw addresses it was
given, so buffer handling (names, shapes, addresses, copies) is exercised for real.
"""

from __future__ import annotations

import ctypes
import enum
import json
import types

import numpy as np

__version__ = "10.99.0-fake"
calls: list[tuple] = []


def reset() -> None:
    calls.clear()


class Logger:
    WARNING = 2

    def __init__(self, level=None):
        self.level = level


class NetworkDefinitionCreationFlag(enum.IntEnum):
    EXPLICIT_BATCH = 0
    STRONGLY_TYPED = 5


class MemoryPoolType(enum.IntEnum):
    WORKSPACE = 0


class BuilderFlag(enum.IntEnum):
    FP16 = 0
    TF32 = 7


class TensorIOMode(enum.IntEnum):
    NONE = 0
    INPUT = 1
    OUTPUT = 2


class DataType(enum.IntEnum):
    FLOAT = 0
    HALF = 1
    INT8 = 2
    INT32 = 3
    BOOL = 4


class _Network:
    def __init__(self, flags):
        self.flags = flags
        self.onnx_path = None


class _Error:
    def __init__(self, text):
        self.text = text

    def desc(self):
        return self.text


class OnnxParser:
    def __init__(self, network, logger):
        self.network = network
        self.errors = []

    def parse_from_file(self, path):
        import onnx

        calls.append(("parse_from_file", path))
        try:
            model = onnx.load(path)
        except Exception as exc:  # noqa: BLE001
            self.errors.append(_Error(str(exc)))
            return False
        self.network.onnx_path = path
        self.network.inputs = [i.name for i in model.graph.input]
        self.network.outputs = [o.name for o in model.graph.output]
        return True

    @property
    def num_errors(self):
        return len(self.errors)

    def get_error(self, i):
        return self.errors[i]


class _Profile:
    def __init__(self):
        self.shapes = {}

    def set_shape(self, name, lo, opt, hi):
        calls.append(("set_shape", name, tuple(lo), tuple(opt), tuple(hi)))
        self.shapes[name] = [list(lo), list(opt), list(hi)]


class _TimingCache:
    def __init__(self, blob):
        self.blob = bytes(blob) or b"fake-timing-cache:0"

    def serialize(self):
        count = int(self.blob.split(b":")[-1]) + 1
        return memoryview(b"fake-timing-cache:%d" % count)


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
        self.profiles.append(profile)
        return len(self.profiles) - 1

    def create_timing_cache(self, blob):
        calls.append(("create_timing_cache", bytes(blob)))
        return _TimingCache(blob)

    def set_timing_cache(self, cache, ignore_mismatch):
        self.cache = cache
        return True

    def get_timing_cache(self):
        return self.cache


class Builder:
    def __init__(self, logger):
        self.logger = logger

    def create_network(self, flags):
        calls.append(("create_network", flags))
        return _Network(flags)

    def create_builder_config(self):
        return _Config()

    def create_optimization_profile(self):
        return _Profile()

    def build_serialized_network(self, network, config):
        calls.append(("build_serialized_network", network.onnx_path))
        engine = {
            "onnx": network.onnx_path,
            "inputs": network.inputs,
            "outputs": network.outputs,
            "profile": config.profiles[0].shapes,
            "dtypes": {},
        }
        return memoryview(json.dumps(engine).encode())


class _Context:
    def __init__(self, engine):
        self.engine = engine
        self.shapes = {}
        self.addresses = {}
        import onnxruntime

        self.session = onnxruntime.InferenceSession(
            engine.spec["onnx"], providers=["CPUExecutionProvider"]
        )

    def set_input_shape(self, name, shape):
        calls.append(("set_input_shape", name, tuple(shape)))
        self.shapes[name] = tuple(shape)
        return True

    def set_tensor_address(self, name, address):
        calls.append(("set_tensor_address", name))
        self.addresses[name] = address
        return True

    def execute_async_v3(self, stream_handle):
        calls.append(("execute_async_v3", stream_handle))
        feeds = {}
        for name in self.engine.spec["inputs"]:
            feeds[name] = _view(self.addresses[name], self.shapes[name]).copy()
        outputs = self.session.run(self.engine.spec["outputs"], feeds)
        for name, value in zip(self.engine.spec["outputs"], outputs):
            target = _view(self.addresses[name], value.shape)
            target[...] = value
        return True


def _view(address, shape):
    count = int(np.prod(shape))
    buffer = (ctypes.c_float * count).from_address(address)
    return np.ctypeslib.as_array(buffer).reshape(shape)


class _Engine:
    def __init__(self, spec):
        self.spec = spec
        self.names = spec["inputs"] + spec["outputs"]

    @property
    def num_io_tensors(self):
        return len(self.names)

    def get_tensor_name(self, i):
        return self.names[i]

    def get_tensor_mode(self, name):
        return TensorIOMode.INPUT if name in self.spec["inputs"] else TensorIOMode.OUTPUT

    def get_tensor_dtype(self, name):
        return DataType[self.spec["dtypes"].get(name, "FLOAT")]

    def get_tensor_profile_shape(self, name, profile):
        return self.spec["profile"][name]

    def create_execution_context(self):
        return _Context(self)


class Runtime:
    def __init__(self, logger):
        self.logger = logger

    def deserialize_cuda_engine(self, blob):
        calls.append(("deserialize_cuda_engine", len(blob)))
        try:
            return _Engine(json.loads(bytes(blob)))
        except ValueError:
            return None


def as_module() -> types.ModuleType:
    """This file as a module object, ready for sys.modules['tensorrt']."""
    import sys

    return sys.modules[__name__]
