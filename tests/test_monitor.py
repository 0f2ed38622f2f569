import json
import math
import random
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM, TrainerControl, TrainerState

from rlhf.cli import main
from rlhf.config import BUILTIN_ALERT_RULES, AlertRule, ConfigError, MonitorConfig, load_config
from rlhf.monitor import (
    Alerts,
    MetricsCallback,
    MetricsLog,
    active_rules,
    plot_curves,
    read_alerts,
    read_metrics,
    scale_lr,
)

ROOT = Path(__file__).resolve().parents[1]
TINY_CONFIG = str(ROOT / "configs" / "tiny.yaml")
ALERT_KEYS = {"step", "rule", "metric", "value", "threshold", "action", "message"}


class KL:  # what Alerts needs of a KL controller: a value it can raise
    value = 0.05


def _optimizer(lr=1e-3, total=10):
    optimizer = torch.optim.AdamW(torch.nn.Linear(2, 2).parameters(), lr=lr)
    return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0 - step / total)


def _feed(run_dir, values, metric, cfg=None, **actions):
    """Rows {metric: v} at steps 1, 2, ... through the rules; returns the alerts fired."""
    alerts = Alerts(run_dir, cfg or MonitorConfig())
    fired = []
    for step, v in enumerate(values, 1):
        fired += alerts.check(step, {metric: v}, **actions)
    return fired, alerts


# ---------------------------------------------------------------- every built-in rule fires


NAN = float("nan")
STREAMS = {  # rule: (metric, values, step it fires at, action)
    "nan_loss": ("loss/total", [0.5, 0.4, NAN], 3, "stop"),
    "nan_grad": ("policy/grad_norm", [1.0, float("inf")], 2, "stop"),
    "kl_high": ("objective/kl", [5.0, 6.0, 13.0, 14.0], 4, "raise_kl"),
    "kl_negative": ("objective/kl", [0.1, -1.0, -1.2], 3, "warn"),
    "entropy_collapse": ("objective/entropy", [2.0, 1.5, 0.1, 0.1, 0.05], 5, "warn"),
    "value_loss_explosion": ("loss/value", [0.5, 0.4, 0.6, 0.5, 0.5, 6.0, 9.0], 7, "lower_lr"),
    "clipfrac_high": ("policy/clipfrac", [0.1, 0.4, 0.45, 0.5], 4, "lower_lr"),
    "eos_rate_collapse": (
        "response/eos_rate",
        [0.0, 0.0, 0.0, 0.8, 0.8, 0.9, 0.8, 0.8, 0.1, 0.1, 0.1],
        11,
        "warn",
    ),
    "length_drift": ("response/length", [40, 42, 38, 40, 40, 60, 130], 7, "warn"),
    "repetition": ("hacking/repetition", [0.05, 0.4, 0.5], 3, "warn"),
    "diversity_collapse_1": ("hacking/distinct_1", [0.4, 0.02, 0.02], 3, "warn"),
    "diversity_collapse_2": ("hacking/distinct_2", [0.8, 0.1, 0.1], 3, "warn"),
    "length_corr_drift": ("hacking/length_corr_drift", [0.0, 0.6, 0.6, 0.7], 4, "warn"),
    "kl_per_reward": ("hacking/kl_per_reward", [50, 150, 150, 150, 150, 150], 6, "warn"),
    "proxy_judge_divergence": ("hacking/proxy_judge_divergence", [0.0, 1.0, 1.0], 3, "raise_kl"),
}


def test_every_builtin_rule_has_a_stream():
    assert set(STREAMS) == {r.name for r in BUILTIN_ALERT_RULES}


