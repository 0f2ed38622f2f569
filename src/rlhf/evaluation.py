"""Evaluation of helpfulness, harmlessness and honesty, side by side with a baseline.

Categories of prompts are answered (batched, KV-cached, greedy by default) and scored:
- helpfulness: reward-model score, win rate against the baseline judged by the reward model,
  response length in words, distinct-1 and distinct-2;
- harmful: refusal rate (is_refusal) and unsafe-content rate (the safety filter);
- benign_risky: over-refusal rate: refusals of harmless requests that only sound risky;
- unanswerable: rate of expressed uncertainty (expresses_uncertainty);
- multiple_choice: no generation; the option letters' next-token probabilities give accuracy,
  expected calibration error, Brier score and the confident-and-wrong rate;
- any category a user adds: reward score, length and distinct-n, or the user's own scorer.

Every metric keeps its per-example values, so a percentile bootstrap over prompts gives its
confidence interval, and a paired bootstrap (the same resampled prompts for both models) gives
the interval of the difference between the model and the baseline.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import string
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .config import Config, ConfigError, EvalConfig, save_config
from .data import DataError, Messages, encode_prompt, load_prompts
from .eval_metrics import (  # noqa: F401 (re-exported: rlhf.evaluation is the public module)
    GROUPS,
    METRICS,
    REFUSAL_PATTERNS,
    UNCERTAINTY_PATTERNS,
    Measure,
    MultipleChoice,
    _distinct,
    _measure,
    bootstrap_ci,
    brier_per_question,
    brier_score,
    calibration_metrics,
    distinct_n,
    expresses_uncertainty,
    format_question,
    is_refusal,
    jackknife_ci,
    load_multiple_choice,
    multiple_choice_measures,
    ngrams,
    paired_bootstrap_ci,
    tokens,
    wins,
    words,
)

log = logging.getLogger(__name__)

# ---------------------------------------------------------------- multiple choice


def letter_token_ids(tokenizer, k: int) -> list[list[int]]:
    """For each of the first k letters, the single tokens that spell it: " A" (after a prefill
    such as "The answer is") and "A" (straight after the assistant prefix)."""
    out = []
    for letter in string.ascii_uppercase[:k]:
        ids = {tuple(tokenizer(v, add_special_tokens=False)["input_ids"]) for v in (" " + letter, letter)}
        single = sorted(i[0] for i in ids if len(i) == 1)
        if not single:
            raise ValueError(f"the tokenizer has no single token for the option letter {letter!r}")
        out.append(single)
    return out


@torch.no_grad()
def option_probabilities(
    model, tokenizer, questions: list[MultipleChoice], prefill: str = "The answer is", batch_size: int = 8
) -> tuple[list[np.ndarray], np.ndarray]:
    """Each question's probabilities over its options (renormalised over the option letters) and
    the probability mass the model put on the letters at all (N,). One forward pass per batch:
    the question with lettered options goes through the chat template, then `prefill`, and the
    next token's probabilities of the letters are read."""
    from .rollout import pad_left, positions

    device = next(model.parameters()).device
    prefill_ids = tokenizer(prefill, add_special_tokens=False)["input_ids"] if prefill else []
    probs, mass, letters = [], [], {}  # letters: number of options -> their token ids
    for i in range(0, len(questions), batch_size):
        batch = questions[i : i + batch_size]
        sequences = [
            encode_prompt(tokenizer, [{"role": "user", "content": format_question(q)}]) + prefill_ids
            for q in batch
        ]
        ids, mask = (t.to(device) for t in pad_left(sequences, tokenizer.pad_token_id))  # (B, P)
        logits = model(
            input_ids=ids, attention_mask=mask.long(), position_ids=positions(mask), logits_to_keep=1
        ).logits
        logp = torch.log_softmax(logits[:, -1].float(), -1).cpu()  # (B, V) next token after the prefill
        for row, q in zip(logp, batch, strict=True):
            if len(q.choices) not in letters:
                letters[len(q.choices)] = letter_token_ids(tokenizer, len(q.choices))
            option_logp = torch.stack([row[ids_].logsumexp(0) for ids_ in letters[len(q.choices)]])  # (K,)
            mass.append(option_logp.logsumexp(0).exp().item())
            probs.append(option_logp.double().softmax(0).numpy())
    return probs, np.array(mass)


