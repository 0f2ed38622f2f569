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

    # Load the SFT result the way a user would: plain transformers, no rlhf import needed.
    model = AutoModelForCausalLM.from_pretrained(sft_dir)
    tokenizer = AutoTokenizer.from_pretrained(sft_dir, padding_side="left")
    prompts = load_prompts(cfg.ppo.prompts_path)[:DEMO_PROMPTS]
    texts = [render_prompt(tokenizer, p) for p in prompts]
    batch = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
    with torch.no_grad():
        generated = model.generate(**batch, max_new_tokens=60, do_sample=False)
    answers = tokenizer.batch_decode(generated[:, batch["input_ids"].shape[1] :], skip_special_tokens=True)
    answers = [a.strip() for a in answers]
    rewards = score_texts(RewardModel.from_pretrained(str(rm_dir)), AutoTokenizer.from_pretrained(rm_dir),
                          prompts, answers)  # fmt: skip
    print("\nThe SFT model answers a few prompts from", cfg.ppo.prompts_path, "(normalised reward in brackets)")
    for p, answer, reward in zip(prompts, answers, rewards.tolist(), strict=True):
        print(f"\n> {p[-1]['content']}\n[{reward:+.2f}] {answer}")

    held_out = report.get("eval", {})
    print(
        f"\nSFT model: {sft_dir} (loads with AutoModelForCausalLM.from_pretrained)\n"
        f"  curves {sft_dir / 'plots' / 'sft.png'}, metrics {sft_dir / 'metrics.jsonl'}, card {sft_dir / 'README.md'}\n"
        f"Reward model: {rm_dir} (loads with AutoModelForSequenceClassification.from_pretrained)\n"
        f"  held-out accuracy {held_out.get('accuracy', float('nan')):.3f} on {held_out.get('pairs', 0)} pairs; "
        f"curves {rm_dir / 'plots' / 'reward.png'}, report {rm_dir / 'eval.json'}\n"
        f"Total {time.time() - start:.0f} s. PPO (stage 3) and the evaluation suite are not built yet; "
        "`make demo` will run them once they land."
    )