@pytest.mark.parametrize("name", list(STREAMS))
def test_builtin_rule_fires_on_its_stream_and_takes_its_action(name, tmp_path, capsys):
    metric, values, step, action = STREAMS[name]
    kl, (optimizer, scheduler) = KL(), _optimizer()
    fired, alerts = _feed(tmp_path, values, metric, kl_ctl=kl, optimizers=[(optimizer, scheduler)])
    assert [(a.rule, a.step, a.action) for a in fired] == [(name, step, action)]
    lines = read_alerts(tmp_path)
    assert len(lines) == 1 and set(lines[0]) == ALERT_KEYS and lines[0]["metric"] == metric
    assert f"ALERT step {step} [{name}]" in capsys.readouterr().out
    assert alerts.stop == (action == "stop")
    assert kl.value == pytest.approx(0.05 * 1.5 if action == "raise_kl" else 0.05)
    assert optimizer.param_groups[0]["lr"] == pytest.approx(1e-3 / 2 if action == "lower_lr" else 1e-3)
    # One step earlier nothing fires: patience and windows hold it back until then.
    assert _feed(tmp_path / "short", values[:-1], metric)[0] == []


def test_alert_lines_name_value_and_threshold(tmp_path):
    (a,) = _feed(tmp_path, STREAMS["value_loss_explosion"][1], "loss/value")[0]
    # The bound at step 7: 10 x the median of the previous five values [0.4 0.6 0.5 0.5 6.0].
    assert a.value == 9.0 and a.threshold == pytest.approx(5.0)
    assert "loss/value = 9 is above 10 x the median of the previous 5 values: 5" in a.message
    (a,) = _feed(tmp_path, STREAMS["eos_rate_collapse"][1], "response/eos_rate")[0]
    assert a.value == 0.1 and a.threshold == pytest.approx(0.8 - 0.4)  # the median against its peak
    (a,) = _feed(tmp_path, [40, 40, 40, 40, 40, 12], "response/length")[0]  # drift downwards too
    assert a.threshold == pytest.approx(40 / 3) and "below 1/3 of its start value 40" in a.message
    (a,) = _feed(tmp_path, [1.0, NAN], "loss/train")[0]  # loss/* covers every stage's losses
    line = read_alerts(tmp_path)[0]
    assert a.rule == "nan_loss" and math.isnan(line["value"]) and line["threshold"] is None


def _healthy_rows(n=60, seed=0):
    """A PPO run inside the ranges a real 135M run showed: KL 0.3-7.6 nats, clipfrac up to 0.15,
    entropy 1-3, EOS rate from 0 up to 0.9, length 40-90 tokens, value loss 1 -> 0.01."""
    rng = random.Random(seed)
    for t in range(n):
        x = t / (n - 1)
        eos = min(1.0, max(0.0, 0.9 * x + rng.gauss(0, 0.1)))
        yield {
            "objective/kl": 0.0 if t == 0 else 0.3 + 7.3 * x + rng.gauss(0, 0.3),
            "objective/entropy": rng.uniform(1.0, 3.0),
            "policy/clipfrac": rng.uniform(0.001, 0.15),
            "policy/grad_norm": rng.uniform(0.5, 3.0),
            "value/grad_norm": rng.uniform(0.1, 2.0),
            "loss/policy": rng.gauss(0, 0.05),
            "loss/value": 10 ** (-2 * x) * rng.uniform(0.6, 1.5),
            "loss/total": rng.gauss(0, 0.1),
            "response/eos_rate": round(eos * 16) / 16,  # 16 episodes per update
            "response/length": 40 + 50 * x + rng.gauss(0, 5),
            "hacking/distinct_1": rng.uniform(0.3, 0.5),
            "hacking/distinct_2": rng.uniform(0.7, 0.9),
            "hacking/repetition": rng.uniform(0.0, 0.08),
            "hacking/length_corr": rng.uniform(-0.3, 0.4),
            "hacking/length_corr_drift": rng.uniform(-0.2, 0.3),
            "hacking/kl_per_reward": rng.uniform(0, 76),
            "hacking/proxy_judge_divergence": 0.0,
        }


@pytest.mark.parametrize("seed", range(6))
def test_healthy_run_fires_no_alert(tmp_path, seed):
    budget = AlertRule("kl_budget", "objective/kl", "above", 20.0, action="stop")
    alerts = Alerts(tmp_path, MonitorConfig(), [budget])
    for step, row in enumerate(_healthy_rows(seed=seed), 1):
        assert alerts.check(step, row) == [], step
    assert read_alerts(tmp_path) == [] and (tmp_path / "alerts.jsonl").exists()


