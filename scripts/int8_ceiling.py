"""How fast int8 could be, per graph: ONNX Runtime and (if installed) OpenVINO, fp32 against the
shipped int8 recipe and against every convolution in int8 (benchmarks/README.md, issue 18).

    python scripts/int8_ceiling.py OUT_DIR [--model M] [--calibration DIR] [--reps 15] [--quality]
        [--method minmax|average] [--uint8-outputs] [--no-timing] [--float-nodes PART,PART]
        [--variants fp32,recipe,all,all-but-kp]

Writes four export folders under OUT_DIR (fp32, recipe, all, all-but-kp), then times each graph at batch 8
with 2 threads, all variants alternately in one process (the best of --reps runs each), on random
inputs of the graphs' shapes. --quality also scores each int8 folder against torch fp32 the way
`donkey export --int8 --check` does, on ONNX Runtime and OpenVINO (the `openvino` extra).
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import time
from pathlib import Path

import numpy as np

from donkey.data.calibration import clip_set
from donkey.export.int8 import Int8Settings
from donkey.export.onnx_folder import export_onnx
from donkey.model.checkpoint import load_checkpoint
from donkey.runtime.loader import DEFAULT_MODEL

GRAPHS = ("kp_detector", "dense_motion", "generator")
VARIANTS = {
    "fp32": None,
    "recipe": Int8Settings(),
    "all": Int8Settings(fp32_graphs=(), fp32_nodes=()),
    # every convolution but the keypoint detector's (train.qat_float: [kp_detector])
    "all-but-kp": Int8Settings(fp32_nodes=()),
}
BATCH, THREADS = 8, 2


def _ort_runner(path: Path):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = THREADS, 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    shapes = {
        i.name: [d if isinstance(d, int) else BATCH for d in i.shape] for i in session.get_inputs()
    }
    return lambda feeds: session.run(None, feeds), shapes


def _openvino_runner(path: Path):
    import openvino as ov

    core = ov.Core()
    model = core.read_model(str(path))
    shapes = {
        i.get_any_name(): [BATCH if d.is_dynamic else d.get_length() for d in i.get_partial_shape()]
        for i in model.inputs
    }
    model.reshape(shapes)
    config = {"INFERENCE_NUM_THREADS": THREADS, "PERFORMANCE_HINT": "LATENCY"}
    config["INFERENCE_PRECISION_HINT"] = "f32"  # no bf16 emulation on CPUs without it
    request = core.compile_model(model, "CPU", config).create_infer_request()
    return request.infer, shapes


def time_graphs(out: Path, runtime: str, reps: int) -> None:
    make = _ort_runner if runtime == "onnxruntime" else _openvino_runner
    runners = {(v, g): make(out / v / f"{g}.onnx") for v in VARIANTS for g in GRAPHS}
    rng = np.random.default_rng(0)
    feeds = {
        g: {n: rng.random(s, dtype=np.float32) for n, s in runners[("fp32", g)][1].items()}
        for g in GRAPHS
    }
    best = dict.fromkeys(runners, float("inf"))
    for _ in range(reps):
        for key, (run, _) in runners.items():
            start = time.perf_counter()
            run(feeds[key[1]])
            best[key] = min(best[key], time.perf_counter() - start)
    base = sum(best[("fp32", g)] for g in GRAPHS)
    for variant in VARIANTS:
        cells = " ".join(f"{g} {best[(variant, g)] * 1e3:.1f}" for g in GRAPHS)
        total = sum(best[(variant, g)] for g in GRAPHS)
        print(f"{runtime} {variant}: {cells}; sum {total * 1e3:.1f} ms, {base / total:.2f}x fp32")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    parser.add_argument("--calibration", type=Path, help="video folder (its train split)")
    parser.add_argument("--reps", type=int, default=15)
    parser.add_argument("--quality", action="store_true")
    parser.add_argument(
        "--method", default=Int8Settings.method, help="calibration: minmax or average"
    )
    parser.add_argument("--no-timing", action="store_true")
    parser.add_argument(
        "--uint8-outputs", action="store_true", help="round convolution outputs too (before v2)"
    )
    parser.add_argument("--variants", default=",".join(VARIANTS), help="which to write and run")
    parser.add_argument(
        "--float-nodes",
        default="",
        help="comma-separated ONNX node-name parts all-but-kp also keeps float "
        "(scripts/int8_sensitivity.py names the costly ones)",
    )
    args = parser.parse_args()
    size = load_checkpoint(args.model).model_config.image_size
    clips = clip_set(size, args.calibration, "train")
    floats = tuple(part for part in args.float_nodes.split(",") if part)
    VARIANTS["all-but-kp"] = dataclasses.replace(VARIANTS["all-but-kp"], fp32_nodes=floats)
    for name in [v for v in VARIANTS if v not in args.variants.split(",")]:
        del VARIANTS[name]
    for variant, settings in VARIANTS.items():
        if settings is not None:
            settings = dataclasses.replace(
                settings, method=args.method, quantize_outputs=args.uint8_outputs
            )
        export_onnx(
            args.model, args.out / variant, int8=settings, calibration=clips, overwrite=True
        )
    openvino = importlib.util.find_spec("openvino") is not None
    if not args.no_timing:
        time_graphs(args.out, "onnxruntime", args.reps)
        if openvino:
            time_graphs(args.out, "openvino", args.reps)
        else:
            print("openvino: not installed (pip install openvino), not timed")
    if args.quality:
        from donkey.runtime.backend import LoadOptions
        from donkey.runtime.loader import load_model
        from donkey.runtime.quality import measure_quality

        reference = load_model(args.model, "torch", "cpu")
        held_out = clip_set(size, args.calibration, "val", seed=1)
        options = LoadOptions(allow_slow_precision=True)
        for engine in ("ort", "openvino") if openvino else ("ort",):
            for variant in [v for v in VARIANTS if v != "fp32"]:
                other = load_model(args.out / variant, engine, "cpu", "int8", options=options)
                report = measure_quality(reference, other, held_out)
                print(f"quality {engine} {variant}: {report.line()}", flush=True)


if __name__ == "__main__":
    main()
