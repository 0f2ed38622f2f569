#!/usr/bin/env python
"""Stage 1, supervised fine-tuning. The same as `rlhf sft`; --help lists every config key.

    python scripts/train_sft.py --model_name smollm2-135m-instruct --data_path data/sft_data.json \
        --output_dir models/sft_model --num_epochs 3 --batch_size 8 [--config FILE] [key=value ...]
"""

import sys
from pathlib import Path

try:
    import rlhf  # noqa: F401
except ImportError:  # running from a checkout without `pip install -e .`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from rlhf.cli import main

if __name__ == "__main__":
    sys.exit(main(["sft", *sys.argv[1:]]))
