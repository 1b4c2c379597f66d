"""The `donkey` command line (Typer, one module per command)."""

import os

# Before torch is imported: PyTorch's CPU allocator does not cache, so every large activation
# is a fresh mapping whose 4 KB pages fault in on first touch, which on virtual machines costs
# microseconds per page (torch CPU inference at batch 32 spent 45% of its time there). With
# this, allocations of 2 MB and more use transparent huge pages: five 40 MB tensors fault
# 2,665 times instead of 51,200, and batch 32 runs at 111 frames/s instead of 63 on the
# 2-core development machine.
os.environ.setdefault("THP_MEM_ALLOC_ENABLE", "1")
