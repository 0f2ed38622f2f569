"""Stage 3: PPO against a reward model or ensemble.

`train_ppo` is one loop that reads like the algorithm (lm-human-preferences' `step()`):
1. rollout: sample responses with a KV cache, keeping the sampling logprobs; reference logprobs,
2. score: reward model (normalised), missing-EOS and length penalties, user penalties, clipping,
3. rewards, advantages and returns: per-token KL penalty, GAE, whitening,
4. K epochs x mini-batches of clipped policy and value updates,
5. KL controller, metrics, samples, held-out evaluation, checkpoint.

Two base models with LoRA, not four: the policy is the SFT weights plus adapters (adapters off =
the reference), and the critic is the reward model's trunk plus a value head (and its own adapters
when its trunk trains), so the same trunk also scores responses.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from torch import nn
from tqdm.auto import tqdm

from .config import AlertRule, Config, ConfigError, PPOConfig, ppo_sizes, save_config
from .data import DataError, Messages, encode_prompt, load_prompts, split
from .eval_metrics import wins
from .functional import (
    entropy_from_logits,
    explained_variance,
    gae,
    kl_penalty,
    logprobs_from_logits,
    masked_mean,
    masked_whiten,
    policy_loss,
    shaped_rewards,
    value_loss,
)
from .hacking import GoldScorer, HackingDetector, load_judge, score_terms, term_metrics
from .models import count_parameters, load_tokenizer
from .monitor import PPO_PANELS, Alerts, MetricsLog, plot_curves, read_metrics, write_model_card
from .rollout import PPOModels, Rollout, ScorePenalty, response_logits, rollout
from .safety import SafetyFilter


class KLController:
    """kl_coef, fixed or adaptive (Ziegler et al., 2019): nudged up when the measured KL is above
    target and down when below, by at most 20% of the error per horizon."""

    def __init__(self, cfg: PPOConfig):
        self.value, self.adaptive = cfg.kl_coef, cfg.adaptive_kl
        self.target, self.horizon = cfg.target_kl, cfg.kl_horizon

    def update(self, kl: float, n_episodes: int) -> None:
        if self.adaptive:
            error = min(max(kl / self.target - 1.0, -0.2), 0.2)
            self.value *= 1.0 + error * n_episodes / self.horizon


class MixedPrecision:
    """Autocast for every forward pass, and loss scaling for fp16, over plain torch.amp (one
    process; accelerate's process-wide state would pin the first run's precision)."""

    def __init__(self, mode: str, device: torch.device):
        self.dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(mode)
        self.device_type = device.type
        self.scaler = torch.amp.GradScaler(device.type) if mode == "fp16" else None

    def autocast(self):
        return torch.autocast(self.device_type, dtype=self.dtype, enabled=self.dtype is not None)

    def backward(self, loss: torch.Tensor) -> None:
        (self.scaler.scale(loss) if self.scaler else loss).backward()

    def step(self, optimizer, params: list[nn.Parameter], max_grad_norm: float) -> float:
        """Unscale, clip to max_grad_norm (0 = no clipping), step; returns the gradient norm."""
        if self.scaler:
            self.scaler.unscale_(optimizer)
        norm = torch.nn.utils.clip_grad_norm_(params, max_grad_norm or float("inf"))
        self.scaler.step(optimizer) if self.scaler else optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return float(norm)


# ---------------------------------------------------------------- phase 4: the update


def ppo_update(
    models: PPOModels, cfg: PPOConfig, batch: Rollout, optimizers, amp: MixedPrecision, sizes: dict[str, int]
) -> dict[str, float]:
    """K epochs x mini-batches of clipped policy and value steps; returns token-weighted means."""
    # Train mode only matters for gradient checkpointing: dropout is off everywhere.
    models.policy.train()
    models.critic.train()
    stats: dict[str, float] = {}
    total_weight = 0.0
    epochs_run = 0
    for _ in range(cfg.ppo_epochs):
        epochs_run += 1
        stop = False
        for mini_idx in torch.randperm(len(batch)).split(sizes["mini_batch_size"]):
            mini_tokens = batch.response_mask[mini_idx].sum()
            mini_kl = 0.0
            for micro_idx in mini_idx.split(cfg.micro_batch_size):
                mb = batch.select(micro_idx.to(batch.query_ids.device))
                mask = mb.response_mask
                weight = mask.sum() / mini_tokens  # token-level mean over the whole mini-batch
                with amp.autocast():
                    logits = response_logits(models.policy, mb.query_ids, mb.query_mask, mb.response_ids, mask)
                    if cfg.critic_trunk == "frozen":
                        values = models.critic.value_head(mb.features).squeeze(-1).float()
                    else:
                        ids, full_mask = torch.cat([mb.query_ids, mb.response_ids], 1), torch.cat([mb.query_mask, mask], 1)
                        values = models.critic(ids, full_mask)[:, mb.query_ids.shape[1] - 1 : -1]
                logprobs = logprobs_from_logits(logits, mb.response_ids, cfg.temperature)
                entropy = masked_mean(entropy_from_logits(logits, cfg.temperature), mask)
                pg_loss, clipfrac, approx_kl = policy_loss(logprobs, mb.logprobs, mb.advantages, mask, cfg.clip_range)
                vf_loss, vf_clipfrac = value_loss(values, mb.values, mb.returns, mask, cfg.clip_range_value)
                loss = pg_loss - cfg.ent_coef * entropy + cfg.vf_coef * vf_loss
                amp.backward(loss * weight)
                w = weight.item()
                mini_kl += approx_kl.item() * w
                for name, value in (("loss/policy", pg_loss), ("loss/value", vf_loss), ("loss/total", loss),
                                    ("policy/clipfrac", clipfrac), ("policy/approx_kl", approx_kl),
                                    ("value/clipfrac", vf_clipfrac), ("objective/entropy", entropy)):  # fmt: skip
                    stats[name] = stats.get(name, 0.0) + value.item() * w
                total_weight += w
            for model, (optimizer, scheduler) in zip((models.policy, models.critic), optimizers, strict=True):
                norm = amp.step(optimizer, models.trainable(model), cfg.max_grad_norm)
                key = "policy/grad_norm" if model is models.policy else "value/grad_norm"
                stats[key] = max(stats.get(key, 0.0), norm)
                scheduler.step()
            if amp.scaler:
                amp.scaler.update()
            if cfg.early_stop_kl is not None and mini_kl > cfg.early_stop_kl:
                stop = True
                break
        if stop:
            break
    models.policy.eval()
    models.critic.eval()
    out = {k: v / total_weight for k, v in stats.items() if not k.endswith("grad_norm")}
    out.update({k: v for k, v in stats.items() if k.endswith("grad_norm")})
    out["policy/epochs"] = epochs_run
    return out


# ---------------------------------------------------------------- evaluation on held-out prompts


@torch.no_grad()
def evaluate(models, cfg, tokenizer, prompts, prompt_ids, autocast, use_reference=False) -> dict:
    """Mean score, KL per response and texts of the policy's answers to held-out prompts, sampled
    at the rollout temperature with a fixed seed (the same draws for every call)."""
    scores, kls, texts = [], [], []
    with torch.random.fork_rng():
        torch.manual_seed(cfg.seed + 1)
        for i in range(0, len(prompts), cfg.batch_size):
            batch, batch_texts, _ = rollout(
                models, cfg, tokenizer, prompts[i : i + cfg.batch_size], prompt_ids[i : i + cfg.batch_size],
                autocast, use_reference=use_reference,
            )  # fmt: skip
            scores.append(batch.rm_score.cpu())
            kls.append(((batch.logprobs - batch.ref_logprobs) * batch.response_mask).sum(-1).cpu())
            texts += batch_texts
    scores, kls = torch.cat(scores), torch.cat(kls)
    return {"score": scores.mean().item(), "kl": kls.mean().item(), "scores": scores, "texts": texts}


def win_rate(scores: torch.Tensor, baseline: torch.Tensor) -> float:
    """Share of prompts where `scores` beats `baseline`; ties count half (the evaluation's wins)."""
    return float(wins(scores.cpu().numpy(), baseline.cpu().numpy()).mean())


def _eval_row(report: dict, baseline: dict) -> dict[str, float]:
    win = win_rate(report["scores"], baseline["scores"])
    return {"eval/score": report["score"], "eval/kl": report["kl"], "eval/win_rate": win}


# ---------------------------------------------------------------- checkpoints


def _trainable_state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.detach().contiguous().cpu() for n, p in model.named_parameters() if p.requires_grad}


