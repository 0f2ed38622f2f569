"""Stage 2: reward models, ensembles of them, and their evaluation.

A reward model is a Hugging Face sequence classifier with one output, read at the last token of
prompt + response (the response's EOS). `RewardModel` wraps it; users subclass it and override
`forward`. Its directory is a plain HF model directory plus `reward_stats.json`, the mean and std
of its rewards on the training data, which PPO uses to normalise scores.
"""

from __future__ import annotations

import dataclasses
import json
import random
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import torch
from torch import nn
from transformers import Trainer, set_seed

from .config import Config, RewardConfig, save_config
from .data import (
    DataError,
    Messages,
    collate_pairs,
    encode_pair,
    load_preferences,
    pad_right,
    split,
    tokenize_preferences,
)
from .functional import expected_calibration_error, pairwise_loss
from .models import (
    DTYPES,
    apply_lora,
    count_parameters,
    enable_gradient_checkpointing,
    load_tokenizer,
    resolve_model_path,
    save_model,
)
from .monitor import MetricsCallback, plot_curves, write_model_card
from .safety import screen_training_data
from .sft import derived_sizes, prepare_run_dir, training_arguments

STATS_FILE = "reward_stats.json"  # {"mean", "std"} of the model's rewards on its training data
EXTRA_FILE = "reward_extra.safetensors"  # parameters a subclass adds beside the HF model
ENSEMBLE_FILE = "ensemble.json"  # members and aggregation of an ensemble directory


