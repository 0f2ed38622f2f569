"""Metrics log, alerts, curves and model cards shared by every stage.

Every stage writes `metrics.jsonl` (one JSON object per logged step, stable namespaced names),
checks each row against the alert rules (`alerts.jsonl`, console, actions) and draws its curves
from those two files, so a plot always shows exactly what was logged and what fired.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import json
import math
import os
import statistics
import time
from pathlib import Path

from transformers import TrainerCallback

from .config import BUILTIN_ALERT_RULES, AlertRule, Config, MonitorConfig

# Trainer's log keys -> our metric names.
_TRAINER_NAMES = {
    "loss": "loss/train",
    "eval_loss": "loss/eval",
    "learning_rate": "optim/lr",
    "grad_norm": "optim/grad_norm",
    "epoch": "epoch",
}


class MetricsLog:
    """Appends one JSON object per call to OUTPUT/metrics.jsonl and, when `config.logging` asks for
    them, sends the same row to W&B and TensorBoard. The Trainer stages pass no config: their W&B
    and TensorBoard rows go through the Trainer's own report_to, so nothing is logged twice."""

    def __init__(self, run_dir: str | Path, config: Config | None = None):
        self.path = Path(run_dir) / "metrics.jsonl"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.start = time.time()
        self.sinks, self.closers = [], []
        if config is not None and config.logging.use_wandb:
            import wandb  # works offline with WANDB_MODE=offline: the run lands in OUTPUT/wandb

            run = wandb.init(project=os.environ.get("WANDB_PROJECT", "rlhf"), name=self.path.parent.name,
                             dir=str(self.path.parent), config=dataclasses.asdict(config))  # fmt: skip
            self.sinks.append(lambda step, row: run.log(row, step=step))
            self.closers.append(run.finish)
        if config is not None and config.logging.tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            writer = SummaryWriter(os.environ.get("TENSORBOARD_LOGGING_DIR", str(self.path.parent / "runs")))
            self.sinks.append(lambda step, row: [writer.add_scalar(k, v, step) for k, v in row.items()])
            self.closers.append(writer.close)

    def log(self, step: int, metrics: dict) -> dict:
        row = {"step": step, **metrics, "time/elapsed": round(time.time() - self.start, 3)}
        with self.path.open("a") as f:
            f.write(json.dumps(row) + "\n")
        numbers = {k: v for k, v in row.items() if _is_number(v) and k != "step"}
        for sink in self.sinks:
            sink(step, numbers)
        return row

    def close(self) -> None:
        """Flush and close the W&B run and the TensorBoard writer."""
        for close in self.closers:
            close()
        self.sinks, self.closers = [], []


def read_metrics(run_dir: str | Path) -> list[dict]:
    return _read_jsonl(Path(run_dir) / "metrics.jsonl")


def read_alerts(run_dir: str | Path) -> list[dict]:
    return _read_jsonl(Path(run_dir) / "alerts.jsonl")


