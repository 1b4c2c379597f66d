"""The loader decides once (a frozen ResolvedModel), reads an export folder's manifest once
before verifying it, and hands out backends with a lifecycle (open/close, context managers)
whose feeds are checked against the graph spec in one base class."""

from __future__ import annotations

import dataclasses
import importlib.util

import numpy as np
import pytest
import torch

from donkey.artifacts.manifest import Manifest
from donkey.export.onnx_folder import export_onnx
from donkey.model.errors import DonkeyError
from donkey.runtime.backend import LoadOptions, LoadRequest, load_graphs
from donkey.runtime.loader import ResolvedModel, load_model, resolve


@pytest.fixture(scope="module")
def onnx_folder(tiny_ckpt, tmp_path_factory):
    return export_onnx(tiny_ckpt, tmp_path_factory.mktemp("loader onnx") / "tiny onnx").folder


@pytest.fixture
def manifest_reads(monkeypatch):
    """Every Manifest.read, by folder."""
    reads = []
    real = Manifest.read

    def counted(folder):
        reads.append(folder)
        return real(folder)

    monkeypatch.setattr(Manifest, "read", staticmethod(counted))
    return reads


def test_loading_an_export_folder_reads_its_manifest_once(onnx_folder, manifest_reads):
    """The choices (engine, precision, device), the cache's decision and verify_folder (which
    hashes the files it names) share one parse (it used to be five)."""
    from donkey.app.models import load_model as load_any

    loaded = load_any(onnx_folder, None, "cpu", batch_size=8)
    assert loaded.engine == "ort" and loaded.manifest is not None
    assert len(manifest_reads) == 1, manifest_reads
    manifest_reads.clear()
    load_model(onnx_folder, "ort", "cpu")
    assert len(manifest_reads) == 1, manifest_reads


def test_resolving_decides_once_in_a_frozen_record(onnx_folder, tiny_ckpt, manifest_reads):
    resolved = resolve(onnx_folder, None, "auto", "fp32")
    assert (resolved.kind, resolved.engine) == ("onnx", "ort") and len(manifest_reads) == 1
    assert resolved.manifest == Manifest.read(onnx_folder)
    with pytest.raises(dataclasses.FrozenInstanceError):
        resolved.engine = "trt"  # type: ignore[misc]
    assert resolved.at(resolved.path) is resolved
    checkpoint = resolve(tiny_ckpt, None, "cpu")
    assert checkpoint == ResolvedModel(
        tiny_ckpt, "checkpoint", "torch", torch.device("cpu"), "fp32"
    )
    if importlib.util.find_spec("openvino") is not None:  # auto means the CPU for OpenVINO
        assert resolve(onnx_folder, "openvino", "auto").device == torch.device("cpu")
    with pytest.raises(DonkeyError, match="--engine trt needs --device cuda"):
        resolve(onnx_folder, "trt", "cpu")


def _engines(tiny_ckpt, onnx_folder) -> list[tuple[str, object]]:
    engines = [("torch", tiny_ckpt), ("ort", onnx_folder)]
    if importlib.util.find_spec("openvino") is not None:
        engines.append(("openvino", onnx_folder))
    return engines


def test_backends_open_close_and_reopen(tiny_ckpt, onnx_folder):
    image = torch.rand(2, 3, 32, 32)
    for engine, model in _engines(tiny_ckpt, onnx_folder):
        loaded = load_model(model, engine, "cpu")
        backend = loaded.graphs["kp_detector"]
        assert not backend.is_open  # construction does no device work
        with backend as opened:
            assert opened is backend and backend.is_open
            first = backend.infer({"image": image})["kp_mean"]
        assert not backend.is_open, engine
        if engine == "ort":
            assert backend.session is None  # the session is released
        if engine == "openvino":
            assert backend._model is None and not backend._requests
        again = backend.infer({"image": image})["kp_mean"]  # opens again on use
        assert backend.is_open
        torch.testing.assert_close(again, first, atol=0, rtol=0)
        backend.close()
        backend.close()  # closing twice is harmless
        with loaded as same:
            assert same is loaded and all(g.is_open for g in loaded.graphs.values())
        assert not any(g.is_open for g in loaded.graphs.values()), engine


@pytest.mark.parametrize(
    "feed, words",
    [
        (
            {"image": torch.rand(2, 3, 32, 32, dtype=torch.float64)},
            "image: expected dtype float32, got float64",
        ),
        (
            {"image": torch.randint(0, 255, (2, 3, 32, 32), dtype=torch.uint8)},
            "image: expected dtype float32, got uint8",
        ),
        (
            {"image": np.zeros((2, 3, 32, 32), np.float32)},
            "image: expected a torch tensor, got ndarray",
        ),
        ({"image": torch.rand(2, 3, 16, 16)}, "image: expected shape batchx3x32x32, got 2x3x16x16"),
        ({}, "missing inputs image"),
    ],
)
def test_every_engine_refuses_a_wrong_feed_in_one_line_naming_the_tensor(
    tiny_ckpt, onnx_folder, feed, words
):
    for engine, model in _engines(tiny_ckpt, onnx_folder):
        backend = load_model(model, engine, "cpu").graphs["kp_detector"]
        with pytest.raises(DonkeyError) as refused:
            backend.infer(feed)
        message = str(refused.value)
        assert message == f"graph kp_detector: {words}", (engine, message)
        assert not backend.is_open  # refused before any session was made


def test_the_engine_table_refuses_requests_no_loader_should_see(tiny_ckpt, onnx_folder):
    cpu = torch.device("cpu")
    checkpoint = LoadRequest(tiny_ckpt, "checkpoint", cpu, "fp32", LoadOptions())
    with pytest.raises(DonkeyError, match="--engine ort runs an ONNX folder, not a checkpoint"):
        load_graphs("ort", checkpoint)
    with pytest.raises(DonkeyError, match="--engine trt needs --device cuda"):
        load_graphs("trt", checkpoint)
    int8 = dataclasses.replace(checkpoint, precision="int8")
    with pytest.raises(DonkeyError, match="--precision int8 runs on --engine ort or openvino"):
        load_graphs("torch", int8)
    folder = LoadRequest(
        onnx_folder, "onnx", cpu, "fp32", LoadOptions(), Manifest.read(onnx_folder)
    )
    with pytest.raises(DonkeyError, match="--engine torch needs a checkpoint, not an onnx folder"):
        load_graphs("torch", folder)
    with pytest.raises(DonkeyError, match="--engine must be one of torch, ort, trt, openvino"):
        load_graphs("tflite", folder)
    fp16 = dataclasses.replace(
        folder.manifest,
        graphs={
            name: dataclasses.replace(entry, precision="fp16")
            for name, entry in folder.manifest.graphs.items()
        },
    )
    with pytest.raises(
        DonkeyError,
        match="--engine openvino runs fp32 and int8 folders, this one has fp16 graphs "
        r"\(use --engine ort\)",
    ):
        load_graphs("openvino", dataclasses.replace(folder, manifest=fp16))
