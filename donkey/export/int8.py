"""int8 ONNX graphs: ONNX Runtime static quantization, calibrated on real and synthetic frames.

Each fp32 graph is quantized by `onnxruntime.quantization.quantize_static`: uint8 activations
(ranges from calibration), int8 weights, QuantizeLinear/DequantizeLinear pairs around the
quantized nodes (QDQ; ONNX Runtime fuses them into QLinearConv kernels on load). What stays
float is the fp16 export's fp32 island (`export/fp16.py`: the keypoint detector's softmax and
everything after it, the gaussians and offsets computed from keypoints, the identity grids,
the dense motion's flow tail after its mask softmax, GridSample, Resize, Softmax) and every
op that is not in `Int8Settings.ops` (by default only convolutions are quantized: they hold
the arithmetic, and element-wise ops in int8 would only add Quantize/Dequantize pairs).

Calibration inputs are made the way the runtime makes them, with the fp32 PyTorch networks:
the keypoint detector reads calibration frames; the source encoder reads the first frame of
each clip; dense motion and generator read a source from one clip driven by the keypoints of
the next clip's frames (an animation across identities, as users run it).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
import torch

from donkey.artifacts.manifest import QuantizationInfo
from donkey.data.calibration import ClipSet
from donkey.data.frames import frames_to_tensor
from donkey.export.fp16 import fp32_island
from donkey.model.config import QAT_FLOATABLE
from donkey.model.errors import DonkeyError
from donkey.model.graphs import build_graphs, run_graph
from donkey.model.networks import Networks
from donkey.model.spec import GRAPH_NAMES, KP_DRIVING, KP_SOURCE, skip_names

Log = Callable[[str], None]
Feeds = dict[str, np.ndarray]


@dataclass(frozen=True)
class Int8Settings:
    format: str = "qdq"  # or "qoperator" (QLinearConv nodes written into the graph)
    per_channel: bool = True
    # 7-bit weights: AVX2 (no VNNI) multiplies u8 x s8 pairs into int16 with saturation;
    # 7 bits cannot overflow it. VNNI CPUs do not need it.
    reduce_range: bool = True
    # "minmax": each input's range over all calibration batches; "average": the mean of each
    # batch's min and max, tighter where a few batches hold outliers (what train.qat's moving
    # average sees, model/fake_quant.py). On the default model: +0.4-0.9 dB.
    method: str = "average"
    ops: tuple[str, ...] = ("Conv",)
    # Also round each convolution's output to uint8. ONNX Runtime needs that to fuse its int8
    # kernels (QLinearConv), but it is a second rounding per convolution: on the default model
    # 32.9 dB with it, 40.8 dB without (OpenVINO runs both as int8 convolutions at the same
    # speed; ONNX Runtime runs output-float graphs at about fp32 speed).
    quantize_outputs: bool = False
    # Graphs left fp32 whole. The keypoint detector, as in the fp16 export: its heatmap logits
    # are divided by a temperature of 0.1 before the softmax, and int8 convolutions moved the
    # default model's keypoints by up to 0.05 (target 0.01).
    fp32_graphs: tuple[str, ...] = ("kp_detector",)
    # Nodes whose names contain one of these stay float: the convolutions int8 hurts most
    # for under 1% of the multiply-adds (scripts/int8_sensitivity.py, each measured alone):
    # dense motion's first two, whose input puts keypoint heatmaps (about +-0.01) and deformed
    # source images (0-1) on one uint8 scale (33.5 and 44.9 dB); the source encoder's first,
    # which reads the image its skip connection carries to the output (36.2 dB); and the
    # output convolution, whose logits (up to about 34) feed the sigmoid (46.2 dB).
    fp32_nodes: tuple[str, ...] = (
        "/dense_motion/group_blocks.0/conv/",
        "/dense_motion/group_blocks.1/conv/",
        "/appearance_encoder/down_blocks.0/conv/",
        "/refinement_module/conv-last/",
    )
    batch: int = 8  # calibration batch size


# For a model trained with train.qat (model/fake_quant.py): its convolutions learned the
# rounding, the keypoint detector's and refinement blocks' too, so none stays float.
QAT_SETTINGS = Int8Settings(fp32_graphs=(), fp32_nodes=())


def int8_settings_for(train_config: dict | None, source: str = "the checkpoint") -> Int8Settings:
    """The int8 recipe for a checkpoint's training config: every convolution if it was
    trained for it (train.qat), except in the networks that run left float (train.qat_float)."""
    train_config = train_config or {}
    if train_config.get("qat") is not True:
        return Int8Settings()
    kept = train_config.get("qat_float") or []
    # The checkpoint's config is untrusted: a string would name graphs letter by letter.
    if not isinstance(kept, list) or any(name not in QAT_FLOATABLE for name in kept):
        raise DonkeyError(
            f"{source}: train.qat_float must be a list of names from "
            f"{', '.join(QAT_FLOATABLE)}, got {kept!r}"[:300]
        )
    return dataclasses.replace(QAT_SETTINGS, fp32_graphs=tuple(kept))


@dataclass
class Int8Result:
    models: dict[str, onnx.ModelProto] = field(default_factory=dict)
    float_convs: dict[str, int] = field(default_factory=dict)
    info: QuantizationInfo | None = None


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().float().cpu().contiguous().numpy()


def calibration_feeds(networks: Networks, clips: ClipSet, batch: int = 8) -> dict[str, list[Feeds]]:
    """Inputs of every graph, in batches of at most `batch`, from fp32 PyTorch runs."""
    graphs = build_graphs(networks.eval())
    skips = skip_names(networks.config)

    def run(name: str, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        module, spec = graphs[name]
        with torch.inference_mode():
            return run_graph(module, spec, inputs)

    feeds: dict[str, list[Feeds]] = {name: [] for name in GRAPH_NAMES}
    # PyTorch runs in large batches (few calls: each costs thread start-up on a busy CPU);
    # the feeds are cut into calibration batches afterwards.
    firsts = frames_to_tensor(np.stack([clip[0] for clip in clips.clips]))
    src_kp = run("kp_detector", {"image": firsts})
    src_enc = run("source_encoder", {"source": firsts})
    sources = []
    for index in range(len(clips.clips)):
        one = slice(index, index + 1)
        source = firsts[one]
        kp = {k: v[one] for k, v in src_kp.items()}
        sources.append((source, kp, {k: v[one] for k, v in src_enc.items()}))
        feeds["source_encoder"].append({"source": _np(source)})
    lengths = [len(clip) for clip in clips.clips]
    frames = frames_to_tensor(np.concatenate(clips.clips))
    kp_all = [run("kp_detector", {"image": frames[i : i + 64]}) for i in range(0, len(frames), 64)]
    all_mean = torch.cat([kp["kp_mean"] for kp in kp_all])
    all_var = torch.cat([kp["kp_var"] for kp in kp_all])
    driving_kp = []
    start_of_clip = 0
    for length in lengths:
        clip_frames = frames[start_of_clip : start_of_clip + length]
        for start in range(0, length, batch):
            feeds["kp_detector"].append({"image": _np(clip_frames[start : start + batch])})
        part = slice(start_of_clip, start_of_clip + length)
        driving_kp.append((all_mean[part], all_var[part]))
        start_of_clip += length
    for index, (source, kp, enc) in enumerate(sources):
        drv_mean, drv_var = driving_kp[(index + 1) % len(sources)]
        for start in range(0, len(drv_mean), batch):
            n = min(batch, len(drv_mean) - start)
            inputs = {
                "source": source.expand(n, -1, -1, -1),
                KP_SOURCE[0]: kp["kp_mean"].expand(n, -1, -1),
                KP_SOURCE[1]: kp["kp_var"].expand(n, -1, -1, -1),
                KP_DRIVING[0]: drv_mean[start : start + n],
                KP_DRIVING[1]: drv_var[start : start + n],
            }
            feeds["dense_motion"].append({k: _np(v) for k, v in inputs.items()})
            inputs["grid"] = run("dense_motion", inputs)["grid"]
            for name in skips:
                inputs[name] = enc[name].expand(n, *enc[name].shape[1:])
            feeds["generator"].append({k: _np(v) for k, v in inputs.items()})
    return feeds


class _Reader:
    """onnxruntime.quantization's CalibrationDataReader protocol over a list of feeds."""

    def __init__(self, feeds: list[Feeds]) -> None:
        self._feeds = feeds
        self._iter: Iterator[Feeds] = iter(feeds)

    def get_next(self) -> Feeds | None:
        return next(self._iter, None)

    def rewind(self) -> None:
        self._iter = iter(self._feeds)

    def __len__(self) -> int:
        return len(self._feeds)


