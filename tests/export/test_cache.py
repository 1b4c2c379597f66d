import hashlib
import json
import os

from donkey.export import cache as model_cache
from donkey.export.cache import cached_onnx, checkpoint_digest
from donkey.model.checkpoint import save_checkpoint


def test_checkpoint_digest_is_remembered_and_never_stale(tmp_path, monkeypatch):
    monkeypatch.setenv("DONKEY_CACHE", str(tmp_path / "cache"))
    path = tmp_path / "model.ckpt"
    path.write_bytes(b"a" * 1000)
    assert checkpoint_digest(path) == hashlib.sha256(b"a" * 1000).hexdigest()
    memo = json.loads((tmp_path / "cache" / "checkpoint-hashes.json").read_text())
    assert list(memo) == [str(path.resolve())]

    calls = []
    real = model_cache.sha256_file
    monkeypatch.setattr(model_cache, "sha256_file", lambda p: calls.append(p) or real(p))
    checkpoint_digest(path)
    assert calls == []  # answered from the memo

    # Same size, mtime put back (as cp -p or tar would): ctime still tells them apart.
    stat = path.stat()
    path.write_bytes(b"b" * 1000)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert checkpoint_digest(path) == hashlib.sha256(b"b" * 1000).hexdigest()
    assert len(calls) == 1


def test_a_corrupt_memo_only_costs_a_hash(tmp_path, monkeypatch):
    monkeypatch.setenv("DONKEY_CACHE", str(tmp_path))
    (tmp_path / "checkpoint-hashes.json").write_text("{not json")
    path = tmp_path / "m.bin"
    path.write_bytes(b"xyz")
    assert checkpoint_digest(path) == hashlib.sha256(b"xyz").hexdigest()
    assert json.loads((tmp_path / "checkpoint-hashes.json").read_text())


def test_onnx_export_is_built_once_per_checkpoint(tiny_networks, tmp_path, monkeypatch):
    monkeypatch.setenv("DONKEY_CACHE", str(tmp_path / "cache"))
    ckpt = save_checkpoint(tmp_path / "m.safetensors", tiny_networks)
    first = cached_onnx(ckpt)
    assert sorted(p.name for p in first.iterdir()) == [
        "dense_motion.onnx",
        "generator.onnx",
        "kp_detector.onnx",
        "manifest.json",
        "source_encoder.onnx",
    ]
    built = (first / "manifest.json").stat().st_mtime_ns
    assert cached_onnx(ckpt) == first
    assert (first / "manifest.json").stat().st_mtime_ns == built
    assert cached_onnx(ckpt, fp16=True) != first
    assert not [p for p in first.parent.iterdir() if p.name.startswith(".")]  # no temp folders
