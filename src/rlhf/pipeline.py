"""The whole pipeline from one config: SFT -> reward model -> PPO -> evaluation.

`run_pipeline(config)` plans every stage before any training, prints the plan with each stage's
batch arithmetic, then runs what the plan says. Each stage's output directory gets `stage.json`:

    {"stage": "ppo", "hash": "<sha256>", "status": "running" | "complete",
     "started": "<UTC ISO time>", "finished": "<UTC ISO time>" | null,
     "inputs": {"config": {dotted key: value}, "files": {dotted key: "sha256:..."},
                "stages": {"sft": {"hash": ..., "finished": ...}, ...}}}

`hash` is the SHA-256 of what decides the stage's result (the `inputs`, without the upstream
`finished` times):
- config: the stage's section (`sft`, `reward`, `ppo`, `eval`) flattened to dotted keys, plus the
  sections the stage reads besides its own (CROSS_SECTIONS). Left out: `output_dir` and the
  checkpoint cadence (UNHASHED: where and how often files are written, not what is learned) and
  `logging` (sinks and plots). A value naming an upstream stage's output directory is written as
  `<sft>`, so moving a run directory and its paths together keeps the hashes.
- files: the SHA-256 of every existing file a config value names (the data), and a fingerprint
  (file names, sizes, modification times) of a local directory that no stage here writes (a
  local base model).
- stages: the hash of every upstream stage whose output the stage reads, found by following the
  config's paths (reward.model.name == sft.output_dir: reward reads SFT; evaluation, by default,
  reads PPO's policy, the SFT model and the reward model).
Code is not part of the hash: after changing the code, rerun with --force.

A re-run decides per selected stage: finished with the same hash -> skip; interrupted (status
running) with the same hash -> resume from its last checkpoint, or start over without one; a new
hash, an upstream stage that runs again or was retrained since -> run from scratch, saying why.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import os
import re
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from .config import Config, ConfigError, ppo_sizes, save_config

STAGES = ("sft", "reward", "ppo", "evaluate")
SECTION = {"sft": "sft", "reward": "reward", "ppo": "ppo", "evaluate": "eval"}
# Sections besides its own that change a stage's result: the safety filter screens SFT and
# reward-model training data, penalises PPO scores and judges harmlessness in the evaluation;
# alerts can stop any training run; reward-hacking remedies are PPO score terms.
CROSS_SECTIONS = {
    "sft": ("safety", "monitor"),
    "reward": ("safety", "monitor"),
    "ppo": ("safety", "monitor", "hacking"),
    "evaluate": ("safety",),
}
UNHASHED = {"output_dir", "save_steps", "save_total_limit", "save_every"}
STAGE_FILE = "stage.json"


@dataclass
class Step:
    """One stage's place in a run: what happens to it and why."""

    stage: str
    out: Path
    action: str  # run | resume | skip | use (not selected, read by a later stage) | off (not selected)
    reason: str
    inputs: dict
    hash: str
    sizes: str = ""


# ---------------------------------------------------------------- stage.json


def read_record(out: Path) -> dict | None:
    """OUT/stage.json, or None when there is none."""
    path = Path(out) / STAGE_FILE
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ConfigError(f"{path}: not valid JSON ({e}); delete it to run the stage again") from None


def write_record(out: Path, record: dict) -> None:
    """Written to a temporary file and renamed, so a kill leaves the old record or the new one."""
    path = Path(out) / STAGE_FILE
    tmp = path.with_name(f".{STAGE_FILE}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(record, indent=1) + "\n")
    os.replace(tmp, path)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="microseconds")


# ---------------------------------------------------------------- what a stage reads


def stage_dirs(config: Config) -> dict[str, Path]:
    return {s: Path(getattr(config, SECTION[s]).output_dir) for s in STAGES}


def _flatten(tree: dict, prefix: str) -> dict:
    flat = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}.{key}"))
        else:
            flat[f"{prefix}.{key}"] = value
    return flat


def _section_values(config: Config, stage: str) -> dict:
    if stage == "evaluate":  # eval.model, baseline, reward_model left empty name PPO's models
        from .evaluation import resolve_eval_config

        config = dataclasses.replace(config, eval=resolve_eval_config(config))
    values = {}
    for name in (SECTION[stage], *CROSS_SECTIONS[stage]):
        values.update(_flatten(dataclasses.asdict(getattr(config, name)), name))
    return {k: v for k, v in values.items() if k.rsplit(".", 1)[-1] not in UNHASHED}


def _path_kind(value: str) -> str | None:
    """ "file" or "dir" when a config string names an existing path; None for any other text."""
    try:
        return "file" if Path(value).is_file() else "dir" if Path(value).is_dir() else None
    except (OSError, ValueError):  # a long prompt or pattern is no file name
        return None


