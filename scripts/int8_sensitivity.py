"""Which convolutions int8 hurts: PyTorch's rounding (model/fake_quant.py) with the static,
calibrated input ranges the export uses, one convolution at a time, then all but the worst k.

    python scripts/int8_sensitivity.py [--model M] [--calibration DIR] [--method average]
        [--val-batches 16] [--top 8]

Everything but the keypoint detector is scored end to end (dense motion, source encoder and
generator rounded together, as the export runs them), as PSNR of the animated frames against
fp32 PyTorch on held-out clips. Each convolution's share of the multiply-adds says what keeping
it float would cost in speed. benchmarks/README.md (issue 18) has the results.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import torch
from torch import nn

from donkey.data.calibration import clip_set
from donkey.export.int8 import calibration_feeds
from donkey.model.checkpoint import build_networks, load_checkpoint
from donkey.model.fake_quant import disable_fake_quant, enable_fake_quant
from donkey.model.graphs import build_graphs, run_graph
from donkey.model.spec import skip_names
from donkey.runtime.loader import DEFAULT_MODEL

GRAPHS = ("dense_motion", "source_encoder", "generator")


def _tensors(feed: dict) -> dict[str, torch.Tensor]:
    return {k: torch.from_numpy(v) for k, v in feed.items()}


class Pipeline:
    """Dense motion, source encoder and generator on the generator's held-out feeds, with grid
    and skips recomputed (so rounding in the first two reaches the frames)."""

    def __init__(self, networks: nn.Module, feeds: dict[str, list]) -> None:
        self.graphs = build_graphs(networks)
        self.skips = skip_names(networks.config)
        self.feeds = feeds

    def run(self, batches: int) -> list[torch.Tensor]:
        outs = []
        with torch.inference_mode():
            for dm_feed, gen_feed in list(zip(self.feeds["dense_motion"], self.feeds["generator"]))[
                :batches
            ]:
                module, spec = self.graphs["dense_motion"]
                grid = run_graph(module, spec, _tensors(dm_feed))["grid"]
                inputs = _tensors(gen_feed)
                module, spec = self.graphs["source_encoder"]
                skips = run_graph(module, spec, {"source": inputs["source"]})
                inputs["grid"] = grid
                inputs.update({k: skips[k] for k in self.skips})
                module, spec = self.graphs["generator"]
                outs.append(next(iter(run_graph(module, spec, inputs).values())))
        return outs


def psnr(reference: list[torch.Tensor], other: list[torch.Tensor]) -> float:
    mse = sum(float(((a - b) ** 2).sum()) for a, b in zip(reference, other))
    count = sum(a.numel() for a in reference)
    return 10 * math.log10(1.0 / max(mse / count, 1e-20))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    parser.add_argument("--calibration", type=Path, help="video folder (its train split)")
    parser.add_argument("--method", default="average", choices=("minmax", "average"))
    parser.add_argument("--val-batches", type=int, default=16)
    parser.add_argument("--top", type=int, default=8)
    args = parser.parse_args()
    torch.set_num_threads(2)
    ckpt = load_checkpoint(args.model)
    networks = build_networks(ckpt).eval()
    size = ckpt.model_config.image_size
    cal = calibration_feeds(networks, clip_set(size, args.calibration, "train"))
    val = calibration_feeds(networks, clip_set(size, args.calibration, "val", seed=1))
    gen = networks.generator
    convs = {n: m for n, m in gen.named_modules() if isinstance(m, nn.Conv2d)}

    # Input ranges per convolution over the calibration feeds, and multiply-adds per frame.
    lows: dict[str, list[float]] = {n: [] for n in convs}
    highs: dict[str, list[float]] = {n: [] for n in convs}
    macs: dict[str, int] = {}

    def hook(name):
        def record(module, inputs, output):
            x = inputs[0]
            lows[name].append(float(x.min()))
            highs[name].append(float(x.max()))
            k = module.kernel_size[0] * module.kernel_size[1] * module.in_channels // module.groups
            macs[name] = output[0].numel() * k

        return record

    handles = [m.register_forward_hook(hook(n)) for n, m in convs.items()]
    Pipeline(networks, cal).run(len(cal["generator"]))
    for h in handles:
        h.remove()
    reduce = (lambda v: sum(v) / len(v)) if args.method == "average" else None
    bounds = {
        n: torch.tensor(
            [reduce(lows[n]), reduce(highs[n])] if reduce else [min(lows[n]), max(highs[n])]
        )
        for n in convs
    }
    total_macs = sum(macs.values())

    pipeline = Pipeline(networks, val)
    reference = pipeline.run(args.val_batches)

    def quantized(names) -> float:
        for n in names:
            enable_fake_quant(convs[n])
            convs[n].donkey_input_range.bounds = bounds[n]
        try:
            return psnr(reference, pipeline.run(args.val_batches))
        finally:
            for n in names:
                disable_fake_quant(convs[n])

    print(f"{len(convs)} convolutions, {total_macs / 1e6:.0f} M multiply-adds per frame")
    everything = quantized(list(convs))
    print(f"all int8 ({args.method} ranges): {everything:.1f} dB", flush=True)
    alone = {}
    for n in convs:
        alone[n] = quantized([n])
        print(f"  {n}: {alone[n]:.1f} dB alone, {100 * macs[n] / total_macs:.1f}% of MACs")
    worst = sorted(convs, key=lambda n: alone[n])
    kept: list[str] = []
    for n in worst[: args.top]:
        kept.append(n)
        share = sum(macs[k] for k in kept) / total_macs
        rest = [k for k in convs if k not in kept]
        print(f"float: {', '.join(kept)} ({100 * share:.1f}% of MACs): {quantized(rest):.1f} dB")


if __name__ == "__main__":
    main()
