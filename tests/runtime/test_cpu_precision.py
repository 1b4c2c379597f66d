"""CPU features, the bf16 refusal, and torch bf16 on the tiny model (fp32 islands kept)."""

from __future__ import annotations

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from donkey.cli.app import app
from donkey.model.errors import DonkeyError
from donkey.runtime.backend import LoadOptions
from donkey.runtime.cpu_features import (
    ALLOW_ENV,
    CpuFeatures,
    check_precision,
    cpu_features,
    parse_cpuinfo,
)
from donkey.runtime.loader import load_model
from donkey.runtime.quality import measure_quality

EPYC_ZEN3 = """processor\t: 0
vendor_id\t: AuthenticAMD
model name\t: AMD EPYC 7B13
flags\t\t: fpu vme sse sse2 ssse3 fma sse4_1 sse4_2 avx f16c avx2 bmi2 sha_ni vaes

processor\t: 1
model name\t: AMD EPYC 7B13
flags\t\t: fpu avx2 avx512f avx512_bf16
"""
SAPPHIRE_RAPIDS = """processor : 0
model name : Intel(R) Xeon(R) Platinum 8480+
flags : fpu avx2 avx512f avx512bw avx512_vnni avx512_bf16 amx_bf16 amx_tile amx_int8 avx_vnni
"""
CASCADE_LAKE = """model name : Intel(R) Xeon(R) Gold 6248
flags : avx2 avx512f avx512bw avx512_vnni
"""
GRAVITON3 = """processor\t: 0
BogoMIPS\t: 2100.00
Features\t: fp asimd evtstrm aes crc32 asimddp sha512 sve i8mm bf16 dcpodp
CPU implementer\t: 0x41
"""


def test_cpuinfo_flags_are_parsed_from_the_first_processor_only():
    zen3 = parse_cpuinfo(EPYC_ZEN3)
    assert zen3.known and zen3.model == "AMD EPYC 7B13"
    assert zen3.flags == {"avx2"}  # processor 1's AVX-512 lines are not read
    assert not zen3.fast_bf16 and not zen3.fast_int8
    spr = parse_cpuinfo(SAPPHIRE_RAPIDS)
    assert spr.flags == {
        "avx2",
        "avx512",
        "avx512_bf16",
        "avx512_vnni",
        "avx_vnni",
        "amx_bf16",
        "amx_int8",
    }
    assert spr.fast_bf16 and spr.fast_int8
    clx = parse_cpuinfo(CASCADE_LAKE)
    assert clx.fast_int8 and not clx.fast_bf16  # VNNI, but bf16 only from Cooper Lake on
    arm = parse_cpuinfo(GRAVITON3, arch="aarch64")
    assert arm.flags == {"bf16", "dotprod", "i8mm"} and arm.fast_bf16 and arm.fast_int8


def test_describe_is_one_line_naming_what_is_missing():
    line = parse_cpuinfo(EPYC_ZEN3).describe()
    assert "\n" not in line and line.startswith("CPU: AMD EPYC 7B13 (x86_64): AVX2, no AVX-512")
    assert "no AVX512-BF16" in line and "bf16 emulated (slower than fp32)" in line
    assert "int8 without VNNI" in line
    spr = parse_cpuinfo(SAPPHIRE_RAPIDS).describe()
    assert "AMX-BF16" in spr and "bf16 native" in spr and "no " not in spr
    unknown = parse_cpuinfo("garbage without colons\n\n")
    assert not unknown.known and "unknown on this platform" in unknown.describe()
    assert cpu_features().describe().startswith("CPU: ")  # this machine, whatever it is


def test_bf16_is_refused_where_it_would_be_emulated(monkeypatch):
    monkeypatch.delenv(ALLOW_ENV, raising=False)
    zen3 = parse_cpuinfo(EPYC_ZEN3)
    with pytest.raises(DonkeyError) as caught:
        check_precision("bf16", zen3)
    message = str(caught.value)
    assert "\n" not in message
    assert message == (
        "--precision bf16 on this CPU would be emulated and slower than fp32 (it lacks "
        "AVX512-BF16 or AMX-BF16); use fp32, or pass --allow-slow-precision (or set "
        "DONKEY_ALLOW_SLOW_PRECISION=1) to run it anyway"
    )
    check_precision("bf16", zen3, allow=True)
    check_precision("int8", zen3)  # AVX2 u8 x s8 kernels: not refused
    check_precision("bf16", parse_cpuinfo(SAPPHIRE_RAPIDS))
    check_precision("bf16", CpuFeatures(known=False, arch="arm64"))  # cannot tell: run
    no_avx2 = CpuFeatures(known=True, arch="x86_64", flags=frozenset())
    with pytest.raises(DonkeyError, match="int8 on this CPU would be slower than fp32"):
        check_precision("int8", no_avx2)
    monkeypatch.setenv(ALLOW_ENV, "1")
    check_precision("bf16", zen3)


