"""fp16 export: fp32 islands exchange fp32 directly, island constants stay fp32."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from donkey.export.fp16 import convert_to_fp16, fp32_island
from donkey.export.onnx_folder import export_onnx
from donkey.model.errors import DonkeyError
from donkey.runtime.loader import load_model
from donkey.runtime.parity import graph_parity


def _cast_to(node: onnx.NodeProto) -> int:
    return next(a.i for a in node.attribute if a.name == "to")


def round_trips(model: onnx.ModelProto) -> int:
    """Cast(fp16) -> Cast(fp32) or Cast(fp32) -> Cast(fp16) chains: a tensor that leaves its
    width only to come back to it."""
    producer = {o: n for n in model.graph.node for o in n.output}
    count = 0
    for node in model.graph.node:
        source = producer.get(node.input[0]) if node.op_type == "Cast" else None
        if source is not None and source.op_type == "Cast":
            count += {_cast_to(source), _cast_to(node)} == {TensorProto.FLOAT, TensorProto.FLOAT16}
    return count


@pytest.fixture(scope="module")
def exports(tiny_ckpt, tmp_path_factory):
    root = tmp_path_factory.mktemp("fp16 islands")
    return export_onnx(tiny_ckpt, root / "fp32").folder, export_onnx(
        tiny_ckpt, root / "fp16", fp16=True
    ).folder


@pytest.mark.parametrize("graph", ["dense_motion", "generator", "source_encoder"])
def test_fp16_export_has_no_round_trips_and_islands_read_fp32(exports, graph):
    folder32, folder16 = exports
    m32 = onnx.load(str(folder32 / f"{graph}.onnx"))
    m16 = onnx.load(str(folder16 / f"{graph}.onnx"))
    assert round_trips(m16) == 0
    island = fp32_island(m32)
    producer = {o: n for n in m16.graph.node for o in n.output}
    initializers = {i.name: i for i in m16.graph.initializer}
    for node in m16.graph.node:
        if node.name not in island:
            continue
        for name in node.input:
            source = producer.get(name)
            if (
                source is not None
                and source.op_type == "Cast"
                and name not in {o for n in m32.graph.node for o in n.output}
            ):
                # An inserted Cast feeding an island node widens an fp16 activation.
                assert _cast_to(source) == TensorProto.FLOAT
                widened = producer.get(source.input[0])
                assert widened is not None and widened.name not in island, (graph, node.name)
            if name in initializers:  # identity grids, Resize scales, gaussian constants
                assert initializers[name].data_type != TensorProto.FLOAT16, (graph, name)
    # No constant is rounded to fp16 and widened again.
    for node in m16.graph.node:
        if node.op_type == "Cast" and node.input[0] in initializers:
            assert initializers[node.input[0]].data_type != TensorProto.FLOAT16
    if graph != "source_encoder":
        assert any(n.op_type == "Exp" and n.name in island for n in m16.graph.node)
        resize_scales = [n.input[2] for n in m16.graph.node if n.op_type == "Resize"]
        assert resize_scales and all(
            initializers[s].data_type == TensorProto.FLOAT
            for s in resize_scales
            if s in initializers
        )


def test_fp16_generator_error_in_onnx_runtime(exports, tiny_ckpt):
    """With the round trips gone the tiny generator is 10x closer to PyTorch fp32
    (max abs error 6.9e-4 with them, 4.8e-5 without, measured at batch 2)."""
    _, folder16 = exports
    rows = graph_parity(
        load_model(tiny_ckpt, "torch", "cpu"), load_model(folder16, "ort", "cpu"), batches=(2,)
    )
    generator = next(r for r in rows if r.graph == "generator")
    assert 0 < generator.max_abs <= 2e-4, generator
    assert generator.psnr >= 90.0, generator


def _chain_model(weight: np.ndarray) -> onnx.ModelProto:
    """grid (fp32 source) -> Mul(2) -> Add(identity) -> Mul -> Conv(weight) -> out."""
    nodes = [
        helper.make_node("Mul", ["grid", "two"], ["scaled"], name="scale"),
        helper.make_node("Add", ["scaled", "identity"], ["moved"], name="shift"),
        helper.make_node("Mul", ["x", "moved"], ["mixed"], name="mix"),
        helper.make_node("Conv", ["mixed", "w"], ["out"], name="conv"),
    ]
    graph = helper.make_graph(
        nodes,
        "chain",
        [
            helper.make_tensor_value_info("grid", TensorProto.FLOAT, ["batch", 1, 4, 4]),
            helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 1, 4, 4]),
        ],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, ["batch", 1, 4, 4])],
        [
            numpy_helper.from_array(np.array(2.0, np.float32), "two"),
            numpy_helper.from_array(np.full((1, 1, 4, 4), 0.1234567, np.float32), "identity"),
            numpy_helper.from_array(weight, "w"),
        ],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])


def test_chain_of_island_nodes_and_weight_range():
    weight = np.array([[[[1e-9]]]], np.float32)
    converted, clamped = convert_to_fp16(_chain_model(weight))
    assert clamped == 1
    kinds = [(n.op_type, n.name) for n in converted.graph.node]
    # scale and shift stay fp32 and talk directly; one Cast widens nothing, one narrows `x`.
    assert kinds[0] == ("Mul", "scale") and kinds[1] == ("Add", "shift")
    casts = [n for n in converted.graph.node if n.op_type == "Cast"]
    assert sorted(n.input[0] for n in casts) == ["moved", "out__fp16", "x"]
    assert round_trips(converted) == 0
    init = {i.name: i for i in converted.graph.initializer}
    assert init["identity"].data_type == TensorProto.FLOAT
    assert numpy_helper.to_array(init["identity"]).flat[0] == np.float32(0.1234567)
    assert init["w__fp16"].data_type == TensorProto.FLOAT16
    assert float(numpy_helper.to_array(init["w__fp16"]).flat[0]) == pytest.approx(1.19e-7, 0.01)
    assert converted.graph.output[0].type.tensor_type.elem_type == TensorProto.FLOAT
    with pytest.raises(DonkeyError, match="weight w exceeds the fp16 range"):
        convert_to_fp16(_chain_model(np.array([[[[7e4]]]], np.float32)))


def test_a_models_own_fp32_cast_is_not_cast_back():
    """x -> Conv -> Cast(float) -> Add(conv output): the Add runs in fp16 and reads the Conv's
    fp16 output twice rather than narrowing the widened copy again."""
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c"], name="conv"),
        helper.make_node("Cast", ["c"], ["wide"], name="own_cast", to=TensorProto.FLOAT),
        helper.make_node("Add", ["wide", "c"], ["out"], name="add"),
    ]
    graph = helper.make_graph(
        nodes,
        "own cast",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 1, 4, 4])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, ["batch", 1, 4, 4])],
        [numpy_helper.from_array(np.ones((1, 1, 1, 1), np.float32), "w")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    converted, _ = convert_to_fp16(model)
    assert round_trips(converted) == 0
    add = next(n for n in converted.graph.node if n.name == "add")
    assert list(add.input) == ["c", "c"]