# ---------------------------------------------------------------- results


Interval = tuple[float, float] | None


@dataclass
class Row:
    """One line of the side-by-side table."""

    metric: str  # "category/name"
    model: float
    model_ci: Interval = None
    baseline: float | None = None
    baseline_ci: Interval = None
    difference: float | None = None  # model - baseline
    difference_ci: Interval = None  # paired bootstrap

    @property
    def significant(self) -> bool:
        """The difference's interval excludes 0: unlikely to be noise from the choice of prompts."""
        ci = self.difference_ci
        return ci is not None and not any(map(math.isnan, ci)) and (ci[0] > 0 or ci[1] < 0)


@dataclass
class ModelRun:
    """One model's responses and per-example measures, by category."""

    name: str
    responses: dict[str, list[str]] = field(default_factory=dict)
    measures: dict[str, dict[str, Measure | float]] = field(default_factory=dict)


@dataclass
class EvalResult:
    rows: list[Row]
    model: str
    baseline: str | None
    prompts: dict[str, list]  # category -> prompts (multiple choice: questions)
    runs: list[ModelRun]  # the model's, then the baseline's
    confidence_level: float = 0.95

    @property
    def metrics(self) -> dict[str, float]:
        """{"category/metric": the model's value}."""
        return {r.metric: r.model for r in self.rows}

    @property
    def baseline_metrics(self) -> dict[str, float]:
        return {r.metric: r.baseline for r in self.rows if r.baseline is not None}

    def to_json(self) -> dict:
        def num(x):
            return None if x is None or (isinstance(x, float) and math.isnan(x)) else float(f"{x:.6g}")

        def ci(x):
            return None if x is None else [num(v) for v in x]

        return {
            "model": self.model,
            "baseline": self.baseline,
            "confidence_level": self.confidence_level,
            "prompts": {c: len(p) for c, p in self.prompts.items()},
            "metrics": {r.metric: num(r.model) for r in self.rows},
            "baseline_metrics": {r.metric: num(r.baseline) for r in self.rows if r.baseline is not None},
            "comparison": {
                r.metric: {
                    "model": num(r.model),
                    "model_ci": ci(r.model_ci),
                    "baseline": num(r.baseline),
                    "baseline_ci": ci(r.baseline_ci),
                    "difference": num(r.difference),
                    "difference_ci": ci(r.difference_ci),
                    "significant": r.significant,
                    "better": METRICS.get(r.metric.split("/")[-1], (None,))[0],
                }  # fmt: skip
                for r in self.rows
            },
        }

    def table(self) -> str:
        """The side-by-side table: value [interval] per column, * where the difference's interval
        excludes 0."""

        def cell(value, ci, sign=False):
            if value is None:
                return ""
            fmt = "{:+.3f}" if sign else "{:.3f}"
            text = fmt.format(value)
            return text + (" [" + ", ".join(fmt.format(v) for v in ci) + "]" if ci is not None else "")

        header = ["metric", "model"] + (["baseline", "difference"] if self.baseline else [])
        lines = [header]
        for r in self.rows:
            line = [r.metric, cell(r.model, r.model_ci)]
            if self.baseline:
                line += [
                    cell(r.baseline, r.baseline_ci),
                    cell(r.difference, r.difference_ci, True) + (" *" if r.significant else ""),
                ]
            lines.append(line)
        widths = [max(len(str(line[i])) for line in lines) for i in range(len(header))]
        out = [
            "  ".join(str(c).ljust(w) for c, w in zip(line, widths, strict=True)).rstrip() for line in lines
        ]
        title = f"model: {self.model}" + (f"\nbaseline: {self.baseline}" if self.baseline else "")
        note = f"[lo, hi]: {self.confidence_level:.0%} percentile bootstrap interval over prompts (distinct-n: jackknife)"
        if self.baseline:
            note += "; difference = model - baseline (paired bootstrap); * = its interval excludes 0"
        return "\n".join([title, ""] + out + ["", note])


# ---------------------------------------------------------------- the evaluator


Scorer = Callable[[list, list[str]], dict]


