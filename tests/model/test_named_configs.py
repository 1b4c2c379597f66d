"""Configs shipped in the package (donkey/configs), usable by name, also reached as configs/."""

from __future__ import annotations

import pytest

from donkey.model.config import load_config
from donkey.model.errors import ConfigError
from donkey.model.named_configs import CONFIG_DIR, config_names, description, resolve_config
from tests.conftest import CONFIGS


def test_repository_configs_folder_is_the_packaged_one():
    # configs/ is a link to donkey/configs: one copy of each file, whichever path docs use.
    assert CONFIGS.resolve() == CONFIG_DIR
    assert "small" in config_names() and (CONFIGS / "small.yaml").is_file()


def test_names_resolve_and_load():
    assert {"small", "small128", "small-donkey", "tiny", "mgif", "donkey"} <= set(config_names())
    assert load_config("tiny").model.image_size == 32
    assert load_config("small.yaml").model.image_size == 64
    assert resolve_config("small") == CONFIG_DIR / "small.yaml"


def test_a_path_still_wins(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "small").write_text((CONFIGS / "tiny.yaml").read_text())
    assert load_config("small").model.image_size == 32  # the file here, not the bundled one
    assert load_config(CONFIGS / "small.yaml").model.image_size == 64


def test_unknown_name_lists_the_bundled_ones(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError) as err:
        load_config("smal")
    assert str(err.value) == (
        "smal: no such config file, and not a bundled config name (ablation, donkey, mgif, small, "
        "small-donkey, small128, tiny; `donkey configs` lists them)"
    )
    with pytest.raises(ConfigError) as err:
        load_config("configs/small.yaml")  # a path is never read as a name, but named
    assert str(err.value) == (
        "configs/small.yaml: no such config file; the package ships one of that name: give "
        "small instead of the path"
    )


def test_descriptions_are_the_first_sentence_of_the_header():
    assert description(CONFIG_DIR / "tiny.yaml") == (
        "Smallest model that exercises every code path: for tests only."
    )
    assert description(CONFIG_DIR / "small.yaml").startswith(
        "The CPU-sized model at 64x64 (the bundled default until 2026-11-26"
    )
    assert all(description(CONFIG_DIR / f"{n}.yaml") for n in config_names())
