"""Checkpoints: one file with the config and every weight, loaded without executing code.

Two formats:
- `.safetensors`: inference weights, config JSON in the metadata (the shipped default model).
- anything else (`.ckpt`): a torch zip read with `weights_only=True`, which can also carry
  training state (optimisers, step, RNG) for exact resume.
"""

from __future__ import annotations

import json
import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from donkey.model.config import ModelConfig, config_to_dict, model_config_from_dict
from donkey.model.errors import CheckpointError, ConfigError, brief
from donkey.model.files import CHECKPOINT_SUFFIXES, atomic_output
from donkey.model.networks import Networks, check_model_size

FORMAT = "donkey"
VERSION = 1
DISCRIMINATOR_PREFIX = "discriminator."


@dataclass
class Checkpoint:
    path: Path
    model_config: ModelConfig
    state: dict[str, Tensor]
    train_config: dict[str, Any] | None = None
    training: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def save_checkpoint(
    path: str | Path,
    networks: Networks,
    train_config: dict[str, Any] | None = None,
    training: dict[str, Any] | None = None,
    inference_only: bool = False,
) -> Path:
    """Writes atomically. `training` (optimiser states, step, RNG) only fits `.ckpt` files.

    `inference_only` leaves out the discriminator (a quarter of the size of a small model's
    file); such a checkpoint animates, and fine-tuning from it starts a fresh discriminator.
    """
    return save_weights(
        path, networks.config, networks.state_dict(), train_config, training, inference_only
    )


def save_weights(
    path: str | Path,
    model_config: ModelConfig,
    state: dict[str, Tensor],
    train_config: dict[str, Any] | None = None,
    training: dict[str, Any] | None = None,
    inference_only: bool = False,
) -> Path:
    """save_checkpoint for a state dict of `model_config`'s networks that no module holds (a
    weight average), so none needs building just to be written."""
    path = Path(path)
    if path.suffix not in CHECKPOINT_SUFFIXES:
        raise CheckpointError(
            f"{path}: unsupported checkpoint format '{path.suffix or '(none)'}' "
            "(use .ckpt or .safetensors)"
        )
    state = {
        k: v.detach().cpu().contiguous()
        for k, v in state.items()
        if not (inference_only and k.startswith(DISCRIMINATOR_PREFIX))
    }
    config = config_to_dict(model_config)
    with atomic_output(path) as tmp:
        if path.suffix == ".safetensors":
            if training is not None:
                raise CheckpointError(
                    f"{path}: training state needs a .ckpt file, not .safetensors"
                )
            from safetensors.torch import save_file

            meta = {"format": FORMAT, "version": str(VERSION), "config": json.dumps(config)}
            if train_config is not None:
                meta["train_config"] = json.dumps(train_config)
            save_file(state, str(tmp), metadata=meta)
        else:
            payload = {
                "format": FORMAT,
                "version": VERSION,
                "config": config,
                "train_config": train_config,
                "state": state,
                "training": training,
            }
            torch.save(payload, tmp)
    return path


def _check_version(path: Path, version: Any) -> None:
    """Files from a newer Donkey may mean their fields differently; older ones had none."""
    if version is None:
        return
    try:
        number = int(version)
    except (TypeError, ValueError):
        number = None
    if number is None or isinstance(version, bool) or number < 1:
        raise CheckpointError(f"{path}: format version {brief(version)} is not a version number")
    if number > VERSION:
        raise CheckpointError(
            f"{path}: written by a newer Donkey (format version {number}; this one reads up to "
            f"{VERSION}); upgrade Donkey to load it"
        )


def _read_payload(path: Path) -> dict[str, Any]:
    if not path.exists():
        raise CheckpointError(f"{path}: no such checkpoint file")
    if path.is_dir():
        raise CheckpointError(f"{path}: is a folder, not a checkpoint file")
    if path.stat().st_size == 0:
        raise CheckpointError(f"{path}: empty file, not a checkpoint")
    if path.suffix == ".safetensors":
        return _read_safetensors(path)
    payload = load_weights_only(path, "corrupt or not a checkpoint")
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        hint = ""
        if isinstance(payload, dict) and {"kp_detector", "generator"} <= set(payload):
            hint = "; it looks like an official Monkey-Net checkpoint: run `donkey convert` first"
        raise CheckpointError(f"{path}: not a Donkey checkpoint{hint}")
    _check_version(path, payload.get("version"))
    return payload