def _checkpoints(out: Path) -> list[Path]:
    root = out / "checkpoints"
    found = [p for p in root.glob("update-*") if p.is_dir()] if root.is_dir() else []
    return sorted(found, key=lambda p: int(p.name.split("-")[1]))


def save_checkpoint(
    out: Path, update: int, models: PPOModels, optimizers, kl_ctl: KLController, amp: MixedPrecision, keep: int = 2
) -> None:
    """Everything --resume needs, written to a temporary directory and renamed into place, so a
    kill leaves either the whole checkpoint or none of it."""
    from safetensors.torch import save_file

    root = out / "checkpoints"
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=root))
    save_file(_trainable_state(models.policy), str(tmp / "policy.safetensors"))
    save_file(_trainable_state(models.critic), str(tmp / "critic.safetensors"))
    torch.save(
        {
            "optimizers": [o.state_dict() for o, _ in optimizers],
            "schedulers": [s.state_dict() for _, s in optimizers],
            "rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            "scaler": amp.scaler.state_dict() if amp.scaler else {},
        },
        tmp / "state.pt",
    )
    (tmp / "progress.json").write_text(json.dumps({"update": update, "kl_coef": kl_ctl.value}))
    os.replace(tmp, root / f"update-{update}")
    for old in _checkpoints(out)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)