def _read_jsonl(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


# ---------------------------------------------------------------- alerts


@dataclasses.dataclass
class Alert:
    """One line of alerts.jsonl. `value` and `threshold` are what the condition compared (for
    spike, drift and drop the threshold is the bound computed from the history; null for
    not_finite); `action` is the action taken."""

    step: int
    rule: str
    metric: str
    value: float
    threshold: float | None
    action: str
    message: str


class _Track:
    """What one rule remembers about one metric."""

    def __init__(self):
        self.rows = 0  # rows that held the metric
        self.recent: list[float] = []  # the last `window` finite values
        self.first: list[float] = []  # the first `window` finite values
        self.peak = -math.inf  # highest running median (drop)
        self.streak = 0  # consecutive rows that met the condition
        self.fired_at: int | None = None  # self.rows when the rule last fired


def _condition(rule: AlertRule, t: _Track, value: float) -> tuple[bool, float, float | None, str]:
    """(met, compared value, threshold, words) for one new value; updates the track's history."""
    finite = math.isfinite(value)
    if rule.condition == "not_finite":
        return not finite, value, None, "is not finite"
    if rule.condition == "above":
        return value > rule.threshold, value, rule.threshold, "is above"
    if rule.condition == "below":
        return value < rule.threshold, value, rule.threshold, "is below"
    if not finite:  # NaN and inf would poison the medians; nan_loss / nan_grad report them
        return False, value, None, ""
    previous = t.recent
    t.recent = (previous + [value])[-rule.window :]
    k = f"{rule.threshold:g}"
    if rule.condition == "spike":
        if len(previous) < rule.window:
            return False, value, None, ""
        bound = rule.threshold * statistics.median(previous)
        return value > bound, value, bound, f"is above {k} x the median of the previous {rule.window} values:"
    if rule.condition == "drift":
        if len(t.first) < rule.window:  # the first `window` values are the reference
            t.first.append(value)
            return False, value, None, ""
        start = sum(t.first) / len(t.first)
        if value > start:
            return start > 0 and value > rule.threshold * start, value, rule.threshold * start, \
                f"drifted above {k} x its start value {start:.4g}:"  # fmt: skip
        return start > 0 and value < start / rule.threshold, value, start / rule.threshold, \
            f"drifted below 1/{k} of its start value {start:.4g}:"  # fmt: skip
    # drop: a running median, so one unlucky batch is not a collapse; an absolute fall, so a rate
    # that starts near 0 and wobbles there is not one either
    if len(t.recent) < rule.window:
        return False, value, None, ""
    median = statistics.median(t.recent)
    t.peak = max(t.peak, median)
    bound = t.peak - rule.threshold
    return (
        median < bound,
        median,
        bound,
        f"has a median of the last {rule.window} values over {k} below its peak {t.peak:.4g}:",
    )


def scale_lr(optimizer, scheduler, factor: float) -> None:
    """Multiply the learning rate by `factor` now and for the rest of the schedule: a LambdaLR
    (ours and the Trainer's) recomputes lr = base_lr * lambda(step) each step, so its base_lrs
    scale too. Both live in the optimizer's and scheduler's state dicts, so checkpoints keep it."""
    for group in optimizer.param_groups:
        group["lr"] *= factor
    scheduler = getattr(scheduler, "scheduler", scheduler)  # accelerate wraps the Trainer's
    if scheduler is not None and hasattr(scheduler, "base_lrs"):
        scheduler.base_lrs = [lr * factor for lr in scheduler.base_lrs]


def active_rules(cfg: MonitorConfig, extra: list[AlertRule] = ()) -> list[AlertRule]:
    """The built-in rules (unless turned off or disabled by name), with the user's rules replacing
    those of the same name and the rest appended, then `extra` (e.g. PPO's kl_budget)."""
    builtin = [r for r in BUILTIN_ALERT_RULES if cfg.builtin_rules and r.name not in cfg.disable]
    mine = {r.name: r for r in cfg.rules}
    rules = [mine.pop(r.name, r) for r in builtin] + list(mine.values())
    return rules + list(extra)


class Alerts:
    """Checks each metrics row against the rules, writes alerts to OUTPUT/alerts.jsonl and the
    console, and takes their actions.

    `start_step`: 0 for a fresh run (alerts.jsonl is cleared); N > 0 when resuming after step N:
    alerts.jsonl keeps its lines up to step N, and the rules' memory (running medians, first values,
    streaks, cooldowns) is rebuilt by replaying metrics.jsonl up to step N, so a resumed run fires
    exactly where an uninterrupted one would. Every logged row must go through `check`.
    `write`: False on the processes of a multi-process run other than the first (same decisions,
    no files)."""

    def __init__(self, run_dir: str | Path, cfg: MonitorConfig, extra: list[AlertRule] = (),
                 start_step: int = 0, write: bool = True):  # fmt: skip
        self.path = Path(run_dir) / "alerts.jsonl"
        self.rules = active_rules(cfg, extra)
        self.tracks: dict[tuple[int, str], _Track] = {}  # (rule index, metric) -> memory
        self.stop = False
        self.write = write
        if write:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            kept = [a for a in read_alerts(run_dir) if a["step"] <= start_step] if start_step else []
            self.path.write_text("".join(json.dumps(a) + "\n" for a in kept))
        if start_step:
            for row in read_metrics(run_dir):
                if row["step"] <= start_step:
                    self._fired(row)

    def _fired(self, row: dict) -> list[tuple[AlertRule, str, float, float | None, str]]:
        """Rules that fire on this row: (rule, metric, value, threshold, words). Updates memory."""
        out = []
        for i, rule in enumerate(self.rules):
            names = (
                fnmatch.filter(row, rule.metric)
                if "*" in rule.metric
                else [rule.metric] * (rule.metric in row)
            )
            for metric in names:
                if not _is_number(row[metric]) or metric == "step":
                    continue
                t = self.tracks.setdefault((i, metric), _Track())
                t.rows += 1
                met, value, threshold, words = _condition(rule, t, float(row[metric]))
                t.streak = t.streak + 1 if met else 0
                if t.streak >= rule.patience and (t.fired_at is None or t.rows - t.fired_at > rule.cooldown):
                    t.fired_at = t.rows
                    out.append((rule, metric, value, threshold, words))
        return out

    def check(self, step: int, row: dict, kl_ctl=None, optimizers=()) -> list[Alert]:
        """Alerts fired by `row` (logged at `step`), with their actions taken: stop sets
        self.stop; raise_kl multiplies `kl_ctl.value`; lower_lr scales each (optimizer, scheduler)
        of `optimizers`. An action the stage cannot take is reported and counts as warn."""
        alerts = []
        for rule, metric, value, threshold, words in self._fired(row):
            action, done = rule.action, ""
            if action == "stop":
                self.stop, done = True, "stopping the run"
            elif action == "raise_kl" and kl_ctl is not None:
                old = kl_ctl.value
                kl_ctl.value *= rule.factor
                done = f"raised the KL coefficient {old:.4g} -> {kl_ctl.value:.4g}"
            elif action == "lower_lr" and optimizers:
                lrs = [o.param_groups[0]["lr"] for o, _ in optimizers]
                for optimizer, scheduler in optimizers:
                    scale_lr(optimizer, scheduler, 1.0 / rule.factor)
                new = [o.param_groups[0]["lr"] for o, _ in optimizers]
                done = "lowered the learning rate " + ", ".join(
                    f"{a:.3g} -> {b:.3g}" for a, b in zip(lrs, new, strict=True)
                )
            elif action != "warn":
                action, done = "warn", f"{rule.action} is not possible in this stage; warned only"
            bound = "" if threshold is None else f" {threshold:.4g}"
            message = f"{metric} = {value:.4g} {words}{bound}" + (
                f" for {rule.patience} rows" if rule.patience > 1 else ""
            )
            alert = Alert(
                step, rule.name, metric, value, threshold, action, message + (f"; {done}" if done else "")
            )
            alerts.append(alert)
            if self.write:
                with self.path.open("a") as f:
                    f.write(json.dumps(dataclasses.asdict(alert)) + "\n")
                print(f"ALERT step {step} [{rule.name}] {alert.message} (action: {action})", flush=True)
        return alerts


class MetricsCallback(TrainerCallback):
    """Writes what a transformers.Trainer logs into metrics.jsonl under our metric names, and checks
    each row against the alert rules: stop ends training (the model is still saved), lower_lr
    scales the Trainer's optimizer and schedule. `monitor`: the alert rules (config.monitor)."""

    def __init__(self, run_dir: str | Path, monitor: MonitorConfig):
        self.run_dir = Path(run_dir)
        self.monitor = monitor
        self.metrics = MetricsLog(run_dir)
        self.alerts = None

    def on_train_begin(self, args, state, control, **kwargs):
        # Every process checks the same (gathered) numbers, so all of them stop together.
        self.alerts = Alerts(self.run_dir, self.monitor, start_step=state.global_step,
                             write=state.is_world_process_zero)  # fmt: skip

    def on_log(self, args, state, control, logs=None, optimizer=None, lr_scheduler=None, **kwargs):
        if not logs:
            return
        if self.alerts is None:  # called without on_train_begin (before the row is logged: it replays)
            self.on_train_begin(args, state, control)
        row = {}
        for key, value in logs.items():
            if not _is_number(value):
                continue
            name = _TRAINER_NAMES.get(key)
            if name is None and ("runtime" in key or "per_second" in key):
                name = f"time/{key}"
            elif name is None:
                name = f"eval/{key[5:]}" if key.startswith("eval_") else f"train/{key}"
            row[name] = value
        if "loss/eval" in row:
            row["eval/perplexity"] = math.exp(min(row["loss/eval"], 50.0))
        if state.is_world_process_zero:
            row = self.metrics.log(state.global_step, row)
        optimizers = [(optimizer, lr_scheduler)] if optimizer is not None else []
        self.alerts.check(state.global_step, row, optimizers=optimizers)
        if self.alerts.stop:
            control.should_training_stop = True


# ---------------------------------------------------------------- curves

# PPO's curves; panels whose metrics were never logged are left out.
PPO_PANELS = {
    "score": ["objective/score", "objective/rm_score", "eval/score"],
    "KL per response (nats)": ["objective/kl", "eval/kl"],
    "KL coefficient": ["ppo/kl_coef"],
    "losses": ["loss/policy", "loss/value"],
    "policy": ["policy/approx_kl", "policy/clipfrac"],
    "entropy (nats per token)": ["objective/entropy"],
    "critic": ["value/explained_var"],
    "response length (tokens)": ["response/length"],
    "EOS rate": ["response/eos_rate"],
    "diversity and repetition": ["hacking/distinct_1", "hacking/distinct_2", "hacking/repetition"],
    "reward hacking": ["hacking/length_corr", "hacking/length_corr_drift", "hacking/proxy_judge_divergence"],
    "KL per unit of score": ["hacking/kl_per_reward"],
}


def plot_curves(
    run_dir: str | Path, panels: dict[str, list[str]], filename: str, xlabel: str = "optimizer step"
) -> Path | None:
    """One PNG with a panel per entry of `panels` (title -> metric names), x = step. Alerts from
    alerts.jsonl are marked: a dotted vertical line at their step in every panel, and a red x on
    the curve of the metric that fired."""
    rows, alerts = read_metrics(run_dir), read_alerts(run_dir)
    drawn = {t: [k for k in keys if any(k in r for r in rows)] for t, keys in panels.items()}
    drawn = {t: keys for t, keys in drawn.items() if keys}
    if not drawn:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = min(4, len(drawn))
    n_rows = math.ceil(len(drawn) / cols)
    fig, axes = plt.subplots(n_rows, cols, figsize=(5 * cols, 3.6 * n_rows), squeeze=False)
    for ax in axes.flat[len(drawn) :]:
        ax.set_visible(False)
    for ax, (title, keys) in zip(axes.flat, drawn.items(), strict=False):  # spare axes are hidden
        for key in keys:
            points = [(r["step"], r[key]) for r in rows if key in r]
            steps, values = zip(*points, strict=True)
            ax.plot(steps, values, marker="o" if len(points) < 30 else None, ms=3, label=key)
        for step in sorted({a["step"] for a in alerts}):
            ax.axvline(step, color="red", ls=":", lw=1)
        hits = [(a["step"], a["value"]) for a in alerts if a["metric"] in keys and math.isfinite(a["value"])]
        if hits:
            ax.plot(*zip(*hits, strict=True), "x", color="red", ms=9, mew=2, label="alert")
        ax.set_title(title)
        ax.set_xlabel(xlabel)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    out = Path(run_dir) / "plots" / filename
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out


def write_model_card(output_dir: str | Path, title: str, sections: dict[str, str]) -> None:
    """A README.md in the model directory: what it is, how it was trained, how to load it."""
    body = [f"# {title}", ""]
    for heading, text in sections.items():
        body += [f"## {heading}", "", text.strip(), ""]
    (Path(output_dir) / "README.md").write_text("\n".join(body))
