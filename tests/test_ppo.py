import contextlib
import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, AutoModelForTokenClassification, AutoTokenizer

from rlhf.cli import main
from rlhf.config import ConfigError, load_config, ppo_sizes
from rlhf.data import encode_prompt
from rlhf.functional import logprobs_from_logits
from rlhf.models import load_tokenizer
from rlhf.monitor import read_metrics
from rlhf.ppo import KLController, MixedPrecision, ppo_update, train_ppo, win_rate
from rlhf.reward_model import RewardModel
from rlhf.rollout import PPOModels, ValueModel, filter_logits, generate, pad_left, response_logits, rollout

ROOT = Path(__file__).resolve().parents[1]
TINY_CONFIG = str(ROOT / "configs" / "tiny.yaml")
PROMPTS = ["How do I boil an egg?", "What is the capital of France, and why?", "Tell me a joke."]


def _overrides(reward_dir, out, *extra):
    """A seconds-long PPO run on tiny-random (configs/tiny.yaml), starting from tiny-random."""
    return [
        "ppo.sft_model_path=tiny-random", f"ppo.reward_model_path={reward_dir}", f"ppo.output_dir={out}",
        f"ppo.prompts_path={ROOT / 'data' / 'prompts.json'}", "ppo.max_prompts=24", "ppo.num_episodes=8",
        "ppo.batch_size=4", "ppo.micro_batch_size=2", "ppo.max_new_tokens=6", *extra,
    ]  # fmt: skip


def _config(reward_dir, out, *extra):
    return load_config(TINY_CONFIG, _overrides(reward_dir, out, *extra))


def _prompt_ids(tokenizer, prompts=PROMPTS):
    return pad_left([encode_prompt(tokenizer, [{"role": "user", "content": p}]) for p in prompts], tokenizer.pad_token_id)


# ---------------------------------------------------------------- generation


def test_filter_logits_top_k_and_top_p():
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))
    kept = lambda x: torch.isfinite(x)[0].tolist()  # noqa: E731
    assert kept(filter_logits(logits, top_k=2)) == [True, True, False, False]
    # top_p 0.8: 0.5 + 0.3 reaches it, so the rest go; 0.81 needs the third token too.
    assert kept(filter_logits(logits, top_p=0.8)) == [True, True, False, False]
    assert kept(filter_logits(logits, top_p=0.81)) == [True, True, True, False]
    assert kept(filter_logits(logits, top_p=0.1)) == [True, False, False, False]  # the top token stays
    assert kept(filter_logits(logits)) == [True] * 4


def test_greedy_generation_matches_transformers_and_stops_at_eos(tiny_path, tokenizer):
    model = AutoModelForCausalLM.from_pretrained(tiny_path).eval()
    ids, mask = _prompt_ids(tokenizer)
    reference = model.generate(input_ids=ids, attention_mask=mask.long(), max_new_tokens=8, do_sample=False,
                               eos_token_id=None, pad_token_id=tokenizer.pad_token_id)[:, ids.shape[1]:]  # fmt: skip
    response, r_mask, _ = generate(model, ids, mask, 8, eos_id=-1, pad_id=tokenizer.pad_token_id, temperature=0)
    assert torch.equal(response, reference) and r_mask.all()
    # Call row 0's third token EOS: that row stops there (mask through EOS, pad after it).
    eos = int(response[0, 2])
    response, r_mask, _ = generate(model, ids, mask, 8, eos_id=eos, pad_id=tokenizer.pad_token_id, temperature=0)
    first = int((reference[0] == eos).long().argmax())
    assert r_mask[0].tolist() == [True] * (first + 1) + [False] * (response.shape[1] - first - 1)
    assert (response[0, first + 1 :] == tokenizer.pad_token_id).all()


def test_sampling_logprobs_equal_a_full_forward_pass(tiny_path, tokenizer):
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(tiny_path).eval()
    ids, mask = _prompt_ids(tokenizer)
    response, r_mask, logprobs = generate(model, ids, mask, 10, tokenizer.eos_token_id, tokenizer.pad_token_id,
                                          temperature=0.7, top_k=50)  # fmt: skip
    with torch.no_grad():
        full = logprobs_from_logits(response_logits(model, ids, mask, response, r_mask), response, 0.7)
    torch.testing.assert_close(logprobs[r_mask], full[r_mask], atol=1e-4, rtol=0)
    # The same rows scored one at a time, without padding, give the same logprobs.
    with torch.no_grad():
        for i in range(len(PROMPTS)):
            alone = logprobs_from_logits(
                response_logits(model, ids[i : i + 1, mask[i]], mask[i : i + 1, mask[i]],
                                response[i : i + 1], r_mask[i : i + 1]), response[i : i + 1], 0.7)  # fmt: skip
            torch.testing.assert_close(alone[0][r_mask[i]], full[i][r_mask[i]], atol=1e-4, rtol=0)