def _import_quantization():
    try:
        from onnxruntime import quantization
    except ImportError:
        raise DonkeyError(
            "int8 export needs ONNX Runtime's quantization tools: pip install onnxruntime"
        ) from None
    return quantization


def float_convolutions(model: onnx.ModelProto) -> list[str]:
    """Convolutions of a quantized graph that still run in float: their weight is not read
    through a DequantizeLinear (QDQ) and they are not QLinearConv (QOperator)."""
    dequantized = {o for n in model.graph.node if n.op_type == "DequantizeLinear" for o in n.output}
    return [
        n.name
        for n in model.graph.node
        if n.op_type in ("Conv", "ConvTranspose", "MatMul", "Gemm")
        and not (len(n.input) > 1 and n.input[1] in dequantized)
    ]


@contextlib.contextmanager
def _quiet_root_logger() -> Iterator[None]:
    """The quantizer logs advice ("consider pre-processing") on the root logger per graph;
    our graphs are shape-inferred and constant-folded by the exporter already."""
    logger = logging.getLogger()
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def quantize_graph(
    model: onnx.ModelProto, feeds: list[Feeds], settings: Int8Settings
) -> onnx.ModelProto:
    """One fp32 graph -> int8 (the island and every op outside `settings.ops` stay float)."""
    q = _import_quantization()
    if not feeds:
        raise DonkeyError(f"graph {model.graph.name}: no calibration inputs")
    model = onnx.ModelProto.FromString(model.SerializeToString())
    for index, node in enumerate(model.graph.node):
        if not node.name:
            node.name = f"{node.op_type}__{index}"
    island = sorted(
        fp32_island(model)
        | {n.name for n in model.graph.node if any(p in n.name for p in settings.fp32_nodes)}
    )
    quant_format = {"qdq": q.QuantFormat.QDQ, "qoperator": q.QuantFormat.QOperator}
    method = {
        "minmax": q.CalibrationMethod.MinMax,
        "average": q.CalibrationMethod.MinMax,
        "entropy": q.CalibrationMethod.Entropy,
        "percentile": q.CalibrationMethod.Percentile,
    }
    with tempfile.TemporaryDirectory(prefix="donkey-int8-") as tmp, _quiet_root_logger():
        target = Path(tmp) / "quantized.onnx"
        q.quantize_static(
            model,
            target,
            _Reader(feeds),
            quant_format=quant_format[settings.format],
            op_types_to_quantize=list(settings.ops),
            per_channel=settings.per_channel,
            reduce_range=settings.reduce_range,
            activation_type=q.QuantType.QUInt8,
            weight_type=q.QuantType.QInt8,
            nodes_to_exclude=island,
            calibrate_method=method[settings.method],
            calibration_providers=["CPUExecutionProvider"],
            extra_options={
                "CalibMovingAverage": settings.method == "average",
                "OpTypesToExcludeOutputQuantization": (
                    [] if settings.quantize_outputs else list(settings.ops)
                ),
            },
        )
        quantized = onnx.load(str(target))
    # The quantizer keeps metadata_props only sometimes; the folder's checks need them.
    del quantized.metadata_props[:]
    quantized.metadata_props.extend(model.metadata_props)
    onnx.checker.check_model(quantized)
    return quantized