def test_the_cli_refuses_bf16_in_one_line_on_a_cpu_without_it(runner, tiny_ckpt, monkeypatch):
    monkeypatch.delenv(ALLOW_ENV, raising=False)
    monkeypatch.setattr(
        "donkey.runtime.torch_backend.check_precision",
        lambda precision, allow=False: check_precision(
            precision, parse_cpuinfo(EPYC_ZEN3), allow=allow
        ),
    )
    args = ["bench", "--model", str(tiny_ckpt), "--engine", "torch", "--precision", "bf16"]
    args += ["--batch-sizes", "1", "--device", "cpu", "--runs", "1"]
    result = runner.invoke(app, args)
    lines = result.output.strip().splitlines()
    assert result.exit_code == 1 and len(lines) == 1, result.output
    assert lines[0].startswith("error: --precision bf16 on this CPU would be emulated")
    result = runner.invoke(app, args + ["--allow-slow-precision"])
    assert result.exit_code == 0, result.output
    assert "bf16" in result.output and "CPU: " in result.output


def test_precisions_each_engine_cannot_run_are_refused(tiny_ckpt):
    with pytest.raises(
        DonkeyError, match="--precision int8 runs on --engine ort or openvino, not torch"
    ):
        load_model(tiny_ckpt, "torch", "cpu", "int8")
    with pytest.raises(DonkeyError, match="--precision bf16 runs on --engine torch, not ort"):
        load_model(tiny_ckpt, "ort", "cpu", "bf16")
    with pytest.raises(DonkeyError, match="precision must be one of fp32, fp16, bf16, int8"):
        load_model(tiny_ckpt, "torch", "cpu", "fp8")


class _Dtypes(TorchDispatchMode):
    """Records the dtypes each aten op receives (after autocast has cast them)."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: dict[str, set[torch.dtype]] = {}

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = func.__name__.split(".")[0]
        for arg in args:
            if isinstance(arg, torch.Tensor) and arg.is_floating_point():
                self.seen.setdefault(name, set()).add(arg.dtype)
        return func(*args, **(kwargs or {}))


def test_torch_bf16_runs_convolutions_in_bf16_and_keeps_the_islands_fp32(tiny_ckpt, tiny_config):
    from donkey.model.spec import example_inputs

    model = load_model(tiny_ckpt, "torch", "cpu", "bf16", LoadOptions(allow_slow_precision=True))
    assert model.precision == {
        "kp_detector": "fp32",
        "dense_motion": "bf16",
        "source_encoder": "bf16",
        "generator": "bf16",
    }
    for name in ("dense_motion", "generator", "kp_detector"):
        backend = model.graphs[name]
        feeds = example_inputs(backend.spec, batch=2, seed=1)
        with _Dtypes() as mode:
            outputs = backend.infer(feeds)
        assert all(t.dtype == torch.float32 for t in outputs.values())
        seen = mode.seen
        if name == "kp_detector":
            assert seen["conv2d"] == {torch.float32}
            assert seen["softmax"] == {torch.float32}
            continue
        assert seen["conv2d"] == {torch.bfloat16}, seen["conv2d"]
        assert seen["grid_sampler"] == {torch.float32}
        assert seen["exp"] == {torch.float32}  # the gaussians
        if name == "dense_motion":
            assert seen["softmax"] == {torch.float32}  # the mask softmax


def test_torch_bf16_animation_stays_close_to_fp32(tiny_ckpt):
    """The tiny random model: its frames sit near 0.5 with little contrast, so errors are
    smaller than a trained model's (measured here: 61 dB; the default model: see
    benchmarks/README.md). The bound is 45 dB; keypoints are fp32, so identical."""
    from donkey.data.calibration import clip_set

    reference = load_model(tiny_ckpt, "torch", "cpu")
    bf16 = load_model(tiny_ckpt, "torch", "cpu", "bf16", LoadOptions(allow_slow_precision=True))
    clips = clip_set(32, None, "val", real=2, synthetic=1, frames=4, seed=1)
    report = measure_quality(reference, bf16, clips)
    assert report.frames == 12 and report.clips == 3
    assert 45.0 <= report.psnr_db < 200.0, report.line()  # not bit-equal: bf16 did run
    assert report.kp_max_abs == 0.0


def test_python_api_passes_allow_slow_precision(tiny_ckpt, monkeypatch):
    import donkey
    from donkey.model.errors import DonkeyError

    monkeypatch.delenv(ALLOW_ENV, raising=False)
    monkeypatch.setattr(
        "donkey.runtime.torch_backend.check_precision",
        lambda precision, allow=False: check_precision(
            precision, parse_cpuinfo(EPYC_ZEN3), allow=allow
        ),
    )
    with pytest.raises(DonkeyError, match="--precision bf16 on this CPU would be emulated"):
        donkey.load_model(tiny_ckpt, "torch", "cpu", "bf16")
    loaded = donkey.load_model(tiny_ckpt, "torch", "cpu", "bf16", allow_slow_precision=True)
    assert set(loaded.precision.values()) == {"bf16", "fp32"}  # the keypoint detector: fp32
