import contextlib
import hashlib
import io
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from safetensors.torch import load_file

from rlhf.cli import main
from rlhf.config import ConfigError, load_config
from rlhf.monitor import read_metrics
from rlhf.pipeline import STAGE_FILE, plan_pipeline, read_record, references, stage_dirs, write_record

ROOT = Path(__file__).resolve().parents[1]
TINY_CONFIG = str(ROOT / "configs" / "tiny.yaml")
STAGE_DIRS = {"sft": "sft", "reward": "reward", "ppo": "ppo"}


def _args(run: Path, *extra: str) -> list[str]:
    """configs/tiny.yaml made smaller, every stage under `run`, chained as in rlhf_config.yaml:
    the reward model starts from the SFT model, PPO reads both."""
    return [
        "--config", TINY_CONFIG,
        f"sft.output_dir={run / 'sft'}", f"reward.output_dir={run / 'reward'}", f"ppo.output_dir={run / 'ppo'}",
        f"eval.output_dir={run / 'eval'}", f"reward.model.name={run / 'sft'}",
        f"ppo.sft_model_path={run / 'sft'}", f"ppo.reward_model_path={run / 'reward'}",
        f"sft.data.path={ROOT / 'data' / 'sft_data.json'}", "sft.data.max_records=16",
        f"reward.data.path={ROOT / 'data' / 'preference_data.json'}", "reward.data.max_records=16",
        f"ppo.prompts_path={ROOT / 'data' / 'prompts.json'}", "ppo.max_prompts=12", "ppo.num_episodes=8",
        "ppo.batch_size=4", "ppo.micro_batch_size=2", "ppo.max_new_tokens=6", "ppo.save_every=1",
        "eval.max_prompts=2", "eval.max_new_tokens=4", "eval.batch_size=2", "eval.bootstrap_samples=20",
        *extra,
    ]  # fmt: skip


