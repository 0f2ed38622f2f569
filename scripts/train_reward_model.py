#!/usr/bin/env python
"""Stage 2, reward model. The same as `rlhf reward`; --help lists every config key.

    python scripts/train_reward_model.py --base_model models/sft_model --data_path data/preference_data.json \
        --output_dir models/reward_model --num_epochs 3 --batch_size 4 [--ensemble N] [--config FILE] [key=value ...]
"""

import sys
from pathlib import Path

try:
    import rlhf  # noqa: F401
except ImportError:  # running from a checkout without `pip install -e .`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from rlhf.cli import main

if __name__ == "__main__":
    sys.exit(main(["reward", *sys.argv[1:]]))
