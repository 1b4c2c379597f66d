import json
import shutil

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper

from donkey.cli.app import app
from donkey.data.sample_clip import rendered_clip
from donkey.export.fp16 import fp32_island
from donkey.export.lint import lint_folder, lint_model
from donkey.export.onnx_folder import export_onnx
from donkey.export.onnx_trace import set_metadata
from donkey.model.checkpoint import save_checkpoint
from donkey.model.config import load_config
from donkey.model.files import sha256_file
from donkey.model.networks import Networks
from donkey.runtime.loader import load_model
from donkey.runtime.parity import (
    ParityError,
    assert_parity,
    clip_parity,
    graph_parity,
    psnr,
)
from tests.conftest import CONFIGS


@pytest.fixture(scope="module")
def exported(tiny_ckpt, tmp_path_factory):
    root = tmp_path_factory.mktemp("export dir")
    fp32 = export_onnx(tiny_ckpt, root / "onnx fp32")
    fp16 = export_onnx(tiny_ckpt, root / "onnx fp16", fp16=True)
    return fp32.folder, fp16.folder


def test_export_writes_graphs_manifest_and_metadata(exported, tiny_ckpt):
    folder, _ = exported
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["format"] == "onnx" and manifest["opset"] == 18
    assert set(manifest["graphs"]) == {"kp_detector", "dense_motion", "source_encoder", "generator"}
    assert manifest["version"] == 3 and manifest["engine"] is None
    assert manifest["quantization"] is None
    assert all(g["precision"] == "fp32" for g in manifest["graphs"].values())
    assert {"torch", "onnx", "donkey"} <= set(manifest["tools"])
    model = onnx.load(str(folder / "generator.onnx"))
    onnx.checker.check_model(model)
    meta = {p.key: p.value for p in model.metadata_props}
    assert meta["donkey.graph"] == "generator" and len(meta["donkey.checkpoint_sha256"]) == 64
    assert [i.name for i in model.graph.input][:2] == ["source", "skip_1"]
    assert model.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"
    grid_samples = [n for n in model.graph.node if n.op_type == "GridSample"]
    assert grid_samples
    for node in grid_samples:
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        assert (
            attrs["mode"] == b"bilinear"
            and attrs["padding_mode"] == b"zeros"
            and attrs["align_corners"] == 1
        )


def test_ort_fp32_parity_per_graph_and_clip_with_dynamic_batch(exported, tiny_ckpt):
    folder, _ = exported
    reference = load_model(tiny_ckpt, "torch", "cpu")
    other = load_model(folder, "ort", "cpu")
    assert other.engine == "ort"
    rows = graph_parity(reference, other, batches=(1, 3, 8))
    assert {r.batch for r in rows} == {1, 3, 8}
    source, driving = rendered_clip(32)
    rows += clip_parity(reference, other, source, driving)
    assert_parity(rows)
    kp = [r for r in rows if r.tensor == "kp_mean"]
    assert kp and max(r.max_abs for r in kp) <= 1e-5
    images = [r for r in rows if r.tensor in ("prediction", "clip")]
    assert max(r.max_abs for r in images) <= 1e-4


@pytest.mark.slow
def test_ort_fp32_parity_on_the_small_config(tmp_path):
    torch.manual_seed(0)
    nets = Networks(load_config(CONFIGS / "small.yaml").model)
    with torch.no_grad():
        nets.generator.dense_motion_module.hourglass.decoder.conv.weight.normal_(0, 0.05)
    ckpt = save_checkpoint(tmp_path / "small.ckpt", nets)
    folder = export_onnx(ckpt, tmp_path / "onnx").folder
    reference, other = load_model(ckpt, "torch", "cpu"), load_model(folder, "ort", "cpu")
    rows = graph_parity(reference, other, batches=(1, 3, 8))
    rows += clip_parity(reference, other, *rendered_clip(64))
    assert_parity(rows)


def test_fp16_graphs_run_in_ort_cpu_with_40db_psnr(exported, tiny_ckpt):
    _, folder16 = exported
    manifest = json.loads((folder16 / "manifest.json").read_text())
    assert (
        manifest["graphs"]["kp_detector"]["precision"] == "fp32"
        and manifest["graphs"]["generator"]["precision"] == "fp16"
    )
    reference = load_model(tiny_ckpt, "torch", "cpu")
    other = load_model(folder16, "ort", "cpu")
    rows = clip_parity(reference, other, *rendered_clip(32, frames=10))
    assert rows[0].psnr >= 40.0, rows
    assert rows[0].max_abs > 0  # it really ran in fp16
    assert_parity(rows + graph_parity(reference, other, batches=(2,)))


def _types(model):
    inferred = onnx.shape_inference.infer_shapes(model)
    out = {v.name: v.type.tensor_type.elem_type for v in inferred.graph.value_info}
    out.update({v.name: v.type.tensor_type.elem_type for v in inferred.graph.output})
    return out