def test_value_model_scores_like_the_reward_model(reward_dir, tokenizer):
    rm = RewardModel.from_pretrained(str(reward_dir)).eval()
    critic = ValueModel(rm.model.base_model, rm.model.score, rm.mean, rm.std).eval()
    ids, mask = _prompt_ids(tokenizer)
    # Right padding after the "response" too, as in a rollout.
    ids = torch.cat([ids, torch.full((3, 2), tokenizer.pad_token_id)], 1)
    mask = torch.cat([mask, torch.tensor([[True, True], [True, False], [False, False]])], 1)
    with torch.no_grad():
        hidden = critic.hidden(ids, mask)
        torch.testing.assert_close(critic.reward(hidden, mask), rm(ids, mask))
        # The value head starts as the normalised reward head.
        last = mask.long().cumsum(-1).argmax(-1)
        values = critic(ids, mask)[torch.arange(3), last]
        torch.testing.assert_close(values, rm.normalize(rm(ids, mask)), atol=1e-5, rtol=1e-5)


# ---------------------------------------------------------------- rollout and update


def test_rollout_reference_and_scores_come_from_the_right_models(reward_dir, tiny_path, tmp_path):
    cfg = _config(reward_dir, tmp_path / "out", "ppo.max_new_tokens=8", "ppo.missing_eos_penalty=1.0",
                  "ppo.length_penalty=0.01").ppo  # fmt: skip
    tokenizer = load_tokenizer("tiny-random", padding_side="left")
    models = PPOModels(cfg, tokenizer, torch.device("cpu"))
    assert models.shared and models.reward_model is None  # two base models: policy + critic trunk
    with torch.no_grad():  # make the policy differ from the reference
        for name, p in models.policy.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.5)
    prompts = [[{"role": "user", "content": p}] for p in PROMPTS]
    ids = [encode_prompt(tokenizer, p) for p in prompts]
    torch.manual_seed(0)
    batch, texts, _ = rollout(models, cfg, tokenizer, prompts, ids, contextlib.nullcontext)

    sft = AutoModelForCausalLM.from_pretrained(tiny_path).eval()
    full_ids = torch.cat([batch.query_ids, batch.response_ids], 1)
    full_mask = torch.cat([batch.query_mask, batch.response_mask], 1)
    with torch.no_grad():
        ref = logprobs_from_logits(response_logits(sft, batch.query_ids, batch.query_mask, batch.response_ids,
                                                   batch.response_mask), batch.response_ids, cfg.temperature)  # fmt: skip
        policy = logprobs_from_logits(response_logits(models.policy, batch.query_ids, batch.query_mask,
                                                      batch.response_ids, batch.response_mask), batch.response_ids,
                                      cfg.temperature)  # fmt: skip
        rm = RewardModel.from_pretrained(str(reward_dir)).eval()
        expected_score = rm.normalize(rm(full_ids, full_mask))
    m = batch.response_mask
    torch.testing.assert_close(batch.ref_logprobs[m], ref[m], atol=1e-4, rtol=0)
    torch.testing.assert_close(batch.logprobs[m], policy[m], atol=1e-4, rtol=0)
    assert (batch.logprobs[m] - batch.ref_logprobs[m]).abs().max() > 0.01  # the policy is not the reference
    torch.testing.assert_close(batch.rm_score, expected_score, atol=1e-5, rtol=1e-5)
    # No EOS within 8 tokens of a random model: each score pays missing_eos_penalty and 8 x 0.01.
    assert batch.response_mask.all()
    torch.testing.assert_close(batch.score, (expected_score - 1.0 - 0.08).clamp(-5, 5), atol=1e-5, rtol=1e-5)
    assert len(texts) == 3 and batch.values.shape == batch.response_ids.shape


