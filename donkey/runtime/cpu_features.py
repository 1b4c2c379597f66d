"""What the CPU can run fast: vector widths and the low-precision dot-product instructions.

bf16 and int8 only pay off when the CPU multiplies them natively. Without AVX512-BF16 or
AMX, oneDNN emulates bf16 by widening to fp32 (slower than fp32 itself); without VNNI, int8
convolutions use AVX2's u8 x s8 -> s16 multiply-adds, which do about as much per cycle as
fp32 FMAs do. `check_precision` turns that into a refusal with one line, unless the user asks
to run anyway (`DONKEY_ALLOW_SLOW_PRECISION=1`, or the CLI's `--allow-slow-precision`).

Linux (x86 and Arm) is read from /proc/cpuinfo; elsewhere the answer is "unknown" and
nothing is refused.
"""

from __future__ import annotations

import functools
import os
import platform
from dataclasses import dataclass, field
from pathlib import Path

from donkey.model.errors import DonkeyError

ALLOW_ENV = "DONKEY_ALLOW_SLOW_PRECISION"
CPUINFO = Path("/proc/cpuinfo")

# (our name, the /proc/cpuinfo flags that give it; any one suffices)
X86_FLAGS = {
    "avx2": ("avx2",),
    "avx512": ("avx512f",),
    "avx512_bf16": ("avx512_bf16",),
    "avx512_vnni": ("avx512_vnni", "avx512vnni"),
    "avx_vnni": ("avx_vnni",),
    "amx_bf16": ("amx_bf16",),
    "amx_int8": ("amx_int8",),
}
# Arm: bf16 (FEAT_BF16) multiplies bf16 natively; asimddp (SDOT) and i8mm are its int8 paths.
ARM_FLAGS = {"bf16": ("bf16",), "dotprod": ("asimddp",), "i8mm": ("i8mm",)}


@dataclass(frozen=True)
class CpuFeatures:
    """`known` is False where the features could not be read (then every flag is False)."""

    known: bool
    arch: str
    model: str = ""
    flags: frozenset[str] = field(default_factory=frozenset)

    def has(self, name: str) -> bool:
        return name in self.flags

    @property
    def fast_bf16(self) -> bool:
        return bool(self.flags & {"avx512_bf16", "amx_bf16", "bf16"})

    @property
    def fast_int8(self) -> bool:
        """A dot-product instruction for int8 (VNNI, AMX, Arm SDOT/I8MM)."""
        return bool(self.flags & {"avx512_vnni", "avx_vnni", "amx_int8", "dotprod", "i8mm"})

    def describe(self) -> str:
        """One line, e.g. 'CPU: AMD EPYC (x86_64): AVX2; no AVX-512, no AVX512-BF16, ...'."""
        head = f"CPU: {self.model or 'unknown model'} ({self.arch})"
        if not self.known:
            return f"{head}: instruction set extensions unknown on this platform"
        names = ARM_NAMES if self.arch in ARM_ARCHES else X86_NAMES
        present = [label for key, label in names if self.has(key)]
        absent = [f"no {label}" for key, label in names if not self.has(key)]
        verdict = (
            f"bf16 {'native' if self.fast_bf16 else 'emulated (slower than fp32)'}, "
            f"int8 {'with dot-product instructions' if self.fast_int8 else 'without VNNI'}"
        )
        return f"{head}: {', '.join(present + absent) or 'no vector extensions'}; {verdict}"


X86_NAMES = (
    ("avx2", "AVX2"),
    ("avx512", "AVX-512"),
    ("avx512_bf16", "AVX512-BF16"),
    ("avx512_vnni", "AVX512-VNNI"),
    ("avx_vnni", "AVX-VNNI"),
    ("amx_bf16", "AMX-BF16"),
    ("amx_int8", "AMX-INT8"),
)
ARM_NAMES = (("bf16", "BF16"), ("dotprod", "DotProd"), ("i8mm", "I8MM"))
ARM_ARCHES = ("aarch64", "arm64")


def parse_cpuinfo(text: str, arch: str = "x86_64") -> CpuFeatures:
    """Features from the text of /proc/cpuinfo (the first processor's block decides)."""
    raw: set[str] = set()
    model = ""
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if not sep:
            if raw and not line.strip():
                break  # end of the first processor's block
            continue
        key = key.strip().lower()
        if key in ("flags", "features") and not raw:
            raw = set(value.split())
        elif key in ("model name", "hardware", "cpu model") and not model:
            model = " ".join(value.split())
    if not raw:
        return CpuFeatures(known=False, arch=arch, model=model)
    table = ARM_FLAGS if arch in ARM_ARCHES else X86_FLAGS
    flags = frozenset(name for name, spellings in table.items() if raw & set(spellings))
    return CpuFeatures(known=True, arch=arch, model=model, flags=flags)


@functools.cache
def cpu_features() -> CpuFeatures:
    """This machine's CPU (read once per process)."""
    arch = platform.machine().lower() or "unknown"
    if platform.system() == "Linux":
        try:
            return parse_cpuinfo(CPUINFO.read_text(errors="replace"), arch)
        except OSError:
            pass
    return CpuFeatures(known=False, arch=arch, model=platform.processor())


def describe() -> str:
    """One line for `donkey --version` and `donkey bench`."""
    return cpu_features().describe()


def allow_slow_precision() -> bool:
    return os.environ.get(ALLOW_ENV, "").strip().lower() in ("1", "true", "yes")


def check_precision(
    precision: str, features: CpuFeatures | None = None, allow: bool = False
) -> None:
    """Refuses (one line) a CPU precision this CPU would emulate: bf16 without AVX512-BF16/AMX
    (or Arm BF16); int8 on an x86 CPU with neither VNNI nor AVX2. Unknown CPUs are not
    refused. `allow` or the environment variable skips the check."""
    features = features or cpu_features()
    if allow or allow_slow_precision() or not features.known:
        return
    if precision == "bf16" and not features.fast_bf16:
        needs = "BF16" if features.arch in ARM_ARCHES else "AVX512-BF16 or AMX-BF16"
        raise DonkeyError(
            f"--precision bf16 on this CPU would be emulated and slower than fp32 (it lacks "
            f"{needs}); use fp32, or pass --allow-slow-precision (or set {ALLOW_ENV}=1) to "
            "run it anyway"
        )
    x86_slow_int8 = features.arch not in ARM_ARCHES and not features.has("avx2")
    if precision == "int8" and not features.fast_int8 and x86_slow_int8:
        raise DonkeyError(
            "--precision int8 on this CPU would be slower than fp32 (it has neither VNNI nor "
            f"AVX2); use fp32, or pass --allow-slow-precision (or set {ALLOW_ENV}=1) to run "
            "it anyway"
        )