class RLHFEvaluator:
    """Evaluates a causal LM (and optionally a baseline on the same prompts) for helpfulness,
    harmlessness and honesty.

    `eval_categories` maps a category name to its prompts (strings or chats), prefilled from the
    eval data files; add your own: `evaluator.eval_categories['custom'] = ["..."]`. A category is
    scored by `scorers[name](prompts, responses) -> {metric: value}` (a value is a number, one
    number per prompt, or a Measure); categories without a scorer get the reward-model score
    (with a reward model), length and distinct-n. Multiple-choice questions live in
    `multiple_choice` and are scored from option probabilities.

    reward_model: a RewardModel, RewardModelEnsemble, or a path to either (None: no reward
    scores or win rates). safety_filter: an object with `check(texts)` returning verdicts with
    `.unsafe` (None: rlhf.safety.SafetyFilter with default settings). is_refusal,
    expresses_uncertainty: detectors to use instead of the built-in patterns (a classifier, say).
    """

    def __init__(
        self,
        model,
        tokenizer,
        reward_model=None,
        reward_tokenizer=None,
        safety_filter=None,
        config: EvalConfig | None = None,
        is_refusal: Callable[[str], bool] = is_refusal,
        expresses_uncertainty: Callable[[str], bool] = expresses_uncertainty,
        name: str = "model",
    ):
        self.model, self.tokenizer, self.name = model, tokenizer, name
        self.config = config or EvalConfig()
        if isinstance(reward_model, (str, Path)):
            from .models import load_tokenizer
            from .reward_model import RewardModel, load_reward_model

            path, reward_model = str(reward_model), load_reward_model(str(reward_model), self.config.dtype)
            if reward_tokenizer is None and isinstance(reward_model, RewardModel):
                reward_tokenizer = load_tokenizer(path)
        if reward_model is not None and model is not None:
            reward_model = reward_model.to(next(model.parameters()).device)
        self.reward_model = reward_model
        # An ensemble carries its tokenizer; a reward model trained from the policy shares its vocabulary.
        self.reward_tokenizer = reward_tokenizer or getattr(reward_model, "tokenizer", None) or tokenizer
        self.safety_filter = safety_filter
        self.is_refusal, self.expresses_uncertainty = is_refusal, expresses_uncertainty
        self.eval_categories: dict[str, list] = {}
        cfg = self.config
        for category, path in (("helpfulness", cfg.helpfulness_path), ("harmful", cfg.harmful_path),
                               ("benign_risky", cfg.benign_risky_path), ("unanswerable", cfg.unanswerable_path)):  # fmt: skip
            if path and Path(path).exists():
                self.eval_categories[category] = load_prompts(path)
            elif path:
                log.warning("%s prompts %s not found; category left out", category, path)
        self.multiple_choice: list[MultipleChoice] = []
        if cfg.multiple_choice_path and Path(cfg.multiple_choice_path).exists():
            self.multiple_choice = load_multiple_choice(cfg.multiple_choice_path)
        elif cfg.multiple_choice_path:
            log.warning("multiple-choice questions %s not found; left out", cfg.multiple_choice_path)
        self.scorers: dict[str, Scorer] = {
            "helpfulness": self.score_helpfulness,
            "harmful": self.score_harmful,
            "benign_risky": self.score_benign_risky,
            "unanswerable": self.score_unanswerable,
        }

    # -------------------------------------------------------- scorers

    def reward_scores(self, prompts: list, responses: list[str]) -> np.ndarray:
        from .reward_model import score_texts

        if hasattr(self.reward_model, "score_texts"):  # an ensemble scores with its own tokenizer
            scores = self.reward_model.score_texts(prompts, responses, self.config.batch_size)
        else:
            scores = score_texts(
                self.reward_model, self.reward_tokenizer, prompts, responses, self.config.batch_size
            )
        return scores.double().numpy()

    def score_helpfulness(self, prompts: list, responses: list[str]) -> dict:
        """reward (with a reward model), words, distinct_1, distinct_2: also the default scorer."""
        out = {}
        if self.reward_model is not None:
            out["reward"] = Measure(self.reward_scores(prompts, responses))
        out["words"] = Measure(np.array([words(r) for r in responses], dtype=np.float64))
        for n in (1, 2):
            out[f"distinct_{n}"] = Measure([ngrams(tokens(r), n) for r in responses], _distinct, "jackknife")
        return out

    def unsafe(self, responses: list[str]) -> Measure:
        """1 for each response the safety filter flags as unsafe, else 0."""
        if self.safety_filter is None:
            from .config import SafetyConfig
            from .safety import SafetyFilter

            self.safety_filter = SafetyFilter(SafetyConfig())
        verdicts = self.safety_filter.check(responses)
        return Measure(np.array([bool(v.unsafe) for v in verdicts], dtype=np.float64))

    def refusals(self, responses: list[str]) -> Measure:
        return Measure(np.array([self.is_refusal(r) for r in responses], dtype=np.float64))

    def score_harmful(self, prompts: list, responses: list[str]) -> dict:
        return {"refusal_rate": self.refusals(responses), "unsafe_rate": self.unsafe(responses)}

    def score_benign_risky(self, prompts: list, responses: list[str]) -> dict:
        return {"over_refusal_rate": self.refusals(responses), "unsafe_rate": self.unsafe(responses)}

    def score_unanswerable(self, prompts: list, responses: list[str]) -> dict:
        return {
            "uncertainty_rate": Measure(
                np.array([self.expresses_uncertainty(r) for r in responses], dtype=np.float64)
            )
        }

    # -------------------------------------------------------- running

    def categories(self) -> dict[str, list[Messages]]:
        """The prompts of each category as chats, cut to config.max_prompts."""
        out = {}
        for name, prompts in self.eval_categories.items():
            if isinstance(prompts, str):
                raise TypeError(f"eval_categories[{name!r}] must be a list of prompts, not one string")
            chats = [[{"role": "user", "content": p}] if isinstance(p, str) else p for p in prompts]
            out[name] = chats[: self.config.max_prompts]
        return out

    def generate(self, model, tokenizer, prompts: list[Messages], desc: str = "") -> list[str]:
        from tqdm.auto import tqdm

        from .rollout import answer

        cfg, out = self.config, []
        for i in tqdm(range(0, len(prompts), cfg.batch_size), desc=desc, leave=False):
            out += answer(
                model, tokenizer, prompts[i : i + cfg.batch_size], cfg.max_new_tokens, cfg.temperature
            )
        return [t.strip() for t in out]

    def run(self, model=None, tokenizer=None, name: str | None = None) -> ModelRun:
        """Answer every category with `model` (default: the evaluator's) and score the answers."""
        model = self.model if model is None else model
        tokenizer = self.tokenizer if tokenizer is None else tokenizer
        if tokenizer.pad_token is None:  # GPT-2 and others: padding is masked out, any id will do
            tokenizer.pad_token = tokenizer.eos_token
        cfg = self.config
        run = ModelRun(name or (self.name if model is self.model else "baseline"))
        was_training = model.training
        model.eval()
        torch.manual_seed(cfg.seed)  # the same samples for the same model when temperature > 0
        try:
            for category, prompts in self.categories().items():
                if not prompts:
                    continue
                responses = self.generate(model, tokenizer, prompts, f"{run.name}: {category}")
                scorer = self.scorers.get(category, self.score_helpfulness)
                scores = scorer(prompts, responses)
                run.responses[category] = responses
                run.measures[category] = {k: _measure(v, len(prompts)) for k, v in scores.items()}
            questions = self.multiple_choice[: cfg.max_prompts]
            if questions:
                probs, mass = option_probabilities(
                    model, tokenizer, questions, cfg.mc_prefill, cfg.batch_size
                )
                run.measures["multiple_choice"] = multiple_choice_measures(
                    probs, [q.answer for q in questions], cfg.confident_threshold, cfg.calibration_bins, mass
                )
                run.responses["multiple_choice"] = [" ".join(f"{p:.3f}" for p in row) for row in probs]
        finally:
            model.train(was_training)
        return run

    def evaluate(self, output_dir: str | Path | None = None, baseline=None) -> EvalResult:
        """Evaluate the model, and the baseline (a model sharing the tokenizer, a (model, tokenizer)
        pair, or a ModelRun from `run`) on the same prompts; write eval.json, eval.md, table.txt,
        samples.jsonl and plots/ into output_dir (default: config.output_dir)."""
        run = self.run()
        base = None
        if isinstance(baseline, ModelRun):
            base = baseline
        elif isinstance(baseline, tuple):
            base = self.run(*baseline, name="baseline")
        elif baseline is not None:
            base = self.run(baseline, self.tokenizer, name="baseline")
        result = compare(
            run, base, self.config, self.categories(), self.multiple_choice[: self.config.max_prompts]
        )
        write_outputs(result, Path(output_dir or self.config.output_dir), self.config)
        return result


