import pytest
import torch

from donkey.model.errors import DonkeyError
from donkey.train.losses import (
    VGG19Perceptual,
    build_perceptual,
    discriminator_gan_loss,
    feature_matching_loss,
    generator_gan_loss,
)


def test_lsgan_known_values():
    assert generator_gan_loss(torch.tensor([1.0, 0.0])).item() == pytest.approx(0.5)
    assert discriminator_gan_loss(torch.tensor([1.0]), torch.tensor([0.0])).item() == 0.0
    assert discriminator_gan_loss(torch.tensor([0.0]), torch.tensor([2.0])).item() == pytest.approx(
        5.0
    )


def test_feature_matching_weights_and_scales():
    fake = [torch.ones(1, 2, 8, 8), torch.zeros(1, 2, 4, 4)]
    real = [torch.zeros(1, 2, 8, 8), torch.full((1, 2, 4, 4), 2.0)]
    single = feature_matching_loss(fake, real, [10.0, 1.0], [1.0])
    assert single.item() == pytest.approx(10 * 1 + 1 * 2)
    multi = feature_matching_loss(fake, real, [10.0, 1.0], [1.0, 0.75, 0.5])
    assert multi.item() == pytest.approx(
        3 * 12, rel=1e-5
    )  # constant maps keep their L1 when resized
    with pytest.raises(DonkeyError, match="2 discriminator blocks"):
        feature_matching_loss(fake, real, [1.0], [1.0])


def _fake_vgg19_features(path):
    """Random weights with VGG-19's feature shapes, in torchvision's state-dict layout."""
    plan = [
        64,
        64,
        "M",
        128,
        128,
        "M",
        256,
        256,
        256,
        256,
        "M",
        512,
        512,
        512,
        512,
        "M",
        512,
        512,
        512,
        512,
        "M",
    ]
    state, index, channels = {}, 0, 3
    torch.manual_seed(0)
    for item in plan:
        if item == "M":
            index += 1
            continue
        state[f"features.{index}.weight"] = (
            torch.randn(item, channels, 3, 3) * (2 / (9 * channels)) ** 0.5
        )
        state[f"features.{index}.bias"] = torch.zeros(item)
        channels = item
        index += 2  # conv, relu
    torch.save(state, path)
    return path


def test_perceptual_needs_a_weights_file_when_enabled(tmp_path):
    assert build_perceptual(0.0, None, [1] * 5, [1.0]) is None
    with pytest.raises(DonkeyError, match="--vgg19-weights"):
        build_perceptual(1.0, None, [1] * 5, [1.0])
    with pytest.raises(DonkeyError, match="no such VGG-19 weights file"):
        build_perceptual(1.0, tmp_path / "nope.pth", [1] * 5, [1.0])


def test_perceptual_loss_is_zero_for_identical_images_and_trains_the_input(tmp_path):
    weights = _fake_vgg19_features(tmp_path / "vgg19.pth")
    loss_fn = VGG19Perceptual(weights, [1.0] * 5, [1.0, 0.75, 0.5])
    target = torch.rand(2, 3, 32, 32)
    assert loss_fn(target, target).item() == 0.0
    pred = torch.rand(2, 3, 32, 32, requires_grad=True)
    loss = loss_fn(pred, target)
    loss.backward()
    assert loss.item() > 0 and pred.grad.abs().sum() > 0
    assert all(not p.requires_grad for p in loss_fn.parameters())
