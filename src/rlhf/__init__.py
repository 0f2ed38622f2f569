"""rlhf: SFT -> reward model -> PPO for any Hugging Face causal LM."""

from .config import Config, ConfigError, load_config
from .data import DataError

__all__ = ["Config", "ConfigError", "DataError", "load_config"]
__version__ = "0.1.0"
