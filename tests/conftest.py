import os

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
