import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from torch import nn
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from rlhf.cli import main
from rlhf.config import ConfigError, load_config
from rlhf.data import PreferenceExample, tokenize_preferences
from rlhf.monitor import read_metrics
from rlhf.reward_model import (
    RewardModel,
    RewardModelEnsemble,
    aggregate_rewards,
    load_reward_model,
    reward_metrics,
    reward_tokenizer,
    score_texts,
    train_reward_model,
)

ROOT = Path(__file__).resolve().parents[1]
PREFS = ROOT / "data" / "preference_data.json"
TINY = ["--config", str(ROOT / "configs" / "tiny.yaml"), f"reward.data.path={PREFS}"]
PROMPTS = ["How do I boil an egg?", "What is the capital of France?", "Tell me a joke."]
RESPONSES = ["Put it in boiling water for eight minutes.", "Paris.", "I would rather not, sorry, I am out of jokes today."]


class LengthAwareRewardModel(RewardModel):
    """A subclass as in SEED.md: its own forward, plus a parameter of its own."""

    def __init__(self, model, **kwargs):
        super().__init__(model, **kwargs)
        self.per_token = nn.Parameter(torch.zeros(()))

    def forward(self, input_ids, attention_mask):
        return super().forward(input_ids, attention_mask) + self.per_token * attention_mask.sum(-1)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("rm") / "reward_model"
    assert main(["reward", *TINY, "--base_model", "tiny-random", "--output_dir", str(out),
                 "--num_epochs", "2", "--batch_size", "4"]) == 0  # fmt: skip
    return out


# ---------------------------------------------------------------- math


def test_aggregation_math():
    members = torch.tensor([[1.0, 2.0], [3.0, 0.0], [2.0, 4.0]])  # (M=3, B=2)
    torch.testing.assert_close(aggregate_rewards(members, "mean"), torch.tensor([2.0, 2.0]))
    torch.testing.assert_close(aggregate_rewards(members, "min"), torch.tensor([1.0, 0.0]))
    std = torch.tensor([math.sqrt(2 / 3), math.sqrt(8 / 3)])  # population std over members
    torch.testing.assert_close(aggregate_rewards(members, "mean_minus_std", 0.5), torch.tensor([2.0, 2.0]) - 0.5 * std)
    with pytest.raises(ValueError, match="aggregation"):
        aggregate_rewards(members, "median")


def test_reward_metrics_on_constructed_scores():
    chosen = np.array([2.0, 1.0, 0.0, 3.0])
    rejected = np.array([1.0, 2.0, -1.0, 0.0])
    chosen_len, rejected_len = np.array([10, 5, 20, 8]), np.array([12, 30, 4, 9])
    m = reward_metrics(chosen, rejected, chosen_len, rejected_len)
    assert m["accuracy"] == 0.75 and m["margin"] == 1.0 and m["pairs"] == 4
    # Chosen shorter in pairs 0, 1, 3; the model ranks 0 and 3 right.
    assert m["pairs_chosen_shorter"] == 3 and math.isclose(m["accuracy_chosen_shorter"], 2 / 3)
    expected_corr = np.corrcoef([2, 1, 0, 3, 1, 2, -1, 0], [10, 5, 20, 8, 12, 30, 4, 9])[0, 1]
    assert math.isclose(m["length_corr"], expected_corr)
    # Gaps 1, -1, 1, 3 -> confidences s(1) x3 (right, wrong, right) and s(3) (right).
    s1, s3 = 1 / (1 + math.exp(-1)), 1 / (1 + math.exp(-3))
    assert math.isclose(m["ece"], 3 / 4 * abs(2 / 3 - s1) + 1 / 4 * abs(1 - s3), rel_tol=1e-9)
    # Undefined values are None, not NaN (eval.json stays valid JSON).
    flat = reward_metrics(np.ones(2), np.zeros(2), np.array([3, 3]), np.array([3, 3]))
    assert flat["length_corr"] is None and flat["accuracy_chosen_shorter"] is None


# ---------------------------------------------------------------- data and model