def _update_after(reward_dir, tmp_path, micro_batch_size):
    cfg = _config(reward_dir, tmp_path, "ppo.batch_size=4", "ppo.num_mini_batches=1", f"ppo.micro_batch_size={micro_batch_size}",
                  "ppo.ppo_epochs=1", "ppo.critic_trunk=trained").ppo  # fmt: skip
    tokenizer = load_tokenizer("tiny-random", padding_side="left")
    torch.manual_seed(0)
    models = PPOModels(cfg, tokenizer, torch.device("cpu"))
    prompts = [[{"role": "user", "content": p}] for p in PROMPTS + ["Hi"]]
    torch.manual_seed(1)
    batch, _, _ = rollout(models, cfg, tokenizer, prompts, [encode_prompt(tokenizer, p) for p in prompts],
                          torch.no_grad)  # fmt: skip
    batch.advantages, batch.returns = torch.randn_like(batch.values), torch.randn_like(batch.values)
    optimizers = []
    for model in (models.policy, models.critic):
        opt = torch.optim.SGD(models.trainable(model), lr=1.0)
        optimizers.append((opt, torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)))
    torch.manual_seed(2)
    stats = ppo_update(models, cfg, batch, optimizers, MixedPrecision("no", torch.device("cpu")), ppo_sizes(cfg))
    weights = {n: p.detach().clone() for m in (models.policy, models.critic) for n, p in m.named_parameters() if p.requires_grad}
    return weights, stats


def test_gradient_accumulation_equals_one_big_micro_batch(reward_dir, tmp_path):
    # One mini-batch of 4 episodes: micro-batches of 4 x 1 pass == 1 x 4 passes (token-weighted).
    big, big_stats = _update_after(reward_dir, tmp_path, 4)
    small, small_stats = _update_after(reward_dir, tmp_path, 1)
    for name in big:
        torch.testing.assert_close(small[name], big[name], atol=1e-5, rtol=1e-4, msg=name)
    assert abs(small_stats["loss/policy"] - big_stats["loss/policy"]) < 1e-5


# ---------------------------------------------------------------- whole runs


def test_ppo_cli_run_changes_weights_and_writes_plain_hf_outputs(reward_dir, tiny_path, tmp_path):
    out = tmp_path / "rlhf_model"
    assert main(["ppo", "--config", TINY_CONFIG, *_overrides(reward_dir, out)]) == 0
    policy = AutoModelForCausalLM.from_pretrained(out / "policy")
    tokenizer = AutoTokenizer.from_pretrained(out / "tokenizer")
    before = AutoModelForCausalLM.from_pretrained(tiny_path).state_dict()
    changed = [k for k, v in policy.state_dict().items() if not torch.equal(v, before[k])]
    assert any("q_proj" in k for k in changed) and all("embed" not in k for k in changed)  # LoRA merged
    # The SEED.md deployment snippet.
    inputs = tokenizer("What is the meaning of life?", return_tensors="pt")
    generated = policy.generate(**inputs, max_length=inputs["input_ids"].shape[1] + 5, do_sample=False)
    assert generated.shape[1] == inputs["input_ids"].shape[1] + 5
    value_model = AutoModelForTokenClassification.from_pretrained(out / "value_model")
    assert value_model(**inputs).logits.shape == (1, inputs["input_ids"].shape[1], 1)

    rows = [r for r in read_metrics(out) if "objective/score" in r]
    assert [r["step"] for r in rows] == [1, 2] and rows[-1]["episodes"] == 8
    for key in ("objective/kl", "objective/reward", "objective/entropy", "policy/approx_kl", "policy/clipfrac",
                "loss/policy", "loss/value", "loss/total", "value/explained_var", "ppo/kl_coef", "time/update"):  # fmt: skip
        assert all(isinstance(r[key], float) for r in rows), key
    assert abs(rows[0]["objective/kl"]) < 1e-3  # the first rollout comes from the reference itself
    samples = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
    assert {s["step"] for s in samples} == {1, 2} and {"prompt", "response", "score", "kl"} <= set(samples[0])
    report = json.loads((out / "eval.json").read_text())["held_out"]
    assert report["prompts"] == 2 and 0 <= report["win_rate"] <= 1
    assert (out / "plots" / "ppo.png").stat().st_size > 0 and "PPO" in (out / "policy" / "README.md").read_text()
    assert load_config(out / "config.yaml").ppo.num_episodes == 8