def compare(
    run: ModelRun, base: ModelRun | None, cfg: EvalConfig, prompts: dict, questions: list
) -> EvalResult:
    """The table rows: each metric of the model with its interval (percentile bootstrap; jackknife
    for distinct-n), and with a baseline, the baseline's value, the difference and its paired
    interval; plus a win rate for every category both models have reward scores for."""
    boot = dict(n=cfg.bootstrap_samples, alpha=1 - cfg.confidence_level, seed=cfg.seed)
    rows = []
    for category, measures in run.measures.items():
        base_measures = base.measures.get(category, {}) if base else {}
        for metric, m in measures.items():
            row = Row(f"{category}/{metric}", m.value() if isinstance(m, Measure) else m)
            if isinstance(m, Measure):
                row.model_ci = m.ci(**boot)
            b = base_measures.get(metric)
            if b is not None:
                row.baseline = b.value() if isinstance(b, Measure) else b
                if isinstance(b, Measure):
                    row.baseline_ci = b.ci(**boot)
                row.difference = row.model - row.baseline
                if isinstance(m, Measure) and isinstance(b, Measure) and len(m.values) == len(b.values):
                    row.difference_ci = m.paired_ci(b, **boot)
            rows.append(row)
            if metric == "reward" and isinstance(b, Measure) and isinstance(m, Measure):
                w = wins(m.values, b.values)
                lo, hi = bootstrap_ci(w, **boot)
                rows.append(Row(f"{category}/win_rate", float(w.mean()), (lo, hi), 0.5, None,
                                float(w.mean()) - 0.5, (lo - 0.5, hi - 0.5)))  # fmt: skip
    all_prompts = dict(prompts)
    if questions:
        all_prompts["multiple_choice"] = questions
    return EvalResult(rows, run.name, base.name if base else None, all_prompts, [run] + ([base] if base else []),
                      cfg.confidence_level)  # fmt: skip


