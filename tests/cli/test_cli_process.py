import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

THP = Path("/sys/kernel/mm/transparent_hugepage/enabled")

# Imports the CLI package first (as the `donkey` command does), then counts the page faults
# of five 40 MB tensors allocated, filled and freed in turn.
PROBE = """
import resource
import donkey.cli
import torch
count = 10 * 1024 * 1024
torch.empty(count).fill_(1.0)
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(5):
    torch.empty(count).fill_(2.0)
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def _faults(env_value: str | None) -> int:
    env = {k: v for k, v in os.environ.items() if k != "THP_MEM_ALLOC_ENABLE"}
    if env_value is not None:
        env["THP_MEM_ALLOC_ENABLE"] = env_value
    proc = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, cwd=ROOT, env=env
    )
    assert proc.returncode == 0, proc.stderr
    return int(proc.stdout.split()[-1])


@pytest.mark.skipif(
    not THP.exists() or "[never]" in THP.read_text(),
    reason="transparent huge pages are off on this machine",
)
def test_cli_large_tensors_use_huge_pages():
    pages = 5 * 10 * 1024 * 1024 * 4 // 4096  # 4 KB pages touched by the five tensors
    assert _faults("0") > pages // 2  # the user's explicit choice is kept: 4 KB faults
    assert _faults(None) < pages // 10  # the CLI's default: huge pages