def load_checkpoint(path: Path, models: PPOModels, optimizers, kl_ctl: KLController, amp: MixedPrecision) -> int:
    """Restore a checkpoint written by save_checkpoint; returns the number of finished updates."""
    from safetensors.torch import load_file

    for name, model in (("policy", models.policy), ("critic", models.critic)):
        state = load_file(str(path / f"{name}.safetensors"))
        unexpected = set(state) - {n for n, p in model.named_parameters() if p.requires_grad}
        if unexpected:
            raise ValueError(f"{path}: {name} weights do not fit this config: {sorted(unexpected)[:3]}")
        model.load_state_dict(state, strict=False)
    state = torch.load(path / "state.pt", weights_only=True)
    for (optimizer, scheduler), o_state, s_state in zip(optimizers, state["optimizers"], state["schedulers"], strict=True):
        optimizer.load_state_dict(o_state)
        scheduler.load_state_dict(s_state)
    torch.set_rng_state(state["rng"])
    if state["cuda_rng"]:
        torch.cuda.set_rng_state_all(state["cuda_rng"])
    if amp.scaler and state["scaler"]:
        amp.scaler.load_state_dict(state["scaler"])
    progress = json.loads((path / "progress.json").read_text())
    kl_ctl.value = progress["kl_coef"]
    return progress["update"]


def _truncate_jsonl(path: Path, update: int) -> None:
    """Drop rows logged after `update`, so a resumed run's files read as one uninterrupted run."""
    if path.exists():
        rows = [line for line in path.read_text().splitlines() if line.strip() and json.loads(line)["step"] <= update]
        path.write_text("".join(r + "\n" for r in rows))


# ---------------------------------------------------------------- the loop