def test_patience_and_cooldown(tmp_path):
    rule = AlertRule("hot", "x", "above", 1.0, patience=2, cooldown=2)
    fired, _ = _feed(
        tmp_path, [2, 0, 2, 2, 2, 2, 2, 2, 2], "x", MonitorConfig(builtin_rules=False, rules=[rule])
    )
    # Rows 1 and 3 alone are too short a streak; then it fires, stays quiet for 2 rows, fires again.
    assert [a.step for a in fired] == [4, 7]


# ---------------------------------------------------------------- configuration


def test_user_rules_replace_extend_and_disable_builtins():
    cfg = load_config(None, [
        "monitor.rules=[{name: kl_high, metric: objective/kl, threshold: 30, action: stop}, "
        "{name: slow, metric: time/update, threshold: 60}]",
        "monitor.disable=[clipfrac_high]",
    ]).monitor  # fmt: skip
    rules = {r.name: r for r in active_rules(cfg)}
    assert rules["kl_high"].threshold == 30 and rules["kl_high"].action == "stop"
    assert rules["slow"].metric == "time/update" and "clipfrac_high" not in rules
    assert len(rules) == len(BUILTIN_ALERT_RULES)  # one replaced, one added, one disabled
    assert [r.name for r in active_rules(MonitorConfig(builtin_rules=False, rules=cfg.rules))] == [
        "kl_high",
        "slow",
    ]
    assert load_config(None, ["monitor.rules=[{name: a, metric: b}]"]).monitor.rules[0].cooldown == 10


@pytest.mark.parametrize("override, message", [
    ("monitor.rules=[{name: a, metric: b, action: explode}]", "monitor.rules[0].action: must be one of"),
    ("monitor.rules=[{metric: b}]", "monitor.rules[0].name: every alert rule needs a name"),
    ("monitor.rules=[{name: a, metric: b, condition: drift, threshold: 0.5}]", "monitor.rules[0].threshold: drift"),
    ("monitor.rules=[{name: a, metric: b, action: lower_lr, factor: 0.5}]", "monitor.rules[0].factor: must be a number > 1"),
    ("monitor.rules=[{name: a, metric: b}, {name: a, metric: c}]", "monitor.rules: two rules are named 'a'"),
    ("monitor.disable=[kl_hihg]", "monitor.disable: 'kl_hihg' is not a built-in rule"),
    ("monitor.rules=[{name: a, metric: b, patience: 0}]", "monitor.rules[0].patience: must be >= 1"),
])  # fmt: skip
def test_bad_rules_fail_at_load_with_their_path(override, message):
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        load_config(None, [override])


def test_example_config_monitor_section_loads():
    cfg = load_config(ROOT / "configs" / "rlhf_config.yaml").monitor
    assert cfg.builtin_rules and cfg.rules == [] and cfg.disable == []


# ---------------------------------------------------------------- resume and learning rates


