import json
import random
import shutil
from pathlib import Path

import pytest
import torch

from rlhf.config import BUILTIN_ALERT_RULES, ConfigError, load_config
from rlhf.hacking import (
    HackingDetector,
    distinct_n,
    pearson,
    repetition,
    score_terms,
    term_metrics,
    tokens,
    trend,
    vader_scorer,
)
from rlhf.models import load_tokenizer
from rlhf.monitor import read_metrics
from rlhf.ppo import train_ppo
from rlhf.reward_model import RewardModel, score_texts

ROOT = Path(__file__).resolve().parents[1]
TINY_CONFIG = str(ROOT / "configs" / "tiny.yaml")
HACKING_KEYS = {"hacking/distinct_1", "hacking/distinct_2", "hacking/repetition", "hacking/length_corr",
                "hacking/length_corr_drift", "hacking/kl_per_reward"}  # fmt: skip
JUDGE_KEYS = {"hacking/judge_score", "hacking/proxy_judge_divergence"}


# ---------------------------------------------------------------- pure functions on hand values


def test_tokens_distinct_n_and_repetition():
    assert tokens("Yes!! The CAT, sat.") == ["yes", "!", "!", "the", "cat", ",", "sat", "."]
    texts = ["the cat sat", "The cat ran"]
    assert distinct_n(texts, 1) == 4 / 6  # the, cat, sat, ran of 6 words
    assert distinct_n(texts, 2) == 3 / 4  # (the cat) twice, (cat sat), (cat ran); never across texts
    assert distinct_n(["hi", ""], 2) == 0.0 and distinct_n([], 1) == 0.0  # no n-grams at all
    assert repetition("a b a b a b") == 2 / 4  # aba bab aba bab: the last two repeat
    assert repetition("go go go go go") == 2 / 3
    assert repetition("a b c d e") == 0.0 and repetition("a b") == 0.0
    assert repetition("a b a b a b", n=2) == 3 / 5  # ab ba ab ba ab


