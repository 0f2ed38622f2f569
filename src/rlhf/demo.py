"""`rlhf demo` / `make demo`: every stage that exists, on the built-in model and sample data."""

from __future__ import annotations

import time

import torch

from .config import Config
from .data import load_prompts, render_prompt
from .monitor import read_metrics

DEMO_PROMPTS = 3


def run_demo(cfg: Config) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from .sft import train_sft

    start = time.time()
    print(f"== Stage 1/3: supervised fine-tuning of {cfg.sft.model.name} on {cfg.sft.data.path}")
    out = train_sft(cfg)
    evals = [r for r in read_metrics(out) if "loss/eval" in r]
    print(f"\nSFT finished in {time.time() - start:.0f} s. Held-out loss by optimizer step:")
    for r in evals:
        print(f"  step {r['step']:>4}: eval loss {r['loss/eval']:.4f}  perplexity {r['eval/perplexity']:.2f}")

    # Load the result the way a user would: plain transformers, no rlhf import needed.
    model = AutoModelForCausalLM.from_pretrained(out)
    tokenizer = AutoTokenizer.from_pretrained(out, padding_side="left")
    prompts = load_prompts(cfg.ppo.prompts_path)[:DEMO_PROMPTS]
    texts = [render_prompt(tokenizer, p) for p in prompts]
    batch = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
    with torch.no_grad():
        generated = model.generate(**batch, max_new_tokens=60, do_sample=False)
    print("\nThe SFT model answers a few prompts from", cfg.ppo.prompts_path)
    for p, ids in zip(prompts, generated[:, batch["input_ids"].shape[1] :], strict=True):
        print(f"\n> {p[-1]['content']}\n{tokenizer.decode(ids, skip_special_tokens=True).strip()}")

    print(
        f"\nModel: {out} (loads with AutoModelForCausalLM.from_pretrained)\n"
        f"Curves: {out / 'plots' / 'sft.png'}   Metrics: {out / 'metrics.jsonl'}   Card: {out / 'README.md'}\n"
        "Only stage 1 exists so far: the reward model, PPO and evaluation stages are not built yet, "
        "and `make demo` will run them once they land."
    )