def _prompt_batch(n_prompts: int, start: int, size: int, seed: int) -> list[int]:
    """Prompt indices of episodes start .. start + size: a fresh seeded shuffle each pass over the
    prompts, so the order depends only on the episode number (what --resume needs)."""
    indices = []
    for episode in range(start, start + size):
        epoch, i = divmod(episode, n_prompts)
        order = torch.randperm(n_prompts, generator=torch.Generator().manual_seed(seed + epoch))
        indices.append(int(order[i]))
    return indices


def _encode_prompts(tokenizer, prompts: list[Messages], max_length: int, path: str) -> tuple[list, list]:
    kept, ids = [], []
    for p in prompts:
        tokens = encode_prompt(tokenizer, p)
        if len(tokens) <= max_length:
            kept.append(p)
            ids.append(tokens)
    if len(kept) < len(prompts):
        print(f"{path}: skipped {len(prompts) - len(kept)} prompts longer than max_prompt_length={max_length} tokens")
    return kept, ids


def train_ppo(
    config: Config, resume: bool = False, penalties: Sequence[ScorePenalty] = (), gold_scorer: GoldScorer | None = None
) -> Path:
    """Optimise config.ppo.sft_model_path against config.ppo.reward_model_path with PPO.

    `penalties`: callables (prompts, responses) -> (B,) subtracted from the scores, e.g. safety
    checks. `gold_scorer`: a callable (prompts, responses) -> (B,) that judges the responses for
    the reward-hacking detector (hacking/judge_score). Writes OUTPUT/policy, OUTPUT/tokenizer,
    OUTPUT/value_model and the run files; returns OUTPUT.
    """
    cfg, out = config.ppo, Path(config.ppo.output_dir)
    if cfg.mixed_precision == "fp16" and not torch.cuda.is_available():
        raise ConfigError("ppo.mixed_precision: fp16 needs a GPU; use bf16 or no on a CPU")
    torch.manual_seed(cfg.seed)

    # Read and check everything before touching the output directory.
    tokenizer = load_tokenizer(cfg.sft_model_path, padding_side="left")
    train_prompts, eval_prompts = split(load_prompts(cfg.prompts_path, cfg.max_prompts), cfg.eval_fraction, cfg.seed)
    train_prompts, train_ids = _encode_prompts(tokenizer, train_prompts, cfg.max_prompt_length, cfg.prompts_path)
    eval_prompts, eval_ids = _encode_prompts(tokenizer, eval_prompts, cfg.max_prompt_length, cfg.prompts_path)
    if not train_prompts:
        raise DataError(f"{cfg.prompts_path}: no training prompts left")
    sizes = ppo_sizes(cfg)
    print("derived sizes: " + ", ".join(f"{k}={v}" for k, v in sizes.items())
          + f", train_prompts={len(train_prompts)}, eval_prompts={len(eval_prompts)}")  # fmt: skip
    checkpoints = _checkpoints(out)
    if resume and not checkpoints:
        raise FileNotFoundError(f"--resume: no checkpoint in {out / 'checkpoints'}; run without --resume")

    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        # Rollouts, scoring and the update would each need their own sharding and gathering.
        raise NotImplementedError("PPO runs in one process (one GPU or the CPU); launch it without accelerate/torchrun")
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    amp = MixedPrecision(cfg.mixed_precision, device)
    models = PPOModels(cfg, tokenizer, device)
    print(f"policy: {count_parameters(models.policy, True):,} trainable of {count_parameters(models.policy):,}; "
          f"critic: {count_parameters(models.critic, True):,} trainable; reward model shares the critic's trunk: "
          f"{models.shared}")  # fmt: skip
    # The reward-hacking detector's held-out judge; the remedies and the safety penalty as score terms.
    judge = load_judge(config.hacking, cfg, models, device, gold_scorer)
    penalties = [*penalties, *score_terms(config.hacking)]
    if config.safety.ppo_penalty > 0:
        penalties.append(SafetyFilter(config.safety).unsafe)  # logged as safety/unsafe

    def optimizer_for(model, lr):
        optimizer = torch.optim.AdamW(models.trainable(model), lr=lr)
        total = sizes["optimizer_steps"]
        decay = (lambda step: max(0.0, 1.0 - step / total)) if cfg.lr_scheduler == "linear" else (lambda step: 1.0)
        return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, decay)

    optimizers = [optimizer_for(models.policy, cfg.learning_rate), optimizer_for(models.critic, cfg.value_learning_rate)]
    kl_ctl = KLController(cfg)
    start = 0
    out.mkdir(parents=True, exist_ok=True)
    for partial in (out / "checkpoints").glob(".tmp-*"):  # left by a kill during a save
        shutil.rmtree(partial, ignore_errors=True)
    if resume:
        start = load_checkpoint(checkpoints[-1], models, optimizers, kl_ctl, amp)
        print(f"resuming from {checkpoints[-1]} (update {start} of {sizes['updates']})")
        for name in ("metrics.jsonl", "samples.jsonl"):
            _truncate_jsonl(out / name, start)
    else:
        shutil.rmtree(out / "checkpoints", ignore_errors=True)
        for name in ("metrics.jsonl", "samples.jsonl", "eval.json"):
            (out / name).unlink(missing_ok=True)
    save_config(config, out / "config.yaml")
    metrics = MetricsLog(out, config)  # and W&B / TensorBoard when config.logging asks
    budget = [] if cfg.kl_budget is None else [AlertRule("kl_budget", "objective/kl", "above", cfg.kl_budget, action="stop")]
    alerts = Alerts(out, config.monitor, budget, start_step=start)  # rebuilt from metrics.jsonl on --resume
    detector = HackingDetector(config.hacking, read_metrics(out))  # the updates already done, on --resume

    # The SFT policy's answers to the held-out prompts: the baseline for score and win rate.
    baseline = evaluate(models, cfg, tokenizer, eval_prompts, eval_ids, amp.autocast, use_reference=True) if eval_prompts else None
    if baseline and start == 0:
        alerts.check(0, metrics.log(0, {"eval/score": baseline["score"], "eval/kl": 0.0, "eval/win_rate": 0.5}))
        print(f"held-out: SFT policy score {baseline['score']:+.3f} on {len(eval_prompts)} prompts")
    report = None
    for update in tqdm(range(start, sizes["updates"]), desc="PPO updates", initial=start, total=sizes["updates"]):
        t0 = time.time()
        index = _prompt_batch(len(train_prompts), update * cfg.batch_size, cfg.batch_size, cfg.seed)
        prompts = [train_prompts[i] for i in index]

        # 1-2. rollout and score
        batch, texts, penalty_means = rollout(
            models, cfg, tokenizer, prompts, [train_ids[i] for i in index], amp.autocast, penalties
        )
        t_rollout = time.time() - t0
        mask = batch.response_mask

        # 3. KL-shaped rewards, advantages, returns
        kl = kl_penalty(batch.logprobs, batch.ref_logprobs, cfg.kl_estimator) * mask  # (B, R)
        rewards = shaped_rewards(batch.score, kl, kl_ctl.value, mask)  # (B, R)
        advantages, returns = gae(rewards, batch.values, mask, cfg.gamma, cfg.lam)
        batch.returns = returns
        batch.advantages = masked_whiten(advantages, mask) if cfg.whiten_advantages else advantages

        # 4. K epochs of clipped policy and value updates
        train_stats = ppo_update(models, cfg, batch, optimizers, amp, sizes)

        # 5. KL controller, metrics, samples, evaluation, checkpoint
        seq_kl = ((batch.logprobs - batch.ref_logprobs) * mask).sum(-1)  # (B,) k1 estimate per response
        kl_ctl.update(seq_kl.mean().item(), cfg.batch_size)
        with amp.autocast():
            judge_scores = judge(prompts, texts, batch) if judge else None
        hacking = detector.update(texts, batch.rm_score, mask.sum(-1), seq_kl, judge_scores)
        row = {
            "objective/score": batch.score.mean().item(),
            "objective/rm_score": batch.rm_score.mean().item(),
            "objective/kl": seq_kl.mean().item(),
            "objective/reward": rewards.sum(-1).mean().item(),
            **train_stats,
            "value/explained_var": explained_variance(batch.values, returns, mask),
            "ppo/kl_coef": kl_ctl.value,
            "ppo/lr": optimizers[0][1].get_last_lr()[0],
            "response/length": mask.sum(-1).float().mean().item(),
            "response/eos_rate": 1.0 - penalty_means.pop("missing_eos"),
            **term_metrics(penalty_means),  # hacking/diversity_bonus, hacking/repetition_penalty
            **{f"safety/{name}": value for name, value in penalty_means.items()},
            **hacking,
            "episodes": (update + 1) * cfg.batch_size,
            "time/rollout": t_rollout,
            "time/update": time.time() - t0,
        }
        done = update + 1 == sizes["updates"]
        if baseline and ((cfg.eval_every and (update + 1) % cfg.eval_every == 0) or done):
            report = evaluate(models, cfg, tokenizer, eval_prompts, eval_ids, amp.autocast)
            row.update(_eval_row(report, baseline))
        # Alerts take their actions here: stop, raise_kl (kl_ctl.value), lower_lr (both optimizers).
        alerts.check(update + 1, metrics.log(update + 1, row), kl_ctl, optimizers)
        if alerts.stop and baseline and "eval/score" not in row:  # the stopped policy's held-out numbers
            report = evaluate(models, cfg, tokenizer, eval_prompts, eval_ids, amp.autocast)
            held_out = _eval_row(report, baseline)
            alerts.check(update + 1, metrics.log(update + 1, held_out))  # a row of its own, after the checked one
            row.update(held_out)  # for the line printed below
        if cfg.sample_every and (update + 1) % cfg.sample_every == 0:
            _write_samples(out, update + 1, prompts, texts, batch.score, seq_kl, cfg.samples_per_log)
        print(f"update {update + 1}/{sizes['updates']}: score {row['objective/score']:+.3f} "
              f"kl {row['objective/kl']:.2f} clipfrac {row['policy/clipfrac']:.3f} "
              f"len {row['response/length']:.0f} ({row['time/update']:.1f} s)"
              + (f" | held-out score {row['eval/score']:+.3f} win rate {row['eval/win_rate']:.2f}" if "eval/score" in row else ""))  # fmt: skip
        if (cfg.save_every and (update + 1) % cfg.save_every == 0) or done or alerts.stop:
            save_checkpoint(out, update + 1, models, optimizers, kl_ctl, amp)
        if alerts.stop:
            print(f"stopping after update {update + 1}: an alert's action is stop (alerts.jsonl)")
            break

    metrics.close()
    _save_outputs(models, tokenizer, cfg, out)
    summary = _summary(baseline, report, read_metrics(out))
    (out / "eval.json").write_text(json.dumps(summary, indent=1) + "\n")
    if config.logging.plots:
        plot_curves(out, PPO_PANELS, "ppo.png", xlabel="PPO update")
    _model_card(cfg, out, sizes, summary)
    return out


