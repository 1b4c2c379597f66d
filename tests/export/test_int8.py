"""int8 export round trip on the tiny model: manifest, ONNX Runtime run, quality gate."""

from __future__ import annotations

import json
import shutil

import onnx
import pytest

from donkey.artifacts.manifest import Manifest, ManifestError
from donkey.artifacts.verify import verify_folder
from donkey.cli.app import app
from donkey.data.calibration import clip_set
from donkey.export.int8 import Int8Settings, float_convolutions
from donkey.export.onnx_folder import export_onnx
from donkey.model.errors import DonkeyError
from donkey.runtime.backend import LoadOptions
from donkey.runtime.loader import load_model
from donkey.runtime.quality import QualityError, assert_quality, measure_quality
from tests.conftest import MGIF_TRAIN, needs_shared_data

ALLOW = LoadOptions(allow_slow_precision=True)


@pytest.fixture(scope="module")
def int8_folder(tiny_ckpt, tmp_path_factory):
    calibration = clip_set(32, None, "train", real=4, synthetic=2, frames=6)
    result = export_onnx(
        tiny_ckpt,
        tmp_path_factory.mktemp("int8 export") / "int8",
        int8=Int8Settings(),
        calibration=calibration,
    )
    return result.folder


def test_int8_manifest_records_precision_and_calibration(int8_folder):
    manifest = verify_folder(int8_folder)
    assert manifest.precision == {
        "kp_detector": "fp32",  # kept whole, as in the fp16 export
        "dense_motion": "int8",
        "source_encoder": "int8",
        "generator": "int8",
    }
    q = manifest.quantization
    assert q is not None and q.format == "qdq" and q.activations == "uint8"
    assert q.weights == "int8" and q.per_channel and q.reduce_range
    assert q.calibration_method == "average" and q.calibration_frames == 36
    assert q.calibration_data == ("6 synthetic creature clips (seed 0, 36 frames)",)
    assert q.outputs == "float"  # convolutions output float: one rounding each
    # The tiny model has one dense-motion group block; the first convolutions of dense motion
    # and of the source encoder and the output convolution stay float.
    assert q.float_convs == {"dense_motion": 1, "source_encoder": 1, "generator": 1}
    generator = onnx.load(str(int8_folder / "generator.onnx"))
    assert float_convolutions(generator) == ["/refinement_module/conv-last/Conv"]
    motion = onnx.load(str(int8_folder / "dense_motion.onnx"))
    assert float_convolutions(motion) == ["/dense_motion/group_blocks.0/conv/Conv"]
    ops = {n.op_type for n in generator.graph.node}
    assert {"QuantizeLinear", "DequantizeLinear", "GridSample", "Conv"} <= ops
    # No QuantizeLinear reads a convolution's output: only inputs are rounded.
    convs = {o for n in generator.graph.node if n.op_type == "Conv" for o in n.output}
    assert not [
        n for n in generator.graph.node if n.op_type == "QuantizeLinear" and n.input[0] in convs
    ]
    meta = {p.key: p.value for p in generator.metadata_props}
    assert meta["donkey.graph"] == "generator" and meta["donkey.precision"] == "int8"
    # GridSample, and the gaussians' Exp, read float tensors, never dequantized ones.
    producer = {o: n.op_type for n in generator.graph.node for o in n.output}
    for node in generator.graph.node:
        if node.op_type in ("GridSample", "Exp", "Softmax"):
            assert all(producer.get(i) != "DequantizeLinear" for i in node.input), node.name


def test_int8_runs_on_ort_and_passes_the_gate_on_the_tiny_model(int8_folder, tiny_ckpt):
    """Tiny random model (frames near 0.5, little contrast, so errors are smaller than a
    trained model's): measured 65 dB PSNR; asserted >= 45 dB. The keypoint detector is fp32
    in both, so keypoints agree to ONNX Runtime's fp32 rounding (<= 1e-5)."""
    reference = load_model(tiny_ckpt, "torch", "cpu")
    int8 = load_model(int8_folder, "ort", "cpu", options=ALLOW)
    assert int8.engine == "ort" and int8.precision["generator"] == "int8"
    clips = clip_set(32, None, "val", real=2, synthetic=1, frames=4, seed=1)
    report = measure_quality(reference, int8, clips)
    assert report.frames == 12 and report.clips == 3
    assert 45.0 <= report.psnr_db < 150.0, report.line()  # int8 did change the frames
    assert report.kp_max_abs <= 1e-5
    assert_quality(report, "tiny int8", psnr_min=45.0, kp_max=1e-5)
    with pytest.raises(QualityError) as caught:
        assert_quality(report, "tiny int8", psnr_min=report.psnr_db + 1, kp_max=-1.0)
    message = str(caught.value)
    assert "\n" not in message and message.startswith(
        "tiny int8 fails the quality gate against fp32 PyTorch: PSNR "
    )
    assert "keypoint error" in message and "(12 frames of 3 clips)" in message


