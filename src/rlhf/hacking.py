"""Reward-hacking detection and two remedies, for the PPO loop.

A policy that hacks its reward model finds what the proxy score pays for without being better:
the proxy rises while a held-out judge (a second reward model, an ensemble's less optimistic
reading, or a gold scorer) stalls or falls; responses grow longer because the reward model likes
length; responses collapse onto a few repeated phrases; and the KL from the reference keeps
growing for little gain. `HackingDetector` turns each PPO update into hacking/* metrics that show
these; the alert rules watch them. The remedies are score terms added in rollout(): a diversity
bonus (distinct-2 of each response) and a repetition penalty (repeated trigrams).

Text is split into lowercase words and punctuation marks (plain Python, no tokenizer), so the
n-gram metrics mean the same for every model. Imports with torch alone.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import torch

from .config import ConfigError, HackingConfig, PPOConfig

if TYPE_CHECKING:
    from .rollout import PPOModels, Rollout, ScorePenalty

# A judge: (prompts, responses, rollout) -> (B,) scores of the responses by someone other than the
# proxy reward model. A gold scorer is any (prompts, responses) -> (B,).
Judge = Callable[[list, list[str], "Rollout"], torch.Tensor]
GoldScorer = Callable[[list, list[str]], Sequence[float] | torch.Tensor]

_WORDS = re.compile(r"\w+|[^\w\s]")


# ---------------------------------------------------------------- pure functions


def tokens(text: str) -> list[str]:
    """Lowercase words and single punctuation marks: "Yes!! yes" -> ["yes", "!", "!", "yes"]."""
    return _WORDS.findall(text.lower())


def ngrams(tokens: Sequence[str], n: int) -> list[tuple[str, ...]]:
    return list(zip(*(tokens[i:] for i in range(n)), strict=False))


def distinct_n(texts: Sequence[str], n: int) -> float:
    """Unique n-grams / all n-grams over the texts (n-grams do not cross texts); 0 with none."""
    grams = [g for text in texts for g in ngrams(tokens(text), n)]
    return len(set(grams)) / len(grams) if grams else 0.0


def repetition(text: str, n: int = 3) -> float:
    """Share of the text's n-grams that repeat an earlier n-gram of the same text; 0 with none."""
    grams = ngrams(tokens(text), n)
    seen: set[tuple[str, ...]] = set()
    repeats = 0
    for g in grams:
        repeats += g in seen
        seen.add(g)
    return repeats / len(grams) if grams else 0.0


def pearson(x: Sequence[float], y: Sequence[float]) -> float:
    """Pearson correlation of x and y; 0 when either is constant (or has under two points), since
    a constant has no correlation with anything."""
    if len(x) != len(y):
        raise ValueError(f"pearson: {len(x)} x values but {len(y)} y values")
    n = len(x)
    if n < 2 or max(x) == min(x) or max(y) == min(y):
        return 0.0
    mx, my = sum(x) / n, sum(y) / n
    sxy = sum((a - mx) * (b - my) for a, b in zip(x, y, strict=True))
    sxx = sum((a - mx) ** 2 for a in x)
    syy = sum((b - my) ** 2 for b in y)
    return max(-1.0, min(1.0, sxy / math.sqrt(sxx * syy)))


def trend(values: Sequence[float]) -> float:
    """Least-squares slope of values against their index 0, 1, ... (change per update); 0 with
    under two points."""
    n = len(values)
    if n < 2:
        return 0.0
    t_mean, v_mean = (n - 1) / 2, sum(values) / n
    return sum((i - t_mean) * (v - v_mean) for i, v in enumerate(values)) / sum((i - t_mean) ** 2 for i in range(n))


def _mean(values: Sequence[float | None]) -> float:
    known = [v for v in values if v is not None]
    return sum(known) / len(known) if known else 0.0


def _batch_mean(values) -> float:
    """Mean of a batch as the PPO metrics row computes it (a float32 tensor mean), so a detector
    rebuilt from metrics.jsonl on --resume holds bit-identical numbers."""
    return torch.as_tensor(values, dtype=torch.float32).mean().item()