def test_tokenize_preferences_keeps_margins_and_counts_pairs(tokenizer):
    examples = [
        PreferenceExample([{"role": "user", "content": "Hi"}], "Hello there.", "Go away.", margin=2.0),
        PreferenceExample([{"role": "user", "content": "Hi"}], "Hello. " * 200, "Hey."),
    ]
    features, stats = tokenize_preferences(examples, tokenizer, 64, "drop")
    assert len(features) == 1 and (stats.records, stats.dropped) == (1, 1)  # a pair, not a side
    f = features[0]
    assert f["margin"] == 2.0 and f["chosen_ids"][-1] == f["rejected_ids"][-1] == tokenizer.eos_token_id
    features, stats = tokenize_preferences(examples, tokenizer, 64, "truncate")
    assert len(features) == 2 and stats.truncated == 1 and features[1]["margin"] == 0.0
    assert len(features[1]["chosen_ids"]) == 64


def test_pad_is_not_eos_and_padding_side_does_not_change_scores(tiny_path):
    tok = reward_tokenizer(tiny_path)
    assert tok.pad_token_id != tok.eos_token_id
    rm = RewardModel.from_pretrained(tiny_path, pad_token_id=tok.pad_token_id)
    rm.eval()
    seqs = [tok(t)["input_ids"] + [tok.eos_token_id] for t in ["a b c d e f", "hello", "one two three"]]
    alone = torch.stack([rm(torch.tensor([s]), torch.ones(1, len(s), dtype=torch.long)) for s in seqs]).squeeze(1)
    width = max(map(len, seqs))
    for side in ("right", "left"):
        ids = torch.full((3, width), tok.pad_token_id)
        mask = torch.zeros(3, width, dtype=torch.long)
        for i, s in enumerate(seqs):
            cols = slice(0, len(s)) if side == "right" else slice(width - len(s), width)
            ids[i, cols], mask[i, cols] = torch.tensor(s), 1
        torch.testing.assert_close(rm(ids, mask), alone, atol=1e-5, rtol=1e-5)
    # The head is read at the final EOS: the same score as the head on the last hidden state.
    s = torch.tensor([seqs[0]])
    hidden = rm.model.model(input_ids=s).last_hidden_state  # (1, T, H)
    torch.testing.assert_close(rm.model.score(hidden[:, -1]).squeeze(-1), alone[:1])


# ---------------------------------------------------------------- training


def test_reward_cli_trains_and_plain_transformers_scores_the_same(trained, tiny_path):
    # Weights changed and a head was learned.
    base = load_file(str(Path(tiny_path) / "model.safetensors"))
    after = load_file(str(trained / "model.safetensors"))
    assert "score.weight" in after and any(not torch.equal(base[k], after[k]) for k in base if k in after)

    hf = AutoModelForSequenceClassification.from_pretrained(trained)  # plain transformers, no rlhf
    tok = AutoTokenizer.from_pretrained(trained)
    assert hf.config.num_labels == 1 and tok.padding_side == "right" and tok.pad_token_id != tok.eos_token_id
    texts = [tok.apply_chat_template([{"role": "user", "content": p}, {"role": "assistant", "content": r}],
                                     tokenize=False).rstrip("\n") for p, r in zip(PROMPTS, RESPONSES, strict=True)]  # fmt: skip
    batch = tok(texts, return_tensors="pt", padding=True, add_special_tokens=False)
    with torch.no_grad():
        plain = hf(**batch).logits.squeeze(-1)
    rm = RewardModel.from_pretrained(str(trained))
    with torch.no_grad():
        ours = rm(batch["input_ids"], batch["attention_mask"])
    torch.testing.assert_close(ours, plain, atol=1e-5, rtol=1e-5)
    assert len(set(plain.tolist())) == 3  # a real comparison, not a constant

    # score_texts builds the same text from prompts and responses, and normalises.
    stats = json.loads((trained / "reward_stats.json").read_text())
    assert stats["std"] > 0 and (rm.mean, rm.std) == (stats["mean"], stats["std"])
    torch.testing.assert_close(score_texts(rm, tok, PROMPTS, RESPONSES), (plain - rm.mean) / rm.std, atol=1e-5, rtol=1e-5)


