#!/usr/bin/env python3
"""One command for a machine with an NVIDIA GPU: the gpu-marked tests, then `donkey bench`
for every engine installed there, written to benchmarks/gpu-<gpu name>.json.

    make gpu-check                                   # or, from the source tree, no install:
    PYTHONPATH=. python3 scripts/gpu_check.py [--configs small,mgif] [--budget 570]

Engines benchmarked when present: PyTorch fp32/fp16 on CUDA, ONNX Runtime with its CUDA and
TensorRT execution providers (fp32/fp16 graphs), TensorRT engines (fp32/fp16); at batch 1, 8
and 64, random weights of each config (speed does not depend on the weights). Each bench case
runs in its own process (a crash or a hung engine build costs that case only) through the
functions `donkey bench` uses, which need neither torchvision nor safetensors. The whole check
keeps to --budget seconds (default 570: under 10 minutes); cases that no longer fit are listed
as not run.

Exit status: 0 when the tests passed and every case ran; 1 when something failed or could not
run (the JSON says what); 2 when there is no GPU (nothing is checked, nothing written).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BATCHES = (1, 8, 64)
TEST_TIMEOUT_S = 240
CASE_TIMEOUT_S = 180
MIN_CASE_S = 20  # a case is not started with less time than this left


def gpu_slug(name: str) -> str:
    """'NVIDIA H100 80GB HBM3' -> 'nvidia-h100-80gb-hbm3' (a file-name-safe GPU name)."""
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "gpu"


def plan_cases(
    ort_providers: list[str], has_tensorrt: bool, configs: list[str]
) -> tuple[list[dict], list[dict]]:
    """(cases to run, engines not present with the reason), cheap engines first."""
    engines: list[tuple[str, str | None]] = [("torch", None)]
    absent = []
    for provider, short in (
        ("CUDAExecutionProvider", "cuda"),
        ("TensorrtExecutionProvider", "trt"),
    ):
        if provider in ort_providers:
            engines.append(("ort", short))
        else:
            absent.append({"case": f"ort/{short}", "reason": f"onnxruntime offers no {provider}"})
    if has_tensorrt:
        engines.append(("trt", None))
    else:
        absent.append({"case": "trt", "reason": "the tensorrt module is not importable"})
    cases = [
        {"config": config, "engine": engine, "provider": provider, "precision": precision}
        for config in configs
        for engine, provider in engines
        for precision in ("fp32", "fp16")
    ]
    return cases, absent


def case_name(case: dict) -> str:
    engine = case["engine"] + (f"/{case['provider']}" if case["provider"] else "")
    return f"{case['config']} {engine} {case['precision']}"


def run_case(case: dict, batches: list[int], device: str, runs: int) -> list[dict]:
    """One bench case in this process: random weights of the config, then `donkey bench`'s loop."""
    import torch

    from donkey.app.models import load_model
    from donkey.artifacts.settings import BatchRange
    from donkey.model.checkpoint import save_checkpoint
    from donkey.model.config import load_config
    from donkey.model.networks import Networks
    from donkey.runtime.backend import LoadOptions
    from donkey.runtime.bench import run_bench

    torch.set_flush_denormal(True)  # as the `donkey` command does at start-up
    threads = os.cpu_count() or 1
    config = ROOT / "configs" / f"{case['config']}.yaml"
    with tempfile.TemporaryDirectory(prefix="donkey-gpu-check-") as tmp:
        torch.manual_seed(0)
        ckpt = save_checkpoint(Path(tmp) / "random.ckpt", Networks(load_config(config).model))
        providers = None
        if case["provider"]:
            providers = tuple(dict.fromkeys([case["provider"], "cpu"]))
        options = LoadOptions(threads=threads, ort_providers=providers)
        low, top = min(batches), max(batches)
        batch = BatchRange(low, min(max(8, low), top), top)  # as `donkey bench` builds it
        model = load_model(ckpt, case["engine"], device, case["precision"], options, batch)
        if case["provider"]:
            for graph in model.graphs.values():
                graph.activate()
            used = {g.providers[0] for g in model.graphs.values()}
            wanted = {
                "cuda": "CUDAExecutionProvider",
                "trt": "TensorrtExecutionProvider",
                "cpu": "CPUExecutionProvider",
            }
            if used != {wanted[case["provider"]]}:
                raise RuntimeError(
                    f"ONNX Runtime ran on {sorted(used)}, not the provider asked for"
                )
        rows = run_bench(
            lambda _engine, _precision: model,
            [(case["engine"], case["precision"])],
            batches,
            threads,
            runs,
        )
    return [dict(r.as_dict(), config=case["config"], provider=case["provider"]) for r in rows]


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1][:300] if lines else ""


