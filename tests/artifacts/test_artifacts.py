"""Export folders: the typed manifest, verification before loading, atomic writes; and every
command that takes a folder refusing forged, mixed or half-written ones in one line."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import pytest

from donkey.artifacts.folders import staged_folder
from donkey.artifacts.manifest import MANIFEST_VERSION, Manifest, ManifestError
from donkey.artifacts.settings import BatchRange
from donkey.artifacts.verify import is_temporary, verify_folder
from donkey.cli.app import app
from donkey.export import onnx_folder
from donkey.export.lint import lint_folder
from donkey.export.onnx_folder import export_onnx
from donkey.model.checkpoint import save_checkpoint
from donkey.model.errors import DonkeyError
from donkey.model.networks import Networks
from donkey.runtime.loader import load_model

SAMPLE = Path(__file__).resolve().parents[2] / "donkey" / "assets" / "sample"


@pytest.fixture(scope="module")
def good(tiny_ckpt, tmp_path_factory) -> Path:
    return export_onnx(tiny_ckpt, tmp_path_factory.mktemp("artifacts") / "good export").folder


@pytest.fixture(scope="module")
def other(tiny_config, tmp_path_factory) -> Path:
    """An export of a different model of the same shape."""
    import torch

    torch.manual_seed(1)
    root = tmp_path_factory.mktemp("artifacts other")
    ckpt = save_checkpoint(root / "other.ckpt", Networks(tiny_config.model))
    return export_onnx(ckpt, root / "other export").folder


def _rehash(folder: Path, manifest: dict, graph: str) -> None:
    data = (folder / manifest["graphs"][graph]["file"]).read_bytes()
    manifest["graphs"][graph]["sha256"] = hashlib.sha256(data).hexdigest()


def _set(graph: str, **values):
    return lambda m, d: m["graphs"][graph].update(values)


def _swap(rehash: bool):
    def edit(m, d):
        shutil.copy(d.parent.parent / "other" / "generator.onnx", d / "generator.onnx")
        if rehash:
            _rehash(d, m, "generator")

    return edit


def _symlink_out(m, d):
    (d / "kp_detector.onnx").unlink()
    os.symlink("/etc/passwd", d / "kp_detector.onnx")


def _write(name: str, data: bytes):
    return lambda m, d: (d / name).write_bytes(data)


# name -> (edit of the manifest dict and/or the folder, file the error must name, words in it)
FORGERIES = {
    "dot-dot path": (
        _set("kp_detector", file="../../etc/passwd"),
        "manifest.json",
        "../../etc/passwd",
    ),
    "absolute path": (_set("kp_detector", file="/etc/passwd"), "manifest.json", "plain file name"),
    "missing key": (
        lambda m, d: m.pop("checkpoint_sha256"),
        "manifest.json",
        "missing checkpoint_sha256",
    ),
    "missing graph key": (
        lambda m, d: m["graphs"]["generator"].pop("file"),
        "manifest.json",
        "missing file",
    ),
    "unknown key": (lambda m, d: m.update(comment="hi"), "manifest.json", "unknown key comment"),
    "wrong version": (lambda m, d: m.update(version=1), "manifest.json", "version 1"),
    "wrong hash": (_set("generator", sha256="0" * 64), "generator.onnx", "sha256 differs"),
    "graph from another export": (_swap(rehash=False), "generator.onnx", "sha256 differs"),
    "graph from another export, re-hashed": (
        _swap(rehash=True),
        "generator.onnx",
        "another export",
    ),
    "half-written .tmp.onnx beside": (
        _write(".generator.k3j2.tmp.onnx", b"\x08\x07partial"),
        ".generator.k3j2.tmp.onnx",
        "half-written",
    ),
    "truncated graph": (
        lambda m, d: (d / "kp_detector.onnx").write_bytes(
            (d / "kp_detector.onnx").read_bytes()[:999]
        ),
        "kp_detector.onnx",
        "sha256 differs",
    ),
    "link out of the folder": (_symlink_out, "kp_detector.onnx", "outside the folder"),
    "tensors not of its config": (
        lambda m, d: m["model_config"].update(num_kp=7),
        "manifest.json",
        "do not match its model_config",
    ),
    "not an object": (lambda m, d: m.clear() or m.update(x=[1]), "manifest.json", "missing"),
}


@pytest.fixture()
def forge(good, other, tmp_path):
    shutil.copytree(other, tmp_path / "other")

    def make(name: str) -> Path:
        edit = FORGERIES[name][0]
        folder = tmp_path / "forged" / name.replace(" ", "_")
        shutil.copytree(good, folder)
        manifest = json.loads((folder / "manifest.json").read_text())
        edit(manifest, folder)
        (folder / "manifest.json").write_text(json.dumps(manifest))
        return folder

    return make


def test_manifest_round_trip_is_typed_and_strict(good, tiny_config):
    manifest = Manifest.read(good)
    assert manifest.version == MANIFEST_VERSION == 3 and manifest.format == "onnx"
    assert manifest.quantization is None
    assert manifest.model_config == tiny_config.model
    assert manifest.precision == dict.fromkeys(
        ("kp_detector", "dense_motion", "source_encoder", "generator"), "fp32"
    )
    entry = manifest.graphs["dense_motion"]
    assert entry.file == "dense_motion.onnx" and entry.onnx_sha256 is None
    assert entry.inputs[0].name == "source" and entry.inputs[0].shape == ("batch", 3, 32, 32)
    assert manifest.engine is None and manifest.opset == 18
    copy = good.parent / "round trip"
    copy.mkdir()
    manifest.write(copy)
    assert Manifest.read(copy) == manifest
    written = json.loads((copy / "manifest.json").read_text())
    assert written == json.loads(json.dumps(manifest.to_dict()))
    assert set(written) == {
        "format",
        "version",
        "created",
        "model_config",
        "checkpoint",
        "checkpoint_sha256",
        "opset",
        "graphs",
        "engine",
        "quantization",
        "tools",
    }


def test_version_2_manifests_still_read_and_know_no_int8(good, tmp_path):
    """Version 3 only added `quantization` and int8: folders exported before still load."""
    data = json.loads((good / "manifest.json").read_text())
    del data["quantization"]
    data["version"] = 2
    folder = tmp_path / "v2"
    shutil.copytree(good, folder)
    (folder / "manifest.json").write_text(json.dumps(data))
    manifest = verify_folder(folder)
    assert manifest.quantization is None and manifest.precision["generator"] == "fp32"
    data["graphs"]["generator"]["precision"] = "int8"
    (folder / "manifest.json").write_text(json.dumps(data))
    with pytest.raises(ManifestError, match="precision must be fp32 or fp16, got 'int8'"):
        Manifest.read(folder)
    data["version"] = 3
    data["quantization"] = None
    (folder / "manifest.json").write_text(json.dumps(data))
    with pytest.raises(ManifestError, match="int8 graphs need a quantization record"):
        Manifest.read(folder)
    data["version"] = 4
    (folder / "manifest.json").write_text(json.dumps(data))
    with pytest.raises(ManifestError, match="version 4, this donkey reads versions 2 and 3"):
        Manifest.read(folder)


def test_a_manifest_that_reads_back_wrong_is_never_written(good, tmp_path):
    manifest = Manifest.read(good)
    broken = Manifest(**{**manifest.__dict__, "checkpoint_sha256": "not a hash"})
    with pytest.raises(ManifestError, match="checkpoint_sha256 is not a sha256"):
        broken.write(tmp_path)
    assert not (tmp_path / "manifest.json").exists()


def test_batch_range_lives_in_artifacts():
    assert BatchRange() == BatchRange(1, 8, 64)
    with pytest.raises(DonkeyError, match="1 <= min <= opt <= max, got 4/2/8"):
        BatchRange(4, 2, 8)


@pytest.mark.parametrize("name", sorted(FORGERIES))
def test_forged_folders_are_refused_naming_the_file(forge, name):
    folder = forge(name)
    _, file_name, words = FORGERIES[name]
    for attempt in (
        lambda: verify_folder(folder),
        lambda: load_model(folder, "ort", "cpu"),
        lambda: lint_folder(folder),
    ):
        with pytest.raises(DonkeyError) as caught:
            attempt()
        message = str(caught.value)
        assert "\n" not in message and words in message, message
        assert message.startswith(str(folder / file_name) + ":"), message


@pytest.mark.parametrize(
    "name",
    ["dot-dot path", "wrong version", "graph from another export", "half-written .tmp.onnx beside"],
)
def test_every_command_refuses_a_forged_folder_in_one_line(forge, runner, tmp_path, name):
    folder = forge(name)
    commands = {
        "animate": [
            "animate",
            str(SAMPLE / "source.png"),
            str(SAMPLE / "driving.gif"),
            "-o",
            str(tmp_path / "out.gif"),
            "--model",
            str(folder),
            "--engine",
            "ort",
            "--device",
            "cpu",
        ],
        "lint": ["lint", str(folder)],
        "info": ["info", "--model", str(folder)],
        "bench": ["bench", "--model", str(folder), "--engine", "ort", "--batch-sizes", "1"],
    }
    for command, args in commands.items():
        result = runner.invoke(app, args)
        lines = result.output.strip().splitlines()
        assert result.exit_code == 1, (command, result.output)
        assert len(lines) == 1 and lines[0].startswith(f"error: {folder}"), (command, lines)
        assert FORGERIES[name][2] in lines[0], (command, lines)
    assert not (tmp_path / "out.gif").exists()


def test_lint_refuses_unknown_files_and_engine_folders(good, tmp_path):
    folder = tmp_path / "with notes"
    shutil.copytree(good, folder)
    (folder / "notes.txt").write_text("mine")
    verify_folder(folder)  # loaders do not mind a harmless extra file
    with pytest.raises(DonkeyError, match=r"notes.txt: not named by manifest.json"):
        lint_folder(folder)
    nested = tmp_path / "all"
    shutil.copytree(good, nested / "onnx")
    with pytest.raises(DonkeyError, match=r"all: has no manifest.json; its ONNX graphs are in"):
        lint_folder(nested)


def test_temporary_names():
    assert is_temporary(".generator.k3j2.tmp.onnx") and is_temporary("x.tmp")
    assert is_temporary(".out.abcd.tmp") and is_temporary("g.onnx.part")
    assert not is_temporary("generator.onnx") and not is_temporary("timing.cache")
    assert not is_temporary("attempt.onnx")


def test_a_link_inside_the_folder_is_fine(good, tmp_path):
    folder = tmp_path / "linked"
    shutil.copytree(good, folder)
    (folder / "generator.onnx").rename(folder / "real-generator.bin")
    os.symlink("real-generator.bin", folder / "generator.onnx")
    assert verify_folder(folder).format == "onnx"


def _names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_a_failed_export_leaves_nothing_and_keeps_the_previous_one(
    tiny_ckpt, tmp_path, monkeypatch
):
    target = tmp_path / "out"
    export_onnx(tiny_ckpt, target)
    before = {p.name: p.read_bytes() for p in target.iterdir()}
    (target / "stale.onnx").write_bytes(b"from an older export")  # replaced, not mixed in
    calls = []
    real = onnx_folder.save_model

    def dies_on_third(model, path):
        calls.append(path.name)
        if len(calls) == 3:
            raise KeyboardInterrupt  # as a Ctrl-C half-way through
        return real(model, path)

    monkeypatch.setattr(onnx_folder, "save_model", dies_on_third)
    with pytest.raises(KeyboardInterrupt):
        export_onnx(tiny_ckpt, target)
    assert {p.name: p.read_bytes() for p in target.iterdir() if p.name != "stale.onnx"} == before
    assert _names(tmp_path) == ["out"]  # no temporary sibling left
    calls.clear()
    with pytest.raises(KeyboardInterrupt):
        export_onnx(tiny_ckpt, tmp_path / "fresh")
    assert _names(tmp_path) == ["out"]  # a first export that fails leaves no folder at all
    monkeypatch.setattr(onnx_folder, "save_model", real)
    export_onnx(tiny_ckpt, target)  # a previous export is replaced whole
    assert "stale.onnx" not in _names(target) and verify_folder(target).format == "onnx"


def test_export_refuses_foreign_folders_and_impossible_places(tiny_ckpt, tmp_path, runner):
    mine = tmp_path / "my photos"
    mine.mkdir()
    (mine / "cat.png").write_bytes(b"precious")
    with pytest.raises(DonkeyError, match="holds no Donkey export; .* --overwrite"):
        export_onnx(tiny_ckpt, mine)
    assert _names(mine) == ["cat.png"]
    (tmp_path / "a file").write_text("x")
    for output, words in (
        (tmp_path / "a file" / "out", "a file: is a file, not a folder"),
        (tmp_path / "a file", "a file: is a file, not a folder"),
    ):
        result = runner.invoke(app, ["export", "--model", str(tiny_ckpt), "-o", str(output)])
        lines = result.output.strip().splitlines()
        assert result.exit_code == 1 and len(lines) == 1 and words in lines[0], lines
    result = runner.invoke(
        app, ["export", "--model", str(tiny_ckpt), "-o", str(mine), "--overwrite"]
    )
    assert result.exit_code == 0, result.output
    assert "cat.png" not in _names(mine) and verify_folder(mine).format == "onnx"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a file", "my photos"]


def test_export_replaces_a_previous_export_only_when_nothing_else_is_there(
    tiny_ckpt, tmp_path, runner
):
    project = tmp_path / "proj"
    (project / "src").mkdir(parents=True)
    (project / "src" / "main.py").write_text("code")
    (project / "README.md").write_text("readme")
    export_onnx(tiny_ckpt, project / "onnx")  # proj/onnx/manifest.json: looks like `--format all`
    result = runner.invoke(app, ["export", "--model", str(tiny_ckpt), "-o", str(project)])
    assert result.exit_code == 1, result.output
    assert "proj: holds a Donkey export and " in result.output
    assert "which no export wrote" in result.output and "--overwrite" in result.output
    assert (project / "README.md").read_text() == "readme"
    assert (project / "src" / "main.py").read_text() == "code"

    export = tmp_path / "e1"
    export_onnx(tiny_ckpt, export)
    (export / "notes.txt").write_text("precious")
    with pytest.raises(DonkeyError, match=r"e1: holds a Donkey export and notes\.txt, which no"):
        export_onnx(tiny_ckpt, export)
    (export / "notes.txt").unlink()
    (export / "d").mkdir()
    with pytest.raises(DonkeyError, match="holds a Donkey export and d, which no export wrote"):
        export_onnx(tiny_ckpt, export)
    assert (export / "d").is_dir()
    (export / "d").rmdir()
    (export / "onnx").mkdir()
    (export / "onnx" / "old.onnx").write_bytes(b"an older export's graph")
    (export / "trt").mkdir()
    (export / "trt" / "timing-trt10.0-GPU-sm9.0.cache").write_bytes(b"TensorRT's timing cache")
    export_onnx(tiny_ckpt, export)  # export leftovers alone: replaced without --overwrite
    assert not (export / "onnx").exists() and not (export / "trt").exists()
    assert verify_folder(export).format == "onnx"


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux /proc")
def test_export_where_no_folder_can_be_made_is_one_line(tiny_ckpt):
    with pytest.raises(DonkeyError, match=r"^/proc/donkey-test: cannot create folder \("):
        export_onnx(tiny_ckpt, Path("/proc/donkey-test/out"))


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write into read-only folders")
def test_export_into_an_unwritable_place_is_one_line(tiny_ckpt, tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    with pytest.raises(DonkeyError, match="locked: cannot write here"):
        export_onnx(tiny_ckpt, locked / "out")


def test_staged_folder_publishes_only_on_success(tmp_path):
    target = tmp_path / "t"
    with pytest.raises(RuntimeError):
        with staged_folder(target) as stage:
            (stage / "a").write_text("1")
            raise RuntimeError("boom")
    assert _names(tmp_path) == []
    with staged_folder(target) as stage:
        (stage / "a").write_text("2")
        assert not target.exists()
    assert (target / "a").read_text() == "2" and _names(tmp_path) == ["t"]


def test_runtime_loads_what_exists_and_the_cli_builds_what_is_missing(tiny_ckpt, private_cache):
    from donkey.app.models import load_model as load_any

    with pytest.raises(DonkeyError, match="--engine ort runs an ONNX folder, not a checkpoint"):
        load_model(tiny_ckpt, "ort", "cpu")  # runtime alone never exports
    model = load_any(tiny_ckpt, "ort", "cpu")
    assert model.engine == "ort" and model.manifest is not None
    assert model.path.parent == private_cache / "onnx"  # exported into the cache
    assert model.manifest.checkpoint_sha256 == hashlib.sha256(tiny_ckpt.read_bytes()).hexdigest()
    with pytest.raises(DonkeyError, match="--engine trt needs --device cuda"):
        load_any(tiny_ckpt, "trt", "cpu")  # refused before anything is built


def test_export_never_replaces_the_folder_holding_its_checkpoint(tiny_networks, tmp_path, runner):
    run = tmp_path / "run"
    ckpt = save_checkpoint(run / "last.ckpt", tiny_networks)
    result = runner.invoke(app, ["export", "--model", str(ckpt), "-o", str(run), "--overwrite"])
    assert result.exit_code == 1 and "holds the checkpoint being exported" in result.output
    assert _names(run) == ["last.ckpt"]


def test_metadata_read_off_the_wire_equals_onnx_parsing(good):
    import onnx

    from donkey.artifacts.verify import onnx_metadata

    for path in sorted(good.glob("*.onnx")):
        data = path.read_bytes()
        model = onnx.load_from_string(data)
        assert onnx_metadata(data) == {p.key: p.value for p in model.metadata_props}
        assert onnx_metadata(data)["donkey.graph"] == path.stem
        with pytest.raises(ValueError):
            onnx_metadata(data[: len(data) // 2])  # cut inside the graph field
    assert onnx_metadata(b"") == {}