def _unpickler_reason(exc: BaseException) -> str:
    """The line of torch's weights-only refusal that says what was wrong.

    The message is many lines of advice (including "load with weights_only=False", which
    would run the file's code); which line names the problem depends on the refusal.
    """
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    for line in lines:
        if "GLOBAL" in line:
            return line.split("WeightsUnpickler error:")[-1].strip()
    for i, line in enumerate(lines):
        if "WeightsUnpickler error:" in line:
            rest = line.split("WeightsUnpickler error:")[-1].strip()
            return rest or (lines[i + 1] if i + 1 < len(lines) else type(exc).__name__)
    return lines[0] if lines else type(exc).__name__


def load_state_dict_file(path: Path, what: str) -> dict[str, torch.Tensor]:
    """A plain {name: tensor} file (torchvision weights, say), read as `load_weights_only`."""
    state = load_weights_only(path, f"cannot read {what}")
    if not isinstance(state, dict) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()
    ):
        raise CheckpointError(f"{path}: expected a state dict of {what}")
    return state


def load_matching(module: torch.nn.Module, state: dict, path: Path, what: str) -> list[str]:
    """load_state_dict(strict=False) with the shapes compared first: a mismatch is one line
    naming the file, not torch's multi-line RuntimeError. Returns the missing keys."""
    own = module.state_dict()
    for key, value in state.items():
        if key in own and value.shape != own[key].shape:
            raise CheckpointError(
                f"{path}: not {what} ({key} is {tuple(value.shape)}, expected "
                f"{tuple(own[key].shape)})"
            )
    missing, _ = module.load_state_dict(state, strict=False)
    return missing


def load_weights_only(path: Path, corrupt: str) -> Any:
    """torch.load restricted to tensors and plain containers: a file that would need to run code
    (a pickled os.system, say) is refused, never executed. One-line CheckpointError otherwise,
    starting with `path:`; `corrupt` words the failure for what the file was meant to be."""
    import warnings

    try:
        with warnings.catch_warnings():
            # A foreign pickle protocol warns (two stderr lines) before the refusal below.
            warnings.simplefilter("ignore", UserWarning)
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        reason = _unpickler_reason(exc)
        if "GLOBAL" in reason:
            global_name = reason.split("GLOBAL", 1)[1].split()[0] if "GLOBAL " in reason else "?"
            raise CheckpointError(
                f"{path}: refused to load, it would need to run code (global {global_name})"
            ) from None
        raise CheckpointError(f"{path}: {corrupt} ({reason[:120]})") from None
    except Exception as exc:  # noqa: BLE001 - arbitrary bytes break the unpickler in arbitrary ways
        raise CheckpointError(f"{path}: {corrupt} ({_first_line(exc)})") from None


_SAFETENSORS_FLOAT = {"F16", "BF16", "F32", "F64"}


def _json_field(path: Path, meta: dict[str, str], key: str) -> Any:
    try:
        value = json.loads(meta[key])
    except (ValueError, TypeError) as exc:
        raise CheckpointError(f"{path}: metadata '{key}' is not valid JSON ({exc})") from None
    if not isinstance(value, dict):
        raise CheckpointError(
            f"{path}: metadata '{key}' must be a JSON object, got {type(value).__name__}"
        )
    return value