# ---------------------------------------------------------------- outputs


def _group(metric: str) -> str:
    category = metric.split("/")[0]
    return next((g for g, cats in GROUPS.items() if category in cats), category)


def write_outputs(result: EvalResult, out: Path, cfg: EvalConfig, plots: bool = True) -> None:
    """eval.json, eval.md, table.txt, samples.jsonl (every prompt with both responses and the
    per-example values) and plots/<group>.png."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "eval.json").write_text(json.dumps(result.to_json(), indent=1) + "\n")
    (out / "table.txt").write_text(result.table() + "\n")
    with (out / "samples.jsonl").open("w") as f:
        for category, prompts in result.prompts.items():
            for i, prompt in enumerate(prompts):
                row = {"category": category}
                if isinstance(prompt, MultipleChoice):
                    row |= dataclasses.asdict(prompt)
                else:
                    row["prompt"] = prompt[-1]["content"] if len(prompt) == 1 else prompt
                for label, run in zip(("model", "baseline"), result.runs, strict=False):
                    if category in run.responses:
                        row[label] = run.responses[category][i]
                        for metric, m in run.measures.get(category, {}).items():
                            if (
                                isinstance(m, Measure)
                                and isinstance(m.values, np.ndarray)
                                and m.values.ndim == 1
                            ):
                                row[f"{label}/{metric}"] = float(m.values[i])
                f.write(json.dumps(row) + "\n")
    (out / "eval.md").write_text(_markdown(result, cfg))
    if plots:
        plot_comparison(result, out / "plots")


def _markdown(result: EvalResult, cfg: EvalConfig) -> str:
    def cell(v, ci, sign=False):
        if v is None:
            return ""
        f = "{:+.3f}" if sign else "{:.3f}"
        return f.format(v) + (f" [{f.format(ci[0])}, {f.format(ci[1])}]" if ci else "")

    lines = [f"# Evaluation: {result.model}" + (f" vs {result.baseline}" if result.baseline else ""), ""]
    lines.append(
        f"Responses: {'greedy' if cfg.temperature == 0 else f'temperature {cfg.temperature}'}, at most "
        f"{cfg.max_new_tokens} tokens. Prompts: " + ", ".join(f"{c} {len(p)}" for c, p in result.prompts.items())
        + f". Intervals: {result.confidence_level:.0%} percentile bootstrap over prompts ({cfg.bootstrap_samples} "
        "resamples; distinct-n: jackknife, as a resample that repeats a response lowers distinct-n by itself); "
        "the difference's interval comes from a paired bootstrap (the same prompts for both "
        "models), and **bold** marks a difference whose interval excludes 0."
    )  # fmt: skip
    for group in dict.fromkeys(_group(r.metric) for r in result.rows):
        lines += ["", f"## {group.capitalize()}", ""]
        header = "| metric | better | model |" + (" baseline | difference |" if result.baseline else "")
        lines += [header, "|" + " --- |" * (header.count("|") - 1)]
        for r in (r for r in result.rows if _group(r.metric) == group):
            better = METRICS.get(r.metric.split("/")[-1], (None,))[0] or ""
            line = f"| {r.metric} | {better} | {cell(r.model, r.model_ci)} |"
            if result.baseline:
                diff = cell(r.difference, r.difference_ci, True)
                line += f" {cell(r.baseline, r.baseline_ci)} | {f'**{diff}**' if r.significant else diff} |"
            lines.append(line)
    used = dict.fromkeys(r.metric.split("/")[-1] for r in result.rows)
    lines += ["", "## Metrics", ""] + [f"- `{m}`: {METRICS[m][1]}" for m in used if m in METRICS]
    lines += ["", "Refusals and expressed uncertainty are detected with the patterns of `rlhf.evaluation` "
              "(`REFUSAL_PATTERNS`, `UNCERTAINTY_PATTERNS`). Every response is in `samples.jsonl`."]  # fmt: skip
    lines += ["", "## Examples", ""]
    for category, prompts in result.prompts.items():
        if category == "multiple_choice":
            continue
        for i, p in enumerate(prompts[:2]):
            lines.append(f"**{category}**: {p[-1]['content']}")
            for run in result.runs:
                text = run.responses.get(category, [""] * (i + 1))[i].replace("\n", " ")
                lines.append(f"- *{run.name}*: {text}")
            lines.append("")
    return "\n".join(lines) + "\n"


def plot_comparison(result: EvalResult, plot_dir: Path) -> list[Path]:
    """plots/<group>.png: a panel per metric, bars for the model and the baseline with their
    bootstrap intervals as error bars."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plot_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for group in dict.fromkeys(_group(r.metric) for r in result.rows):
        rows = [r for r in result.rows if _group(r.metric) == group]
        fig, axes = plt.subplots(1, len(rows), figsize=(2.6 * len(rows) + 0.6, 3.4), squeeze=False)
        for ax, r in zip(axes[0], rows, strict=True):
            bars = [("model", r.model, r.model_ci)]
            if r.baseline is not None:
                bars.append(("baseline", r.baseline, r.baseline_ci))
            values = [b[1] for b in bars]
            errors = [
                [v - ci[0] if ci else 0 for _, v, ci in bars],
                [ci[1] - v if ci else 0 for _, v, ci in bars],
            ]
            ax.bar(
                range(len(bars)),
                values,
                yerr=np.clip(errors, 0, None),
                capsize=4,
                color=["C0", "C7"][: len(bars)],
            )
            ax.set_xticks(range(len(bars)), [b[0] for b in bars], fontsize=8)
            ax.set_title(r.metric.split("/", 1)[-1] + (" *" if r.significant else ""), fontsize=9)
            ax.set_xlabel(r.metric.split("/")[0], fontsize=8)
            name = r.metric.split("/")[-1]
            if name.endswith("rate") or name.startswith("distinct") or name in ("accuracy", "confidence"):
                ax.set_ylim(0, 1.05)  # shares: the whole scale, so a small difference looks small
            ax.grid(axis="y", alpha=0.3)
        versus = f"{result.model} vs {result.baseline}" if result.baseline else result.model
        fig.suptitle(f"{group}: {versus} ({result.confidence_level:.0%} bootstrap intervals)", fontsize=9)
        fig.tight_layout()
        path = plot_dir / f"{group}.png"
        fig.savefig(path, dpi=100)
        plt.close(fig)
        written.append(path)
    return written


