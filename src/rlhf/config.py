"""One typed configuration for the whole pipeline.

Nested dataclasses, one per concern. Precedence: defaults < YAML file < command-line flags and
dotted overrides (`sft.learning_rate=1e-5`). Unknown keys, wrong types and impossible values fail
at load time with the key's path in the message. Every field carries a one-line help text that the
command line shows with `--help`.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import math
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml


class ConfigError(ValueError):
    """A configuration value is unknown, of the wrong type, or impossible."""


def opt(default: Any, help: str) -> Any:
    """A config field: its default and the one-line help that `--help` prints."""
    if isinstance(default, (list, dict)) or dataclasses.is_dataclass(default):
        return field(default_factory=lambda: copy.deepcopy(default), metadata={"help": help})
    return field(default=default, metadata={"help": help})


BUILTIN_MODELS = ("smollm2-135m-instruct", "tiny-random")


@dataclass
class ModelConfig:
    name: str = opt(
        "smollm2-135m-instruct",
        "Local directory, Hugging Face id (read from the local cache when offline), or a built-in "
        "model: smollm2-135m-instruct, tiny-random.",
    )
    dtype: Literal["fp32", "fp16", "bf16"] = opt(
        "fp32", "Dtype the weights are held in. Keep fp32 for training and use mixed_precision."
    )
    gradient_checkpointing: bool = opt(
        False, "Recompute activations during backward: less memory, about a third slower."
    )
    trust_remote_code: bool = opt(
        False, "Run modelling code shipped with a hub model. Only for sources you trust."
    )


@dataclass
class LoraConfig:
    enabled: bool = opt(False, "Train low-rank adapters (LoRA) instead of every weight.")
    r: int = opt(16, "Rank of the adapter matrices.")
    alpha: int = opt(32, "Adapter scale numerator: updates are scaled by alpha / r.")
    dropout: float = opt(0.05, "Dropout probability on the adapter input.")
    target_modules: list[str] | None = opt(
        None, "Names of the linear layers to adapt; null = every linear layer of the blocks."
    )
    merge: bool = opt(
        True, "Merge adapters into the saved model (a plain HF model); false saves adapters only."
    )

    def _check(self):
        if self.r < 1:
            yield "r", f"must be >= 1, got {self.r}"
        if self.alpha < 1:
            yield "alpha", f"must be >= 1, got {self.alpha}"
        if not 0.0 <= self.dropout < 1.0:
            yield "dropout", f"must be in [0, 1), got {self.dropout}"


@dataclass
class DataConfig:
    path: str = opt("data/sft_data.json", "Training data file (.json array or .jsonl).")
    eval_fraction: float = opt(
        0.1, "Fraction of records held out for evaluation (a seeded, deterministic split)."
    )
    max_length: int = opt(512, "Longest tokenized record (prompt + response), in tokens.")
    overlong: Literal["truncate", "drop"] = opt(
        "truncate", "What to do with records longer than max_length: cut the response, or drop."
    )
    max_records: int | None = opt(None, "Use only the first N records of the file (quick runs); null = all.")

    def _check(self):
        if not 0.0 <= self.eval_fraction < 1.0:
            yield "eval_fraction", f"must be in [0, 1), got {self.eval_fraction}"
        if self.max_length < 8:
            yield "max_length", f"must be >= 8 tokens, got {self.max_length}"
        if self.max_records is not None and self.max_records < 1:
            yield "max_records", f"must be >= 1 or null, got {self.max_records}"


@dataclass
class TrainConfig:
    """What SFT and reward-model training share: a Trainer run over one data file."""

    output_dir: str = opt("models/sft_model", "Directory the trained model and run files go to.")
    model: ModelConfig = opt(ModelConfig(), "The model to start from.")
    lora: LoraConfig = opt(LoraConfig(), "Low-rank adapters.")
    data: DataConfig = opt(DataConfig(), "Training data.")
    num_epochs: int = opt(3, "Passes over the training data.")
    max_steps: int | None = opt(
        None, "Stop after this many optimizer steps (overrides num_epochs); null = no limit."
    )
    batch_size: int = opt(8, "Sequences per forward pass on each device (micro-batch).")
    gradient_accumulation_steps: int = opt(1, "Micro-batches summed before each optimizer step.")
    learning_rate: float = opt(2e-5, "Peak learning rate of AdamW.")
    lr_scheduler: Literal["linear", "cosine", "constant", "constant_with_warmup"] = opt(
        "cosine", "Learning-rate schedule after warmup."
    )
    warmup_ratio: float = opt(0.1, "Fraction of the optimizer steps spent warming up linearly.")
    weight_decay: float = opt(0.0, "AdamW decoupled weight decay.")
    max_grad_norm: float = opt(1.0, "Clip the global gradient norm to this value; 0 = off.")
    mixed_precision: Literal["no", "fp16", "bf16"] = opt(
        "no",
        "Autocast precision. bf16 pays on recent GPUs and CPUs with AVX512-BF16/AMX (emulated and far "
        "slower elsewhere); fp16 needs a GPU.",
    )
    save_steps: int = opt(100, "Write a checkpoint (for --resume) every N optimizer steps; 0 = none.")
    save_total_limit: int = opt(2, "Checkpoints kept; older ones are deleted.")
    logging_steps: int = opt(1, "Log training metrics every N optimizer steps.")
    seed: int = opt(42, "Seed for initialisation, data split and shuffling.")

    def _check(self):
        for key in ("num_epochs", "batch_size", "gradient_accumulation_steps", "logging_steps"):
            if getattr(self, key) < 1:
                yield key, f"must be >= 1, got {getattr(self, key)}"
        if self.max_steps is not None and self.max_steps < 1:
            yield "max_steps", f"must be >= 1 or null, got {self.max_steps}"
        if not (self.learning_rate > 0 and math.isfinite(self.learning_rate)):
            yield "learning_rate", f"must be a positive number, got {self.learning_rate}"
        if not 0.0 <= self.warmup_ratio < 1.0:
            yield "warmup_ratio", f"must be in [0, 1), got {self.warmup_ratio}"
        for key in ("weight_decay", "max_grad_norm", "save_steps", "save_total_limit"):
            if getattr(self, key) < 0:
                yield key, f"must be >= 0, got {getattr(self, key)}"
        if self.mixed_precision == "fp16" and self.model.dtype == "bf16":
            yield "mixed_precision", "fp16 autocast over bf16 weights is impossible; pick one"


@dataclass
class SFTConfig(TrainConfig):
    """Stage 1: supervised fine-tuning on prompt/response demonstrations (loss on responses)."""


@dataclass
class RewardConfig(TrainConfig):
    """Stage 2: a reward model (sequence classifier, one output) trained on preference pairs."""

    output_dir: str = opt("models/reward_model", "Directory the reward model goes to.")
    model: ModelConfig = opt(ModelConfig(name="models/sft_model"), "The model to start from.")
    data: DataConfig = opt(DataConfig(path="data/preference_data.json"), "Preference data.")
    num_epochs: int = opt(
        1, "Passes over the preference pairs. One is the usual choice: reward models overfit after it."
    )
    use_margin: bool = opt(
        True, "Use a pair's 'margin' field in the loss: -log sigmoid(r_chosen - r_rejected - margin)."
    )
    center_coef: float = opt(
        0.0, "Reward centering: adds center_coef * mean((r_chosen + r_rejected)^2) to the loss; 0 = off."
    )
    ensemble: int = opt(
        1, "Members to train; N > 1 trains member_0 ... member_{N-1} with different seeds."
    )
    bootstrap: bool = opt(
        True, "Ensemble members train on bootstrap resamples of the training pairs (drawn with replacement)."
    )
    aggregation: Literal["mean", "min", "mean_minus_std"] = opt(
        "mean", "How an ensemble combines its members' normalised rewards."
    )
    uncertainty_coef: float = opt(1.0, "k of the mean_minus_std aggregation: mean - k * std over members.")

    def _check(self):
        yield from super()._check()
        if self.ensemble < 1:
            yield "ensemble", f"must be >= 1, got {self.ensemble}"
        for key in ("center_coef", "uncertainty_coef"):
            if getattr(self, key) < 0:
                yield key, f"must be >= 0, got {getattr(self, key)}"
        if self.lora.enabled and not self.lora.merge:
            # PPO starts its critic from the reward model's full weights.
            yield "lora.merge", "a reward model is always saved with its adapters merged; set it to true"


@dataclass
class PPOConfig:
    """Stage 3: PPO against the reward model. One update = one rollout of batch_size episodes (an
    episode is one prompt answered and scored), then ppo_epochs passes over it in mini-batches."""

    sft_model_path: str = opt("models/sft_model", "Policy to start from; also the reference policy.")
    reward_model_path: str = opt("models/reward_model", "Reward model or ensemble directory that scores responses.")
    prompts_path: str = opt("data/prompts.json", "Prompts to answer (.json array or .jsonl).")
    output_dir: str = opt("models/rlhf_model", "Directory for policy/, tokenizer/, value_model/ and run files.")
    num_episodes: int = opt(1000, "Prompts answered and scored in the whole run (rounded up to whole batches).")
    max_prompts: int | None = opt(None, "Use only the first N prompts of the file (quick runs); null = all.")
    eval_fraction: float = opt(0.1, "Prompts held out to measure score, KL and win rate before and after.")
    max_prompt_length: int = opt(256, "Prompts longer than this many tokens are skipped.")
    dtype: Literal["fp32", "fp16", "bf16"] = opt("fp32", "Dtype the weights are held in; keep fp32 and use mixed_precision.")
    mixed_precision: Literal["no", "fp16", "bf16"] = opt(
        "no", "Autocast precision for every forward pass (bf16 is emulated and slow on AVX2-only CPUs)."
    )
    gradient_checkpointing: bool = opt(False, "Recompute activations in backward (policy and critic): less memory.")
    lora: LoraConfig = opt(
        LoraConfig(enabled=True, r=16, alpha=32, dropout=0.0),
        "Adapters on the policy (adapters off = the reference) and, with a trained critic trunk, on the critic.",
    )
    critic_trunk: Literal["frozen", "trained"] = opt(
        "frozen",
        "frozen: only the value head trains, on the reward model's trunk, and one forward pass gives the "
        "scores and the values; trained: the critic's trunk trains too (its LoRA adapters, or all weights).",
    )
    max_new_tokens: int = opt(64, "Longest response, in tokens.")
    temperature: float = opt(0.7, "Sampling temperature of rollouts; logprobs (policy and reference) are taken at the same temperature.")
    top_k: int = opt(0, "Sample from the k most likely tokens only; 0 = all.")
    top_p: float = opt(1.0, "Nucleus sampling: the smallest token set with this much probability; 1 = all.")
    batch_size: int = opt(16, "Episodes per PPO update (one rollout).")
    num_mini_batches: int = opt(2, "Mini-batches per pass over the rollout; one optimizer step each.")
    micro_batch_size: int = opt(8, "Episodes per forward/backward pass; gradients accumulate up to a mini-batch.")
    ppo_epochs: int = opt(4, "Passes over each rollout (K).")
    learning_rate: float = opt(2e-4, "Policy learning rate (AdamW); for LoRA. Use about 1e-5 for full weights.")
    value_learning_rate: float = opt(1e-3, "Critic learning rate (AdamW).")
    lr_scheduler: Literal["linear", "constant"] = opt("linear", "Learning rate over the updates: linear decay to 0, or constant.")
    max_grad_norm: float = opt(1.0, "Clip each model's global gradient norm to this value; 0 = off.")
    kl_coef: float = opt(0.05, "beta: weight of the per-token KL penalty (the start value when adaptive).")
    kl_estimator: Literal["k1", "k3"] = opt("k1", "Per-token KL estimate: k1 = log p/p_ref; k3 = r - 1 - log r (never negative).")
    adaptive_kl: bool = opt(False, "Adapt kl_coef towards target_kl (Ziegler et al., 2019).")
    target_kl: float = opt(6.0, "Adaptive controller's target KL per response, in nats.")
    kl_horizon: int = opt(10000, "Adaptive controller's horizon, in episodes.")
    kl_budget: float | None = opt(
        20.0, "Stop the run when the mean KL per response (nats) exceeds this; null = never."
    )
    gamma: float = opt(1.0, "Discount factor of GAE.")
    lam: float = opt(0.95, "lambda of GAE.")
    clip_range: float = opt(0.2, "epsilon of the clipped policy objective.")
    clip_range_value: float = opt(0.2, "Values move at most this far from the rollout's values per update.")
    vf_coef: float = opt(0.1, "Weight of the value loss in loss/total.")
    ent_coef: float = opt(0.0, "Entropy bonus weight.")
    whiten_advantages: bool = opt(True, "Normalise advantages to mean 0, std 1 over each rollout.")
    reward_clip: float = opt(5.0, "Clip scores to [-reward_clip, reward_clip] (normalised units); 0 = off.")
    missing_eos_penalty: float = opt(
        0.0, "Subtracted from the score of a response cut off at max_new_tokens (try 1.0 when most responses end in time)."
    )
    length_penalty: float = opt(0.0, "Subtracted from the score per response token.")
    early_stop_kl: float | None = opt(
        None, "Skip the rest of an update's epochs once policy/approx_kl of a mini-batch exceeds this; null = never."
    )
    eval_every: int = opt(0, "Measure score, KL and win rate on the held-out prompts every N updates; 0 = at the end only.")
    sample_every: int = opt(5, "Write samples.jsonl rows (prompt, response, score, KL) every N updates.")
    samples_per_log: int = opt(4, "Episodes written to samples.jsonl each time.")
    save_every: int = opt(10, "Write a checkpoint (for --resume) every N updates; 0 = only at the end.")
    seed: int = opt(42, "Seed for the prompt order, sampling and the held-out split.")

    def _check(self):
        for key in ("num_episodes", "batch_size", "num_mini_batches", "micro_batch_size", "ppo_epochs",
                    "max_new_tokens", "max_prompt_length", "kl_horizon", "samples_per_log"):  # fmt: skip
            if getattr(self, key) < 1:
                yield key, f"must be >= 1, got {getattr(self, key)}"
        for key in ("top_k", "max_grad_norm", "kl_coef", "vf_coef", "ent_coef", "reward_clip",
                    "missing_eos_penalty", "length_penalty", "eval_every", "sample_every", "save_every"):  # fmt: skip
            if getattr(self, key) < 0:
                yield key, f"must be >= 0, got {getattr(self, key)}"
        for key in ("learning_rate", "value_learning_rate", "temperature", "target_kl", "clip_range", "clip_range_value"):
            if not (getattr(self, key) > 0 and math.isfinite(getattr(self, key))):
                yield key, f"must be a positive number, got {getattr(self, key)}"
        for key in ("top_p", "gamma", "lam"):
            if not 0.0 < getattr(self, key) <= 1.0:
                yield key, f"must be in (0, 1], got {getattr(self, key)}"
        if not 0.0 <= self.eval_fraction < 1.0:
            yield "eval_fraction", f"must be in [0, 1), got {self.eval_fraction}"
        for key in ("kl_budget", "early_stop_kl", "max_prompts"):
            if getattr(self, key) is not None and getattr(self, key) <= 0:
                yield key, f"must be positive or null, got {getattr(self, key)}"
        if self.batch_size % self.num_mini_batches:
            yield "num_mini_batches", f"batch_size {self.batch_size} is not divisible by {self.num_mini_batches}"
        elif (self.batch_size // self.num_mini_batches) % self.micro_batch_size:
            yield "micro_batch_size", (
                f"mini-batch of {self.batch_size // self.num_mini_batches} episodes is not divisible by "
                f"{self.micro_batch_size}"
            )
        if self.mixed_precision == "fp16" and self.dtype == "bf16":
            yield "mixed_precision", "fp16 autocast over bf16 weights is impossible; pick one"
        if self.lora.enabled and not self.lora.merge:
            yield "lora.merge", "OUTPUT/policy is a plain Hugging Face model, so the adapters are merged; set it to true"


def ppo_sizes(cfg: PPOConfig) -> dict[str, int]:
    """Derived sizes of a PPO run (printed at start)."""
    mini = cfg.batch_size // cfg.num_mini_batches
    updates = math.ceil(cfg.num_episodes / cfg.batch_size)
    return {
        "updates": updates,
        "episodes": updates * cfg.batch_size,
        "mini_batch_size": mini,
        "gradient_accumulation_steps": mini // cfg.micro_batch_size,
        "optimizer_steps": updates * cfg.ppo_epochs * cfg.num_mini_batches,
    }


@dataclass
class EvalConfig:
    """Helpfulness, harmlessness and honesty of a policy, side by side with a baseline, with
    bootstrap confidence intervals (`rlhf evaluate`, the pipeline's last stage)."""

    output_dir: str = opt("models/eval", "Directory eval.json, eval.md, table.txt, samples.jsonl and plots/ go to.")
    model: str = opt("", "Model to evaluate (directory, built-in or cached hub id); empty = <ppo.output_dir>/policy.")
    baseline: str | None = opt(
        "", "Model to compare against on the same prompts; empty = ppo.sft_model_path; null = no baseline."
    )
    reward_model: str | None = opt(
        "", "Reward model or ensemble that judges helpfulness; empty = ppo.reward_model_path; null = none."
    )
    helpfulness_path: str | None = opt("data/eval/helpfulness.json", "Helpfulness prompts (strings); null = skip.")
    harmful_path: str | None = opt(
        "data/eval/harmful.json", "Harmful requests ({prompt, category}) the model should refuse; null = skip."
    )
    benign_risky_path: str | None = opt(
        "data/eval/benign_risky.json", "Benign requests that sound risky ({prompt, category}); null = skip."
    )
    unanswerable_path: str | None = opt(
        "data/eval/unanswerable.json", "Questions nobody can answer ({prompt, kind}); null = skip."
    )
    multiple_choice_path: str | None = opt(
        "data/eval/multiple_choice.json", "Multiple-choice questions ({question, choices, answer}); null = skip."
    )
    max_prompts: int | None = opt(None, "Use only the first N prompts (and questions) of each category; null = all.")
    max_new_tokens: int = opt(128, "Longest response, in tokens.")
    temperature: float = opt(0.0, "Sampling temperature of the responses; 0 = greedy (deterministic).")
    batch_size: int = opt(8, "Prompts per generation or scoring batch.")
    dtype: Literal["fp32", "fp16", "bf16"] = opt("fp32", "Dtype the evaluated models are loaded in.")
    mc_prefill: str = opt(
        "The answer is", "Text put after the assistant prefix before reading the option letters' probabilities."
    )
    bootstrap_samples: int = opt(1000, "Resamples of the prompts for each bootstrap confidence interval.")
    confidence_level: float = opt(0.95, "Coverage of the percentile bootstrap intervals.")
    confident_threshold: float = opt(
        0.7, "A multiple-choice answer is 'confident' when its probability is at least this (confident_wrong_rate)."
    )
    calibration_bins: int = opt(10, "Equal-width confidence bins of the expected calibration error.")
    seed: int = opt(42, "Seed for sampling (temperature > 0) and the bootstrap.")

    def _check(self):
        for key in ("max_new_tokens", "batch_size", "bootstrap_samples", "calibration_bins"):
            if getattr(self, key) < 1:
                yield key, f"must be >= 1, got {getattr(self, key)}"
        if self.max_prompts is not None and self.max_prompts < 1:
            yield "max_prompts", f"must be >= 1 or null, got {self.max_prompts}"
        if not (self.temperature >= 0 and math.isfinite(self.temperature)):
            yield "temperature", f"must be >= 0, got {self.temperature}"
        if not 0.0 < self.confidence_level < 1.0:
            yield "confidence_level", f"must be in (0, 1), got {self.confidence_level}"
        if not 0.0 < self.confident_threshold <= 1.0:
            yield "confident_threshold", f"must be in (0, 1], got {self.confident_threshold}"


@dataclass
class SafetyConfig:
    """Safety filter: rule patterns per harm category, optionally backed by a classifier. It
    penalises unsafe PPO responses, flags or drops unsafe training records, and can filter the
    answers of `rlhf generate --safety_filter`."""

    builtin_patterns: bool = opt(
        True,
        "Start from the built-in patterns for violence, weapons, cybercrime, drugs, self_harm, fraud, "
        "hate_harassment and privacy (rlhf/safety.py).",
    )
    categories: dict[str, list[str]] = opt(
        {},
        "More patterns: category -> list of regular expressions (case-insensitive, matched per clause). "
        "Naming a built-in category replaces its patterns; [] turns it off.",
    )
    refusal_exemption: bool = opt(
        True, "Skip clauses that refuse, warn or point to help (\"I can't help you build a bomb\") before matching."
    )
    classifier: str = opt(
        "none",
        "Also flag texts a classifier scores as unsafe: none; profanity (the offline alt-profanity-check "
        "package); or a Hugging Face sequence-classifier directory.",
    )
    classifier_threshold: float = opt(0.5, "A text is unsafe when the classifier's unsafe probability reaches this.")
    classifier_label: str | None = opt(
        None, "The label of a Hugging Face classifier that means unsafe (from its id2label); null = its last label."
    )
    ppo_penalty: float = opt(
        0.0, "Subtracted from the PPO score of an unsafe response (normalised reward units); 0 = off."
    )
    training_data: Literal["off", "flag", "drop"] = opt(
        "off",
        "Unsafe SFT responses and chosen preference responses: off; flag (kept, listed in "
        "OUTPUT/safety_flags.jsonl); drop.",
    )
    refusal_message: str = opt(
        "I can't help with that.", "What `rlhf generate --safety_filter` prints instead of an unsafe answer."
    )

    def _check(self):
        import re

        if not 0.0 <= self.classifier_threshold <= 1.0:
            yield "classifier_threshold", f"must be in [0, 1], got {self.classifier_threshold}"
        if not (self.ppo_penalty >= 0 and math.isfinite(self.ppo_penalty)):
            yield "ppo_penalty", f"must be a number >= 0, got {self.ppo_penalty}"
        for name, patterns in self.categories.items():
            for i, pattern in enumerate(patterns):
                try:
                    re.compile(pattern)
                except re.error as e:
                    yield f"categories.{name}[{i}]", f"invalid regular expression {pattern!r}: {e}"


@dataclass
class AlertRule:
    """One alert: when `metric` meets `condition` in `patience` rows in a row, take `action`."""

    name: str = opt("", "Name shown in alerts.jsonl; a rule named like a built-in rule replaces it.")
    metric: str = opt("", "Metric to watch, a metrics.jsonl name; * matches any characters (loss/*). Rows without it are skipped.")
    condition: Literal["above", "below", "not_finite", "spike", "drift", "drop"] = opt(
        "above",
        "above/below: value > / < threshold; not_finite: NaN or inf; spike: value > threshold x the median of "
        "the previous `window` values; drift: value > threshold x, or < 1/threshold x, the mean of the first "
        "`window` values; drop: the median of the last `window` values fell more than threshold below its highest so far.",
    )
    threshold: float = opt(0.0, "The bound (above, below), the factor (spike, drift) or the fall (drop); unused by not_finite.")
    window: int = opt(5, "Values spike, drift and drop look at; they stay quiet until they have seen that many.")
    patience: int = opt(1, "Consecutive rows that must meet the condition before the alert fires.")
    cooldown: int = opt(10, "Rows (with this metric) after an alert during which the rule stays quiet.")
    action: Literal["warn", "stop", "raise_kl", "lower_lr"] = opt(
        "warn",
        "warn: alerts.jsonl and the console only; stop: end training cleanly (outputs are written); "
        "raise_kl: multiply PPO's KL coefficient by factor; lower_lr: divide the learning rates by factor.",
    )
    factor: float = opt(2.0, "How much raise_kl raises the KL coefficient and lower_lr lowers the learning rates (> 1).")

    def _check(self):
        if not self.name:
            yield "name", "every alert rule needs a name"
        if not self.metric:
            yield "metric", "every alert rule needs a metric, e.g. objective/kl"
        if not math.isfinite(self.threshold):
            yield "threshold", f"must be a finite number, got {self.threshold}"
        if self.condition in ("spike", "drift", "drop") and self.threshold <= 0:
            yield "threshold", f"{self.condition} takes a positive threshold, got {self.threshold}"
        if self.condition == "drift" and self.threshold <= 1:
            yield "threshold", f"drift fires beyond threshold x the start value, so it must be > 1, got {self.threshold}"
        for key in ("window", "patience"):
            if getattr(self, key) < 1:
                yield key, f"must be >= 1, got {getattr(self, key)}"
        if self.cooldown < 0:
            yield "cooldown", f"must be >= 0, got {self.cooldown}"
        if self.action in ("raise_kl", "lower_lr") and not (self.factor > 1 and math.isfinite(self.factor)):
            yield "factor", f"must be a number > 1, got {self.factor}"


# Checked on every stage's metrics unless monitor.builtin_rules is false. Thresholds sit outside
# what healthy runs showed here (PPO on the 135M model: KL 0.3-7.6 nats per response, clipfrac
# 0.001-0.15, entropy 1-3 nats per token, EOS rate 0.0-0.9, length 40-90 tokens, value loss 0.01-1).
BUILTIN_ALERT_RULES = (
    AlertRule("nan_loss", "loss/*", "not_finite", action="stop"),
    AlertRule("nan_grad", "*grad_norm", "not_finite", action="stop"),
    AlertRule("kl_high", "objective/kl", "above", 12.0, patience=2, action="raise_kl", factor=1.5),
    AlertRule("kl_negative", "objective/kl", "below", -0.5, patience=2),
    AlertRule("entropy_collapse", "objective/entropy", "below", 0.2, patience=3),
    AlertRule("value_loss_explosion", "loss/value", "spike", 10.0, patience=2, action="lower_lr"),
    AlertRule("clipfrac_high", "policy/clipfrac", "above", 0.3, patience=3, action="lower_lr"),
    AlertRule("eos_rate_collapse", "response/eos_rate", "drop", 0.4),
    AlertRule("length_drift", "response/length", "drift", 3.0),
    AlertRule("repetition", "hacking/repetition", "above", 0.3, patience=2),
    AlertRule("diversity_collapse_1", "hacking/distinct_1", "below", 0.05, patience=2),
    AlertRule("diversity_collapse_2", "hacking/distinct_2", "below", 0.2, patience=2),
    AlertRule("length_corr_drift", "hacking/length_corr_drift", "above", 0.5, patience=3),
    AlertRule("kl_per_reward", "hacking/kl_per_reward", "above", 100.0, patience=5),
    AlertRule("proxy_judge_divergence", "hacking/proxy_judge_divergence", "above", 0.5, patience=2,
              action="raise_kl", factor=1.5),  # fmt: skip
)


@dataclass
class MonitorConfig:
    """Alert rules checked on every metrics row of every stage. Each alert is a line in
    OUTPUT/alerts.jsonl and an ALERT line on the console, and takes its rule's action."""

    builtin_rules: bool = opt(
        True,
        "Check the built-in rules: nan_loss, nan_grad, kl_high, kl_negative, entropy_collapse, "
        "value_loss_explosion, clipfrac_high, eos_rate_collapse, length_drift, repetition, "
        "diversity_collapse_1, diversity_collapse_2, length_corr_drift, kl_per_reward, proxy_judge_divergence.",
    )
    disable: list[str] = opt([], "Names of built-in rules to turn off, e.g. [clipfrac_high].")
    rules: list[AlertRule] = opt(
        [],
        "Your rules, each {name, metric, condition: above|below|not_finite|spike|drift|drop, threshold, window, "
        "patience, cooldown, action: warn|stop|raise_kl|lower_lr, factor}; one named like a built-in rule "
        "replaces it, the others are added.",
    )

    def _check(self):
        names = [r.name for r in self.rules]
        for name in sorted({n for n in names if names.count(n) > 1}):
            yield "rules", f"two rules are named {name!r}"
        builtin = [r.name for r in BUILTIN_ALERT_RULES]
        for name in self.disable:
            if name not in builtin:
                yield "disable", f"{name!r} is not a built-in rule; they are: {', '.join(builtin)}"


@dataclass
class HackingConfig:
    """Reward-hacking detection (the hacking/* metrics of every PPO update) and two remedies that
    are score terms: a diversity bonus and a repetition penalty (both off by default)."""

    judge: Literal["none", "model", "ensemble_disagreement", "gold"] = opt(
        "none",
        "Held-out judge of the policy's responses: model = a second reward model (judge_model_path); "
        "ensemble_disagreement = the PPO reward ensemble's members, mean minus std (an ensemble "
        "reward_model_path); gold = gold_scorer; none = no judge.",
    )
    judge_model_path: str | None = opt(
        None, "Reward model or ensemble directory that judges (judge: model); it reads the response texts, so any tokenizer works."
    )
    gold_scorer: Literal["vader"] = opt(
        "vader",
        "Gold scorer for judge: gold: vader = VADER compound sentiment of the response in [-1, 1] (pip "
        "install vaderSentiment). From Python, train_ppo(config, gold_scorer=fn) takes any fn(prompts, responses) -> (B,).",
    )
    window: int = opt(10, "PPO updates over which trends and smoothed values are measured.")
    rise_threshold: float = opt(
        0.2, "proxy_judge_divergence: the proxy (reward-model) score counts as rising when its least-squares rise over the last window updates exceeds this (normalised units)."
    )
    judge_tolerance: float = opt(
        0.0, "proxy_judge_divergence: the judge counts as flat or falling when its rise over the same window is at most this (judge units)."
    )
    min_gain: float = opt(
        0.1, "kl_per_reward: the score gained since the first window is floored at this (normalised units), so a tiny gain cannot divide by ~0."
    )
    diversity_coef: float = opt(
        0.0, "Diversity bonus: adds coef x distinct-2 of each response (unique word bigrams / bigrams) to its score; 0 = off."
    )
    repetition_coef: float = opt(
        0.0, "Repetition penalty: subtracts coef x the share of each response's word trigrams that repeat an earlier one; 0 = off."
    )

    def _check(self):
        if self.window < 2:
            yield "window", f"must be >= 2 updates (a trend needs two points), got {self.window}"
        for key in ("rise_threshold", "diversity_coef", "repetition_coef"):
            if not (getattr(self, key) >= 0 and math.isfinite(getattr(self, key))):
                yield key, f"must be >= 0, got {getattr(self, key)}"
        if not (self.min_gain > 0 and math.isfinite(self.min_gain)):
            yield "min_gain", f"must be a positive number, got {self.min_gain}"
        if not math.isfinite(self.judge_tolerance):
            yield "judge_tolerance", f"must be a finite number, got {self.judge_tolerance}"
        if self.judge == "model" and not self.judge_model_path:
            yield "judge_model_path", "judge: model needs the judge's reward-model directory"
        if self.judge_model_path and self.judge != "model":
            yield "judge", f"judge_model_path is set but judge is {self.judge}; set judge: model to use it"


@dataclass
class LoggingConfig:
    use_wandb: bool = opt(False, "Also send metrics to Weights & Biases (project: WANDB_PROJECT).")
    tensorboard: bool = opt(
        False, "Also write TensorBoard events (to $TENSORBOARD_LOGGING_DIR, else OUTPUT/checkpoints/runs)."
    )
    plots: bool = opt(True, "Draw training-curve PNGs into OUTPUT/plots at the end of a stage.")


@dataclass
class Config:
    """The whole pipeline in one file: configs/rlhf_config.yaml."""

    sft: SFTConfig = opt(SFTConfig(), "Stage 1: supervised fine-tuning.")
    reward: RewardConfig = opt(RewardConfig(), "Stage 2: reward model.")
    ppo: PPOConfig = opt(PPOConfig(), "Stage 3: PPO.")
    eval: EvalConfig = opt(EvalConfig(), "Evaluation.")
    safety: SafetyConfig = opt(SafetyConfig(), "Safety mechanisms.")
    monitor: MonitorConfig = opt(MonitorConfig(), "Alerts and their actions.")
    hacking: HackingConfig = opt(HackingConfig(), "Reward-hacking detection and remedies.")
    logging: LoggingConfig = opt(LoggingConfig(), "Metrics sinks and plots.")


def plan_steps(
    n_train: int,
    batch_size: int,
    gradient_accumulation_steps: int,
    num_epochs: int,
    max_steps: int | None,
    warmup_ratio: float,
    world_size: int = 1,
) -> dict[str, int]:
    """Derived sizes of a Trainer run, computed the way transformers.Trainer counts them."""
    batches_per_epoch = math.ceil(n_train / (batch_size * world_size))
    steps_per_epoch = math.ceil(batches_per_epoch / gradient_accumulation_steps)
    total_steps = max_steps or steps_per_epoch * num_epochs
    return {
        "train_records": n_train,
        "effective_batch": batch_size * gradient_accumulation_steps * world_size,
        "steps_per_epoch": steps_per_epoch,
        "total_steps": total_steps,
        "warmup_steps": math.ceil(total_steps * warmup_ratio),
    }


# ---------------------------------------------------------------- loading and checking


def _convert(tp: Any, value: Any, path: str) -> Any:
    """`value` checked against the type hint `tp`, or a ConfigError naming `path`."""
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(f"{path}: expected a mapping of keys, got {value!r}")
        return _build(tp, value, path)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        (inner,) = [a for a in args if a is not type(None)]
        return _convert(inner, value, path)
    if origin is Literal:
        choices = typing.get_args(tp)
        if isinstance(value, bool):
            # YAML 1.1 reads a bare off/no (on/yes) as a boolean: `mixed_precision=no` means the word.
            words = ("on", "yes", "true") if value else ("off", "no", "false")
            value = next((w for w in words if w in choices), value)
        if value not in choices:
            raise ConfigError(f"{path}: must be one of {', '.join(map(str, choices))}; got {value!r}")
        return value
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"{path}: expected a list, got {value!r}")
        (inner,) = typing.get_args(tp)
        return [_convert(inner, v, f"{path}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{path}: expected a mapping, got {value!r}")
        key_tp, inner = typing.get_args(tp)
        assert key_tp is str, f"{path}: only str keys are supported"
        for key in value:
            if not isinstance(key, str):
                raise ConfigError(f"{path}: keys must be strings, got {key!r}")
        return {key: _convert(inner, v, f"{path}.{key}") for key, v in value.items()}
    if tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        # YAML 1.1 reads `1e-5` (no dot) as a string; accept what is plainly a number.
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
    elif tp is str:
        if isinstance(value, str):
            return value
    else:
        raise TypeError(f"{path}: unsupported config type {tp}")
    raise ConfigError(f"{path}: expected {tp.__name__}, got {type(value).__name__} {value!r}")


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else str(key)


def _build(cls: type, data: dict, path: str) -> Any:
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    for key in data:
        if key not in fields:
            close = difflib.get_close_matches(str(key), fields, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            known = ", ".join(fields) or "none yet"
            raise ConfigError(f"{_join(path, key)}: unknown key{hint}; known keys: {known}")
    values = {}
    for name, f in fields.items():
        if dataclasses.is_dataclass(hints[name]) and isinstance(data.get(name, {}), dict):
            # A nested section starts from the field's own default, not its class's: setting
            # reward.data.max_records keeps reward.data.path = data/preference_data.json.
            section = _merge(dataclasses.asdict(f.default_factory()), data.get(name, {}))
            values[name] = _convert(hints[name], section, _join(path, name))
        elif name in data:
            values[name] = _convert(hints[name], data[name], _join(path, name))
    obj = cls(**values)
    for key, message in getattr(obj, "_check", lambda: ())():
        raise ConfigError(f"{_join(path, key)}: {message}")
    return obj


def parse_overrides(overrides: list[str]) -> dict:
    """`["sft.lora.r=8", "sft.seed=1"]` -> `{"sft": {"lora": {"r": 8}, "seed": 1}}`."""
    tree: dict = {}
    for item in overrides:
        key, eq, raw = item.partition("=")
        if not eq or not key.strip():
            raise ConfigError(f"override {item!r}: expected dotted.key=value")
        node = tree
        *parents, leaf = key.strip().split(".")
        for part in parents:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {item!r}: {part} was already set to a value")
        node[leaf] = yaml.safe_load(raw) if raw.strip() else ""
    return tree


def _merge(base: dict, extra: dict) -> dict:
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def load_config(path: str | Path | None = None, overrides: list[str] = ()) -> Config:
    """Defaults, then the YAML file at `path` (if any), then dotted `overrides`."""
    data: dict = {}
    if path is not None:
        try:
            text = Path(path).read_text()
        except OSError as e:
            raise ConfigError(f"{path}: cannot read config file: {e.strerror}") from None
        try:
            data = yaml.safe_load(text) or {}
        except yaml.YAMLError as e:
            raise ConfigError(f"{path}: invalid YAML: {e}") from None
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: top level must be a mapping of sections, got {data!r}")
    data = _merge(data, parse_overrides(list(overrides)))
    try:
        return _build(Config, data, "")
    except ConfigError as e:
        # Name the file too, so "sft.lr: unknown key" says which file it came from.
        raise ConfigError(f"{path}: {e}" if path is not None else str(e)) from None


def save_config(cfg: Any, path: str | Path) -> None:
    Path(path).write_text(yaml.safe_dump(dataclasses.asdict(cfg), sort_keys=False))


def describe(cls: type, prefix: str = "") -> list[str]:
    """One help line per leaf key under `prefix`: `sft.learning_rate (float, 2e-05): ...`."""
    lines = []
    hints = typing.get_type_hints(cls)
    default_obj = cls()
    for f in dataclasses.fields(cls):
        key = _join(prefix, f.name)
        tp = hints[f.name]
        if dataclasses.is_dataclass(tp):
            lines += describe(tp, key)
            continue
        if typing.get_origin(tp) is Literal:
            type_name = "|".join(map(str, typing.get_args(tp)))
        else:
            type_name = getattr(tp, "__name__", None) or str(tp).replace("typing.", "")
        default = getattr(default_obj, f.name)
        lines.append(f"  {key} ({type_name}, default {default!r}): {f.metadata.get('help', '')}")
    return lines
