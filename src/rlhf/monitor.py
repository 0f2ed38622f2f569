"""Metrics log, curves and model cards shared by every stage.

Every stage writes `metrics.jsonl` (one JSON object per logged step, stable namespaced names) and
draws its curves from that file, so a plot always shows exactly what was logged.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

from transformers import TrainerCallback

# Trainer's log keys -> our metric names.
_TRAINER_NAMES = {
    "loss": "loss/train",
    "eval_loss": "loss/eval",
    "learning_rate": "optim/lr",
    "grad_norm": "optim/grad_norm",
    "epoch": "epoch",
}


class MetricsLog:
    """Appends one JSON object per call to OUTPUT/metrics.jsonl."""

    def __init__(self, run_dir: str | Path):
        self.path = Path(run_dir) / "metrics.jsonl"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.start = time.time()

    def log(self, step: int, metrics: dict) -> dict:
        row = {"step": step, **metrics, "time/elapsed": round(time.time() - self.start, 3)}
        with self.path.open("a") as f:
            f.write(json.dumps(row) + "\n")
        return row


def read_metrics(run_dir: str | Path) -> list[dict]:
    path = Path(run_dir) / "metrics.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


class MetricsCallback(TrainerCallback):
    """Writes what a transformers.Trainer logs into metrics.jsonl under our metric names."""

    def __init__(self, run_dir: str | Path):
        self.metrics = MetricsLog(run_dir)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not state.is_world_process_zero or not logs:
            return
        row = {}
        for key, value in logs.items():
            if not isinstance(value, (int, float)):
                continue
            name = _TRAINER_NAMES.get(key)
            if name is None and ("runtime" in key or "per_second" in key):
                name = f"time/{key}"
            elif name is None:
                name = f"eval/{key[5:]}" if key.startswith("eval_") else f"train/{key}"
            row[name] = value
        if "loss/eval" in row:
            row["eval/perplexity"] = math.exp(min(row["loss/eval"], 50.0))
        self.metrics.log(state.global_step, row)


def plot_curves(
    run_dir: str | Path, panels: dict[str, list[str]], filename: str, xlabel: str = "optimizer step"
) -> Path | None:
    """One PNG with a panel per entry of `panels` (title -> metric names), x = step."""
    rows = read_metrics(run_dir)
    drawn = {t: [k for k in keys if any(k in r for r in rows)] for t, keys in panels.items()}
    drawn = {t: keys for t, keys in drawn.items() if keys}
    if not drawn:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(drawn), figsize=(5 * len(drawn), 3.6), squeeze=False)
    for ax, (title, keys) in zip(axes[0], drawn.items(), strict=True):
        for key in keys:
            points = [(r["step"], r[key]) for r in rows if key in r]
            steps, values = zip(*points, strict=True)
            ax.plot(steps, values, marker="o" if len(points) < 30 else None, ms=3, label=key)
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