def quantize_models(
    models: dict[str, onnx.ModelProto],
    networks: Networks,
    clips: ClipSet,
    settings: Int8Settings = Int8Settings(),
    log: Log = lambda _: None,
) -> Int8Result:
    """int8 copies of the graphs not in `settings.fp32_graphs`, and the manifest record."""
    if settings.format not in ("qdq", "qoperator"):
        raise DonkeyError(f"int8 format must be qdq or qoperator, got {settings.format!r}")
    feeds = calibration_feeds(networks, clips, settings.batch)
    result = Int8Result()
    for name, model in models.items():
        if name in settings.fp32_graphs:
            result.models[name] = model
            continue
        quantized = quantize_graph(model, feeds[name], settings)
        result.models[name] = quantized
        kept = float_convolutions(quantized)
        result.float_convs[name] = len(kept)
        total = sum(1 for n in model.graph.node if n.op_type == "Conv")
        log(
            f"{name}: int8 ({settings.format}), calibrated on {len(feeds[name])} batches; "
            f"{total - len(kept)} of {total} convolutions int8"
            + (f" (float: {', '.join(kept)})" if kept else "")
        )
    result.info = QuantizationInfo(
        format=settings.format,
        activations="uint8",
        weights="int8",
        per_channel=settings.per_channel,
        reduce_range=settings.reduce_range,
        calibration_method=settings.method,
        calibration_frames=clips.frames,
        calibration_data=tuple(clips.sources),
        float_convs=dict(result.float_convs),
        outputs="uint8" if settings.quantize_outputs else "float",
    )
    return result