def _pipeline(run: Path, *extra: str) -> tuple[int, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main(["pipeline", *_args(run, *extra)])
    return rc, out.getvalue() + err.getvalue()


def _plan_lines(text: str) -> dict[str, str]:
    """stage -> its line of the printed plan ('  ppo       skip    finished ...')."""
    plan = text.split("== pipeline plan", 1)[1].split("\n==", 1)[0]
    return {m.group(1): m.group(0) for m in re.finditer(r"^  (sft|reward|ppo|evaluate) +\S+ .*$", plan, re.M)}


def _action(text: str, stage: str) -> str:
    return _plan_lines(text)[stage].split()[1]


def _mtimes(d: Path) -> dict[Path, int]:
    return {p: p.stat().st_mtime_ns for p in d.rglob("*") if p.is_file()}


@pytest.fixture(scope="module")
def done(tmp_path_factory):
    """A finished sft -> reward -> ppo run, and what it printed."""
    run = tmp_path_factory.mktemp("pipeline") / "run"
    rc, text = _pipeline(run, "--only", "sft", "reward", "ppo")
    assert rc == 0, text[-3000:]
    return run, text


def _copy(done, tmp_path) -> Path:
    """A copy of the finished run (mtimes kept): a pipeline state the test may change."""
    dst = tmp_path / "run"
    shutil.copytree(done[0], dst)
    return dst


def test_full_run_records_each_stage_and_prints_the_batch_arithmetic_first(done):
    run, text = done
    records = {stage: read_record(run / d) for stage, d in STAGE_DIRS.items()}
    for stage, record in records.items():
        assert record["stage"] == stage and record["status"] == "complete", record
        assert re.fullmatch(r"[0-9a-f]{64}", record["hash"]) and record["started"] < record["finished"]
    assert len({r["hash"] for r in records.values()}) == 3
    # Inputs: the data file's SHA-256, the upstream stages each reads (by following the paths).
    data = (ROOT / "data" / "sft_data.json").read_bytes()
    assert records["sft"]["inputs"]["files"]["sft.data.path"] == "sha256:" + hashlib.sha256(data).hexdigest()
    assert records["sft"]["inputs"]["stages"] == {}
    assert list(records["reward"]["inputs"]["stages"]) == ["sft"]
    assert records["reward"]["inputs"]["config"]["reward.model.name"] == "<sft>"
    assert records["ppo"]["inputs"]["stages"] == {
        "sft": {"hash": records["sft"]["hash"], "finished": records["sft"]["finished"]},
        "reward": {"hash": records["reward"]["hash"], "finished": records["reward"]["finished"]},
    }
    assert "ppo.output_dir" not in records["ppo"]["inputs"]["config"]  # where files go is not in the hash
    assert records["ppo"]["inputs"]["config"]["ppo.kl_coef"] == 0.05
    assert not list(run.rglob(f".{STAGE_FILE}*"))  # atomic writes leave no temporary files
    # The plan, with each stage's derived sizes, comes before any training, and its sizes are the
    # ones the stages print themselves when they start.
    plan = _plan_lines(text)
    assert [_action(text, s) for s in ("sft", "reward", "ppo", "evaluate")] == ["run", "run", "run", "off"]
    planned = re.findall(r"^ {20}(\S.*=.*)$", text.split("\n== sft: running", 1)[0], re.M)
    printed = re.findall(r"^derived sizes: (.*)$", text, re.M)
    assert len(planned) == 3 and len(printed) == 3, (plan, planned, printed)
    assert "train_records=14" in planned[0] and "updates=2" in planned[2]
    for p, q in zip(planned, printed, strict=True):
        assert p == q
    assert text.index("train_records=14") < text.index("trainable parameters")
    # The outputs load, and the root keeps the resolved config of the run.
    assert load_file(str(run / "ppo" / "policy" / "model.safetensors"))
    assert load_config(run / "config.yaml").ppo.output_dir == str(run / "ppo")


def test_rerun_skips_every_finished_stage(done):
    run, _ = done
    before = {p: t for p, t in _mtimes(run).items() if p != run / "config.yaml"}
    rc, text = _pipeline(run, "--only", "sft", "reward", "ppo")
    assert rc == 0, text[-3000:]
    assert [_action(text, s) for s in STAGE_DIRS] == ["skip", "skip", "skip"]
    assert "with the same settings" in _plan_lines(text)["ppo"]
    assert "running ->" not in text and "trainable parameters" not in text  # no stage function ran
    after = {p: t for p, t in _mtimes(run).items() if p != run / "config.yaml"}
    assert after == before  # models, metrics and stage.json untouched


def test_a_changed_ppo_key_reruns_only_ppo(done, tmp_path):
    run = _copy(done, tmp_path)
    before = _mtimes(run)
    # An override after --only's stage names is still an override.
    rc, text = _pipeline(run, "--only", "sft", "reward", "ppo", "ppo.kl_coef=0.1")
    assert rc == 0, text[-3000:]
    assert [_action(text, s) for s in STAGE_DIRS] == ["skip", "skip", "run"]
    assert "ppo.kl_coef: 0.05 -> 0.1" in _plan_lines(text)["ppo"]
    after = _mtimes(run)
    for stage in ("sft", "reward"):
        files = [p for p in before if (run / stage) in p.parents]
        assert files and all(after[p] == before[p] for p in files), stage
    weights = run / "ppo" / "policy" / "model.safetensors"
    assert after[weights] > before[weights]
    record = read_record(run / "ppo")
    assert record["status"] == "complete" and record["inputs"]["config"]["ppo.kl_coef"] == 0.1
    assert load_config(run / "ppo" / "config.yaml").ppo.kl_coef == 0.1
    # Back to the old value: PPO runs again (the hash is of the settings, not a run counter).
    step = plan_pipeline(load_config(TINY_CONFIG, _args(run)[2:]), stages=["ppo"])[2]
    assert (step.action, step.reason) == ("run", "settings changed: ppo.kl_coef: 0.1 -> 0.05")


def test_a_changed_sft_key_reruns_everything_downstream(done, tmp_path):
    run = _copy(done, tmp_path)
    before = _mtimes(run)
    rc, text = _pipeline(run, "--only", "sft", "reward", "ppo", "sft.learning_rate=2e-3")
    assert rc == 0, text[-3000:]
    lines = _plan_lines(text)
    assert [_action(text, s) for s in STAGE_DIRS] == ["run", "run", "run"]
    assert "sft.learning_rate: 0.001 -> 0.002" in lines["sft"]
    assert "upstream stage sft changed" in lines["reward"] and "upstream stage sft changed" in lines["ppo"]
    after = _mtimes(run)
    for weights in ("sft/model.safetensors", "reward/model.safetensors", "ppo/policy/model.safetensors"):
        assert after[run / weights] > before[run / weights], weights
    # SFT retrained on its own (--only sft --force): what read the old SFT model runs again.
    rc, text = _pipeline(run, "--only", "sft", "--force", "sft.learning_rate=2e-3")
    assert rc == 0 and _action(text, "sft") == "run" and _action(text, "reward") == "off"
    plan = {
        s.stage: s for s in plan_pipeline(load_config(TINY_CONFIG, _args(run, "sft.learning_rate=2e-3")[2:]))
    }
    assert plan["sft"].action == "skip"
    assert (plan["reward"].action, plan["reward"].reason) == ("run", "sft was retrained since this stage ran")
    assert plan["ppo"].action == "run"


def test_a_stage_read_as_input_must_be_finished(tmp_path):
    run = tmp_path / "run"
    rc, text = _pipeline(run, "--only", "reward")
    assert rc == 2
    assert f"{run / 'sft'}: the sft stage's output is missing" in text and "--only sft" in text
    assert not (run / "reward").exists()  # it failed before doing anything
    # An interrupted SFT stage is no input either.
    (run / "sft").mkdir(parents=True)
    (run / "sft" / "config.json").write_text("{}")
    write_record(run / "sft", {"stage": "sft", "hash": "0" * 64, "status": "running", "started": "x",
                               "finished": None, "inputs": {}})  # fmt: skip
    rc, text = _pipeline(run, "--only", "reward")
    assert rc == 2 and "the sft stage was interrupted" in text and not (run / "reward").exists()
    # A stage that nothing selected reads is not checked: SFT alone runs here (planning only).
    cfg = load_config(TINY_CONFIG, _args(run)[2:])
    assert [s.action for s in plan_pipeline(cfg, stages=["sft"])][:3] == ["run", "off", "off"]


def test_from_stage_ppo_runs_ppo_and_later_only(done, tmp_path):
    run = _copy(done, tmp_path)
    before = _mtimes(run)
    rc, text = _pipeline(run, "--from_stage", "ppo", "ppo.clip_range=0.3", "sft.learning_rate=2e-3")
    assert rc == 0, text[-3000:]
    lines = _plan_lines(text)
    assert (
        _action(text, "sft") == "use" and _action(text, "reward") == "use" and _action(text, "ppo") == "run"
    )
    # SFT is not selected: its finished output is used as it is, and the plan says it is stale.
    assert "sft.learning_rate: 0.001 -> 0.002" in lines["sft"]
    assert "ppo.clip_range: 0.2 -> 0.3" in lines["ppo"] and "upstream" not in lines["ppo"]
    after = _mtimes(run)
    assert all(
        after[p] == before[p] for p in before if (run / "sft") in p.parents or (run / "reward") in p.parents
    )
    assert (
        after[run / "ppo" / "policy" / "model.safetensors"]
        > before[run / "ppo" / "policy" / "model.safetensors"]
    )
    evaluate = lines["evaluate"].split()[1]
    assert evaluate == "run"


def test_an_interrupted_stage_resumes_from_its_checkpoint(done, tmp_path):
    run = _copy(done, tmp_path)
    # PPO was killed after its first update's checkpoint: the state a SIGKILL leaves.
    record = read_record(run / "ppo")
    write_record(run / "ppo", {**record, "status": "running", "finished": None})
    shutil.rmtree(run / "ppo" / "checkpoints" / "update-2")
    shutil.rmtree(run / "ppo" / "policy")
    rc, text = _pipeline(run, "--only", "sft", "reward", "ppo")
    assert rc == 0, text[-3000:]
    assert [_action(text, s) for s in STAGE_DIRS] == ["skip", "skip", "resume"]
    assert f"resuming from {run / 'ppo' / 'checkpoints' / 'update-1'}" in _plan_lines(text)["ppo"]
    assert "(update 1 of 2)" in text  # train_ppo itself resumed
    assert "update 2/2" in text and "update 1/2" not in text
    assert [r["step"] for r in read_metrics(run / "ppo")] == [0, 1, 2]
    assert (
        read_record(run / "ppo")["status"] == "complete"
        and (run / "ppo" / "policy" / "model.safetensors").exists()
    )
    # An interrupted stage without a checkpoint starts over, and so does everything after it.
    record = read_record(run / "sft")
    write_record(run / "sft", {**record, "status": "running", "finished": None})
    plan = {
        s.stage: s
        for s in plan_pipeline(load_config(TINY_CONFIG, _args(run)[2:]), stages=["sft", "reward", "ppo"])
    }
    assert (plan["sft"].action, plan["sft"].reason) == (
        "run",
        "interrupted, with no checkpoint to resume from: starting over",
    )
    assert (plan["reward"].action, plan["reward"].reason) == (
        "run",
        "sft runs again, so this stage starts over",
    )


def test_trainer_stage_resumes_and_a_changed_data_file_reruns(tmp_path):
    data = tmp_path / "sft.json"
    shutil.copy(ROOT / "data" / "sft_data.json", data)
    run = tmp_path / "run"
    args = ["--only", "sft", f"sft.data.path={data}", "sft.save_steps=2"]
    rc, text = _pipeline(run, *args)
    assert rc == 0, text[-3000:]
    checkpoints = sorted((run / "sft" / "checkpoints").glob("checkpoint-*"))
    assert checkpoints
    write_record(run / "sft", {**read_record(run / "sft"), "status": "running", "finished": None})
    rc, text = _pipeline(run, *args)
    assert rc == 0 and _action(text, "sft") == "resume", text[-3000:]
    assert "resuming from" in text and read_record(run / "sft")["status"] == "complete"
    # Same path, other contents: the stage runs again and says why.
    data.write_text(json.dumps(json.loads(data.read_text())[::-1]))
    cfg = load_config(TINY_CONFIG, [*_args(run)[2:], *args[2:]])
    step = plan_pipeline(cfg, stages=["sft"])[0]
    assert (step.action, step.reason) == (
        "run",
        f"settings changed: sft.data.path: the contents of {data} changed",
    )


def test_references_follow_the_config_paths(tmp_path):
    cfg = load_config(TINY_CONFIG, _args(tmp_path)[2:])
    dirs = stage_dirs(cfg)
    assert references(cfg, "sft", dirs) == []
    assert references(cfg, "reward", dirs) == ["sft"]
    assert references(cfg, "ppo", dirs) == ["sft", "reward"]
    cfg = load_config(TINY_CONFIG, [*_args(tmp_path)[2:], "reward.model.name=tiny-random"])
    assert (
        references(cfg, "reward", dirs) == []
    )  # configs/tiny.yaml: the reward model starts from tiny-random
    with pytest.raises(ConfigError, match="both"):
        plan_pipeline(
            load_config(TINY_CONFIG, [*_args(tmp_path)[2:], f"reward.output_dir={tmp_path / 'sft'}"])
        )
    with pytest.raises(ConfigError, match="unknown stage 'rm'"):
        plan_pipeline(cfg, stages=["rm"])


@pytest.fixture(scope="module")
def evaluated(done, tmp_path_factory):
    """The finished run, copied, then the whole pipeline on it: the evaluation stage runs when
    rlhf.evaluation exists, and is reported as not available when it does not."""
    run = tmp_path_factory.mktemp("evaluated") / "run"
    shutil.copytree(done[0], run)
    rc, text = _pipeline(run)
    assert rc == 0, text[-3000:]
    return run, text


def test_evaluate_stage_runs_last_and_is_skipped_when_finished(evaluated):
    run, text = evaluated
    assert [_action(text, s) for s in ("sft", "reward", "ppo", "evaluate")] == ["skip", "skip", "skip", "run"]
    record = read_record(run / "eval")
    assert record["status"] == "complete"
    assert set(record["inputs"]["stages"]) == {"sft", "reward", "ppo"}  # the policy, its baseline, the judge
    assert record["inputs"]["config"]["eval.model"] == "<ppo>/policy"
    for name in ("eval.json", "eval.md", "table.txt"):
        assert (run / "eval" / name).stat().st_size > 0
    rc, text = _pipeline(run)
    assert rc == 0 and _action(text, "evaluate") == "skip"


def test_demo_prints_the_results_and_where_everything_is(evaluated, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(evaluated[0], run)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["demo", *_args(run)]) == 0
    text = out.getvalue()
    assert set(_plan_lines(text)[s].split()[1] for s in STAGE_DIRS) == {
        "skip"
    }  # all finished: nothing retrains
    assert (
        text.count("\n> ") == 3
        and re.search(r"^SFT \[[+-]\d\.\d\d\] ", text, re.M)
        and re.search(r"^PPO \[", text, re.M)
    )
    where = text.split("== Where everything is", 1)[1]
    named = [Path(p) for p in re.findall(r"(/\S+?)(?:,|\s|\)|$)", where)]
    for path in (run / "sft", run / "reward", run / "ppo" / "policy", run / "ppo" / "plots" / "ppo.png",
                 run / "sft" / "metrics.jsonl", run / "config.yaml"):  # fmt: skip
        assert path in named and path.exists(), path
    assert (run / "report.html").stat().st_size > 0 and f"HTML report    {run / 'report.html'}" in text
    assert (run / "eval" / "table.txt").read_text().rstrip() in text


def test_script_and_cli_help_and_bad_stage_names():
    env_python = [sys.executable, str(ROOT / "scripts" / "train_pipeline.py")]
    res = subprocess.run([*env_python, "--help"], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert "--from_stage" in res.stdout and "--only" in res.stdout and "ppo.kl_coef" in res.stdout
    rc, text = _pipeline(Path("unused"), "--only", "rm")
    assert rc == 2 and "unknown stage 'rm'" in text
