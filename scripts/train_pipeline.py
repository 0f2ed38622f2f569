#!/usr/bin/env python
"""The whole pipeline: SFT, reward model, PPO and evaluation from one config file. The same as
`rlhf pipeline`; a re-run skips finished stages and resumes an interrupted one; --help lists every
config key.

    python scripts/train_pipeline.py --config configs/rlhf_config.yaml [--only sft reward]
        [--from_stage ppo] [--force] [--use_wandb] [key=value ...]
"""

import sys
from pathlib import Path

try:
    import rlhf  # noqa: F401
except ImportError:  # running from a checkout without `pip install -e .`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from rlhf.cli import main

if __name__ == "__main__":
    sys.exit(main(["pipeline", *sys.argv[1:]]))