def test_generate_cli_answers_prompts_and_stdin(tiny_path, tmp_path, capsys, monkeypatch):
    # A PPO output's layout: the tokenizer sits beside the policy, not in it.
    model = AutoModelForCausalLM.from_pretrained(tiny_path)
    model.save_pretrained(tmp_path / "policy")
    AutoTokenizer.from_pretrained(tiny_path).save_pretrained(tmp_path / "tokenizer")
    args = ["generate", "--model", str(tmp_path / "policy"), "--max_new_tokens", "8"]
    outputs = []
    for _ in range(2):
        assert main([*args, "--prompt", "Hi", "--prompt", "Bye", "--seed", "3"]) == 0
        outputs.append(capsys.readouterr().out)
    assert outputs[0].strip() and outputs[0] == outputs[1]  # seeded sampling repeats
    assert main([*args, "--prompt", "Hi", "--temperature", "0"]) == 0
    greedy = capsys.readouterr().out
    monkeypatch.setattr("sys.stdin", io.StringIO("Hi\n\n"))
    assert main([*args, "--temperature", "0"]) == 0
    assert capsys.readouterr().out == greedy  # one answer per non-empty line: the same greedy text


def _ensemble(reward_dir, path):
    path.mkdir()
    for name in ("member_0", "member_1"):
        (path / name).symlink_to(reward_dir)
    (path / "ensemble.json").write_text(json.dumps({"members": ["member_0", "member_1"], "aggregation": "mean",
                                                    "uncertainty_coef": 1.0}))  # fmt: skip
    return path


@pytest.mark.parametrize("variant", ["full-weights", "lora-critic", "ensemble", "bf16"])
def test_ppo_variants_train_what_they_should(reward_dir, tmp_path, variant):
    extra = {
        "full-weights": ["ppo.lora.enabled=false", "ppo.critic_trunk=trained", "ppo.learning_rate=1e-3"],
        "lora-critic": ["ppo.critic_trunk=trained", "ppo.gradient_checkpointing=true", "ppo.ppo_epochs=3",
                        "ppo.early_stop_kl=1e-12"],
        "bf16": ["ppo.mixed_precision=bf16"],
        "ensemble": [f"ppo.reward_model_path={_ensemble(reward_dir, tmp_path / 'ens')}"],
    }[variant]
    out = tmp_path / "out"
    penalised = []

    def shouting(prompts, responses):
        penalised.append(len(responses))
        return torch.ones(len(responses))

    train_ppo(_config(reward_dir, out, "ppo.num_episodes=4", "ppo.missing_eos_penalty=1.0", *extra), penalties=[shouting])
    rm = RewardModel.from_pretrained(str(reward_dir))
    value_model = AutoModelForTokenClassification.from_pretrained(out / "value_model")
    trunk_changed = not torch.equal(value_model.base_model.layers[0].self_attn.q_proj.weight,
                                    rm.model.base_model.layers[0].self_attn.q_proj.weight)  # fmt: skip
    assert trunk_changed == (variant in ("full-weights", "lora-critic"))  # frozen trunk unless it trains
    row = read_metrics(out)[-1]
    assert penalised == [4] and row["safety/shouting"] == 1.0  # the hook ran on each rollout
    expected = row["objective/rm_score"] - 1.0 - (1 - row["response/eos_rate"])  # no clipping at these scores
    assert abs(row["objective/score"] - expected) < 1e-4
    # early_stop_kl: the second mini-batch already sees a moved policy, so one epoch of three runs.
    assert row["policy/epochs"] == (1 if variant == "lora-critic" else 2)


def _run(args, **kwargs):
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    return subprocess.Popen([sys.executable, "-m", "rlhf.cli", *args], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, **kwargs)  # fmt: skip


def _numbers(run_dir):
    return [{k: v for k, v in r.items() if not k.startswith("time/")} for r in read_metrics(run_dir)]


