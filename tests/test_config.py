import dataclasses
from pathlib import Path

import pytest

from rlhf.cli import main
from rlhf.config import Config, ConfigError, describe, load_config, plan_steps, save_config

ROOT = Path(__file__).resolve().parents[1]


def test_round_trip(tmp_path):
    cfg = load_config(overrides=["sft.lora.enabled=true", "sft.lora.target_modules=[q_proj, v_proj]"])
    save_config(cfg, tmp_path / "c.yaml")
    again = load_config(tmp_path / "c.yaml")
    assert again == cfg
    assert again.sft.lora.target_modules == ["q_proj", "v_proj"]


@pytest.mark.parametrize("name", ["rlhf_config.yaml", "demo.yaml", "tiny.yaml"])
def test_shipped_configs_load(name):
    assert isinstance(load_config(ROOT / "configs" / name), Config)


def test_precedence_defaults_file_overrides(tmp_path):
    (tmp_path / "c.yaml").write_text("sft:\n  learning_rate: 1e-4\n  batch_size: 4\n")
    cfg = load_config(tmp_path / "c.yaml", ["sft.learning_rate=1e-5"])
    assert cfg.sft.learning_rate == 1e-5  # override beats file
    assert cfg.sft.batch_size == 4  # file beats default
    assert cfg.sft.num_epochs == 3  # default
    assert cfg.reward.model.name == "models/sft_model"  # section defaults differ per stage


def test_unknown_key_names_path_and_file(tmp_path):
    (tmp_path / "c.yaml").write_text("sft:\n  lora:\n    rank: 8\n")
    with pytest.raises(ConfigError, match=r"c\.yaml: sft\.lora\.rank: unknown key"):
        load_config(tmp_path / "c.yaml")
    with pytest.raises(
        ConfigError, match=r"sft\.learnig_rate: unknown key \(did you mean 'learning_rate'\?\)"
    ):
        load_config(overrides=["sft.learnig_rate=1e-5"])
    with pytest.raises(ConfigError, match=r"^stf: unknown key"):
        load_config(overrides=["stf.batch_size=2"])


@pytest.mark.parametrize(
    "override, message",
    [
        ("sft.batch_size=eight", r"sft\.batch_size: expected int, got str"),
        ("sft.batch_size=2.5", r"sft\.batch_size: expected int, got float"),
        ("sft.lora.enabled=yes please", r"sft\.lora\.enabled: expected bool"),
        ("sft.learning_rate=true", r"sft\.learning_rate: expected float, got bool"),
        ("sft.model=gpt2", r"sft\.model: expected a mapping"),
        ("sft.lora.target_modules=q_proj", r"sft\.lora\.target_modules: expected a list"),
        ("sft.mixed_precision=fp8", r"sft\.mixed_precision: must be one of no, fp16, bf16"),
    ],
)
def test_wrong_type(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config(overrides=[override])


@pytest.mark.parametrize(
    "override, message",
    [
        ("sft.data.eval_fraction=1.5", r"sft\.data\.eval_fraction: must be in \[0, 1\)"),
        ("sft.lora.r=0", r"sft\.lora\.r: must be >= 1"),
        ("sft.batch_size=0", r"sft\.batch_size: must be >= 1"),
        ("sft.learning_rate=-1", r"sft\.learning_rate: must be a positive number"),
        ("reward.warmup_ratio=1", r"reward\.warmup_ratio: must be in \[0, 1\)"),
    ],
)
def test_impossible_values(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config(overrides=[override])


def test_impossible_combination():
    with pytest.raises(ConfigError, match=r"sft\.mixed_precision: fp16 autocast over bf16 weights"):
        load_config(overrides=["sft.model.dtype=bf16", "sft.mixed_precision=fp16"])


def test_yaml_exponent_without_dot_is_a_float():
    # YAML 1.1 reads 1e-5 as a string; a float field takes it anyway.
    assert load_config(overrides=["sft.learning_rate=1e-5"]).sft.learning_rate == 1e-5


def test_yaml_boolean_words_are_the_choices_they_spell():
    # YAML 1.1 reads a bare no/off as false; a choice spelled that way means the word.
    cfg = load_config(overrides=["sft.mixed_precision=no", "safety.training_data=off"])
    assert (cfg.sft.mixed_precision, cfg.safety.training_data) == ("no", "off")
    with pytest.raises(ConfigError, match="sft.mixed_precision: must be one of"):
        load_config(overrides=["sft.mixed_precision=yes"])


def test_malformed_override():
    with pytest.raises(ConfigError, match="expected dotted.key=value"):
        load_config(overrides=["sft.learning_rate"])


def test_derived_sizes():
    # 100 records / batch 8 -> 13 micro-batches -> ceil(13 / 2) = 7 optimizer steps per epoch.
    sizes = plan_steps(100, 8, 2, 3, None, 0.1)
    assert sizes == {"train_records": 100, "effective_batch": 16, "steps_per_epoch": 7,
                     "total_steps": 21, "warmup_steps": 3}  # fmt: skip
    assert plan_steps(100, 8, 2, 3, 5, 0.1)["total_steps"] == 5
    assert plan_steps(100, 8, 1, 1, None, 0.0, world_size=4)["steps_per_epoch"] == 4


def test_every_field_has_help():
    lines = describe(Config)
    assert lines and all(line.split("): ", 1)[1].strip() for line in lines)
    leaves = [f for f in dataclasses.fields(Config().sft.model)]
    assert all(f.metadata["help"] for f in leaves)


def test_cli_help_lists_keys_with_their_help(capsys):
    with pytest.raises(SystemExit):
        main(["sft", "--help"])
    out = capsys.readouterr().out
    assert "--model_name" in out and "--num_epochs" in out
    assert "sft.learning_rate (float, default 2e-05): Peak learning rate of AdamW." in out
    assert "sft.lora.r (int, default 16)" in out


def test_cli_reports_config_errors(capsys):
    assert main(["sft", "sft.lora.r=0"]) == 2
    assert "sft.lora.r: must be >= 1" in capsys.readouterr().err


def test_partial_section_keeps_the_fields_own_defaults():
    # The reward stage's data and model sections default differently from the DataConfig and
    # ModelConfig classes; overriding one key of them must keep the others.
    cfg = load_config(None, ["reward.data.max_records=5", "reward.model.dtype=bf16"])
    assert cfg.reward.data.path == "data/preference_data.json" and cfg.reward.data.max_records == 5
    assert cfg.reward.model.name == "models/sft_model" and cfg.reward.model.dtype == "bf16"
    assert cfg.sft.data.path == "data/sft_data.json"