def test_fp32_islands_stay_fp32(exported):
    folder32, folder16 = exported
    for graph in ("dense_motion", "generator"):
        m32 = onnx.load(str(folder32 / f"{graph}.onnx"))
        m16 = onnx.load(str(folder16 / f"{graph}.onnx"))
        island = fp32_island(m32)
        assert any(n.op_type == "Exp" for n in m32.graph.node if n.name in island)  # gaussians
        types16 = _types(m16)
        by_name = {n.name: n for n in m16.graph.node}
        for name in island:
            for out in by_name[name].output:
                if out in types16:
                    assert types16[out] != TensorProto.FLOAT16, (graph, name, out)
        for node in m16.graph.node:
            if node.op_type == "GridSample":
                assert all(
                    types16.get(i, TensorProto.FLOAT) == TensorProto.FLOAT for i in node.input
                )
        convs = [n for n in m16.graph.node if n.op_type == "Conv"]
        weights = {i.name: i.data_type for i in m16.graph.initializer}
        assert any(weights.get(n.input[1]) == TensorProto.FLOAT16 for n in convs)
    kp = onnx.load(str(folder16 / "kp_detector.onnx"))
    assert all(i.data_type != TensorProto.FLOAT16 for i in kp.graph.initializer)


def test_lint_passes_on_exports_and_catches_planted_problems(exported, tmp_path, runner):
    for folder in exported:
        assert all(v == [] for v in lint_folder(folder).values())
        result = runner.invoke(app, ["lint", str(folder)])
        assert result.exit_code == 0 and "4 graphs clean" in result.output
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4])
    idx = helper.make_tensor("idx", TensorProto.INT64, [1, 1], [0])
    upd = helper.make_tensor("upd", TensorProto.FLOAT, [1, 4], [1, 2, 3, 4])
    scatter = helper.make_node("ScatterND", ["x", "idx", "upd"], ["y"], name="planted_scatter")
    graph = helper.make_graph([scatter], "g", [x], [y], initializer=[idx, upd])
    bad = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    violations = lint_model(bad, "bad")
    assert any(v.op == "ScatterND" and v.node == "planted_scatter" for v in violations)

    img = helper.make_tensor_value_info("img", TensorProto.FLOAT, ["batch", 3, 8, 8])
    grid = helper.make_tensor_value_info("grid", TensorProto.FLOAT, ["batch", 8, 8, 2])
    out = helper.make_tensor_value_info("out", TensorProto.FLOAT, ["batch", 3, 8, 8])
    sample = helper.make_node(
        "GridSample",
        ["img", "grid"],
        ["out"],
        name="gs20",
        mode="linear",
        padding_mode="zeros",
        align_corners=1,
    )
    g20 = helper.make_model(
        helper.make_graph([sample], "g", [img, grid], [out]),
        opset_imports=[helper.make_opsetid("", 20)],
    )
    problems = [str(v) for v in lint_model(g20, "g20")]
    assert any("opset 20" in p for p in problems) and any("mode='linear'" in p for p in problems)
    # A sound folder (manifest, hash and metadata agree) whose generator breaks a rule.
    folder = tmp_path / "bad graphs"
    shutil.copytree(exported[0], folder)
    manifest = json.loads((folder / "manifest.json").read_text())
    set_metadata(
        bad,
        {"donkey.graph": "generator", "donkey.checkpoint_sha256": manifest["checkpoint_sha256"]},
    )
    onnx.save(bad, str(folder / "generator.onnx"))
    manifest["graphs"]["generator"]["sha256"] = sha256_file(folder / "generator.onnx")
    (folder / "manifest.json").write_text(json.dumps(manifest))
    result = runner.invoke(app, ["lint", str(folder)])
    assert result.exit_code == 1 and "planted_scatter" in result.output


def test_lint_flags_dynamic_channels_and_inverse():
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", "channels", 2, 2])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", "channels", 2, 2])
    inv = helper.make_node("Inverse", ["x"], ["y"], name="inv", domain="com.microsoft")
    model = helper.make_model(
        helper.make_graph([inv], "g", [x], [y]),
        opset_imports=[helper.make_opsetid("", 18), helper.make_opsetid("com.microsoft", 1)],
    )
    problems = [str(v) for v in lint_model(model, "m")]
    assert any("custom-domain" in p for p in problems)
    assert any("axis 1 is dynamic" in p for p in problems)


def test_cli_export_check_and_next_command(runner, tiny_ckpt, tmp_path):
    out = tmp_path / "cli export"
    result = runner.invoke(app, ["export", "--model", str(tiny_ckpt), "-o", str(out), "--check"])
    assert result.exit_code == 0, result.output
    assert "next: donkey animate" in result.output and "--engine ort" in result.output
    assert "NO" not in result.output
    result = runner.invoke(
        app, ["export", "--model", str(tiny_ckpt), "-o", str(out), "--format", "trt"]
    )
    assert result.exit_code == 1 and "TensorRT is not installed" in result.output


def test_parity_helpers_assert():
    a = torch.zeros(2, 3, 4, 4)
    assert psnr(a, a) == float("inf")
    from donkey.runtime.parity import compare

    row = compare("generator", "prediction", a, a + 2e-4, "fp32")
    assert not row.ok and row.max_abs == pytest.approx(2e-4)
    with pytest.raises(ParityError, match="generator/prediction"):
        assert_parity([row])
    assert np.isfinite(compare("generator", "prediction", a, a + 0.001, "fp16").psnr)