def _upstream_of(value: str, stage: str, dirs: dict[str, Path]) -> tuple[str, str] | None:
    """(upstream stage, path inside its output) when `value` names an earlier stage's output."""
    if not value or "\n" in value or "\0" in value:
        return None
    path = Path(value).resolve()
    for up in STAGES[: STAGES.index(stage)]:
        if up in dirs and path.is_relative_to(dirs[up].resolve()):
            return up, path.relative_to(dirs[up].resolve()).as_posix()
    return None


def references(config: Config, stage: str, dirs: dict[str, Path]) -> list[str]:
    """Upstream stages whose outputs `stage` reads, in pipeline order."""
    found = {up[0] for v in _section_values(config, stage).values() if isinstance(v, str)
             for up in [_upstream_of(v, stage, dirs)] if up}  # fmt: skip
    return [s for s in STAGES if s in found and s in dirs]


def file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return "sha256:" + h.hexdigest()


def dir_fingerprint(path: Path) -> str:
    """Names, sizes and modification times of every file under `path`: a local model that no
    stage here wrote is taken as changed when any of its files is (reading gigabytes of weights
    on every run would cost more than the check is worth)."""
    h = hashlib.sha256()
    for root, dirnames, files in os.walk(path):
        dirnames.sort()
        for name in sorted(files):
            st = os.stat(os.path.join(root, name))
            h.update(
                f"{os.path.relpath(os.path.join(root, name), path)}\0{st.st_size}\0{st.st_mtime_ns}\n".encode()
            )
    return "dir:" + h.hexdigest()


def stage_inputs(config: Config, stage: str, dirs: dict[str, Path], known: dict[str, dict]) -> dict:
    """The `inputs` of stage.json; `known[up]` = {"hash", "finished"} of each upstream stage."""
    cfg, files = {}, {}
    for key, value in _section_values(config, stage).items():
        if isinstance(value, str):
            up = _upstream_of(value, stage, dirs)
            if up:
                value = f"<{up[0]}>" + (f"/{up[1]}" if up[1] != "." else "")
            elif value and _path_kind(value) == "file":
                files[key] = file_digest(Path(value))
            elif value and _path_kind(value) == "dir":
                files[key] = dir_fingerprint(Path(value))
        cfg[key] = value
    stages = {
        up: dict(known.get(up) or {"hash": None, "finished": None}) for up in references(config, stage, dirs)
    }
    inputs = {"config": cfg, "files": files, "stages": stages}
    return json.loads(json.dumps(inputs))  # the values as stage.json reads them back (tuples as lists)


def inputs_hash(inputs: dict) -> str:
    identity = {**inputs, "stages": {up: v["hash"] for up, v in inputs["stages"].items()}}
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()


def describe_changes(old: dict, new: dict, limit: int = 6) -> list[str]:
    """What differs between two `inputs`: changed config keys, data files, upstream stages."""
    changes = []
    old_cfg, new_cfg = old.get("config", {}), new["config"]
    for key in sorted(set(old_cfg) | set(new_cfg)):
        if old_cfg.get(key, "(unset)") != new_cfg.get(key, "(unset)"):
            changes.append(f"{key}: {old_cfg.get(key, '(unset)')!r} -> {new_cfg.get(key, '(unset)')!r}")
    for key in sorted(set(old.get("files", {})) | set(new["files"])):
        if (
            old.get("files", {}).get(key) != new["files"].get(key)
            and key in new_cfg
            and old_cfg.get(key) == new_cfg[key]
        ):
            changes.append(f"{key}: the contents of {new_cfg[key]} changed")
    for up in new["stages"]:
        if old.get("stages", {}).get(up, {}).get("hash") != new["stages"][up]["hash"]:
            changes.append(f"upstream stage {up} changed")
    return changes[:limit] + ([f"and {len(changes) - limit} more"] if len(changes) > limit else [])


# ---------------------------------------------------------------- checkpoints and outputs


def _last_numbered(root: Path, prefix: str) -> Path | None:
    """The checkpoint with the highest number: ROOT/PREFIX-N (Trainer's checkpoint-N, PPO's update-N)."""
    pattern = re.compile(rf"^{prefix}-(\d+)$")
    found = (
        [p for p in root.glob(f"{prefix}-*") if p.is_dir() and pattern.match(p.name)] if root.is_dir() else []
    )
    return max(found, key=lambda p: int(p.name.rsplit("-", 1)[1]), default=None)


def checkpoint(config: Config, stage: str, out: Path) -> Path | None:
    """Where an interrupted stage resumes from, or None when it has to start over."""
    if stage == "ppo":
        return _last_numbered(out / "checkpoints", "update")
    if stage == "reward" and config.reward.ensemble > 1:
        # train_reward_model keeps finished members and resumes each member from its checkpoints.
        members = [out / f"member_{i}" for i in range(config.reward.ensemble)]
        done = [
            m
            for m in members
            if (m / "eval.json").exists() or _last_numbered(m / "checkpoints", "checkpoint")
        ]
        return done[-1] if done else None
    if stage in ("sft", "reward"):
        return _last_numbered(out / "checkpoints", "checkpoint")
    return None  # evaluation starts over


