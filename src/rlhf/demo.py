"""`rlhf demo` / `make demo`: every stage that exists, on the built-in model and sample data."""

from __future__ import annotations

import json
import time

import torch

from .config import Config
from .data import load_prompts, render_prompt
from .monitor import read_metrics

DEMO_PROMPTS = 3


def run_demo(cfg: Config) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from .ppo import train_ppo
    from .reward_model import RewardModel, score_texts, train_reward_model
    from .sft import train_sft

    start = time.time()
    print(f"== Stage 1/3: supervised fine-tuning of {cfg.sft.model.name} on {cfg.sft.data.path}")
    sft_dir = train_sft(cfg)
    evals = [r for r in read_metrics(sft_dir) if "loss/eval" in r]
    print(f"\nSFT finished in {time.time() - start:.0f} s. Held-out loss by optimizer step:")
    for r in evals:
        print(f"  step {r['step']:>4}: eval loss {r['loss/eval']:.4f}  perplexity {r['eval/perplexity']:.2f}")

    stage_start = time.time()
    print(f"\n== Stage 2/3: reward model from {cfg.reward.model.name} on {cfg.reward.data.path}")
    rm_dir = train_reward_model(cfg)
    report = json.loads((rm_dir / "eval.json").read_text())
    print(f"\nReward model finished in {time.time() - stage_start:.0f} s. Held-out pairwise accuracy by step:")
    for r in read_metrics(rm_dir):
        if "eval/accuracy" in r:
            print(f"  step {r['step']:>4}: accuracy {r['eval/accuracy']:.3f}  margin {r['eval/margin']:.3f}")

    stage_start = time.time()
    print(f"\n== Stage 3/3: PPO of {cfg.ppo.sft_model_path} against {cfg.ppo.reward_model_path}")
    ppo_dir = train_ppo(cfg)
    held = json.loads((ppo_dir / "eval.json").read_text()).get("held_out", {})
    print(f"\nPPO finished in {time.time() - stage_start:.0f} s.")

    # Load the results the way a user would: plain transformers, no rlhf import needed.
    prompts = load_prompts(cfg.ppo.prompts_path)[:DEMO_PROMPTS]
    reward_model = RewardModel.from_pretrained(str(rm_dir))
    rm_tokenizer = AutoTokenizer.from_pretrained(rm_dir)
    answers = {}
    for name, model_dir, tokenizer_dir in (("SFT", sft_dir, sft_dir), ("PPO", ppo_dir / "policy", ppo_dir / "tokenizer")):
        model = AutoModelForCausalLM.from_pretrained(model_dir)
        tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir, padding_side="left")
        texts = [render_prompt(tokenizer, p) for p in prompts]
        batch = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
        with torch.no_grad():
            generated = model.generate(**batch, max_new_tokens=60, do_sample=False)
        decoded = tokenizer.batch_decode(generated[:, batch["input_ids"].shape[1] :], skip_special_tokens=True)
        decoded = [a.strip() for a in decoded]
        answers[name] = list(zip(decoded, score_texts(reward_model, rm_tokenizer, prompts, decoded).tolist(), strict=True))
    print("\nGreedy answers of the SFT and the PPO policy to prompts from", cfg.ppo.prompts_path,
          "(normalised reward in brackets)")  # fmt: skip
    for i, p in enumerate(prompts):
        print(f"\n> {p[-1]['content']}")
        for name in answers:
            answer, reward = answers[name][i]
            print(f"{name} [{reward:+.2f}] {answer}")

    held_out = report.get("eval", {})
    print(
        f"\nSFT model: {sft_dir} (loads with AutoModelForCausalLM.from_pretrained)\n"
        f"  curves {sft_dir / 'plots' / 'sft.png'}, metrics {sft_dir / 'metrics.jsonl'}, card {sft_dir / 'README.md'}\n"
        f"Reward model: {rm_dir} (loads with AutoModelForSequenceClassification.from_pretrained)\n"
        f"  held-out accuracy {held_out.get('accuracy', float('nan')):.3f} on {held_out.get('pairs', 0)} pairs; "
        f"curves {rm_dir / 'plots' / 'reward.png'}, report {rm_dir / 'eval.json'}\n"
        f"PPO policy: {ppo_dir / 'policy'} (tokenizer {ppo_dir / 'tokenizer'})\n"
        f"  held-out prompts ({held.get('prompts', 0)}): reward-model score SFT {held.get('sft_score', float('nan')):+.3f} "
        f"-> PPO {held.get('ppo_score', float('nan')):+.3f}, KL {held.get('kl', float('nan')):.2f} nats, "
        f"win rate {held.get('win_rate', float('nan')):.2f}; curves {ppo_dir / 'plots' / 'ppo.png'}, "
        f"samples {ppo_dir / 'samples.jsonl'}\n"
        f"Total {time.time() - start:.0f} s. The evaluation suite (helpfulness, harmlessness, honesty) is not built "
        "yet; `make demo` will run it once it lands."
    )
