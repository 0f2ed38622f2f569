"""Seconds per PPO iteration and peak memory, for comparison with TRL's PPOTrainer.

Runs a few PPO updates through `train_ppo` and reports the time of each phase from metrics.jsonl
and the process's peak resident memory. The defaults mirror the TRL measurement this project is
compared against: the 135M built-in model, 16 episodes per iteration, 53 new tokens, 4 PPO epochs
in one mini-batch.

    python benchmarks/ppo_step.py [--sft models/sft_model] [--reward models/reward_model] [key=value ...]
"""

import argparse
import json
import resource
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from rlhf.config import load_config  # noqa: E402
from rlhf.monitor import read_metrics  # noqa: E402
from rlhf.ppo import train_ppo  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sft", default="models/sft_model", help="policy to start from")
    parser.add_argument("--reward", default="models/reward_model", help="reward model")
    parser.add_argument("--updates", type=int, default=3, help="PPO iterations to time (the first is reported apart)")
    parser.add_argument("overrides", nargs="*", help="ppo.* overrides, e.g. ppo.ppo_epochs=1")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as out:
        cfg = load_config(None, [
            f"ppo.sft_model_path={args.sft}", f"ppo.reward_model_path={args.reward}", f"ppo.output_dir={out}",
            f"ppo.prompts_path={ROOT / 'data' / 'prompts.json'}", "ppo.batch_size=16", "ppo.micro_batch_size=8",
            "ppo.max_new_tokens=53", "ppo.ppo_epochs=4", "ppo.num_mini_batches=1", f"ppo.num_episodes={16 * args.updates}",
            "ppo.eval_fraction=0", "ppo.save_every=0", "ppo.sample_every=0", "logging.plots=false",
            *args.overrides,
        ])  # fmt: skip
        train_ppo(cfg)
        rows = [r for r in read_metrics(out) if "time/update" in r]
    steady = rows[1:] or rows
    result = {
        "config": {k: getattr(cfg.ppo, k) for k in ("batch_size", "micro_batch_size", "max_new_tokens", "ppo_epochs",
                                                    "num_mini_batches", "critic_trunk", "mixed_precision")},
        "lora": cfg.ppo.lora.enabled,
        "first_iteration_s": round(rows[0]["time/update"], 1),
        "iteration_s": round(statistics.mean(r["time/update"] for r in steady), 1),
        "rollout_s": round(statistics.mean(r["time/rollout"] for r in steady), 1),
        "response_tokens": round(statistics.mean(r["response/length"] for r in steady), 1),
        "peak_rss_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2),
    }  # fmt: skip
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
