"""Stage 1: supervised fine-tuning on demonstrations, with the loss on response tokens only."""

from __future__ import annotations

import json
import logging
import os
import shutil
from functools import partial
from pathlib import Path

import torch

from .config import Config, ConfigError, LoggingConfig, SFTConfig, TrainConfig, plan_steps, save_config
from .data import DataError, load_sft, pad_right, split, tokenize_sft
from .models import apply_lora, count_parameters, load_causal_lm, load_tokenizer, save_model
from .monitor import MetricsCallback, plot_curves, read_metrics, write_model_card
from .safety import screen_training_data

log = logging.getLogger(__name__)


def training_arguments(
    cfg: TrainConfig, section: str, logging_cfg: LoggingConfig, has_eval: bool, resume: bool
):
    """transformers.TrainingArguments for one of our TrainConfig stages."""
    from transformers import TrainingArguments

    on_cpu = not torch.cuda.is_available()
    if cfg.mixed_precision == "fp16" and on_cpu:
        raise ConfigError(f"{section}.mixed_precision: fp16 needs a GPU; use bf16 or no on a CPU")
    if cfg.mixed_precision == "bf16" and on_cpu and not torch.ops.mkldnn._is_mkldnn_bf16_supported():
        # Measured on an AVX2-only CPU: a bf16 training step took 24x longer than fp32
        # (benchmarks/train_step.py).
        log.warning(
            "%s.mixed_precision=bf16: this CPU has no native bf16 (AVX512-BF16 or AMX), so bf16 "
            "runs emulated and far slower than fp32; set %s.mixed_precision=no",
            section, section,
        )  # fmt: skip
    report_to = ["wandb"] * logging_cfg.use_wandb + ["tensorboard"] * logging_cfg.tensorboard
    return TrainingArguments(
        output_dir=str(Path(cfg.output_dir) / "checkpoints"),
        per_device_train_batch_size=cfg.batch_size,
        per_device_eval_batch_size=cfg.batch_size,
        gradient_accumulation_steps=cfg.gradient_accumulation_steps,
        num_train_epochs=cfg.num_epochs,
        max_steps=cfg.max_steps or -1,
        learning_rate=cfg.learning_rate,
        lr_scheduler_type=cfg.lr_scheduler,
        warmup_steps=cfg.warmup_ratio,  # a float below 1 is a ratio of the total steps
        weight_decay=cfg.weight_decay,
        max_grad_norm=cfg.max_grad_norm,
        bf16=cfg.mixed_precision == "bf16",
        fp16=cfg.mixed_precision == "fp16",
        eval_strategy="epoch" if has_eval else "no",
        eval_on_start=has_eval and not resume,  # the step-0 eval loss shows what training bought
        save_strategy="steps" if cfg.save_steps else "no",
        save_steps=cfg.save_steps or 1,  # unused when save_strategy is "no"
        save_total_limit=cfg.save_total_limit or None,
        logging_steps=cfg.logging_steps,
        seed=cfg.seed,
        data_seed=cfg.seed,
        report_to=report_to or "none",
        logging_nan_inf_filter=False,  # a NaN/inf loss must reach the alerts (monitor.py), not be averaged away
        run_name=Path(cfg.output_dir).name,
        remove_unused_columns=False,  # our collator needs the raw features
        dataloader_pin_memory=torch.cuda.is_available(),
    )


def trainer_sizes(cfg: TrainConfig, n_train: int) -> dict[str, int]:
    """plan_steps for a Trainer stage on this launch's world size."""
    return plan_steps(
        n_train, cfg.batch_size, cfg.gradient_accumulation_steps, cfg.num_epochs,
        cfg.max_steps, cfg.warmup_ratio, int(os.environ.get("WORLD_SIZE", "1")),
    )  # fmt: skip


def derived_sizes(cfg: TrainConfig, n_train: int) -> dict[str, int]:
    """trainer_sizes, printed before training."""
    sizes = trainer_sizes(cfg, n_train)
    print("derived sizes: " + ", ".join(f"{k}={v}" for k, v in sizes.items()))
    return sizes


def prepare_run_dir(output_dir: Path, resume: bool, config: Config) -> None:
    """Create the run directory and save the resolved config in it. A fresh run replaces the old
    run files; a resumed one drops metrics logged after the checkpoint it restarts from, so
    metrics.jsonl reads as one uninterrupted run."""
    from transformers.trainer_utils import get_last_checkpoint

    ckpt_root = output_dir / "checkpoints"
    metrics = output_dir / "metrics.jsonl"
    output_dir.mkdir(parents=True, exist_ok=True)
    if resume:
        last = get_last_checkpoint(str(ckpt_root)) if ckpt_root.is_dir() else None
        if last is None:
            raise FileNotFoundError(f"--resume: no checkpoint in {ckpt_root}; run without --resume")
        step = int(Path(last).name.split("-")[-1])
        rows = [r for r in read_metrics(output_dir) if r["step"] <= step]
        metrics.write_text("".join(json.dumps(r) + "\n" for r in rows))
        print(f"resuming from {last} (optimizer step {step})")
    else:
        shutil.rmtree(ckpt_root, ignore_errors=True)
        metrics.unlink(missing_ok=True)
    save_config(config, output_dir / "config.yaml")


