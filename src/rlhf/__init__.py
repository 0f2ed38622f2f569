"""rlhf: SFT -> reward model -> PPO for any Hugging Face causal LM."""

from .config import Config, ConfigError, load_config
from .data import DataError

__all__ = [
    "Config",
    "ConfigError",
    "DataError",
    "RLHFEvaluator",
    "RewardModel",
    "RewardModelEnsemble",
    "load_config",
]
__version__ = "0.1.0"


def __getattr__(name: str):
    # The model classes import transformers; `import rlhf` (and `rlhf --help`) stays quick without it.
    if name in ("RewardModel", "RewardModelEnsemble"):
        from . import reward_model

        return getattr(reward_model, name)
    if name == "RLHFEvaluator":
        from .evaluation import RLHFEvaluator

        return RLHFEvaluator
    raise AttributeError(f"module 'rlhf' has no attribute {name!r}")
