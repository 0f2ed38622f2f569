"""`rlhf demo` / `make demo`: the whole pipeline (configs/demo.yaml: the built-in model and the
sample data), then what it made: each stage's result, the SFT and PPO policies' greedy answers,
where the models, plots, metrics and report are, and the evaluation's before/after table."""

from __future__ import annotations

import json
import time
from datetime import datetime
from pathlib import Path

import torch

from .config import Config
from .data import load_prompts, render_prompt
from .monitor import read_metrics
from .pipeline import pipeline_root, read_record, run_pipeline
from .report import write_report

DEMO_PROMPTS = 3


def run_demo(cfg: Config, resume: bool = True) -> None:
    start = time.time()
    dirs = run_pipeline(cfg, resume=resume)
    sft_dir, rm_dir, ppo_dir = dirs["sft"], dirs["reward"], dirs["ppo"]
    eval_dir = dirs.get("evaluate")

    print("\n== Results")
    print(f"SFT ({_took(sft_dir)}): held-out loss by optimizer step")
    for r in read_metrics(sft_dir):
        if "loss/eval" in r:
            print(
                f"  step {r['step']:>4}: eval loss {r['loss/eval']:.4f}  perplexity {r['eval/perplexity']:.2f}"
            )
    print(f"Reward model ({_took(rm_dir)}): held-out pairwise accuracy by optimizer step")
    for r in read_metrics(rm_dir):
        if "eval/accuracy" in r:
            print(f"  step {r['step']:>4}: accuracy {r['eval/accuracy']:.3f}  margin {r['eval/margin']:.3f}")
    held = json.loads((ppo_dir / "eval.json").read_text()).get("held_out", {})
    print(f"PPO ({_took(ppo_dir)}): held-out prompts ({held.get('prompts', 0)}): reward-model score SFT "
          f"{held.get('sft_score', float('nan')):+.3f} -> PPO {held.get('ppo_score', float('nan')):+.3f}, "
          f"KL {held.get('kl', float('nan')):.2f} nats, win rate {held.get('win_rate', float('nan')):.2f}")  # fmt: skip
    if eval_dir:
        print(f"Evaluation ({_took(eval_dir)}): the before/after table is at the end")
    _greedy_answers(cfg, sft_dir, rm_dir, ppo_dir)

    root = pipeline_root(dirs)
    report = write_report(root) if root else None

    rm_eval = json.loads((rm_dir / "eval.json").read_text()).get("eval", {})
    lines = [
        "",
        "== Where everything is",
        f"SFT model      {sft_dir}  (AutoModelForCausalLM.from_pretrained)",
        f"               curves {sft_dir / 'plots' / 'sft.png'}, metrics {sft_dir / 'metrics.jsonl'}, card {sft_dir / 'README.md'}",
        f"Reward model   {rm_dir}  (AutoModelForSequenceClassification.from_pretrained)",
        f"               held-out accuracy {rm_eval.get('accuracy', float('nan')):.3f} on {rm_eval.get('pairs', 0)} pairs; "
        f"curves {rm_dir / 'plots' / 'reward.png'}, metrics {rm_dir / 'metrics.jsonl'}, {rm_dir / 'eval.json'}",
        f"PPO policy     {ppo_dir / 'policy'}  (tokenizer {ppo_dir / 'tokenizer'}, critic {ppo_dir / 'value_model'})",
        f"               curves {ppo_dir / 'plots' / 'ppo.png'}, metrics {ppo_dir / 'metrics.jsonl'}, "
        f"samples {ppo_dir / 'samples.jsonl'}, alerts {ppo_dir / 'alerts.jsonl'}",
    ]  # fmt: skip
    if eval_dir:
        lines.append(
            f"Evaluation     {eval_dir / 'eval.md'}, {eval_dir / 'eval.json'}, plots {eval_dir / 'plots'}"
        )
    if report:
        lines.append(f"HTML report    {report}")
    if root:
        lines.append(
            f"Config         {root / 'config.yaml'} (rerun: rlhf pipeline --config {root / 'config.yaml'})"
        )
    print("\n".join(lines))
    table = eval_dir / "table.txt" if eval_dir else None
    if table and table.exists():
        print(f"\n== Evaluation: SFT model (before) and RLHF model (after), from {table}")
        print(table.read_text().rstrip())
    print(f"\nDemo finished in {time.time() - start:.0f} s.")


def _took(out: Path) -> str:
    """How long the stage took, from its stage.json."""
    record = read_record(out) or {}
    if not record.get("finished"):
        return "not finished"
    seconds = (
        datetime.fromisoformat(record["finished"]) - datetime.fromisoformat(record["started"])
    ).total_seconds()
    return f"{seconds:.0f} s"


def _greedy_answers(cfg: Config, sft_dir: Path, rm_dir: Path, ppo_dir: Path) -> None:
    """Greedy answers of the SFT and the PPO policy, loaded the way a user would (plain
    transformers, no rlhf import needed), scored by the reward model."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from .reward_model import RewardModel, score_texts

    prompts = load_prompts(cfg.ppo.prompts_path)[:DEMO_PROMPTS]
    reward_model = RewardModel.from_pretrained(str(rm_dir))
    rm_tokenizer = AutoTokenizer.from_pretrained(rm_dir)
    answers = {}
    for name, model_dir, tokenizer_dir in (
        ("SFT", sft_dir, sft_dir),
        ("PPO", ppo_dir / "policy", ppo_dir / "tokenizer"),
    ):
        model = AutoModelForCausalLM.from_pretrained(model_dir)
        tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir, padding_side="left")
        texts = [render_prompt(tokenizer, p) for p in prompts]
        batch = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
        with torch.no_grad():
            generated = model.generate(**batch, max_new_tokens=60, do_sample=False)
        decoded = tokenizer.batch_decode(
            generated[:, batch["input_ids"].shape[1] :], skip_special_tokens=True
        )
        decoded = [a.strip() for a in decoded]
        answers[name] = list(
            zip(decoded, score_texts(reward_model, rm_tokenizer, prompts, decoded).tolist(), strict=True)
        )
    print(f"\nGreedy answers of the SFT and the PPO policy to prompts from {cfg.ppo.prompts_path} "
          "(normalised reward-model score in brackets)")  # fmt: skip
    for i, p in enumerate(prompts):
        print(f"\n> {p[-1]['content']}")
        for name in answers:
            answer, reward = answers[name][i]
            print(f"{name} [{reward:+.2f}] {answer}")