def _write_samples(out: Path, update: int, prompts, texts, scores, kls, n: int) -> None:
    with (out / "samples.jsonl").open("a") as f:
        for prompt, text, score, kl in list(zip(prompts, texts, scores.tolist(), kls.tolist(), strict=True))[:n]:
            row = {"step": update, "prompt": prompt[-1]["content"], "response": text, "score": score, "kl": kl}
            f.write(json.dumps(row) + "\n")


def _save_outputs(models: PPOModels, tokenizer, cfg: PPOConfig, out: Path) -> None:
    """OUTPUT/policy (LoRA merged), OUTPUT/tokenizer, and OUTPUT/value_model: a token classifier
    with one output whose logits are the critic's per-token values. Each written to a temporary
    directory and renamed, so an old complete output is never left half-overwritten."""
    from peft import PeftModel
    from transformers import AutoModelForTokenClassification

    def write(name: str, save: Callable[[Path], None]) -> None:
        tmp = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=out))
        save(tmp)
        if (out / name).exists():
            shutil.rmtree(out / name)
        os.replace(tmp, out / name)

    policy = models.policy.merge_and_unload() if isinstance(models.policy, PeftModel) else models.policy
    write("policy", lambda d: policy.save_pretrained(d, safe_serialization=True))
    write("tokenizer", tokenizer.save_pretrained)

    trunk = models.critic.trunk
    trunk = trunk.merge_and_unload() if isinstance(trunk, PeftModel) else trunk
    config = copy.deepcopy(trunk.config)
    config.num_labels = 1
    value_model = AutoModelForTokenClassification.from_config(config)
    value_model.base_model.load_state_dict(trunk.state_dict())
    head = getattr(value_model, "score", None) or value_model.classifier
    head.load_state_dict(models.critic.value_head.state_dict())
    write("value_model", lambda d: value_model.save_pretrained(d, safe_serialization=True))