# ---------------------------------------------------------------- the detector


class HackingDetector:
    """Fed once per PPO update; `update()` returns that update's hacking/* metrics.

    Its history is one number per update per series (proxy score, judge score, length
    correlation, KL), all of which are columns of metrics.jsonl, so `HackingDetector(cfg,
    read_metrics(out))` rebuilds it exactly on --resume.

    Windows: "first" is updates 1..window, "recent" the last window updates; each metric that
    compares them uses window means, so one noisy batch cannot set it off. Until the two windows
    part, they share updates and the comparison leans towards 0 (quiet), and it is exactly 0 while
    they are the same updates (the first `window` updates).
    """

    def __init__(self, cfg: HackingConfig, rows: Sequence[dict] = ()):
        self.cfg = cfg
        self.proxy: list[float] = []  # mean reward-model score (normalised) per update
        self.judge: list[float | None] = []  # mean judge score per update; None without a judge
        self.length_corr: list[float | None] = []
        self.kl: list[float] = []  # mean KL per response (nats)
        for row in rows:  # metrics.jsonl rows of the updates already done (--resume)
            if "objective/rm_score" in row:
                self.proxy.append(row["objective/rm_score"])
                self.judge.append(row.get("hacking/judge_score"))
                self.length_corr.append(row.get("hacking/length_corr"))
                self.kl.append(row["objective/kl"])

    def update(
        self,
        texts: Sequence[str],
        scores: torch.Tensor | Sequence[float],
        lengths: torch.Tensor | Sequence[float],
        kl: torch.Tensor | Sequence[float],
        judge_scores: torch.Tensor | Sequence[float] | None = None,
    ) -> dict[str, float]:
        """One update's batch: response texts, reward-model scores (B,), response lengths in
        tokens (B,), KL per response (B,), and the judge's scores (B,) when there is a judge."""
        score_list = torch.as_tensor(scores, dtype=torch.float32).tolist()
        length_list = torch.as_tensor(lengths, dtype=torch.float32).tolist()
        if not len(texts) == len(score_list) == len(length_list):
            raise ValueError(f"{len(texts)} texts, {len(score_list)} scores and {len(length_list)} lengths")
        self.proxy.append(_batch_mean(scores))
        self.judge.append(None if judge_scores is None else _batch_mean(judge_scores))
        self.length_corr.append(pearson(score_list, length_list))
        self.kl.append(_batch_mean(kl))

        w = self.cfg.window
        since_first = lambda series: _mean(series[-w:]) - _mean(series[:w])  # noqa: E731
        out = {
            "hacking/distinct_1": distinct_n(texts, 1),
            "hacking/distinct_2": distinct_n(texts, 2),
            "hacking/repetition": sum(repetition(t) for t in texts) / len(texts) if texts else 0.0,
            "hacking/length_corr": self.length_corr[-1],
            "hacking/length_corr_drift": since_first(self.length_corr),
            # Nats of KL per response taken on per unit of normalised score gained, both since the
            # first window; a gain under min_gain (or a loss) counts as min_gain.
            "hacking/kl_per_reward": since_first(self.kl) / max(since_first(self.proxy), self.cfg.min_gain),
        }
        if judge_scores is not None:
            out["hacking/judge_score"] = self.judge[-1]
            out["hacking/proxy_judge_divergence"] = self._divergence()
        return out

    def _divergence(self) -> float:
        """1.0 when, over the last window updates, the proxy rose by more than rise_threshold while
        the judge rose by at most judge_tolerance (stalled or fell)."""
        w = self.cfg.window
        judge = self.judge[-w:]
        if len(judge) < w or any(j is None for j in judge):
            return 0.0
        proxy_rise = trend(self.proxy[-w:]) * (w - 1)
        judge_rise = trend(judge) * (w - 1)
        return float(proxy_rise > self.cfg.rise_threshold and judge_rise <= self.cfg.judge_tolerance)


# ---------------------------------------------------------------- remedies: score terms


