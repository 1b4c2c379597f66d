"""`donkey configs` lists and prints the bundled configs, and commands take their names."""

from __future__ import annotations

from donkey.cli.app import app
from donkey.model.named_configs import CONFIG_DIR


def test_configs_lists_names_with_descriptions_and_prints_one(runner):
    result = runner.invoke(app, ["configs"], env={"COLUMNS": "300"})
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].startswith("ablation ") and "row of the Donkey-Net ablation" in lines[0]
    donkey = next(line for line in lines if line.startswith("donkey "))
    assert "paper-size model with CBAM/BAM" in donkey
    tiny = next(line for line in lines if line.startswith("tiny "))
    assert (
        tiny.split(None, 1)[1] == "Smallest model that exercises every code path: for tests only."
    )
    result = runner.invoke(app, ["configs", "tiny"])
    assert result.exit_code == 0
    assert result.output == (CONFIG_DIR / "tiny.yaml").read_text()
    result = runner.invoke(app, ["configs", "huge"])
    assert result.exit_code == 1
    assert (
        "error: huge: no bundled config of that name (ablation, donkey, mgif, small,"
        in result.output
    )


def test_commands_take_config_names(runner, tmp_path):
    result = runner.invoke(app, ["info", "tiny", "--json"])
    assert result.exit_code == 0, result.output
    assert '"image_size": 32' in result.output
    ckpt = tmp_path / "m.ckpt"
    result = runner.invoke(app, ["init", "tiny", "-o", str(ckpt)])
    assert result.exit_code == 0, result.output
    assert ckpt.is_file()
    result = runner.invoke(
        app, ["train", "nosuch", "--data", str(tmp_path), "-o", str(tmp_path / "r")]
    )
    assert result.exit_code == 1
    assert "nosuch: no such config file, and not a bundled config name" in result.output