def _summary(baseline: dict | None, report: dict | None, rows: list[dict]) -> dict:
    """eval.json: held-out score before (SFT) and after (PPO), KL and win rate; last train stats."""
    summary: dict = {"updates": rows[-1]["step"] if rows else 0}
    if baseline and report:
        summary["held_out"] = {
            "prompts": len(baseline["texts"]),
            "sft_score": baseline["score"],
            "ppo_score": report["score"],
            "kl": report["kl"],
            "win_rate": win_rate(report["scores"], baseline["scores"]),
            "examples": [
                {"sft": s, "ppo": p} for s, p in list(zip(baseline["texts"], report["texts"], strict=True))[:3]
            ],
        }
    train = [r for r in rows if "objective/score" in r]
    if train:
        summary["train"] = {k: train[-1][k] for k in ("objective/score", "objective/kl", "ppo/kl_coef")}
    return summary


def _model_card(cfg: PPOConfig, out: Path, sizes: dict, summary: dict) -> None:
    held = summary.get("held_out")
    result = (
        f"On {held['prompts']} held-out prompts (sampled at temperature {cfg.temperature}, reward-model score "
        f"normalised to the reward model's training data): SFT policy {held['sft_score']:+.3f}, this policy "
        f"{held['ppo_score']:+.3f}; KL from the SFT policy {held['kl']:.2f} nats per response; it wins "
        f"{held['win_rate']:.0%} of the prompts against the SFT policy, judged by the reward model."
        if held else "No held-out prompts were evaluated."
    )
    write_model_card(out / "policy", "RLHF policy (PPO)", {
        "What it is": f"{cfg.sft_model_path} optimised with PPO against the reward model {cfg.reward_model_path} "
                      f"on the prompts in {cfg.prompts_path}.",
        "Training": f"{summary['updates']} PPO updates of {cfg.batch_size} episodes (sizes: {sizes}); "
                    f"kl_coef {cfg.kl_coef} ({'adaptive' if cfg.adaptive_kl else 'fixed'}, {cfg.kl_estimator}), "
                    f"clip_range {cfg.clip_range}, gamma {cfg.gamma}, lam {cfg.lam}, "
                    f"LoRA {'r=' + str(cfg.lora.r) + ' (merged)' if cfg.lora.enabled else 'off'}. "
                    "Full config: ../config.yaml; curves: ../plots/ppo.png; samples: ../samples.jsonl.",
        "Held-out result": result,
        "Use": "```python\nfrom transformers import AutoModelForCausalLM, AutoTokenizer\n"
               f"model = AutoModelForCausalLM.from_pretrained('{out / 'policy'}')\n"
               f"tokenizer = AutoTokenizer.from_pretrained('{out / 'tokenizer'}')\n```",
    })  # fmt: skip