def score_terms(cfg: HackingConfig) -> list[ScorePenalty]:
    """The remedies switched on in cfg, as rollout() score penalties (amounts subtracted from the
    score): the diversity bonus is a negative penalty."""
    terms = []
    if cfg.diversity_coef:

        def diversity_bonus(prompts, responses):
            return torch.tensor([-cfg.diversity_coef * distinct_n([r], 2) for r in responses])

        terms.append(diversity_bonus)
    if cfg.repetition_coef:

        def repetition_penalty(prompts, responses):
            return torch.tensor([cfg.repetition_coef * repetition(r, 3) for r in responses])

        terms.append(repetition_penalty)
    return terms


def term_metrics(penalty_means: dict[str, float]) -> dict[str, float]:
    """Moves the score terms' batch means out of rollout()'s penalty means (which become safety/*)
    into hacking/diversity_bonus (added to the score) and hacking/repetition_penalty (subtracted)."""
    out = {}
    if "diversity_bonus" in penalty_means:
        out["hacking/diversity_bonus"] = 0.0 - penalty_means.pop("diversity_bonus")
    if "repetition_penalty" in penalty_means:
        out["hacking/repetition_penalty"] = penalty_means.pop("repetition_penalty")
    return out


# ---------------------------------------------------------------- judges


def vader_scorer() -> GoldScorer:
    """VADER compound sentiment of each response, in [-1, 1] (a lexicon: no model, no network)."""
    try:
        from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer
    except ImportError:
        raise ConfigError("hacking.gold_scorer: vader needs the vaderSentiment package: pip install vaderSentiment") from None
    analyzer = SentimentIntensityAnalyzer()

    def vader(prompts, responses):
        return torch.tensor([analyzer.polarity_scores(r)["compound"] for r in responses])

    return vader


def load_judge(
    cfg: HackingConfig, ppo: PPOConfig, models: PPOModels, device: torch.device, gold_scorer: GoldScorer | None = None
) -> Judge | None:
    """The judge that cfg (or a gold_scorer passed from Python) asks for, loaded onto `device` in
    ppo.dtype; None without one."""
    if gold_scorer is not None and cfg.judge not in ("none", "gold"):
        raise ConfigError(f"hacking.judge: is {cfg.judge}, and a gold_scorer was passed too; set judge: gold or none")
    if gold_scorer is not None or cfg.judge == "gold":
        scorer = gold_scorer or vader_scorer()
        return lambda prompts, responses, batch: torch.as_tensor(scorer(prompts, responses), dtype=torch.float32)
    if cfg.judge == "model":
        from .models import load_tokenizer
        from .reward_model import RewardModel, load_reward_model, score_texts

        try:
            model = load_reward_model(cfg.judge_model_path, ppo.dtype).requires_grad_(False)
        except FileNotFoundError as e:
            raise ConfigError(f"hacking.judge_model_path: {e}") from None
        tokenizer = load_tokenizer(cfg.judge_model_path) if isinstance(model, RewardModel) else model.tokenizer
        model.to(device).eval()
        # It reads the decoded texts with its own tokenizer, so its vocabulary may differ from the policy's.
        return lambda prompts, responses, batch: score_texts(model, tokenizer, prompts, responses, ppo.micro_batch_size)
    if cfg.judge == "ensemble_disagreement":
        from .reward_model import RewardModelEnsemble

        ensemble = models.reward_model
        if not isinstance(ensemble, RewardModelEnsemble):
            raise ConfigError(
                "hacking.judge: ensemble_disagreement needs ppo.reward_model_path to be an ensemble directory "
                "(rlhf reward --ensemble N); use judge: model with a second reward model instead"
            )

        @torch.no_grad()
        def disagreement(prompts, responses, batch):
            ids = torch.cat([batch.query_ids, batch.response_ids], 1)  # (B, P + R)
            mask = torch.cat([batch.query_mask, batch.response_mask], 1)
            members = ensemble.score(ids, mask)
            # The members' mean minus their spread: a gain only some members see does not count.
            return members.members.mean(0) - members.disagreement  # (B,)

        return disagreement
    return None