def test_resumed_alerts_fire_where_an_uninterrupted_run_does(tmp_path):
    rules = [AlertRule("spiky", "v", "spike", 3.0, window=3, cooldown=0),
             AlertRule("drifty", "v", "drift", 2.0, window=2, cooldown=3),
             AlertRule("hot", "v", "above", 4.0, patience=2, cooldown=2)]  # fmt: skip
    cfg = MonitorConfig(builtin_rules=False, rules=rules)
    values = [1, 1.2, 0.9, 5, 5, 5, 1, 1, 6, 6, 6, 6, 1]

    def run(out, rows, start=0):
        metrics, alerts = MetricsLog(out), Alerts(out, cfg, start_step=start)
        for step in rows:
            alerts.check(step, metrics.log(step, {"v": values[step - 1]}))

    run(tmp_path / "full", range(1, 14))
    run(tmp_path / "cut", range(1, 10))
    (tmp_path / "cut" / "alerts.jsonl").open("a").write(json.dumps({"step": 11, "rule": "stale"}) + "\n")
    lines = (tmp_path / "cut" / "metrics.jsonl").read_text().splitlines()
    (tmp_path / "cut" / "metrics.jsonl").write_text("\n".join(lines[:6]) + "\n")  # a checkpoint at step 6
    run(tmp_path / "cut", range(7, 14), start=6)
    full, cut = read_alerts(tmp_path / "full"), read_alerts(tmp_path / "cut")
    assert [(a["step"], a["rule"]) for a in cut] == [(a["step"], a["rule"]) for a in full]
    assert {a["rule"] for a in full} == {"spiky", "drifty", "hot"} and len(full) >= 5
    # Without the replay, a fresh state at step 7 fires elsewhere (spiky has no window yet at 9).
    fresh = Alerts(tmp_path / "fresh", cfg)
    for step in range(7, 14):
        fresh.check(step, {"v": values[step - 1]})
    after = [(a["step"], a["rule"]) for a in full if a["step"] > 6]
    assert (9, "spiky") in after and [
        (a["step"], a["rule"]) for a in read_alerts(tmp_path / "fresh")
    ] != after


def test_lower_lr_survives_the_schedule_and_its_state_dicts():
    optimizer, scheduler = _optimizer(lr=1.0, total=10)
    for _ in range(2):
        optimizer.step()
        scheduler.step()
    scale_lr(optimizer, scheduler, 0.5)
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.5 * 0.8)
    optimizer.step()
    scheduler.step()
    assert scheduler.get_last_lr()[0] == pytest.approx(0.5 * 0.7)  # the schedule goes on at half height
    again, again_scheduler = _optimizer(lr=1.0, total=10)
    again.load_state_dict(optimizer.state_dict())
    again_scheduler.load_state_dict(scheduler.state_dict())
    again.step()
    again_scheduler.step()
    assert again_scheduler.get_last_lr()[0] == pytest.approx(0.5 * 0.6)


# ---------------------------------------------------------------- Trainer stages


def test_trainer_callback_stops_on_nan_loss_and_lowers_lr(tmp_path):
    state, control = TrainerState(), TrainerControl()
    callback = MetricsCallback(tmp_path, MonitorConfig())
    callback.on_train_begin(None, state, control)
    state.global_step = 1
    callback.on_log(None, state, control, logs={"loss": 2.0, "grad_norm": 1.0, "learning_rate": 1e-3})
    assert not control.should_training_stop
    state.global_step = 2
    callback.on_log(None, state, control, logs={"loss": float("nan"), "grad_norm": 1.0})
    assert control.should_training_stop
    (line,) = read_alerts(tmp_path)
    assert (line["step"], line["rule"], line["metric"], line["action"]) == (
        2,
        "nan_loss",
        "loss/train",
        "stop",
    )
    assert math.isnan(read_metrics(tmp_path)[-1]["loss/train"])

    rule = AlertRule("too_slow", "loss/train", "above", 1.0, action="lower_lr", factor=4.0)
    callback = MetricsCallback(tmp_path / "lr", MonitorConfig(rules=[rule]))
    optimizer, scheduler = _optimizer()
    callback.on_log(
        None, state, TrainerControl(), logs={"loss": 2.0}, optimizer=optimizer, lr_scheduler=scheduler
    )
    assert optimizer.param_groups[0]["lr"] == pytest.approx(1e-3 / 4) and scheduler.base_lrs == [
        pytest.approx(1e-3 / 4)
    ]
    # raise_kl has nothing to raise outside PPO: it is reported as a warning.
    callback = MetricsCallback(
        tmp_path / "kl", MonitorConfig(rules=[AlertRule("k", "loss/train", action="raise_kl")])
    )
    callback.on_log(None, state, TrainerControl(), logs={"loss": 2.0})
    (line,) = read_alerts(tmp_path / "kl")
    assert line["action"] == "warn" and "raise_kl is not possible" in line["message"]


