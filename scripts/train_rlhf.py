#!/usr/bin/env python
"""Stage 3, PPO against the reward model. The same as `rlhf ppo`; --help lists every config key.

    python scripts/train_rlhf.py --sft_model_path models/sft_model --reward_model_path models/reward_model \
        --prompts_path data/prompts.json --output_dir models/rlhf_model --num_episodes 1000 \
        [--use_wandb] [--resume] [--config FILE] [key=value ...]
"""

import sys
from pathlib import Path

try:
    import rlhf  # noqa: F401
except ImportError:  # running from a checkout without `pip install -e .`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from rlhf.cli import main

if __name__ == "__main__":
    sys.exit(main(["ppo", *sys.argv[1:]]))