def test_reward_run_files_and_metrics(trained):
    report = json.loads((trained / "eval.json").read_text())
    for split_name in ("train", "eval"):
        assert set(report[split_name]) >= {"accuracy", "margin", "ece", "length_corr", "accuracy_chosen_shorter"}
    # 48 pairs, 10% held out -> 43 training pairs; the stats are over their 86 responses.
    assert report["train"]["pairs"] == 43 and report["eval"]["pairs"] == 5
    assert report["train"]["accuracy"] > 0.7  # tiny-random learns the sample data's easy cues
    rows = read_metrics(trained)
    evals = [r for r in rows if "eval/accuracy" in r]
    assert [r["step"] for r in evals] == [0, 11, 22]  # before training, then each epoch
    assert any("train/accuracy" in r and "train/margin" in r for r in rows)
    assert (trained / "plots" / "reward.png").stat().st_size > 1000
    assert "accuracy" in (trained / "README.md").read_text()
    assert load_config(trained / "config.yaml").reward.num_epochs == 2


def test_subclass_trains_saves_loads_and_joins_an_ensemble(tmp_path, trained):
    cfg = load_config(ROOT / "configs" / "tiny.yaml", [f"reward.data.path={PREFS}", f"reward.output_dir={tmp_path / 'sub'}",
                      "reward.max_steps=4", "reward.learning_rate=1e-2"])  # fmt: skip
    out = train_reward_model(cfg, model_class=LengthAwareRewardModel)
    assert (out / "reward_extra.safetensors").exists()
    loaded = LengthAwareRewardModel.from_pretrained(str(out))
    assert loaded.per_token.item() != 0.0  # the subclass's own parameter was trained, saved and loaded
    with pytest.raises(ValueError, match="does not fit RewardModel"):
        RewardModel.from_pretrained(str(out))  # its extra weights need the subclass
    # Members of different classes score together.
    tok = AutoTokenizer.from_pretrained(trained)
    ensemble = RewardModelEnsemble(model_paths=[loaded, str(trained)], tokenizer=tok)
    scores = ensemble.score_texts(PROMPTS, RESPONSES)
    expected = torch.stack([score_texts(m, tok, PROMPTS, RESPONSES) for m in ensemble.members]).mean(0)
    torch.testing.assert_close(scores, expected)


def test_ensemble_cli_trains_members_on_resamples(tmp_path):
    out = tmp_path / "ensemble"
    assert main(["reward", *TINY, "--output_dir", str(out), "--ensemble", "2", "reward.max_steps=3",
                 "reward.aggregation=mean_minus_std", "reward.uncertainty_coef=0.5"]) == 0  # fmt: skip
    spec = json.loads((out / "ensemble.json").read_text())
    assert spec == {"members": ["member_0", "member_1"], "aggregation": "mean_minus_std", "uncertainty_coef": 0.5}
    a, b = (load_file(str(out / m / "model.safetensors")) for m in spec["members"])
    assert any(not torch.equal(a[k], b[k]) for k in a)  # different seeds and data
    assert [load_config(out / m / "config.yaml").reward.seed for m in spec["members"]] == [42, 43]
    report = json.loads((out / "eval.json").read_text())
    assert len(report["member_accuracy"]) == 2 and report["mean_disagreement"] > 0

    ensemble = load_reward_model(str(out))
    assert isinstance(ensemble, RewardModelEnsemble) and ensemble.aggregation == "mean_minus_std"
    tok = AutoTokenizer.from_pretrained(out)
    batch = tok(PROMPTS, return_tensors="pt", padding=True)
    s = ensemble.score(batch["input_ids"], batch["attention_mask"])
    assert s.members.shape == (2, 3) and s.disagreement.shape == (3,)
    torch.testing.assert_close(s.reward, s.members.mean(0) - 0.5 * s.members.std(0, correction=0))
    # SEED.md's form: paths and a tokenizer.
    seed_form = RewardModelEnsemble(model_paths=[str(out / "member_0"), str(out / "member_1")], tokenizer=tok)
    torch.testing.assert_close(seed_form(batch["input_ids"], batch["attention_mask"]), s.members.mean(0))

    # Killed while training member_1 (before its first checkpoint): --resume keeps member_0 and
    # trains member_1 again, to the same weights.
    kept = (out / "member_0" / "model.safetensors").stat().st_mtime_ns
    for name in ("member_1/eval.json", "member_1/model.safetensors", "ensemble.json", "eval.json"):
        (out / name).unlink()
    assert main(["reward", *TINY, "--output_dir", str(out), "--ensemble", "2", "reward.max_steps=3",
                 "reward.aggregation=mean_minus_std", "reward.uncertainty_coef=0.5", "--resume"]) == 0  # fmt: skip
    assert (out / "member_0" / "model.safetensors").stat().st_mtime_ns == kept
    again = load_file(str(out / "member_1" / "model.safetensors"))
    assert all(torch.equal(again[k], b[k]) for k in b)
    assert json.loads((out / "eval.json").read_text()) == report