def test_resume_after_sigkill_matches_an_uninterrupted_run(reward_dir, tmp_path):
    full, killed = tmp_path / "full", tmp_path / "killed"
    args = lambda out: ["ppo", "--config", TINY_CONFIG, *_overrides(  # noqa: E731
        reward_dir, out, "ppo.num_episodes=24", "ppo.save_every=1", "ppo.adaptive_kl=true")]
    assert main(args(full)) == 0

    proc = _run(args(killed))
    deadline = time.time() + 300
    while not (killed / "checkpoints" / "update-2").exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL, proc.stderr.read().decode()[-2000:]
    assert not (killed / "policy").exists()

    assert main([*args(killed), "--resume"]) == 0
    a, b = _numbers(full), _numbers(killed)
    assert [r["step"] for r in a] == [r["step"] for r in b] == list(range(7))
    for ra, rb in zip(a, b, strict=True):
        for key in ra:
            assert ra[key] == pytest.approx(rb[key], rel=1e-5, abs=1e-6), (ra["step"], key)
    wa, wb = load_file(str(full / "policy" / "model.safetensors")), load_file(str(killed / "policy" / "model.safetensors"))
    for key in wa:
        torch.testing.assert_close(wa[key], wb[key], atol=1e-6, rtol=1e-5)
    assert [json.loads(x)["step"] for x in (killed / "samples.jsonl").read_text().splitlines()] == \
        [json.loads(x)["step"] for x in (full / "samples.jsonl").read_text().splitlines()]  # fmt: skip


def test_kl_controller_and_win_rate():
    cfg = load_config(None, ["ppo.adaptive_kl=true", "ppo.kl_coef=0.1", "ppo.target_kl=6", "ppo.kl_horizon=100"]).ppo
    ctl = KLController(cfg)
    ctl.update(kl=12.0, n_episodes=10)  # error clipped to +0.2: x (1 + 0.2 * 10 / 100)
    assert ctl.value == pytest.approx(0.1 * 1.02)
    ctl.update(kl=5.4, n_episodes=10)  # error -0.1
    assert ctl.value == pytest.approx(0.1 * 1.02 * 0.99)
    fixed = KLController(load_config(None, ["ppo.kl_coef=0.1"]).ppo)
    fixed.update(kl=100.0, n_episodes=10)
    assert fixed.value == 0.1
    assert win_rate(torch.tensor([1.0, 2.0, 0.0, 1.0]), torch.tensor([0.0, 3.0, 0.0, 2.0])) == 0.375


def test_config_checks_and_sizes(reward_dir, tmp_path):
    cfg = load_config(None, ["ppo.num_episodes=1000", "ppo.batch_size=16", "ppo.num_mini_batches=2",
                             "ppo.micro_batch_size=4"]).ppo  # fmt: skip
    assert ppo_sizes(cfg) == {"updates": 63, "episodes": 1008, "mini_batch_size": 8,
                              "gradient_accumulation_steps": 2, "optimizer_steps": 63 * 4 * 2}  # fmt: skip
    with pytest.raises(ConfigError, match="ppo.num_mini_batches: batch_size 16 is not divisible by 3"):
        load_config(None, ["ppo.num_mini_batches=3"])
    with pytest.raises(ConfigError, match="ppo.micro_batch_size"):
        load_config(None, ["ppo.micro_batch_size=3"])
    with pytest.raises(ConfigError, match="ppo.top_p: must be in"):
        load_config(None, ["ppo.top_p=0"])
    with pytest.raises(ConfigError, match="ppo.kl_estimator: must be one of k1, k3"):
        load_config(None, ["ppo.kl_estimator=k2"])
    # A reward model with another vocabulary is refused before any output is written.
    assert main(["ppo", "--config", TINY_CONFIG, *_overrides(reward_dir, tmp_path / "x"),
                 "ppo.sft_model_path=" + str(_other_vocab(tmp_path))]) == 2  # fmt: skip
    assert not (tmp_path / "x").exists()


def _other_vocab(tmp_path):
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    tok = Tokenizer(models.WordLevel({"<unk>": 0, "<eos>": 1, "hello": 2}, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", eos_token="<eos>", pad_token="<eos>")
    path = tmp_path / "other"
    fast.save_pretrained(path)
    LlamaForCausalLM(LlamaConfig(vocab_size=3, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                                 num_attention_heads=2)).save_pretrained(path)  # fmt: skip
    return path


def test_safety_penalty_is_subtracted_from_unsafe_responses(reward_dir, tmp_path):
    # A category that matches any character marks every non-empty response unsafe.
    out = tmp_path / "out"
    train_ppo(_config(reward_dir, out, "ppo.num_episodes=4", "safety.ppo_penalty=2.0",
                      "safety.builtin_patterns=false", "safety.categories={anything: ['.']}"))  # fmt: skip
    row = read_metrics(out)[-1]
    assert row["safety/unsafe"] > 0 and row["safety/unsafe"] % 0.5 == 0  # 2.0 x a share of 4 responses
    assert abs(row["objective/score"] - (row["objective/rm_score"] - row["safety/unsafe"])) < 1e-4