class RewardModel(nn.Module):
    """A sequence classifier with one output: `forward(input_ids, attention_mask) -> (B,)`.

    Subclass it and override `forward` to change how text is scored; a subclass trains, scores
    in PPO, evaluates and joins ensembles like the base class. Parameters a subclass adds are
    trained too and saved beside the HF weights.
    """

    def __init__(self, model: nn.Module, mean: float = 0.0, std: float = 1.0):
        super().__init__()
        self.model = model  # e.g. LlamaForSequenceClassification with num_labels=1
        self.mean, self.std = mean, std  # reward statistics on the training data

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Rewards (B,) of right- or left-padded sequences (B, T): the head read at each row's
        last attended token."""
        # HF classifiers read the rightmost token that is not config.pad_token_id. Writing that id
        # into every masked position makes it the last attended token for any padding side.
        pad_id = self.model.config.pad_token_id
        if pad_id is not None:
            input_ids = input_ids.masked_fill(attention_mask == 0, pad_id)
        # Positions count attended tokens, so left padding does not shift them.
        position_ids = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)  # (B, T)
        out = self.model(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids)
        return out.logits.squeeze(-1).float()  # (B,)

    def normalize(self, rewards: torch.Tensor) -> torch.Tensor:
        """Rewards on the scale PPO uses: mean 0 and std 1 on the training data."""
        return (rewards - self.mean) / self.std

    @classmethod
    def from_pretrained(cls, path: str, dtype: str = "fp32", **kwargs) -> RewardModel:
        """Load a reward-model directory, or start a new one from any HF model (a causal LM gets a
        fresh one-output head). `path` may also be a built-in name or a cached hub id; kwargs go
        to AutoModelForSequenceClassification.from_pretrained."""
        from safetensors.torch import load_file
        from transformers import AutoModelForSequenceClassification

        local = resolve_model_path(path)
        model = AutoModelForSequenceClassification.from_pretrained(
            local, num_labels=1, dtype=DTYPES[dtype], **kwargs
        )
        stats_file = Path(local) / STATS_FILE
        stats = json.loads(stats_file.read_text()) if stats_file.exists() else {}
        reward_model = cls(model, mean=stats.get("mean", 0.0), std=stats.get("std", 1.0))
        extra_file = Path(local) / EXTRA_FILE
        if extra_file.exists():
            missing, unexpected = reward_model.load_state_dict(load_file(str(extra_file)), strict=False)
            if unexpected or any(not k.startswith("model.") for k in missing):
                raise ValueError(
                    f"{extra_file}: does not fit {cls.__name__} (unexpected {unexpected}, missing "
                    f"{[k for k in missing if not k.startswith('model.')]})"
                )
        return reward_model

    def save_pretrained(self, path: str | Path, tokenizer=None) -> None:
        """A plain HF directory (LoRA merged) that AutoModelForSequenceClassification loads, the
        normalisation stats, and any parameters a subclass adds."""
        from safetensors.torch import save_file

        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        extra = {k: v.contiguous() for k, v in self.state_dict().items() if not k.startswith("model.")}
        save_model(self.model, tokenizer, path)
        if extra:
            save_file(extra, str(path / EXTRA_FILE))
        (path / STATS_FILE).write_text(json.dumps({"mean": self.mean, "std": self.std}, indent=1) + "\n")


@dataclass
class EnsembleScore:
    reward: torch.Tensor  # (B,) aggregated normalised reward
    members: torch.Tensor  # (M, B) each member's normalised reward
    disagreement: torch.Tensor  # (B,) std over members: high where members disagree


def aggregate_rewards(members: torch.Tensor, aggregation: str, uncertainty_coef: float = 1.0) -> torch.Tensor:
    """Members' normalised rewards (M, B) -> one reward (B,): their mean, their min, or
    mean_minus_std = mean - uncertainty_coef * std (population std over the M members)."""
    if aggregation == "mean":
        return members.mean(0)
    if aggregation == "min":
        return members.min(0).values
    if aggregation == "mean_minus_std":
        return members.mean(0) - uncertainty_coef * members.std(0, correction=0)
    raise ValueError(f"aggregation must be mean, min or mean_minus_std, got {aggregation!r}")


class RewardModelEnsemble(nn.Module):
    """Several reward models scored together. Each member's rewards are normalised with its own
    stats first (members trained with different seeds sit at different offsets), then combined:
    `mean`, `min`, or `mean_minus_std` (mean - k * std over members, penalising uncertainty).

    model_paths: reward-model directories, or RewardModel instances (of any subclass).
    """

    def __init__(
        self,
        model_paths: list,
        tokenizer=None,
        aggregation: str = "mean",
        uncertainty_coef: float = 1.0,
        dtype: str = "fp32",
    ):
        super().__init__()
        if not model_paths:
            raise ValueError("RewardModelEnsemble needs at least one member")
        aggregate_rewards(torch.zeros(1, 1), aggregation)  # fail now on an unknown aggregation
        members = [m if isinstance(m, RewardModel) else RewardModel.from_pretrained(str(m), dtype) for m in model_paths]
        self.members = nn.ModuleList(members)
        first_path = next((str(m) for m in model_paths if not isinstance(m, RewardModel)), None)
        self.tokenizer = tokenizer or (load_tokenizer(first_path) if first_path else None)
        self.aggregation, self.uncertainty_coef = aggregation, uncertainty_coef

    @classmethod
    def from_pretrained(cls, path: str | Path, dtype: str = "fp32", **kwargs) -> RewardModelEnsemble:
        """An ensemble directory written by `rlhf reward --ensemble N`."""
        spec = json.loads((Path(path) / ENSEMBLE_FILE).read_text())
        kwargs = {"aggregation": spec["aggregation"], "uncertainty_coef": spec["uncertainty_coef"], **kwargs}
        members = [Path(path) / m for m in spec["members"]]
        return cls(members, load_tokenizer(str(members[0])), dtype=dtype, **kwargs)

    def score(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> EnsembleScore:
        members = torch.stack([m.normalize(m(input_ids, attention_mask)) for m in self.members])  # (M, B)
        return EnsembleScore(
            reward=aggregate_rewards(members, self.aggregation, self.uncertainty_coef),
            members=members,
            disagreement=members.std(0, correction=0),
        )

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.score(input_ids, attention_mask).reward  # (B,)

    def normalize(self, rewards: torch.Tensor) -> torch.Tensor:
        return rewards  # members are normalised before they are combined

    def score_texts(self, prompts: list, responses: list[str], batch_size: int = 8) -> torch.Tensor:
        """Aggregated normalised rewards (N,) of responses to prompts (strings or chats)."""
        return score_texts(self, self.tokenizer, prompts, responses, batch_size)


def load_reward_model(path: str, dtype: str = "fp32") -> RewardModel | RewardModelEnsemble:
    """A reward-model directory, or an ensemble directory (one holding ensemble.json)."""
    if (Path(path) / ENSEMBLE_FILE).exists():
        return RewardModelEnsemble.from_pretrained(path, dtype)
    return RewardModel.from_pretrained(path, dtype)


# ---------------------------------------------------------------- scoring and metrics


def _device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


@torch.no_grad()
def score_pairs(model: nn.Module, features: list[dict], pad_id: int, batch_size: int = 8) -> tuple[torch.Tensor, ...]:
    """Raw rewards of the chosen and rejected sides of tokenized pairs: (chosen (N,), rejected (N,))."""
    model.eval()
    chosen, rejected = [], []
    for i in range(0, len(features), batch_size):
        batch = collate_pairs(features[i : i + batch_size], pad_id)
        ids, mask = batch["input_ids"].to(_device(model)), batch["attention_mask"].to(_device(model))
        c, r = model(ids, mask).cpu().chunk(2)  # (B,), (B,)
        chosen.append(c)
        rejected.append(r)
    return torch.cat(chosen), torch.cat(rejected)


@torch.no_grad()
def score_texts(model: nn.Module, tokenizer, prompts: list, responses: list[str], batch_size: int = 8) -> torch.Tensor:
    """Normalised rewards (N,) of `responses` to `prompts` (strings or chats) under a RewardModel
    or RewardModelEnsemble, in batches."""
    if len(prompts) != len(responses):
        raise ValueError(f"{len(prompts)} prompts but {len(responses)} responses")
    model.eval()
    rewards = []
    for i in range(0, len(prompts), batch_size):
        sequences = []
        for prompt, response in zip(prompts[i : i + batch_size], responses[i : i + batch_size], strict=True):
            messages: Messages = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else prompt
            prompt_ids, response_ids = encode_pair(tokenizer, messages, response)
            sequences.append({"input_ids": prompt_ids + response_ids})
        batch = pad_right(sequences, tokenizer.pad_token_id)  # (B, T)
        ids, mask = batch["input_ids"].to(_device(model)), batch["attention_mask"].to(_device(model))
        rewards.append(model.normalize(model(ids, mask)).cpu())
    return torch.cat(rewards)


def reward_metrics(chosen, rejected, chosen_len, rejected_len) -> dict[str, float | int | None]:
    """How well rewards rank preference pairs. Inputs: (N,) tensors or arrays.

    accuracy: share of pairs with r_chosen > r_rejected; margin: mean r_chosen - r_rejected;
    ece: expected calibration error of the Bradley-Terry probability sigmoid(r_c - r_r), read as
    the confidence max(p, 1 - p) that the higher-scored response is the preferred one;
    length_corr: Pearson correlation of reward with response length (tokens) over all responses;
    accuracy_chosen_shorter: accuracy on the pairs whose chosen response is the shorter one, where
    a reward model that merely prefers length fails. None where a value is undefined.
    """
    chosen, rejected, chosen_len, rejected_len = (
        torch.as_tensor(x).double() for x in (chosen, rejected, chosen_len, rejected_len)
    )
    diff = chosen - rejected  # (N,)
    correct = diff > 0
    p = torch.sigmoid(diff)
    rewards, lengths = torch.cat([chosen, rejected]), torch.cat([chosen_len, rejected_len])  # (2N,), (2N,)
    defined = rewards.std() > 0 and lengths.std() > 0
    shorter = chosen_len < rejected_len
    return {
        "accuracy": correct.double().mean().item(),
        "margin": diff.mean().item(),
        "ece": expected_calibration_error(torch.maximum(p, 1 - p), correct),
        "length_corr": torch.corrcoef(torch.stack([rewards, lengths]))[0, 1].item() if defined else None,
        "accuracy_chosen_shorter": correct[shorter].double().mean().item() if shorter.any() else None,
        "pairs": len(diff),
        "pairs_chosen_shorter": int(shorter.sum()),
    }


# ---------------------------------------------------------------- training


def reward_tokenizer(name: str):
    """The tokenizer of `name` with a pad token that is not EOS. HF classifiers read the last
    token that is not padding; with pad == EOS (SmolLM2, GPT-2) that would skip the response's
    final EOS, and a plain AutoModelForSequenceClassification would score differently from us."""
    tokenizer = load_tokenizer(name, padding_side="right")
    if tokenizer.pad_token_id == tokenizer.eos_token_id:
        if tokenizer.unk_token is not None and tokenizer.unk_token_id != tokenizer.eos_token_id:
            tokenizer.pad_token = tokenizer.unk_token
        else:
            tokenizer.add_special_tokens({"pad_token": "<|pad|>"})
    return tokenizer


class RewardTrainer(Trainer):
    """Trainer with the Bradley-Terry loss; logs pairwise accuracy and margin while training."""

    def __init__(self, *args, center_coef: float = 0.0, **kwargs):
        super().__init__(*args, **kwargs)
        self.center_coef = center_coef
        self._train_stats = []  # (correct, margin) of each training micro-batch since the last log

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        rewards = model(inputs["input_ids"], inputs["attention_mask"])  # (2B,)
        chosen, rejected = rewards.chunk(2)  # (B,), (B,)
        loss = pairwise_loss(chosen, rejected, inputs["margin"], self.center_coef)
        if model.training:
            diff = (chosen - rejected).detach()
            self._train_stats.append(((diff > 0).float().mean().item(), diff.mean().item()))
        return (loss, torch.stack([chosen, rejected], -1)) if return_outputs else loss  # (B, 2)

    def prediction_step(self, model, inputs, prediction_loss_only, ignore_keys=None):
        inputs = self._prepare_inputs(inputs)
        with torch.no_grad(), self.compute_loss_context_manager():
            loss, rewards = self.compute_loss(model, inputs, return_outputs=True)
        if prediction_loss_only:
            return loss.detach(), None, None
        # "Labels" are the response lengths: compute_metrics needs them for the length bias.
        return loss.detach(), rewards.detach().float(), inputs["response_lengths"]

    def log(self, logs, *args, **kwargs):
        if "loss" in logs and self._train_stats:
            correct, margin = np.mean(self._train_stats, axis=0)
            logs = {**logs, "accuracy": float(correct), "margin": float(margin)}
            self._train_stats = []
        super().log(logs, *args, **kwargs)


def _compute_metrics(prediction) -> dict:
    rewards, lengths = prediction.predictions, prediction.label_ids  # (N, 2), (N, 2)
    metrics = reward_metrics(rewards[:, 0], rewards[:, 1], lengths[:, 0], lengths[:, 1])
    return {k: v for k, v in metrics.items() if v is not None and not k.startswith("pairs")}


def train_reward_model(config: Config, resume: bool = False, model_class: type[RewardModel] = RewardModel) -> Path:
    """Train config.reward (one model, or an ensemble of config.reward.ensemble members) on
    preference pairs; returns the output directory. `model_class` may be a RewardModel subclass."""
    cfg = config.reward
    # Read and check everything before touching the output directory.
    tokenizer = reward_tokenizer(cfg.model.name)
    pairs = screen_training_data(load_preferences(cfg.data.path, cfg.data.max_records), config.safety, cfg.data.path,
                                 cfg.output_dir)  # fmt: skip
    if not cfg.use_margin:
        pairs = [dataclasses.replace(p, margin=None) for p in pairs]
    train_ex, eval_ex = split(pairs, cfg.data.eval_fraction, cfg.seed)
    train_set, train_stats = tokenize_preferences(train_ex, tokenizer, cfg.data.max_length, cfg.data.overlong)
    eval_set, eval_stats = tokenize_preferences(eval_ex, tokenizer, cfg.data.max_length, cfg.data.overlong)
    print(train_stats.summary(f"{cfg.data.path} train pairs"))
    print(eval_stats.summary(f"{cfg.data.path} eval pairs"))
    if not train_set:
        raise DataError(f"{cfg.data.path}: no training pairs left after length filtering")

    out = Path(cfg.output_dir)
    if cfg.ensemble == 1:
        (out / ENSEMBLE_FILE).unlink(missing_ok=True)  # an earlier ensemble run's, or loaders would see one
        _train_one(config, model_class, tokenizer, train_set, eval_set, resume)
        return out
    members = []
    for i in range(cfg.ensemble):
        member_dir = out / f"member_{i}"
        members.append(member_dir.name)
        if resume and (member_dir / "eval.json").exists():
            print(f"== ensemble member {i}: finished earlier, kept")
            continue
        member_train = train_set
        if cfg.bootstrap:  # a resample of the same size, drawn with replacement
            rng = random.Random(cfg.seed + i)
            member_train = [train_set[rng.randrange(len(train_set))] for _ in train_set]
        member_cfg = dataclasses.replace(cfg, output_dir=str(member_dir), seed=cfg.seed + i, ensemble=1)
        print(f"== ensemble member {i + 1}/{cfg.ensemble}: seed {member_cfg.seed}, {member_dir}")
        has_checkpoint = (member_dir / "checkpoints").is_dir() and any((member_dir / "checkpoints").iterdir())
        _train_one(dataclasses.replace(config, reward=member_cfg), model_class, tokenizer, member_train,
                   eval_set, resume and has_checkpoint)  # fmt: skip
    save_config(config, out / "config.yaml")
    spec = {"members": members, "aggregation": cfg.aggregation, "uncertainty_coef": cfg.uncertainty_coef}
    (out / ENSEMBLE_FILE).write_text(json.dumps(spec, indent=1) + "\n")
    held_out = None
    if eval_set:
        ensemble = RewardModelEnsemble(
            [model_class.from_pretrained(str(out / m), cfg.model.dtype) for m in members], tokenizer,
            cfg.aggregation, cfg.uncertainty_coef,
        )  # fmt: skip
        held_out = _ensemble_eval(ensemble, eval_set, tokenizer.pad_token_id, cfg.batch_size, out)
    tokenizer.save_pretrained(out)
    _model_card(cfg, out, held_out, ensemble_members=members)
    return out


def _train_one(config: Config, model_class, tokenizer, train_set, eval_set, resume: bool) -> None:
    cfg = config.reward
    out = Path(cfg.output_dir)
    sizes = derived_sizes(cfg, len(train_set))

    # The new head's initialisation depends on this member's seed alone, not on what ran before.
    set_seed(cfg.seed)
    reward_model = model_class.from_pretrained(
        cfg.model.name, cfg.model.dtype, pad_token_id=tokenizer.pad_token_id,
        trust_remote_code=cfg.model.trust_remote_code,
    )  # fmt: skip
    if len(tokenizer) > reward_model.model.get_input_embeddings().num_embeddings:
        reward_model.model.resize_token_embeddings(len(tokenizer))  # a pad token was added
    if cfg.model.gradient_checkpointing:
        enable_gradient_checkpointing(reward_model.model)
    if cfg.lora.enabled:  # peft keeps the new head ("score") fully trainable
        reward_model.model = apply_lora(reward_model.model, cfg.lora, task_type="SEQ_CLS")
    print(f"trainable parameters: {count_parameters(reward_model, True):,} of {count_parameters(reward_model):,}")

    args = training_arguments(cfg, "reward", config.logging, has_eval=bool(eval_set), resume=resume)
    prepare_run_dir(out, resume, config)
    trainer = RewardTrainer(
        model=reward_model,
        args=args,
        data_collator=partial(collate_pairs, pad_id=tokenizer.pad_token_id),
        train_dataset=train_set,
        eval_dataset=eval_set or None,
        processing_class=tokenizer,
        compute_metrics=_compute_metrics,
        callbacks=[MetricsCallback(out, config.monitor)],
        center_coef=cfg.center_coef,
    )
    trainer.train(resume_from_checkpoint=resume or None)

    # Normalisation stats: the trained model's rewards over every training response.
    chosen, rejected = score_pairs(reward_model, train_set, tokenizer.pad_token_id, cfg.batch_size)
    rewards = torch.cat([chosen, rejected])
    reward_model.mean, reward_model.std = rewards.mean().item(), rewards.std(correction=0).item() or 1.0
    lengths = torch.tensor([f["response_lengths"] for f in train_set])  # (N, 2)
    report = {"train": reward_metrics(chosen, rejected, lengths[:, 0], lengths[:, 1])}
    if eval_set:
        lengths = torch.tensor([f["response_lengths"] for f in eval_set])
        c, r = score_pairs(reward_model, eval_set, tokenizer.pad_token_id, cfg.batch_size)
        report["eval"] = reward_metrics(c, r, lengths[:, 0], lengths[:, 1])
    report["normalisation"] = {"mean": reward_model.mean, "std": reward_model.std}
    reward_model.save_pretrained(out, tokenizer)
    (out / "eval.json").write_text(json.dumps(report, indent=1) + "\n")
    _print_report(report)

    if config.logging.plots:
        plot_curves(
            out,
            {"loss": ["loss/train", "loss/eval"], "pairwise accuracy": ["train/accuracy", "eval/accuracy"],
             "margin r_chosen - r_rejected": ["train/margin", "eval/margin"], "learning rate": ["optim/lr"]},
            "reward.png",
        )  # fmt: skip
    _model_card(cfg, out, report.get("eval"), sizes=sizes)


def _ensemble_eval(ensemble: RewardModelEnsemble, eval_set: list[dict], pad_id: int, batch_size: int, out: Path) -> dict:
    """Writes eval.json of an ensemble: the aggregated reward's metrics (returned), each member's
    accuracy, and the members' disagreement (std of normalised rewards) on held-out responses."""
    chosen, rejected = [], []
    for member in ensemble.members:
        c, r = score_pairs(member, eval_set, pad_id, batch_size)
        chosen.append(member.normalize(c))
        rejected.append(member.normalize(r))
    chosen, rejected = torch.stack(chosen), torch.stack(rejected)  # (M, N), (M, N)
    lengths = torch.tensor([f["response_lengths"] for f in eval_set])  # (N, 2)
    report = {
        "eval": reward_metrics(
            aggregate_rewards(chosen, ensemble.aggregation, ensemble.uncertainty_coef),
            aggregate_rewards(rejected, ensemble.aggregation, ensemble.uncertainty_coef),
            lengths[:, 0], lengths[:, 1],
        ),  # fmt: skip
        "member_accuracy": (chosen > rejected).double().mean(1).tolist(),
        "mean_disagreement": torch.cat([chosen.std(0, correction=0), rejected.std(0, correction=0)]).mean().item(),
        "aggregation": ensemble.aggregation,
    }
    (out / "eval.json").write_text(json.dumps(report, indent=1) + "\n")
    _print_report(report)
    return report["eval"]


