import json

from donkey.cli.app import app
from donkey.model.checkpoint import save_checkpoint
from donkey.model.config import TrainConfig, config_to_dict
from donkey.model.provenance import describe_training, training_summary


def test_summary_of_a_mixed_donkey_run(tiny_config):
    train = config_to_dict(TrainConfig(mode="mixed", pair_steps="dual", pair_every=3))
    train["loss"]["feature_matching_scales"] = [1.0, 0.5]
    summary = training_summary(tiny_config.model, train, {"step": 250})
    assert summary["mode"] == "mixed" and summary["steps"] == 250
    assert summary["pair_steps"] == "dual" and summary["pair_every"] == 3
    assert summary["attention"] == {
        "dense_motion": tiny_config.model.dense_motion.attention,
        "generator": tiny_config.model.generator.attention,
        "discriminator": tiny_config.model.discriminator.attention,
    }
    line = describe_training(summary)
    assert line.startswith("mixed (dual on pairs every 3 steps), 250 steps, ")
    assert line.endswith("feature matching at 2 scales")


def test_shipped_files_give_the_step_they_were_made_from(tiny_config):
    train = {**config_to_dict(TrainConfig()), "shipped_from_step": 6000}
    summary = training_summary(tiny_config.model, train, None)
    assert summary["steps"] == 6000 and "pair_steps" not in summary and "frozen" not in summary
    train["freeze"] = ["kp_detector", "dense_motion"]
    summary = training_summary(tiny_config.model, train, None)
    assert summary["frozen"] == ["kp_detector", "dense_motion"]
    assert describe_training(summary).endswith(", kp_detector and dense_motion frozen")
    assert training_summary(tiny_config.model, None, None) is None


def test_info_reports_how_a_checkpoint_was_trained(runner, tiny_networks, tmp_path):
    train = config_to_dict(TrainConfig(mode="dual", pair_steps="self"))
    path = save_checkpoint(tmp_path / "m.ckpt", tiny_networks, train, {"step": 12})
    result = runner.invoke(app, ["info", "--model", str(path), "--json"])
    assert result.exit_code == 0, result.output
    training = json.loads(result.output)["training"]
    assert (training["mode"], training["steps"], training["pair_steps"]) == ("dual", 12, "self")
    table = runner.invoke(app, ["info", "--model", str(path)])
    assert "trained: dual (self on pairs), 12 steps" in table.output