def train_sft(config: Config, resume: bool = False) -> Path:
    """Fine-tune config.sft.model on config.sft.data; returns the output directory (an HF model
    + tokenizer). The whole resolved config is saved there, so `--config OUT/config.yaml`
    repeats the run."""
    from transformers import Trainer, set_seed

    cfg, logging_cfg = config.sft, config.logging
    out = Path(cfg.output_dir)
    set_seed(cfg.seed)

    # Read and check everything before touching the output directory.
    tokenizer = load_tokenizer(cfg.model.name, padding_side="right")
    records = screen_training_data(load_sft(cfg.data.path, cfg.data.max_records), config.safety, cfg.data.path, out)
    train_ex, eval_ex = split(records, cfg.data.eval_fraction, cfg.seed)
    train_set, train_stats = tokenize_sft(train_ex, tokenizer, cfg.data.max_length, cfg.data.overlong)
    eval_set, eval_stats = tokenize_sft(eval_ex, tokenizer, cfg.data.max_length, cfg.data.overlong)
    print(train_stats.summary(f"{cfg.data.path} train"))
    print(eval_stats.summary(f"{cfg.data.path} eval"))
    if not train_set:
        raise DataError(f"{cfg.data.path}: no training records left after length filtering")
    sizes = derived_sizes(cfg, len(train_set))

    model = load_causal_lm(cfg.model)
    if cfg.lora.enabled:
        model = apply_lora(model, cfg.lora)
    print(f"trainable parameters: {count_parameters(model, True):,} of {count_parameters(model):,}")

    args = training_arguments(cfg, "sft", logging_cfg, has_eval=bool(eval_set), resume=resume)
    prepare_run_dir(out, resume, config)
    trainer = Trainer(
        model=model,
        args=args,
        data_collator=partial(pad_right, pad_id=tokenizer.pad_token_id),
        train_dataset=train_set,
        eval_dataset=eval_set or None,
        processing_class=tokenizer,
        callbacks=[MetricsCallback(out, config.monitor)],
    )
    trainer.train(resume_from_checkpoint=resume or None)

    save_model(trainer.model, tokenizer, out, merge_lora=cfg.lora.merge)
    if logging_cfg.plots:
        plot_curves(out, {"loss": ["loss/train", "loss/eval"], "learning rate": ["optim/lr"]}, "sft.png")
    _model_card(cfg, out, sizes)
    return out


def _model_card(cfg: SFTConfig, out: Path, sizes: dict[str, int]) -> None:
    evals = [r for r in read_metrics(out) if "loss/eval" in r]
    if evals:
        result = "\n".join(
            f"- step {r['step']}: eval loss {r['loss/eval']:.4f}, perplexity {r['eval/perplexity']:.2f}"
            for r in evals
        )
    else:
        result = "No evaluation split (data.eval_fraction = 0)."
    lora = (
        "LoRA adapters merged into the weights"
        if cfg.lora.enabled and cfg.lora.merge
        else ("LoRA adapters only (load with peft)" if cfg.lora.enabled else "all weights trained")
    )
    write_model_card(
        out,
        f"SFT model: {out.name}",
        {
            "Training": (
                f"Supervised fine-tuning of `{cfg.model.name}` on `{cfg.data.path}` with the `rlhf` "
                f"toolkit ({lora}). Loss on response tokens only. {cfg.num_epochs} epoch(s), "
                f"{sizes['total_steps']} optimizer steps, effective batch {sizes['effective_batch']}, "
                f"learning rate {cfg.learning_rate}, mixed precision `{cfg.mixed_precision}`. "
                "The full resolved configuration is in `config.yaml`."
            ),
            "Evaluation": result,
            "Use": (
                "```python\nfrom transformers import AutoModelForCausalLM, AutoTokenizer\n\n"
                f'model = AutoModelForCausalLM.from_pretrained("{out}")\n'
                f'tokenizer = AutoTokenizer.from_pretrained("{out}")\n```'
            ),
            "Files": "`metrics.jsonl` (per-step metrics), `plots/sft.png` (curves), `checkpoints/` (for `--resume`).",
        },
    )