def _print_report(report: dict) -> None:
    for split_name in ("train", "eval"):
        m = report.get(split_name)
        if not m:
            continue
        fmt = lambda v: "n/a" if v is None else f"{v:.3f}"  # noqa: E731
        print(
            f"{split_name:>5} ({m['pairs']} pairs): accuracy {fmt(m['accuracy'])}, margin {fmt(m['margin'])}, "
            f"ECE {fmt(m['ece'])}, reward-length corr {fmt(m['length_corr'])}, accuracy where chosen is "
            f"shorter {fmt(m['accuracy_chosen_shorter'])} ({m['pairs_chosen_shorter']} pairs)"
        )
    if "member_accuracy" in report:
        print("member accuracy: " + ", ".join(f"{a:.3f}" for a in report["member_accuracy"])
              + f"; mean disagreement {report['mean_disagreement']:.3f}")  # fmt: skip


def _model_card(cfg: RewardConfig, out: Path, held_out: dict | None, sizes=None, ensemble_members=None) -> None:
    if ensemble_members:
        what = (f"An ensemble of {len(ensemble_members)} reward models ({', '.join(ensemble_members)}), "
                f"trained with different seeds" + (" on bootstrap resamples" if cfg.bootstrap else "")
                + f"; aggregation `{cfg.aggregation}`.")  # fmt: skip
        use = (
            "```python\nfrom rlhf.reward_model import RewardModelEnsemble\n\n"
            f'ensemble = RewardModelEnsemble.from_pretrained("{out}")\n'
            'ensemble.score_texts(["What is 2 + 2?"], ["4."])\n```'
        )
    else:
        what = (
            f"Reward model trained from `{cfg.model.name}` on `{cfg.data.path}` with a Bradley-Terry loss"
            + (", LoRA merged" if cfg.lora.enabled else "")
            + f". {cfg.num_epochs} epoch(s), {sizes['total_steps']} optimizer steps, effective batch "
            f"{sizes['effective_batch']} pairs, learning rate {cfg.learning_rate}, centering "
            f"{cfg.center_coef}. The full resolved configuration is in `config.yaml`."
        )
        use = (
            "A sequence classifier with one output, read at the response's last token (EOS). Plain "
            "transformers scores the same way (right padding, the saved tokenizer):\n\n"
            "```python\nfrom transformers import AutoModelForSequenceClassification, AutoTokenizer\n\n"
            f'model = AutoModelForSequenceClassification.from_pretrained("{out}")\n'
            f'tokenizer = AutoTokenizer.from_pretrained("{out}")\n```\n\n'
            "With `rlhf`, `RewardModel.from_pretrained(path)` also reads the normalisation stats in "
            f"`{STATS_FILE}`; `rlhf.reward_model.score_texts(model, tokenizer, prompts, responses)` "
            "returns normalised rewards."
        )
    evaluation = "No held-out pairs (data.eval_fraction = 0)."
    if held_out:
        evaluation = "\n".join(f"- {k}: {round(v, 4) if isinstance(v, float) else v}" for k, v in held_out.items())
    write_model_card(out, f"Reward model: {out.name}", {"Training": what, "Held-out evaluation": evaluation, "Use": use})