def test_pearson_and_trend():
    # x = 1, 2, 3; y = 2, 4, 7: sxy = 5, sxx = 2, syy = 38/3.
    assert pearson([1, 2, 3], [2, 4, 7]) == pytest.approx(5 / (2 * 38 / 3) ** 0.5)
    assert pearson([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)
    assert pearson([0.1] * 3, [1, 2, 3]) == 0.0 and pearson([1], [2]) == 0.0  # constant, too short
    with pytest.raises(ValueError, match="3 x values but 2"):
        pearson([1, 2, 3], [1, 2])
    # t = 0..3, mean 1.5; v = 1, 3, 2, 5, mean 2.75: sum dt*dv = 5.5, sum dt^2 = 5.
    assert trend([1, 3, 2, 5]) == pytest.approx(1.1)
    assert trend([4.0]) == 0.0 and trend([2.0, 2.0, 2.0]) == 0.0


def _cfg(*overrides):
    return load_config(None, [f"hacking.{o}" for o in overrides]).hacking


def _rows_of(detector_rows):
    return [{"step": i + 1, "objective/rm_score": r["proxy"], "objective/kl": r["kl"], **r["metrics"]}
            for i, r in enumerate(detector_rows)]  # fmt: skip


def test_detector_windows_by_hand_and_rebuilt_from_metrics_rows():
    """window 2: first = updates 1-2, recent = the last 2 updates after them."""
    batches = [  # scores, lengths, kl, judge
        ([0.0, 0.0], [1, 3], [1.0, 1.0], [0.0, 0.0]),  # proxy 0, length corr 0 (constant scores)
        ([0.0, 2.0], [1, 3], [2.0, 2.0], [0.0, 0.0]),  # proxy 1, corr +1
        ([2.0, 2.0], [1, 3], [3.0, 3.0], [1.0, 1.0]),  # proxy 2, corr 0
        ([4.0, 2.0], [1, 3], [5.0, 5.0], [0.0, 1.0]),  # proxy 3, corr -1
    ]
    detector, seen = HackingDetector(_cfg("window=2", "rise_threshold=0.5")), []
    for scores, lengths, kl, judge in batches:
        metrics = detector.update(["a b", "c d"], torch.tensor(scores), torch.tensor(lengths), torch.tensor(kl),
                                  torch.tensor(judge))  # fmt: skip
        seen.append({"proxy": sum(scores) / 2, "kl": sum(kl) / 2, "metrics": metrics})
    m = [s["metrics"] for s in seen]
    assert [x["hacking/length_corr"] for x in m] == pytest.approx([0.0, 1.0, 0.0, -1.0])
    # Recent window minus first window: 0 while they are the same updates; update 3: mean(1, 0) - 0.5;
    # update 4: mean(0, -1) - 0.5.
    assert [x["hacking/length_corr_drift"] for x in m] == [0.0, 0.0, 0.0, -1.0]
    # KL gained / score gained: update 3: (2.5 - 1.5) / (1.5 - 0.5); update 4: (4 - 1.5) / (2.5 - 0.5).
    assert [x["hacking/kl_per_reward"] for x in m] == pytest.approx([0.0, 0.0, 1.0, 1.25])
    assert [x["hacking/judge_score"] for x in m] == [0.0, 0.0, 1.0, 0.5]
    # Proxy rises by 1 in every window; the judge is flat (0, 0), rises (0, 1), falls (1, 0.5).
    assert [x["hacking/proxy_judge_divergence"] for x in m] == [0.0, 1.0, 0.0, 1.0]
    assert set(m[0]) == HACKING_KEYS | JUDGE_KEYS

    # A detector rebuilt from the metrics rows of updates 1-3 (what --resume reads) goes on alike.
    resumed = HackingDetector(_cfg("window=2", "rise_threshold=0.5"), _rows_of(seen[:3]))
    scores, lengths, kl, judge = batches[3]
    again = resumed.update(["a b", "c d"], torch.tensor(scores), torch.tensor(lengths), torch.tensor(kl), torch.tensor(judge))
    assert again == m[3]

    # The gain is floored at min_gain: a falling score does not make KL per reward small or negative.
    flat = HackingDetector(_cfg("window=2", "min_gain=0.25"))
    for score, kl in ((1.0, 1.0), (1.0, 1.0), (0.0, 3.0)):
        out = flat.update(["x"], [score], [1], [kl])
    assert out["hacking/kl_per_reward"] == pytest.approx((2.0 - 1.0) / 0.25)  # the score fell by 0.5
    assert not set(out) & JUDGE_KEYS  # no judge, no judge metrics


# ---------------------------------------------------------------- constructed rollouts

VOCAB = [f"w{i}" for i in range(300)]


def _simulate(kind, updates=30, batch=16, seed=0):
    """hacking/* metrics of every update of a constructed run: healthy, or hacking one way from
    update 11 on (or all along)."""
    rng = random.Random(seed)
    detector = HackingDetector(_cfg("window=10", "rise_threshold=0.2"))
    out = []
    for t in range(updates):
        lengths = [rng.randint(8, 40) for _ in range(batch)]
        texts = [" ".join(rng.choice(VOCAB) for _ in range(n)) for n in lengths]
        proxy = [0.05 * t + rng.gauss(0, 0.3) for _ in range(batch)]  # rises 0.5 per window
        judge = [0.5 * p + rng.gauss(0, 0.1) for p in proxy]  # follows the proxy
        kl = [0.1 * t + abs(rng.gauss(0, 0.2)) for _ in range(batch)]  # ~2 nats per unit gained
        if kind == "judge_falls":
            judge = [-0.03 * t + rng.gauss(0, 0.1) for _ in range(batch)]
        elif kind == "collapse" and t >= 10:
            texts = ["great great great great great great great great great"] * batch
        elif kind == "length" and t >= 10:
            proxy = [0.1 * n + rng.gauss(0, 0.1) for n in lengths]  # the reward model pays for length
        elif kind == "kl_for_nothing":
            proxy = [rng.gauss(0, 0.3) for _ in range(batch)]
            kl = [1.0 * t + abs(rng.gauss(0, 0.2)) for _ in range(batch)]
        out.append(detector.update(texts, torch.tensor(proxy), torch.tensor(lengths), torch.tensor(kl), torch.tensor(judge)))
    return out


def _firing(rows):
    """Names of the built-in alert rules on hacking/* that fire somewhere in rows: the condition
    holds on `patience` updates in a row."""
    fired = set()
    for rule in BUILTIN_ALERT_RULES:
        if rule.metric.startswith("hacking/"):
            assert rule.condition in ("above", "below"), rule  # what this helper knows how to read
            streak = 0
            for row in rows:
                value = row[rule.metric]
                streak = streak + 1 if (value > rule.threshold if rule.condition == "above" else value < rule.threshold) else 0
                if streak >= rule.patience:
                    fired.add(rule.name)
    return fired


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_detector_stays_quiet_on_healthy_rollouts(seed):
    rows = _simulate("healthy", seed=seed)
    assert _firing(rows) == set()
    assert all(r["hacking/proxy_judge_divergence"] == 0.0 for r in rows)
    assert max(abs(r["hacking/length_corr_drift"]) for r in rows) < 0.3
    assert 1.5 < rows[-1]["hacking/kl_per_reward"] < 2.5  # 0.1 nats per update for 0.05 of score


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_detector_flags_each_kind_of_hacking(seed):
    # Each kind of hacking sets off its own built-in rules, and only those.
    judge_falls = _simulate("judge_falls", seed=seed)
    assert _firing(judge_falls) == {"proxy_judge_divergence"}
    assert [r["hacking/proxy_judge_divergence"] for r in judge_falls] == [0.0] * 9 + [1.0] * 21  # from the first full window

    collapse = _simulate("collapse", seed=seed)
    assert _firing(collapse) == {"repetition", "diversity_collapse_1", "diversity_collapse_2"}
    assert _firing(collapse[:10]) == set()
    assert all(r["hacking/distinct_2"] < 0.01 and r["hacking/distinct_1"] < 0.01 for r in collapse[10:])
    assert all(r["hacking/repetition"] == pytest.approx(6 / 7) for r in collapse[10:])  # 6 of 7 trigrams repeat

    length = _simulate("length", seed=seed)
    assert _firing(length) == {"length_corr_drift"}
    assert all(r["hacking/length_corr"] > 0.9 for r in length[10:])

    kl_for_nothing = _simulate("kl_for_nothing", seed=seed)
    assert _firing(kl_for_nothing) == {"kl_per_reward"}
    # ~20 nats more KL than in the first window, for a gain floored at min_gain = 0.1.
    assert kl_for_nothing[-1]["hacking/kl_per_reward"] == pytest.approx(200, rel=0.05)


# ---------------------------------------------------------------- remedies and judges


def test_score_terms_by_hand():
    terms = score_terms(_cfg("diversity_coef=0.5", "repetition_coef=2.0"))
    assert [t.__name__ for t in terms] == ["diversity_bonus", "repetition_penalty"]
    responses = ["a b a b", "x y z", "go go go go"]
    # distinct-2: (ab ba ab) 2/3, (xy yz) 1, (gg gg gg) 1/3; the bonus is a negative penalty.
    torch.testing.assert_close(terms[0](None, responses), torch.tensor([-0.5 * 2 / 3, -0.5, -0.5 / 3]))
    # Trigrams: (aba bab) 0, (xyz) 0, (ggg ggg) 1/2.
    torch.testing.assert_close(terms[1](None, responses), torch.tensor([0.0, 0.0, 2.0 * 0.5]))
    assert score_terms(_cfg()) == []  # both off by default
    means = {"missing_eos": 0.5, "diversity_bonus": -0.25, "repetition_penalty": 0.125, "toxicity": 1.0}
    assert term_metrics(means) == {"hacking/diversity_bonus": 0.25, "hacking/repetition_penalty": 0.125}
    assert means == {"missing_eos": 0.5, "toxicity": 1.0}  # what stays goes to safety/*


def test_vader_gold_scorer():
    vader = vader_scorer()
    scores = vader(None, ["This is a wonderful, helpful answer!", "That is awful and stupid.", ""])
    assert scores[0] > 0.5 and scores[1] < -0.5 and scores[2] == 0.0


def test_config_checks():
    with pytest.raises(ConfigError, match="hacking.judge_model_path: judge: model needs"):
        _cfg("judge=model")
    with pytest.raises(ConfigError, match="hacking.judge: judge_model_path is set but judge is none"):
        _cfg("judge_model_path=models/judge")
    with pytest.raises(ConfigError, match="hacking.window: must be >= 2"):
        _cfg("window=1")
    with pytest.raises(ConfigError, match="hacking.judge: must be one of none, model"):
        _cfg("judge=human")
    with pytest.raises(ConfigError, match="hacking.diversity_coef: must be >= 0"):
        _cfg("diversity_coef=-1")
    cfg = load_config(ROOT / "configs" / "rlhf_config.yaml").hacking
    assert (cfg.judge, cfg.window, cfg.diversity_coef, cfg.repetition_coef) == ("none", 10, 0.0, 0.0)


# ---------------------------------------------------------------- in a tiny PPO run


def _config(reward_dir, out, *extra):
    """A seconds-long PPO run on tiny-random; every response lands in samples.jsonl."""
    return load_config(TINY_CONFIG, [
        "ppo.sft_model_path=tiny-random", f"ppo.reward_model_path={reward_dir}", f"ppo.output_dir={out}",
        f"ppo.prompts_path={ROOT / 'data' / 'prompts.json'}", "ppo.max_prompts=24", "ppo.num_episodes=8",
        "ppo.batch_size=4", "ppo.micro_batch_size=2", "ppo.max_new_tokens=16", "ppo.samples_per_log=4",
        "ppo.eval_fraction=0", *extra,
    ])  # fmt: skip


def _updates(out):
    rows = [r for r in read_metrics(out) if "objective/score" in r]
    samples = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
    return [(r, [s["response"] for s in samples if s["step"] == r["step"]]) for r in rows]


def test_ppo_logs_hacking_metrics_with_a_model_judge_and_the_score_terms(reward_dir, tmp_path):
    out = tmp_path / "out"
    train_ppo(_config(reward_dir, out, "hacking.judge=model", f"hacking.judge_model_path={reward_dir}",
                      "hacking.diversity_coef=0.5", "hacking.repetition_coef=1.0"))  # fmt: skip
    updates = _updates(out)
    assert len(updates) == 2
    for row, texts in updates:
        assert len(texts) == 4 and HACKING_KEYS | JUDGE_KEYS <= set(row)
        assert row["hacking/distinct_1"] == pytest.approx(distinct_n(texts, 1))
        assert row["hacking/distinct_2"] == pytest.approx(distinct_n(texts, 2))
        assert row["hacking/repetition"] == pytest.approx(sum(map(repetition, texts)) / 4)
        assert -1 <= row["hacking/length_corr"] <= 1 and row["hacking/proxy_judge_divergence"] == 0.0  # < window
        bonus = sum(0.5 * distinct_n([t], 2) for t in texts) / 4
        penalty = sum(1.0 * repetition(t) for t in texts) / 4
        assert row["hacking/diversity_bonus"] == pytest.approx(bonus, abs=1e-6)
        assert row["hacking/repetition_penalty"] == pytest.approx(penalty, abs=1e-6)
        assert not {"safety/diversity_bonus", "safety/repetition_penalty"} & set(row)  # logged under hacking/ only
        # The score PPO maximises: the reward model's, plus the bonus, minus the penalty and any
        # other (safety) penalty (no clipping at these scores).
        others = sum(v for k, v in row.items() if k.startswith("safety/"))
        assert row["objective/score"] == pytest.approx(row["objective/rm_score"] + bonus - penalty - others, abs=1e-5)
    assert any(row["hacking/diversity_bonus"] > 0 for row, _ in updates)
    # The judge reads the decoded texts with its own tokenizer: the same as scoring them by hand.
    judge = RewardModel.from_pretrained(str(reward_dir))
    samples = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
    for row, _ in updates:
        step = [s for s in samples if s["step"] == row["step"]]
        expected = score_texts(judge, load_tokenizer(str(reward_dir)), [s["prompt"] for s in step],
                               [s["response"] for s in step]).mean().item()  # fmt: skip
        assert row["hacking/judge_score"] == pytest.approx(expected, abs=1e-5)


def test_ensemble_disagreement_judge_of_identical_members_equals_the_proxy(reward_dir, tmp_path):
    ens = tmp_path / "ens"
    ens.mkdir()
    for name in ("member_0", "member_1"):
        (ens / name).symlink_to(reward_dir)
    (ens / "ensemble.json").write_text(json.dumps({"members": ["member_0", "member_1"], "aggregation": "mean",
                                                   "uncertainty_coef": 1.0}))  # fmt: skip
    out = tmp_path / "out"
    train_ppo(_config(reward_dir, out, f"ppo.reward_model_path={ens}", "hacking.judge=ensemble_disagreement"))
    for row, _ in _updates(out):
        # Identical members never disagree: mean - std of their scores is the proxy score itself.
        assert row["hacking/judge_score"] == pytest.approx(row["objective/rm_score"], abs=1e-5)
    # With a single reward model there are no members to disagree; refused before any output.
    with pytest.raises(ConfigError, match="ensemble_disagreement needs ppo.reward_model_path to be an ensemble"):
        train_ppo(_config(reward_dir, tmp_path / "single", "hacking.judge=ensemble_disagreement"))
    assert not (tmp_path / "single").exists()
    with pytest.raises(ConfigError, match="hacking.judge_model_path: model '.*missing': no such directory"):
        train_ppo(_config(reward_dir, tmp_path / "single", "hacking.judge=model", f"hacking.judge_model_path={tmp_path / 'missing'}"))
    assert not (tmp_path / "single").exists()


def test_gold_scorer_from_python_and_resume_rebuilds_the_detector(reward_dir, tmp_path):
    def chars(prompts, responses):  # a deterministic "gold" judge: characters per response
        return [float(len(r)) for r in responses]

    out = tmp_path / "out"
    config = _config(reward_dir, out, "ppo.num_episodes=16", "ppo.save_every=1", "hacking.window=2",
                     "hacking.rise_threshold=0")  # fmt: skip
    train_ppo(config, gold_scorer=chars)
    full = [{k: v for k, v in r.items() if not k.startswith("time/")} for r in read_metrics(out)]
    updates = _updates(out)
    assert [r["step"] for r, _ in updates] == [1, 2, 3, 4]
    for row, texts in updates:
        assert row["hacking/judge_score"] == pytest.approx(sum(map(len, texts)) / 4)
    # Past the first window, the drift and KL per reward depend on the history the detector keeps.
    assert all(r["hacking/kl_per_reward"] != 0.0 for r, _ in updates[2:])

    # Resume from update 3: the detector is rebuilt from metrics.jsonl and update 4 comes out the same.
    shutil.rmtree(out / "checkpoints" / "update-4")
    train_ppo(config, resume=True, gold_scorer=chars)
    resumed = [{k: v for k, v in r.items() if not k.startswith("time/")} for r in read_metrics(out)]
    assert [r["step"] for r in resumed] == [r["step"] for r in full]
    for a, b in zip(full, resumed, strict=True):
        for key in a:
            assert a[key] == pytest.approx(b[key], rel=1e-5, abs=1e-6), (a["step"], key)

    with pytest.raises(ConfigError, match="hacking.judge: is model, and a gold_scorer was passed too"):
        train_ppo(_config(reward_dir, tmp_path / "x", "hacking.judge=model", f"hacking.judge_model_path={reward_dir}"),
                  gold_scorer=chars)  # fmt: skip
