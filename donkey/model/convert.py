"""Official Monkey-Net checkpoints -> our 2-D networks.

Monkey-Net (github.com/AliaksandrSiarohin/monkey-net) saves `{"kp_detector": sd, "generator":
sd, "discriminator": sd, "optimizer_*": ..., "epoch": n}`. Its modules use Conv3d with time
kernel 1 and BatchNorm3d/InstanceNorm3d, under the same names our modules use
(predictor.encoder.down_blocks.i.conv, appearance_encoder, dense_motion_module.hourglass,
video_decoder.up_blocks.i, refinement_module.rK / conv-last, discriminator down_blocks.i).
So mapping is: drop the time axis of 5-D conv weights; everything else is copied.

A file that fills only part of the model (another config's sizes, another network) is not a
conversion: `ConversionReport.missing` lists what it left at random initialisation.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from torch import Tensor

from donkey.model.networks import NETWORK_NAMES, Networks

# The networks that animate: a file must fill all of them. The discriminator only trains, and
# fine-tuning starts a fresh one, so a file without it still converts.
INFERENCE_NETWORKS = ("kp_detector", "generator")


@dataclass
class ConversionReport:
    mapped: int = 0
    unmapped: list[str] = field(default_factory=list)  # official keys we could not place
    kept_fresh: list[str] = field(default_factory=list)  # our keys absent from the file
    required: int = 0  # our tensors the file must fill (see `_required`)
    missing: list[str] = field(default_factory=list)  # required keys it did not fill


def _required(key: str, official: dict) -> bool:
    """Whether our tensor `key` must come from the file. Not: attention (Monkey-Net has none;
    its gates start at 0, so outputs are the official model's), BatchNorm step counters (unused
    at inference, and PyTorch before 0.4.1 did not save them), a discriminator the file lacks."""
    if ".attention." in key or key.endswith(".num_batches_tracked"):
        return False
    net = key.split(".", 1)[0]
    return net in INFERENCE_NETWORKS or isinstance(official.get(net), dict)


def _to_2d(value: Tensor) -> Tensor | None:
    """Conv3d weight (out, in, 1, kh, kw) -> (out, in, kh, kw); other tensors unchanged."""
    if value.dim() == 5:
        if value.shape[2] != 1:
            return None
        return value[:, :, 0]
    return value


def convert_monkeynet_state(
    official: dict, networks: Networks
) -> tuple[dict[str, Tensor], ConversionReport]:
    """Maps an official checkpoint dict onto `networks`' state dict.

    Keys present in our model but not in the file (attention blocks) keep the values
    `networks` already has (attention gates at 0), so outputs equal the official model's.
    `report.missing` names the required tensors the file did not fill: when any is, the
    result is partly random and the caller should refuse it (a wrong config, usually).
    """
    report = ConversionReport()
    target = networks.state_dict()
    state = {k: v.clone() for k, v in target.items()}
    filled: set[str] = set()
    for net in NETWORK_NAMES:
        part = official.get(net)
        if not isinstance(part, dict):
            report.unmapped.append(f"{net} (missing from the file)")
            continue
        for key, value in part.items():
            ours = f"{net}.{key}"
            if not isinstance(value, Tensor) or ours not in target:
                report.unmapped.append(ours)
                continue
            converted = _to_2d(value)
            if converted is None or tuple(converted.shape) != tuple(target[ours].shape):
                report.unmapped.append(f"{ours} (shape {tuple(value.shape)})")
                continue
            state[ours] = converted.to(target[ours].dtype).clone()
            filled.add(ours)
            report.mapped += 1
    names = {f"{net}.{k}" for net in NETWORK_NAMES for k in (official.get(net) or {})}
    report.kept_fresh = [k for k in target if k not in names]
    required = [k for k in target if _required(k, official)]
    report.required = len(required)
    report.missing = [k for k in required if k not in filled]
    return state, report


def official_layout(networks: Networks) -> dict:
    """Our weights in Monkey-Net's layout (time axis restored): the inverse mapping, for tests
    and for handing our models to Monkey-Net's code."""
    out: dict = {net: {} for net in NETWORK_NAMES}
    for key, value in networks.state_dict().items():
        net, rest = key.split(".", 1)
        if ".attention." in key:
            continue
        is_conv = value.dim() == 4
        out[net][rest] = value.unsqueeze(2).clone() if is_conv else value.clone()
    out["epoch"] = 0
    return out
