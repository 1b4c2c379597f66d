"""fp16 variants decided in the graph (TensorRT 11 is strongly typed: no FP16 builder flag).

Kept in fp32 (docs/architecture.md, "ONNX graph rules"): the whole keypoint detector; every
node computed from the keypoint inputs and the grid input alone (gaussians, whose inverse covariance reaches 1e3, offsets, identity
grids, grid resizes); the flow tail of the dense motion after its mask softmax (identity +
sum_k mask_k * offset_k + residual); whatever the model computes from its own `.float()` casts
alone (the dense motion's mask logits and residual); GridSample, Resize and Softmax nodes
(Resize's scales input must stay float in any case); and everything computed from constants
alone (identity grids, Resize scales), so a constant is rounded at most once, where an fp16
node reads it.

The conversion is our own pass rather than onnxconverter-common's: that converter wraps every
blocked node in its own Cast pair, so two neighbouring fp32 nodes exchanged their tensor as
fp32 -> fp16 -> fp32 (120 such round trips in the tiny model's graphs), and it stored island
constants as fp16. In a strongly typed TensorRT network every tensor keeps the type the graph
gives it, so those casts round as written. Here every tensor has one type, set by the node
that makes it, and a Cast is inserted only on an edge whose two ends differ (fp32 node ->
fp16 node or back), once per tensor and type.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from donkey.model.errors import DonkeyError
from donkey.model.spec import KP_DRIVING, KP_SOURCE

FP32_GRAPHS = ("kp_detector",)
BLOCKED_OPS = ["GridSample", "Resize", "Softmax"]
FP32_SOURCES = set(KP_SOURCE + KP_DRIVING + ("grid",))
FLOAT, HALF = TensorProto.FLOAT, TensorProto.FLOAT16
# Output type fixed by an attribute, not by the inputs: these nodes keep their fp32 outputs.
TYPE_SETTING_OPS = {
    "Cast",
    "Constant",
    "ConstantOfShape",
    "EyeLike",
    "RandomNormal",
    "RandomNormalLike",
    "RandomUniform",
    "RandomUniformLike",
}
# Read a float input of either width without a Cast (Cast converts anyway; Shape and Size only
# look at the shape).
ANY_FLOAT_INPUT_OPS = {"Cast", "Shape", "Size"}
HALF_MAX = float(np.finfo(np.float16).max)
HALF_TINY = 1e-7  # smaller magnitudes become +-1e-7 (fp16 subnormals stop near 6e-8)


def _constant_tensors(graph: onnx.GraphProto) -> set[str]:
    """Initializers, Constant outputs, and outputs of nodes that read only those."""
    constants = {i.name for i in graph.initializer}
    for node in graph.node:  # ONNX nodes are topologically sorted
        inputs = [i for i in node.input if i]
        if node.op_type == "Constant" or all(i in constants for i in inputs):
            constants.update(node.output)
    return constants


def _widens_to_fp32(node: onnx.NodeProto) -> bool:
    return node.op_type == "Cast" and any(a.name == "to" and a.i == FLOAT for a in node.attribute)


def fp32_island(model: onnx.ModelProto) -> set[str]:
    """Names of the computing nodes that must stay fp32 (see the module docstring); nodes
    computed from constants alone are not listed (they stay fp32 too)."""
    graph = model.graph
    constant_tensors = _constant_tensors(graph)
    island_tensors = set(FP32_SOURCES) & {i.name for i in graph.input}
    island_nodes: set[str] = set()
    tail_tensors: set[str] = set()  # downstream of a Softmax: the dense motion's flow tail
    for node in graph.node:
        inputs = [i for i in node.input if i]
        if node.op_type == "Constant" or all(i in constant_tensors for i in inputs):
            continue
        dynamic = [i for i in inputs if i not in constant_tensors]
        from_sources = all(i in island_tensors for i in dynamic)
        in_tail = any(i in tail_tensors for i in dynamic)
        if from_sources or in_tail or node.op_type in BLOCKED_OPS:
            island_nodes.add(node.name)
        if from_sources or _widens_to_fp32(node):
            island_tensors.update(node.output)
        if node.op_type == "Softmax" or in_tail:
            tail_tensors.update(node.output)
    return island_nodes


def _elem_types(model: onnx.ModelProto) -> dict[str, int]:
    inferred = onnx.shape_inference.infer_shapes(model, strict_mode=True)
    graph = inferred.graph
    types = {i.name: i.data_type for i in graph.initializer}
    for info in list(graph.input) + list(graph.value_info) + list(graph.output):
        types[info.name] = info.type.tensor_type.elem_type
    for node in graph.node:
        if node.op_type == "Constant":
            for attr in node.attribute:
                if attr.name == "value":
                    types[node.output[0]] = attr.t.data_type
    return types


def _constant_values(graph: onnx.GraphProto) -> dict[str, np.ndarray]:
    values = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    for node in graph.node:
        if node.op_type == "Constant":
            for attr in node.attribute:
                if attr.name == "value":
                    values[node.output[0]] = numpy_helper.to_array(attr.t)
    return values


def _to_half(name: str, value: np.ndarray) -> tuple[np.ndarray, int]:
    """fp16 copy of a weight; magnitudes below 1e-7 move to +-1e-7 (counted)."""
    value = value.astype(np.float32)
    if np.abs(value).max(initial=0.0) > HALF_MAX:
        raise DonkeyError(
            f"weight {name} exceeds the fp16 range (+-{HALF_MAX:.0f}); export without --fp16"
        )
    tiny = (value != 0) & (np.abs(value) < HALF_TINY)
    value = np.where(tiny, np.sign(value) * HALF_TINY, value)
    return value.astype(np.float16), int(tiny.sum())


def convert_to_fp16(model: onnx.ModelProto) -> tuple[onnx.ModelProto, int]:
    """fp16 weights and activations outside the fp32 island; fp32 inputs and outputs.

    Returns the model and how many weights were moved to +-1e-7 (fp16 cannot hold smaller
    magnitudes).
    """
    model = onnx.ModelProto.FromString(model.SerializeToString())
    graph = model.graph
    for index, node in enumerate(graph.node):
        if not node.name:
            node.name = f"{node.op_type}__{index}"
    types = _elem_types(model)
    constants = _constant_tensors(graph)
    values = _constant_values(graph)
    island = fp32_island(model)
    half_nodes = {
        n.name
        for n in graph.node
        if n.name not in island
        and n.op_type not in TYPE_SETTING_OPS
        and not all(i in constants for i in n.input if i)
    }

    # Outputs made in fp16 are renamed; a final Cast gives the spec's fp32 name back.
    produced: dict[str, int] = {i.name: types[i.name] for i in graph.input}
    produced.update({name: types.get(name, FLOAT) for name in values})
    renamed: dict[str, str] = {}
    outputs = {o.name for o in graph.output}
    for node in graph.node:
        for k, out in enumerate(node.output):
            fp16 = node.name in half_nodes and types.get(out) == FLOAT
            if fp16 and out in outputs:
                renamed[out] = f"{out}__fp16"
                node.output[k] = renamed[out]
            produced[node.output[k]] = HALF if fp16 else types.get(out, 0)
    for node in graph.node:
        node.input[:] = [renamed.get(i, i) for i in node.input]

    cast_inputs = {n.output[0]: n.input[0] for n in graph.node if n.op_type == "Cast"}
    casts: dict[tuple[str, int], str] = {
        (fp16_name, FLOAT): name for name, fp16_name in renamed.items()
    }
    half_initializers: dict[str, str] = {}
    clamped = 0
    new_nodes: list[onnx.NodeProto] = []
    emitted: set[str] = set()

    def emit_cast(source: str, to: int) -> str:
        target = casts.setdefault((source, to), f"{source}__to_{'fp16' if to == HALF else 'fp32'}")
        if target not in emitted:
            emitted.add(target)
            new_nodes.append(helper.make_node("Cast", [source], [target], name=target, to=to))
        return target

    def half_constant(source: str) -> str:
        nonlocal clamped
        if source not in half_initializers:
            array, moved = _to_half(source, values[source])
            clamped += moved
            half_initializers[source] = f"{source}__fp16"
            graph.initializer.append(numpy_helper.from_array(array, half_initializers[source]))
        return half_initializers[source]

    for node in graph.node:
        for k, name in enumerate(node.input):
            if not name or node.op_type in ANY_FLOAT_INPUT_OPS:
                continue
            have = produced.get(name)
            if have not in (FLOAT, HALF):
                continue
            want = HALF if node.name in half_nodes else FLOAT
            if have == want:
                continue
            if produced.get(cast_inputs.get(name)) == want:  # the graph's own Cast, undone
                node.input[k] = cast_inputs[name]
            elif want == HALF and name in values:
                node.input[k] = half_constant(name)
            else:
                node.input[k] = emit_cast(name, want)
        new_nodes.append(node)
    for fp16_name in renamed.values():
        emit_cast(fp16_name, FLOAT)

    used = {i for n in new_nodes for i in n.input} | outputs
    # Constants now read only through their fp16 copies are dropped.
    kept_nodes = [
        n for n in new_nodes if n.op_type != "Constant" or any(o in used for o in n.output)
    ]
    kept_init = [i for i in graph.initializer if i.name in used]
    del graph.node[:]
    graph.node.extend(kept_nodes)
    del graph.initializer[:]
    graph.initializer.extend(kept_init)
    del graph.value_info[:]
    converted = onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True)
    onnx.checker.check_model(converted, full_check=True)
    return converted, clamped