def _versions() -> dict:
    import torch

    info: dict = {
        "gpu": torch.cuda.get_device_name(0),
        "gpus": torch.cuda.device_count(),
        "compute_capability": "{}.{}".format(*torch.cuda.get_device_capability(0)),
        "memory_gib": round(torch.cuda.get_device_properties(0).total_memory / 2**30, 1),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "python": platform.python_version(),
        "cpu_threads": os.cpu_count(),
    }
    try:
        smi = subprocess.run(
            ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
            capture_output=True, text=True, timeout=20,
        )  # fmt: skip
        info["driver"] = smi.stdout.strip().splitlines()[0] if smi.returncode == 0 else None
    except (OSError, subprocess.TimeoutExpired, IndexError):
        info["driver"] = None
    try:
        import onnxruntime

        info["onnxruntime"] = onnxruntime.__version__
        info["ort_providers"] = list(onnxruntime.get_available_providers())
    except ImportError:
        info["onnxruntime"], info["ort_providers"] = None, []
    info["tensorrt"] = None
    if importlib.util.find_spec("tensorrt") is not None:
        try:
            import tensorrt

            info["tensorrt"] = tensorrt.__version__
        except Exception as exc:  # noqa: BLE001 - a broken install is reported, not fatal
            info["tensorrt_error"] = _last_line(str(exc))
    return info


def _run_tests(timeout: float) -> dict:
    if importlib.util.find_spec("pytest") is None:
        return {"status": "not run", "reason": "pytest is not installed"}
    cmd = [
        sys.executable, "-m", "pytest", "-m", "gpu", "-q", "-p", "no:cacheprovider",
        "--continue-on-collection-errors", "tests",
    ]  # fmt: skip
    started = time.monotonic()
    try:
        proc = _run(cmd, timeout)
    except subprocess.TimeoutExpired:
        return {"status": "failed", "reason": f"timed out after {timeout:.0f}s"}
    summary = _last_line(proc.stdout)
    return {
        "status": "passed" if proc.returncode == 0 else "failed",
        "summary": summary,
        "seconds": round(time.monotonic() - started, 1),
        "output_tail": proc.stdout[-4000:] if proc.returncode else "",
    }


def _run(cmd: list[str], timeout: float) -> subprocess.CompletedProcess:
    """subprocess.run, but a timeout kills the child's whole process group (a test that
    started torchrun, an engine build) so nothing is left holding the GPU."""
    proc = subprocess.Popen(
        cmd, cwd=ROOT, env=_child_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, start_new_session=True,
    )  # fmt: skip
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise
    return subprocess.CompletedProcess(cmd, proc.returncode, stdout, stderr)


def _child_env() -> dict:
    path = os.environ.get("PYTHONPATH")
    return dict(os.environ, PYTHONPATH=f"{ROOT}{os.pathsep}{path}" if path else str(ROOT))


def _run_case_process(
    case: dict, batches: list[int], runs: int, timeout: float, device: str = "cuda"
) -> dict:
    with tempfile.TemporaryDirectory(prefix="donkey-gpu-case-") as tmp:
        result = Path(tmp) / "rows.json"
        cmd = [
            sys.executable, str(Path(__file__).resolve()), "--case", json.dumps(case),
            "--batches", ",".join(map(str, batches)), "--runs", str(runs), "--rows", str(result),
            "--device", device,
        ]  # fmt: skip
        try:
            proc = _run(cmd, timeout)
        except subprocess.TimeoutExpired:
            return {"error": f"timed out after {timeout:.0f}s"}
        if proc.returncode != 0 or not result.is_file():
            return {"error": _last_line(proc.stderr) or f"exit status {proc.returncode}"}
        return {"rows": json.loads(result.read_text())}