def test_lora_reward_model_is_merged_into_a_plain_classifier(tmp_path, tiny_path):
    out = tmp_path / "lora"
    assert main(["reward", *TINY, "--output_dir", str(out), "reward.lora.enabled=true", "reward.lora.r=4",
                 "reward.model.gradient_checkpointing=true", "reward.max_steps=3", "reward.learning_rate=1e-2"]) == 0  # fmt: skip
    assert not (out / "adapter_config.json").exists()
    base, after = load_file(str(Path(tiny_path) / "model.safetensors")), load_file(str(out / "model.safetensors"))
    changed = {k for k in base if k in after and not torch.equal(base[k], after[k])}
    assert changed and all("proj" in k for k in changed)  # only adapted layers moved; plus the new head
    assert AutoModelForSequenceClassification.from_pretrained(out).config.num_labels == 1


def test_resume_matches_uninterrupted_run(tmp_path):
    common = [*TINY, "reward.max_steps=6", "reward.save_steps=3", "reward.save_total_limit=0"]
    full, cut = tmp_path / "full", tmp_path / "cut"
    assert main(["reward", *common, "--output_dir", str(full)]) == 0
    assert main(["reward", *common, "--output_dir", str(cut)]) == 0
    shutil.rmtree(cut / "checkpoints" / "checkpoint-6")  # as if killed after step 3
    (cut / "model.safetensors").unlink()
    assert main(["reward", *common, "--output_dir", str(cut), "--resume"]) == 0
    a, b = load_file(str(full / "model.safetensors")), load_file(str(cut / "model.safetensors"))
    for k in a:
        torch.testing.assert_close(a[k], b[k], atol=1e-6, rtol=1e-5)
    assert [r["step"] for r in read_metrics(cut) if "loss/train" in r] == [1, 2, 3, 4, 5, 6]


def test_bad_preference_data_fails_before_touching_output(tmp_path, capsys):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([{"prompt": "a", "chosen": "b", "rejected": "c"}, {"prompt": "a", "chosen": "b"}]))
    assert main(["reward", *TINY, f"reward.data.path={bad}", "--output_dir", str(tmp_path / "out")]) == 2
    assert "bad.json: record 1: missing field 'rejected'" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_config_checks():
    with pytest.raises(ConfigError, match="reward.lora.merge"):
        load_config(None, ["reward.lora.enabled=true", "reward.lora.merge=false"])
    with pytest.raises(ConfigError, match="reward.ensemble: must be >= 1"):
        load_config(None, ["reward.ensemble=0"])
    with pytest.raises(ConfigError, match="reward.aggregation: must be one of"):
        load_config(None, ["reward.aggregation=median"])


def test_margin_field_enters_the_loss_unless_switched_off(tmp_path):
    # The same pairs with a margin of 5: use_margin=false must train exactly as with no margins.
    pairs = json.loads(PREFS.read_text())[:16]
    plain, with_margin = tmp_path / "plain.json", tmp_path / "margin.json"
    plain.write_text(json.dumps(pairs))
    with_margin.write_text(json.dumps([{**p, "margin": 5.0} for p in pairs]))
    runs = {"plain": (plain, []), "margin": (with_margin, []), "ignored": (with_margin, ["reward.use_margin=false"])}
    weights = {}
    for name, (path, extra) in runs.items():
        out = tmp_path / name
        assert main(["reward", *TINY, f"reward.data.path={path}", "--output_dir", str(out), "reward.max_steps=2",
                     "reward.data.eval_fraction=0", *extra]) == 0  # fmt: skip
        weights[name] = load_file(str(out / "model.safetensors"))["score.weight"]
    torch.testing.assert_close(weights["ignored"], weights["plain"])
    assert not torch.allclose(weights["margin"], weights["plain"])