def test_int8_manifest_without_its_record_is_refused(int8_folder, tmp_path):
    folder = tmp_path / "forged"
    shutil.copytree(int8_folder, folder)
    data = json.loads((folder / "manifest.json").read_text())
    data["quantization"].pop("outputs")  # folders written before the field: uint8 outputs
    (folder / "manifest.json").write_text(json.dumps(data))
    assert Manifest.read(folder).quantization.outputs == "uint8"
    data["quantization"]["outputs"] = "int4"
    (folder / "manifest.json").write_text(json.dumps(data))
    with pytest.raises(ManifestError, match="quantization.outputs must be uint8 or float"):
        Manifest.read(folder)
    data["quantization"]["outputs"] = "float"
    data["quantization"]["float_convs"].pop("generator")
    (folder / "manifest.json").write_text(json.dumps(data))
    with pytest.raises(ManifestError, match="float_convs must name exactly the int8 graphs"):
        Manifest.read(folder)
    data["quantization"] = None
    (folder / "manifest.json").write_text(json.dumps(data))
    with pytest.raises(ManifestError, match="int8 graphs need a quantization record"):
        Manifest.read(folder)


def test_cli_int8_export_with_check(runner, tiny_ckpt, tmp_path):
    out = tmp_path / "int8 cli"
    args = ["export", "--model", str(tiny_ckpt), "-o", str(out), "--int8", "--check"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "no --calibration folder: calibrating on synthetic frames only" in result.output
    assert "quality: PSNR" in result.output and "gate: >= 35 dB, <= 0.01" in result.output
    assert verify_folder(out).precision["generator"] == "int8"
    for bad, words in (
        (["--fp16"], "no --fp16, --format onnx"),
        (["--format", "all"], "no --fp16, --format onnx"),
    ):
        result = runner.invoke(app, args + bad)
        assert result.exit_code == 1 and words in result.output, result.output
    result = runner.invoke(
        app, ["export", "--model", str(tiny_ckpt), "-o", str(out), "--calibration", str(out)]
    )
    assert result.exit_code == 1 and "--calibration belongs to --int8" in result.output


def test_bench_runs_int8_and_bf16_beside_fp32_with_psnr(runner, tiny_ckpt, tmp_path):
    out = tmp_path / "bench.json"
    result = runner.invoke(
        app,
        [
            "bench", "--model", str(tiny_ckpt), "--engine", "torch,ort",
            "--precision", "fp32,bf16,int8", "--batch-sizes", "2", "--device", "cpu",
            "--threads", "1", "--runs", "2", "--allow-slow-precision", "--json", str(out),
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    rows = json.loads(out.read_text())
    assert [(r["engine"], r["precision"]) for r in rows] == [
        ("torch", "fp32"),
        ("torch", "bf16"),
        ("ort", "fp32"),
        ("ort", "int8"),
    ]
    assert rows[0]["psnr_db"] is None or rows[0]["psnr_db"] > 200  # itself: identical
    assert rows[2]["psnr_db"] > 80 and rows[2]["kp_max_abs"] <= 1e-5  # ORT fp32
    assert 45 <= rows[1]["psnr_db"] < 150 and 45 <= rows[3]["psnr_db"] < 150
    assert all(r["cpu"].startswith("CPU: ") for r in rows)
    result = runner.invoke(app, ["bench", "--precision", "fp8"])
    # Refused while parsing, before any model loads (exit 2, usage error).
    assert result.exit_code == 2
    assert "takes a comma-separated subset of fp32, fp16, bf16, int8, got 'fp8'" in result.output


def test_calibration_folder_without_videos_is_one_line(tiny_ckpt, tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DonkeyError, match="holds no GIF, MP4 or image files"):
        clip_set(32, tmp_path / "empty", "train")


@needs_shared_data()
def test_mgif_calibration_reads_the_train_split_and_the_gate_the_held_out_one():
    train = clip_set(32, MGIF_TRAIN, "train", real=3, synthetic=1, frames=4)
    val = clip_set(32, MGIF_TRAIN, "val", real=3, synthetic=1, frames=4, seed=1)
    assert len(train.clips) == len(val.clips) == 4
    assert "(train split" in train.sources[0] and "(val split" in val.sources[0]
    assert train.clips[0].shape[1:] == (32, 32, 3)
    assert not any(
        (a == b).all() for a in train.clips[:3] for b in val.clips[:3] if a.shape == b.shape
    )


def test_lint_verifies_an_int8_folder_and_says_the_tensorrt_lint_does_not_apply(
    runner, int8_folder, tmp_path
):
    result = runner.invoke(app, ["lint", str(int8_folder)])
    assert result.exit_code == 0, result.output
    assert f"{int8_folder}: an int8 export for CPUs; manifest, hashes and files verified" in (
        result.output.replace("\n", " ")
    )
    copy = tmp_path / "int8 copy"
    shutil.copytree(int8_folder, copy)
    (copy / "stray.onnx").write_bytes(b"x")  # the folder checks still run
    result = runner.invoke(app, ["lint", str(copy)])
    assert result.exit_code == 1 and "stray.onnx: not named by manifest.json" in result.output


def test_a_failed_quality_gate_fails_the_export_and_writes_nothing(
    runner, tiny_ckpt, tmp_path, monkeypatch
):
    monkeypatch.setattr("donkey.runtime.quality.PSNR_MIN_DB", 500.0)  # no int8 reaches it
    out = tmp_path / "gated"
    result = runner.invoke(
        app, ["export", "--model", str(tiny_ckpt), "-o", str(out), "--int8", "--check"]
    )
    assert result.exit_code == 1, result.output
    last = result.output.strip().splitlines()[-1]
    assert last.startswith("error: int8 export ") and "fails the quality gate" in last
    assert "< 500 dB" in last
    assert not out.exists() and not list(tmp_path.glob(".gated*"))


def test_check_without_a_held_out_split_is_refused_before_the_export(runner, tiny_ckpt, tmp_path):
    from donkey.cli.app import app
    from donkey.data.datasets import split_fraction
    from donkey.data.synthetic import synthesize

    folder = tmp_path / "few"
    synthesize(folder, 4, size=32, seed=2, frames=(4, 5))
    for video in folder.glob("*.gif"):  # keep the training split only
        if split_fraction(video.name) < 0.1:
            video.unlink()
    assert len(list(folder.glob("*.gif"))) >= 2
    out = tmp_path / "int8"
    args = ["export", "--model", str(tiny_ckpt), "-o", str(out), "--int8"]
    result = runner.invoke(app, [*args, "--calibration", str(folder), "--check"])
    assert result.exit_code == 1
    assert result.output.strip() == (
        f"error: {folder}: --check scores int8 on this folder's held-out split (about 10% of "
        "its files, by name), which holds no videos here; give a folder with more videos, or "
        "export without --check"
    )
    assert not out.exists()


def test_average_calibration_ranges_lie_inside_the_minmax_ones(tiny_ckpt, tmp_path):
    """ "average" takes the mean of each batch's min and max: never wider than the global
    min/max, and narrower where batches differ (the ranges are the QuantizeLinear scales)."""
    calibration = clip_set(32, None, "train", real=0, synthetic=4, frames=6)
    scales = {}
    for method in ("minmax", "average"):
        folder = export_onnx(
            tiny_ckpt,
            tmp_path / method,
            int8=Int8Settings(method=method, batch=2),
            calibration=calibration,
        ).folder
        assert verify_folder(folder).quantization.calibration_method == method
        model = onnx.load(str(folder / "generator.onnx"))
        init = {t.name: onnx.numpy_helper.to_array(t) for t in model.graph.initializer}
        scales[method] = {
            n.input[0]: float(init[n.input[1]])
            for n in model.graph.node
            if n.op_type == "QuantizeLinear" and n.input[1] in init and init[n.input[1]].size == 1
        }
    assert scales["minmax"].keys() == scales["average"].keys() and len(scales["minmax"]) >= 5
    ratios = [scales["average"][k] / scales["minmax"][k] for k in scales["minmax"]]
    assert max(ratios) <= 1.0 + 1e-6
    assert min(ratios) < 0.99  # some range did get narrower