def test_sft_run_stops_on_an_alert_and_still_saves_the_model(tmp_path):
    out = tmp_path / "sft"
    rule = "{name: halt, metric: loss/train, condition: above, threshold: -1, action: stop}"
    assert main(["sft", "--config", TINY_CONFIG, "--output_dir", str(out), f"monitor.rules=[{rule}]"]) == 0
    train = [r for r in read_metrics(out) if "loss/train" in r]
    assert [r["step"] for r in train] == [1]  # the tiny config would run 7 steps
    assert [(a["step"], a["rule"], a["action"]) for a in read_alerts(out)] == [(1, "halt", "stop")]
    AutoModelForCausalLM.from_pretrained(out)
    assert (out / "plots" / "sft.png").stat().st_size > 0


# ---------------------------------------------------------------- plots and sinks


def _red_pixels(path):
    import matplotlib.image

    image = matplotlib.image.imread(path)  # (H, W, 4) floats
    return int(((image[..., 0] > 0.95) & (image[..., 1] < 0.1) & (image[..., 2] < 0.1)).sum())


def test_plot_marks_alerts(tmp_path):
    metrics = MetricsLog(tmp_path)
    for step, row in enumerate(_healthy_rows(n=20), 1):
        metrics.log(step, row)
    panels = {"KL": ["objective/kl"], "length": ["response/length"]}
    clean = plot_curves(tmp_path, panels, "clean.png")
    alerts = Alerts(tmp_path, MonitorConfig(rules=[AlertRule("big", "objective/kl", "above", 5.0)]))
    alerts.check(12, {"objective/kl": 30.0})
    marked = plot_curves(tmp_path, panels, "marked.png")
    assert _red_pixels(clean) == 0 and _red_pixels(marked) > 100


def test_tensorboard_sink_gets_the_same_rows(tmp_path, monkeypatch):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    monkeypatch.delenv("TENSORBOARD_LOGGING_DIR", raising=False)
    metrics = MetricsLog(tmp_path, load_config(None, ["logging.tensorboard=true"]))
    metrics.log(1, {"objective/kl": 0.5, "note": "text is not a scalar"})
    metrics.log(2, {"objective/kl": 0.75})
    metrics.close()
    events = EventAccumulator(str(tmp_path / "runs"))
    events.Reload()
    assert [(e.step, e.value) for e in events.Scalars("objective/kl")] == [(1, 0.5), (2, 0.75)]
    assert (
        "note" not in events.Tags()["scalars"] and read_metrics(tmp_path)[0]["note"] == "text is not a scalar"
    )


def test_wandb_sink_works_offline(tmp_path, monkeypatch):
    pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    metrics = MetricsLog(tmp_path / "run", load_config(None, ["logging.use_wandb=true"]))
    metrics.log(1, {"objective/kl": 0.5})
    metrics.close()
    (run,) = (tmp_path / "run" / "wandb").glob("offline-run-*")
    assert next(run.glob("*.wandb")).stat().st_size > 0


# ---------------------------------------------------------------- actions in PPO runs


def _ppo(reward_dir, out, *extra):
    return ["ppo", "--config", TINY_CONFIG, "ppo.sft_model_path=tiny-random", f"ppo.reward_model_path={reward_dir}",
            f"ppo.output_dir={out}", f"ppo.prompts_path={ROOT / 'data' / 'prompts.json'}", "ppo.max_prompts=24",
            "ppo.batch_size=4", "ppo.micro_batch_size=2", "ppo.max_new_tokens=6", *extra]  # fmt: skip


def _train_rows(out):
    return [r for r in read_metrics(out) if "objective/score" in r]