def check(configs: list[str], budget: float, out_dir: Path, runs: int, tests: bool) -> int:
    started = time.monotonic()
    info = _versions()
    report: dict = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), **info}
    print(f"gpu-check: {info['gpu']} x{info['gpus']}, torch {info['torch']} (CUDA {info['cuda']})")
    if tests:
        report["tests"] = _run_tests(min(TEST_TIMEOUT_S, budget / 2))
        print(
            f"gpu tests: {report['tests']['status']} {report['tests'].get('summary') or report['tests'].get('reason', '')}"
        )
    else:
        report["tests"] = {"status": "not run", "reason": "--no-tests"}
    cases, absent = plan_cases(info["ort_providers"], info["tensorrt"] is not None, configs)
    report.update(bench=[], failed=[], not_run=list(absent))
    for case in cases:
        left = budget - (time.monotonic() - started)
        if left < MIN_CASE_S:
            report["not_run"].append({"case": case_name(case), "reason": "time budget spent"})
            continue
        outcome = _run_case_process(case, list(BATCHES), runs, min(CASE_TIMEOUT_S, left - 5))
        if "error" in outcome:
            report["failed"].append({"case": case_name(case), "reason": outcome["error"]})
            print(f"{case_name(case)}: FAILED {outcome['error']}")
            continue
        report["bench"].extend(outcome["rows"])
        cells = ", ".join(f"batch {r['batch']} {r['fps']:.0f}" for r in outcome["rows"])
        print(f"{case_name(case)}: frames/s {cells}")
    report["seconds"] = round(time.monotonic() - started, 1)
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / f"gpu-{gpu_slug(info['gpu'])}.json"
    tmp = target.with_name(f".{target.name}.tmp")
    tmp.write_text(json.dumps(report, indent=1) + "\n")
    os.replace(tmp, target)
    for entry in report["not_run"]:
        print(f"not run: {entry['case']}: {entry['reason']}")
    ok = report["tests"]["status"] == "passed" and not report["failed"]
    print(f"wrote {target} in {report['seconds']:.0f}s: {'all passed' if ok else 'NOT all passed'}")
    return 0 if ok else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--configs", default="small,mgif", help="configs/<name>.yaml to bench")
    parser.add_argument("--budget", type=float, default=570.0, help="seconds for the whole check")
    parser.add_argument("--runs", type=int, default=10, help="timed runs per batch size")
    parser.add_argument("--out-dir", type=Path, default=ROOT / "benchmarks")
    parser.add_argument("--no-tests", action="store_true", help="bench only")
    # One bench case in this process (what the check runs in a child process).
    parser.add_argument("--case", help=argparse.SUPPRESS)
    parser.add_argument("--batches", default=",".join(map(str, BATCHES)), help=argparse.SUPPRESS)
    parser.add_argument("--rows", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--device", default="cuda", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    try:
        import torch
    except ImportError as exc:
        print(f"gpu-check: PyTorch is not importable ({exc})", file=sys.stderr)
        return 2
    if args.case:
        batches = [int(b) for b in args.batches.split(",")]
        try:
            rows = run_case(json.loads(args.case), batches, args.device, args.runs)
        except Exception as exc:  # noqa: BLE001 - the parent records one line per failed case
            print(f"{type(exc).__name__}: {_last_line(str(exc))}", file=sys.stderr)
            return 1
        args.rows.write_text(json.dumps(rows))
        return 0
    if not torch.cuda.is_available():
        print(
            f"gpu-check: no NVIDIA GPU present (PyTorch {torch.__version__} sees no CUDA "
            "device); nothing checked",
            file=sys.stderr,
        )
        return 2
    configs = [c.strip() for c in args.configs.split(",") if c.strip()]
    missing = [c for c in configs if not (ROOT / "configs" / f"{c}.yaml").is_file()]
    if missing:
        print(f"gpu-check: no configs/{missing[0]}.yaml", file=sys.stderr)
        return 2
    return check(configs, args.budget, args.out_dir, args.runs, not args.no_tests)


if __name__ == "__main__":
    sys.exit(main())
