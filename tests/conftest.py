import os
from pathlib import Path

# Nothing in the tests may wait on the Hugging Face hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402 (after the environment is set)


@pytest.fixture(scope="session")
def tiny_path():
    from rlhf.models import resolve_model_path

    return resolve_model_path("tiny-random")


@pytest.fixture(scope="session")
def tokenizer(tiny_path):
    from rlhf.models import load_tokenizer

    return load_tokenizer(tiny_path)


@pytest.fixture(scope="session")
def reward_dir(tmp_path_factory):
    """A reward model trained from tiny-random in seconds (configs/tiny.yaml), shared by the tests
    that need one to score with; none of them writes into it."""
    from rlhf.cli import main

    root = Path(__file__).resolve().parents[1]
    out = tmp_path_factory.mktemp("tiny") / "reward_model"
    assert main(["reward", "--config", str(root / "configs" / "tiny.yaml"), "--base_model", "tiny-random",
                 f"reward.data.path={root / 'data' / 'preference_data.json'}", "--output_dir", str(out)]) == 0  # fmt: skip
    return out