def outputs_exist(stage: str, out: Path) -> bool:
    """The file each stage writes last (besides stage.json) is there."""
    marker = {"sft": ["config.json"], "reward": ["config.json", "ensemble.json"],
              "ppo": ["policy/config.json"], "evaluate": ["eval.json"]}[stage]  # fmt: skip
    return any((out / m).exists() for m in marker)


# ---------------------------------------------------------------- batch arithmetic


def batch_arithmetic(config: Config, stage: str) -> str:
    """The derived sizes a stage prints at its start, from cheaply loaded data files. Records are
    counted before safety screening and tokenization: with safety.training_data=drop or
    data.overlong=drop the stage's own count, printed when it starts, can be smaller."""
    from .data import load_preferences, load_prompts, load_sft, split
    from .sft import trainer_sizes

    if stage in ("sft", "reward"):
        cfg = getattr(config, stage)
        load = load_sft if stage == "sft" else load_preferences
        n_train = len(split(load(cfg.data.path, cfg.data.max_records), cfg.data.eval_fraction, cfg.seed)[0])
        text = ", ".join(f"{k}={v}" for k, v in trainer_sizes(cfg, n_train).items())
        return text + (
            f" (each of {cfg.ensemble} ensemble members)" if stage == "reward" and cfg.ensemble > 1 else ""
        )
    if stage == "ppo":
        cfg = config.ppo
        train, held = split(load_prompts(cfg.prompts_path, cfg.max_prompts), cfg.eval_fraction, cfg.seed)
        sizes = {**ppo_sizes(cfg), "train_prompts": len(train), "eval_prompts": len(held)}
        return ", ".join(f"{k}={v}" for k, v in sizes.items())
    return ""


# ---------------------------------------------------------------- planning


def select(stages: list[str] | None, from_stage: str | None) -> list[str]:
    for name in [*(stages or []), *([from_stage] if from_stage else [])]:
        if name not in STAGES:
            raise ConfigError(f"unknown stage {name!r}; stages: {', '.join(STAGES)}")
    if stages and from_stage:
        raise ConfigError("give --only or --from_stage, not both")
    if stages:
        return [s for s in STAGES if s in stages]
    return list(STAGES[STAGES.index(from_stage) :] if from_stage else STAGES)


def plan_pipeline(
    config: Config, stages: list[str] | None = None, from_stage: str | None = None, resume: bool = True
) -> list[Step]:
    """What happens to every stage and why, decided before anything runs. Fails at once when a
    stage that is not selected is needed as input and has no finished output."""
    selected = select(stages, from_stage)
    dirs = stage_dirs(config)
    for a, b in itertools.combinations(dirs, 2):
        if dirs[a].resolve() == dirs[b].resolve():  # one stage.json each
            raise ConfigError(f"{SECTION[a]}.output_dir and {SECTION[b]}.output_dir are both {dirs[a]}; "
                              "give each stage its own")  # fmt: skip
    needed = {up for s in selected if s in dirs for up in references(config, s, dirs)} - set(selected)

    plan: list[Step] = []
    known: dict[str, dict] = {}  # the hash and finish time each downstream stage will see
    runs_now: set[str] = set()
    for stage in STAGES:
        out = dirs[stage]
        inputs = stage_inputs(config, stage, dirs, known)
        digest = inputs_hash(inputs)
        record = read_record(out)
        if stage not in selected:
            action, reason = "off", "not selected"
            if record and record.get("status") == "complete":
                known[stage] = {"hash": record["hash"], "finished": record["finished"]}
            if stage in needed:
                reason = _check_input(stage, out, record, inputs, digest, known)
                action = "use"
            plan.append(Step(stage, out, action, reason, inputs, digest))
            continue
        action, reason = _decide(config, stage, out, record, inputs, digest, resume, runs_now)
        if action == "skip":
            known[stage] = {"hash": digest, "finished": record["finished"]}
        else:
            known[stage] = {"hash": digest, "finished": None}
            runs_now.add(stage)
        plan.append(Step(stage, out, action, reason, inputs, digest, batch_arithmetic(config, stage)))
    return plan


