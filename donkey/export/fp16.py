"""fp16 variants decided in the graph (TensorRT 11 is strongly typed: no FP16 builder flag).

Kept in fp32 (docs/architecture.md, "ONNX graph rules"): the whole keypoint detector; every node computed from the
keypoint inputs and the grid input alone (gaussians, whose inverse covariance reaches 1e3,
offsets, identity grids, grid resizes); the flow tail of the dense motion after its mask
softmax (identity + sum_k mask_k * offset_k + residual); and GridSample, Resize and Softmax
nodes, which the converter must not touch (Resize's scales must stay float). The graph's own
Cast nodes are blocked by name: a converted Cast keeps its fp32 `to` and breaks the graph, and
blocking the Cast op type makes the converter block (and wrap) its own inserted Casts forever.
"""

from __future__ import annotations

import warnings

import onnx
from onnx import TensorProto, helper

from donkey.model.spec import KP_DRIVING, KP_SOURCE

FP32_GRAPHS = ("kp_detector",)
BLOCKED_OPS = ["GridSample", "Resize", "Softmax"]
FP32_SOURCES = set(KP_SOURCE + KP_DRIVING + ("grid",))


def fp32_island(model: onnx.ModelProto) -> set[str]:
    """Names of nodes that must stay fp32 (see the module docstring)."""
    graph = model.graph
    constant_tensors = {i.name for i in graph.initializer}
    island_tensors = set(FP32_SOURCES) & {i.name for i in graph.input}
    island_nodes: set[str] = set()
    tail_tensors: set[str] = set()  # downstream of a Softmax: the dense motion's flow tail
    for node in graph.node:  # ONNX nodes are topologically sorted
        inputs = [i for i in node.input if i]
        if node.op_type == "Constant" or all(i in constant_tensors for i in inputs):
            constant_tensors.update(node.output)
            continue
        dynamic = [i for i in inputs if i not in constant_tensors]
        from_sources = all(i in island_tensors for i in dynamic)
        in_tail = any(i in tail_tensors for i in dynamic)
        if from_sources or in_tail or node.op_type in BLOCKED_OPS:
            island_nodes.add(node.name)
        if from_sources:
            island_tensors.update(node.output)
        if node.op_type == "Softmax" or in_tail:
            tail_tensors.update(node.output)
    return island_nodes


def _isolate_outputs(model: onnx.ModelProto) -> onnx.ModelProto:
    """Graph outputs that other nodes also read (encoder skips) get an Identity of their own:
    the converter casts outputs back to fp32 in place and would feed fp32 to fp16 consumers."""
    model = onnx.ModelProto.FromString(model.SerializeToString())
    graph = model.graph
    consumed = {i for n in graph.node for i in n.input}
    for out in graph.output:
        if out.name not in consumed:
            continue
        internal = f"{out.name}__internal"
        for node in graph.node:
            node.output[:] = [internal if o == out.name else o for o in node.output]
            node.input[:] = [internal if i == out.name else i for i in node.input]
        graph.node.append(
            helper.make_node("Identity", [internal], [out.name], name=f"{out.name}__output")
        )
    return model


def _fp32_outputs(model: onnx.ModelProto) -> None:
    """Casts any output the converter left in fp16 back to fp32 (the spec's dtype)."""
    graph = model.graph
    for out in graph.output:
        if out.type.tensor_type.elem_type != TensorProto.FLOAT16:
            continue
        half = f"{out.name}__fp16"
        for node in graph.node:
            node.output[:] = [half if o == out.name else o for o in node.output]
            node.input[:] = [half if i == out.name else i for i in node.input]
        graph.node.append(
            helper.make_node(
                "Cast", [half], [out.name], name=f"{out.name}__to_fp32", to=TensorProto.FLOAT
            )
        )
        out.type.tensor_type.elem_type = TensorProto.FLOAT


def convert_to_fp16(model: onnx.ModelProto) -> tuple[onnx.ModelProto, int]:
    """fp16 weights and activations outside the fp32 island; fp32 inputs and outputs.

    Returns the model and how many weights the converter moved to +-1e-7 (fp16 cannot hold
    smaller magnitudes; it warns once per value, which is summarised here instead).
    """
    from onnxconverter_common import float16

    model = _isolate_outputs(model)
    casts = {n.name for n in model.graph.node if n.op_type == "Cast"}
    island = sorted(fp32_island(model) | casts)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        converted = float16.convert_float_to_float16(
            model,
            keep_io_types=True,
            op_block_list=BLOCKED_OPS,
            node_block_list=island,
            disable_shape_infer=False,
        )
    clamped = sum("will be truncated" in str(w.message) for w in caught)
    _fp32_outputs(converted)
    onnx.checker.check_model(converted)
    return converted, clamped