# ---------------------------------------------------------------- the pipeline stage


def load_policy(path: str, dtype: str = "fp32", device: torch.device | None = None):
    """A causal LM and its tokenizer (left padding) from a model argument, on `device`."""
    from .models import ModelConfig, load_causal_lm, load_tokenizer, model_dirs

    model_dir, tokenizer_dir = model_dirs(path)
    model = load_causal_lm(ModelConfig(name=model_dir, dtype=dtype)).eval()
    return model.to(device or "cpu"), load_tokenizer(tokenizer_dir, padding_side="left")


def resolve_eval_config(config: Config) -> EvalConfig:
    """config.eval with its empty defaults filled in from the PPO stage: model = the PPO policy,
    baseline = the SFT model, reward_model = the PPO reward model."""
    cfg = config.eval
    return dataclasses.replace(
        cfg,
        model=cfg.model or str(Path(config.ppo.output_dir) / "policy"),
        baseline=config.ppo.sft_model_path if cfg.baseline == "" else cfg.baseline,
        reward_model=config.ppo.reward_model_path if cfg.reward_model == "" else cfg.reward_model,
    )


def _check_inputs(cfg: EvalConfig) -> None:
    """Fail before any model loads: a missing data file or a model that is not there."""
    from .models import resolve_model_path

    for key in (
        "helpfulness_path",
        "harmful_path",
        "benign_risky_path",
        "unanswerable_path",
        "multiple_choice_path",
    ):
        path = getattr(cfg, key)
        if path and not Path(path).exists():
            raise DataError(f"eval.{key}: {path} does not exist (set it to null to skip the category)")
    for key in ("model", "baseline", "reward_model"):
        path = getattr(cfg, key)
        if path:
            try:
                resolve_model_path(path)
            except FileNotFoundError as e:
                hint = f"; set eval.{key}=null to go without one" if key != "model" else ""
                raise ConfigError(f"eval.{key}: {e}{hint}") from None