def _check_input(stage: str, out: Path, record: dict | None, inputs: dict, digest: str, known: dict) -> str:
    """A stage that is not selected but read by one that is: its finished output must be there."""
    hint = f"run it first (rlhf pipeline --only {stage}) or select it too"
    if not outputs_exist(stage, out):
        raise FileNotFoundError(
            f"{out}: the {stage} stage's output is missing, and a selected stage reads it; {hint}"
        )
    if record is None:  # written by `rlhf sft` and co., or copied in: take it as it is
        known[stage] = {"hash": dir_fingerprint(out), "finished": None}
        return (
            f"not selected; its output in {out} (no {STAGE_FILE}: not made by the pipeline) is read as it is"
        )
    if record.get("status") != "complete":
        raise FileNotFoundError(f"{out}: the {stage} stage was interrupted ({STAGE_FILE} status "
                                f"{record.get('status')!r}), and a selected stage reads it; {hint}")  # fmt: skip
    note = ""
    if record["hash"] != digest:
        note = (
            "; made with other settings than these ("
            + "; ".join(describe_changes(record["inputs"], inputs))
            + ")"
        )
    return f"not selected; its finished output in {out} is read as it is{note}"


def _decide(config, stage, out, record, inputs, digest, resume, runs_now) -> tuple[str, str]:
    if not resume:
        return "run", "--force: from scratch"
    if record is None:
        return "run", f"no {STAGE_FILE} in {out}: not run by the pipeline before"
    if record.get("hash") != digest:
        changes = describe_changes(record.get("inputs", {}), inputs)
        return "run", "settings changed: " + ("; ".join(changes) or "hash differs")
    for up in inputs["stages"]:
        if up in runs_now:
            return "run", f"{up} runs again, so this stage starts over"
        if record["inputs"]["stages"][up].get("finished") != inputs["stages"][up]["finished"]:
            return "run", f"{up} was retrained since this stage ran"
    if record.get("status") == "complete":
        if outputs_exist(stage, out):
            return "skip", f"finished {record['finished'][:19]} with the same settings (hash {digest[:12]})"
        return "run", f"finished before, but its output in {out} is missing"
    ckpt = checkpoint(config, stage, out)
    if ckpt is None:
        return "run", "interrupted, with no checkpoint to resume from: starting over"
    return "resume", f"interrupted; resuming from {ckpt}"


def print_plan(plan: list[Step]) -> None:
    print("== pipeline plan (sizes derived before training, from the records before any are dropped)")
    for step in plan:
        print(f"  {step.stage:<9} {step.action:<7} {step.reason}")
        if step.sizes:
            print(f"  {'':<9} {'':<7} {step.sizes}")


# ---------------------------------------------------------------- running


def _runner(stage: str):
    if stage == "sft":
        from .sft import train_sft

        return train_sft
    if stage == "reward":
        from .reward_model import train_reward_model

        return train_reward_model
    if stage == "ppo":
        from .ppo import train_ppo

        return train_ppo
    from .evaluation import evaluate_stage

    return evaluate_stage


def pipeline_root(dirs: dict[str, Path]) -> Path | None:
    """The directory every stage's output sits in (models/demo for configs/demo.yaml), or None."""
    parents = {Path(d).resolve().parent for d in dirs.values()}
    return Path(next(iter(dirs.values()))).parent if len(parents) == 1 and len(dirs) > 1 else None


def run_pipeline(
    config: Config, stages: list[str] | None = None, from_stage: str | None = None, resume: bool = True
) -> dict[str, Path]:
    """Run the selected stages in order: all of them, `stages` only (--only), or `from_stage` and
    every later one (--from_stage). `resume=False` (--force) runs every selected stage from
    scratch. Returns {stage: output directory} of the selected stages."""
    plan = plan_pipeline(config, stages, from_stage, resume)
    print_plan(plan)
    root = pipeline_root(stage_dirs(config))
    if root:  # `rlhf pipeline --config ROOT/config.yaml` repeats the run; `rlhf report ROOT` shows it
        root.mkdir(parents=True, exist_ok=True)
        save_config(config, root / "config.yaml")
    for step in plan:
        if step.action not in ("run", "resume"):
            continue
        print(f"\n== {step.stage}: {'resuming' if step.action == 'resume' else 'running'} -> {step.out}")
        # The upstream finish times are known now that the upstream stages have run.
        for up, seen in step.inputs["stages"].items():
            up_record = read_record(next(s.out for s in plan if s.stage == up))
            seen["finished"] = up_record.get("finished") if up_record else None
        record = {"stage": step.stage, "hash": step.hash, "status": "running", "started": _now(),
                  "finished": None, "inputs": step.inputs}  # fmt: skip
        step.out.mkdir(parents=True, exist_ok=True)
        write_record(step.out, record)
        start = time.time()
        _runner(step.stage)(config, resume=step.action == "resume")
        write_record(step.out, {**record, "status": "complete", "finished": _now()})
        print(f"== {step.stage} finished in {time.time() - start:.0f} s: {step.out}")
    return {s.stage: s.out for s in plan if s.action in ("run", "resume", "skip")}