def test_raise_kl_and_lower_lr_change_the_next_update(reward_dir, tmp_path):
    out = tmp_path / "out"
    rules = ("monitor.rules=[{name: more_kl, metric: episodes, threshold: 0, cooldown: 100, action: raise_kl, factor: 3},"
             " {name: less_lr, metric: episodes, threshold: 0, cooldown: 100, action: lower_lr, factor: 2}]")  # fmt: skip
    assert main(_ppo(reward_dir, out, "ppo.num_episodes=12", rules)) == 0
    rows = _train_rows(out)
    assert [r["ppo/kl_coef"] for r in rows] == pytest.approx([0.05, 0.15, 0.15])
    # Linear decay over 3 updates x 2 epochs x 2 mini-batches = 12 steps; halved after update 1.
    lr = load_config(TINY_CONFIG).ppo.learning_rate
    assert [r["ppo/lr"] for r in rows] == pytest.approx([lr * 8 / 12, 0.5 * lr * 4 / 12, 0.0], abs=1e-12)
    alerts = read_alerts(out)
    assert [(a["step"], a["rule"], a["action"]) for a in alerts] == [
        (1, "more_kl", "raise_kl"),
        (1, "less_lr", "lower_lr"),
    ]
    assert all(set(a) == ALERT_KEYS for a in alerts) and "0.05 -> 0.15" in alerts[0]["message"]


def test_stop_ends_ppo_early_and_resume_matches_an_uninterrupted_run(reward_dir, tmp_path):
    # lower_lr every third update: the resumed run must remember when it last fired, and the
    # lowered learning rate must come back from the checkpoint.
    lower = "{name: less_lr, metric: episodes, threshold: 0, cooldown: 2, action: lower_lr}"
    halt = "{name: halt, metric: episodes, threshold: 4, action: stop}"
    full, cut = tmp_path / "full", tmp_path / "cut"
    base = ["ppo.num_episodes=20", "ppo.save_every=0"]
    assert main(_ppo(reward_dir, full, *base, f"monitor.rules=[{lower}]")) == 0
    assert main(_ppo(reward_dir, cut, *base, f"monitor.rules=[{lower}, {halt}]")) == 0

    rows = read_metrics(cut)
    assert [r["step"] for r in _train_rows(cut)] == [1, 2]  # stopped after update 2 of 5
    assert rows[-1]["step"] == 2 and "eval/score" in rows[-1]  # the stopped policy was evaluated
    assert [(a["step"], a["rule"]) for a in read_alerts(cut)] == [(1, "less_lr"), (2, "halt")]
    assert "ppo_score" in json.loads((cut / "eval.json").read_text())["held_out"]
    AutoModelForCausalLM.from_pretrained(cut / "policy")
    assert (cut / "plots" / "ppo.png").stat().st_size > 0

    assert main([*_ppo(reward_dir, cut, *base, f"monitor.rules=[{lower}]"), "--resume"]) == 0
    a, b = _train_rows(full), _train_rows(cut)
    assert [r["step"] for r in b] == [1, 2, 3, 4, 5]
    for ra, rb in zip(a, b, strict=True):
        for key in ("ppo/lr", "objective/score", "objective/kl", "loss/policy", "loss/value"):
            assert ra[key] == pytest.approx(rb[key], rel=1e-5, abs=1e-6), (ra["step"], key)
    fired = lambda out: [(x["step"], x["rule"]) for x in read_alerts(out) if x["rule"] == "less_lr"]  # noqa: E731
    assert fired(full) == fired(cut) == [(1, "less_lr"), (4, "less_lr")]


def test_kl_budget_stop_is_an_alert(reward_dir, tmp_path):
    out = tmp_path / "out"
    assert (
        main(_ppo(reward_dir, out, "ppo.num_episodes=16", "ppo.kl_budget=1e-4", "ppo.learning_rate=1e-2"))
        == 0
    )
    rows = _train_rows(out)
    over = [r["step"] for r in rows if r["objective/kl"] > 1e-4]
    assert over == [rows[-1]["step"]] and len(rows) < 4  # stopped at the first update over budget
    (alert,) = [a for a in read_alerts(out) if a["rule"] == "kl_budget"]
    assert (alert["step"], alert["metric"], alert["threshold"], alert["action"]) == (
        over[0],
        "objective/kl",
        1e-4,
        "stop",
    )


def test_tiny_ppo_run_with_default_rules_is_quiet(reward_dir, tmp_path):
    out = tmp_path / "out"
    assert main(_ppo(reward_dir, out, "ppo.num_episodes=12")) == 0
    assert (out / "alerts.jsonl").read_text() == ""