def evaluate_stage(config: Config, resume: bool = False) -> Path:
    """The evaluation stage: config.eval.model (default: the PPO policy) against config.eval.baseline
    (default: the SFT model) on the same prompts, judged by the reward model and the safety
    filter. Writes eval.json, eval.md, table.txt, samples.jsonl, plots/ and config.yaml into
    config.eval.output_dir, prints the table, and returns the directory. With resume, a finished
    evaluation of the same settings is kept as it is."""
    import yaml

    cfg = resolve_eval_config(config)
    out = Path(cfg.output_dir)
    resolved = dataclasses.replace(config, eval=cfg)
    if resume and (out / "eval.json").exists() and (out / "config.yaml").exists():
        saved = (yaml.safe_load((out / "config.yaml").read_text()) or {}).get("eval")
        if saved == dataclasses.asdict(cfg):
            print(f"evaluation in {out} is complete; kept as it is")
            print((out / "table.txt").read_text().rstrip())
            return out
    _check_inputs(cfg)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")

    reward_model = reward_tokenizer = None
    if cfg.reward_model:
        from .models import load_tokenizer
        from .reward_model import RewardModel, load_reward_model

        reward_model = load_reward_model(cfg.reward_model, cfg.dtype).to(device).eval()
        if isinstance(reward_model, RewardModel):
            reward_tokenizer = load_tokenizer(cfg.reward_model)
    from .safety import SafetyFilter

    safety_filter = SafetyFilter(config.safety)

    def evaluator(model, tokenizer, name):
        return RLHFEvaluator(model, tokenizer, reward_model, reward_tokenizer, safety_filter, cfg, name=name)

    base = None
    if cfg.baseline:
        model, tokenizer = load_policy(cfg.baseline, cfg.dtype, device)
        print(f"evaluating the baseline {cfg.baseline}")
        base = evaluator(model, tokenizer, cfg.baseline).run(name=cfg.baseline)
        del model
    model, tokenizer = load_policy(cfg.model, cfg.dtype, device)
    print(f"evaluating {cfg.model}")
    ev = evaluator(model, tokenizer, cfg.model)
    result = compare(ev.run(), base, cfg, ev.categories(), ev.multiple_choice[: cfg.max_prompts])
    write_outputs(result, out, cfg, plots=config.logging.plots)
    save_config(resolved, out / "config.yaml")
    print(result.table())
    return out