def _read_safetensors(path: Path) -> dict[str, Any]:
    """Config and tensor shapes are read and checked before any tensor is loaded."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file, safe_open

    try:
        with safe_open(str(path), framework="pt") as handle:
            meta = handle.metadata() or {}
            layout = {}
            for key in handle.keys():
                piece = handle.get_slice(key)
                layout[key] = (tuple(piece.get_shape()), piece.get_dtype())
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f"{path}: corrupt safetensors file ({_first_line(exc)})") from None
    if meta.get("format") != FORMAT or "config" not in meta:
        raise CheckpointError(f"{path}: safetensors file without a Donkey config in its metadata")
    _check_version(path, meta.get("version"))
    config = _json_field(path, meta, "config")
    train = _json_field(path, meta, "train_config") if meta.get("train_config") else None
    model_config = _model_config(path, config)
    expected = expected_state(model_config)
    _compare(
        path,
        expected,
        {k: (shape, dtype in _SAFETENSORS_FLOAT, dtype) for k, (shape, dtype) in layout.items()},
    )
    try:
        state = load_file(str(path))
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f"{path}: corrupt safetensors file ({_first_line(exc)})") from None
    return {"config": config, "train_config": train, "state": state, "training": None}


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:160] if text else type(exc).__name__


def _model_config(path: Path, data: Any) -> ModelConfig:
    """The model config inside a checkpoint, range-checked and size-checked (nothing built)."""
    try:
        config = model_config_from_dict(data)
        check_model_size(config, "")
    except ConfigError as exc:
        raise CheckpointError(f"{path}: invalid model config inside ({exc})") from None
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise CheckpointError(f"{path}: invalid model config inside ({_first_line(exc)})") from None
    return config


def expected_state(config: ModelConfig) -> dict[str, tuple[tuple[int, ...], bool, str]]:
    """Every weight the config's networks hold: shape, whether floating, dtype name.

    Built on the meta device, so no memory is allocated for the weights.
    """
    with torch.device("meta"):
        networks = Networks(config)
    return {
        k: (tuple(v.shape), v.dtype.is_floating_point, str(v.dtype))
        for k, v in networks.state_dict().items()
    }


def _compare(
    source: Path | str,
    expected: dict[str, tuple[tuple[int, ...], bool, str]],
    found: dict[str, tuple[tuple[int, ...], bool, str]],
) -> None:
    """Strict comparison that reports mismatches as one line naming a few keys."""
    # Inference-only files carry no discriminator: it keeps its fresh initialisation.
    missing = [k for k in expected if k not in found and not k.startswith(DISCRIMINATOR_PREFIX)]
    unexpected = [k for k in found if k not in expected]
    shapes = [k for k in expected if k in found and expected[k][0] != found[k][0]]
    dtypes = [
        k for k in expected if k in found and k not in shapes and expected[k][1] != found[k][1]
    ]
    if missing or unexpected or shapes or dtypes:
        parts = []
        for label, keys in (
            ("missing", missing),
            ("unexpected", unexpected),
            ("wrong shape", shapes),
            ("wrong dtype", dtypes),
        ):
            if keys:
                parts.append(f"{len(keys)} {label} (e.g. {', '.join(keys[:2])})")
        raise CheckpointError(f"{source}: weights do not fit the model config: {'; '.join(parts)}")


def _tensor_layout(state: dict[str, Tensor]) -> dict[str, tuple[tuple[int, ...], bool, str]]:
    return {k: (tuple(v.shape), v.dtype.is_floating_point, str(v.dtype)) for k, v in state.items()}


def load_checkpoint(path: str | Path) -> Checkpoint:
    """Reads a checkpoint; raises CheckpointError with a one-line reason on any problem.

    The config is range-checked and every tensor's shape and kind compared with the
    networks it describes (built on the meta device) before anything is allocated for them.
    """
    path = Path(path)
    payload = _read_payload(path)
    model_config = _model_config(path, payload.get("config"))
    state = payload.get("state")
    if not isinstance(state, dict) or not all(
        isinstance(k, str) and isinstance(v, Tensor) for k, v in state.items()
    ):
        raise CheckpointError(f"{path}: 'state' must map weight names to tensors")
    _compare(path, expected_state(model_config), _tensor_layout(state))
    broken = [k for k, v in state.items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if broken:
        raise CheckpointError(
            f"{path}: {len(broken)} weight tensor(s) hold NaN or infinity (first: {broken[0]}); "
            "the training that wrote it diverged or the file is damaged"
        )
    for key in ("train_config", "training"):
        if payload.get(key) is not None and not isinstance(payload[key], dict):
            raise CheckpointError(f"{path}: '{key}' must be a mapping")
    return Checkpoint(
        path=path,
        model_config=model_config,
        state=state,
        train_config=payload.get("train_config"),
        training=payload.get("training"),
    )


def build_networks(checkpoint: Checkpoint, device: str | torch.device = "cpu") -> Networks:
    """Rebuilds the networks from the checkpoint alone, in eval mode."""
    networks = Networks(checkpoint.model_config)
    load_state(networks, checkpoint.state, checkpoint.path)
    return networks.to(device).eval()


def check_same_layout(
    source: Path | str, expected: dict[str, Tensor], found: dict[str, Tensor]
) -> None:
    """Raises CheckpointError (one line naming a few keys) unless `found` has exactly
    `expected`'s names, shapes and dtypes (missing discriminator weights aside)."""
    _compare(source, _tensor_layout(expected), _tensor_layout(found))


def load_state(networks: Networks, state: dict[str, Tensor], source: Path | str) -> None:
    """Strict load that reports mismatches as one line naming a few keys."""
    _compare(source, _tensor_layout(networks.state_dict()), _tensor_layout(state))
    networks.load_state_dict(state, strict=False)


def load_networks(path: str | Path, device: str | torch.device = "cpu") -> Networks:
    return build_networks(load_checkpoint(path), device)
