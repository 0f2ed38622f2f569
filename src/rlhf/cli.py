"""The `rlhf` command. Each subcommand: --config FILE, the SEED.md flags, dotted overrides."""

from __future__ import annotations

import argparse
import json
import logging
import sys

from .config import (
    Config,
    ConfigError,
    EvalConfig,
    HackingConfig,
    LoggingConfig,
    MonitorConfig,
    PPOConfig,
    RewardConfig,
    SafetyConfig,
    SFTConfig,
    describe,
    load_config,
)
from .data import DataError

# SEED.md flag -> (config key it sets, type).
SFT_FLAGS = {
    "model_name": ("sft.model.name", str),
    "data_path": ("sft.data.path", str),
    "output_dir": ("sft.output_dir", str),
    "num_epochs": ("sft.num_epochs", int),
    "batch_size": ("sft.batch_size", int),
}
REWARD_FLAGS = {
    "base_model": ("reward.model.name", str),
    "data_path": ("reward.data.path", str),
    "output_dir": ("reward.output_dir", str),
    "num_epochs": ("reward.num_epochs", int),
    "batch_size": ("reward.batch_size", int),
    "ensemble": ("reward.ensemble", int),
}
PPO_FLAGS = {
    "sft_model_path": ("ppo.sft_model_path", str),
    "reward_model_path": ("ppo.reward_model_path", str),
    "prompts_path": ("ppo.prompts_path", str),
    "output_dir": ("ppo.output_dir", str),
    "num_episodes": ("ppo.num_episodes", int),
}
EVAL_FLAGS = {
    "model": ("eval.model", str),
    "baseline": ("eval.baseline", str),
    "reward_model": ("eval.reward_model", str),
    "output_dir": ("eval.output_dir", str),
}


def _stage_parser(
    sub, name: str, help: str, flags: dict[str, tuple[str, type]], sections: list[tuple[type, str]]
):
    keys = [line for cls, prefix in sections for line in describe(cls, prefix)]
    p = sub.add_parser(
        name,
        help=help,
        description=help,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="config keys (set in --config YAML, or as key=value overrides):\n" + "\n".join(keys),
    )
    p.add_argument("--config", help="YAML file with the pipeline's settings (configs/rlhf_config.yaml)")
    for flag, (key, type_) in flags.items():
        p.add_argument(f"--{flag}", type=type_, help=f"sets {key}")
    p.add_argument("--resume", action="store_true", help="continue from the last checkpoint in output_dir")
    p.add_argument(
        "--use_wandb", action="store_true", help="also log to Weights & Biases (sets logging.use_wandb)"
    )
    p.add_argument(
        "overrides", nargs="*", metavar="key=value", help="dotted overrides, e.g. sft.learning_rate=1e-5"
    )
    p.set_defaults(flags=flags)
    return p


def _config(args) -> Config:
    # Flags are overrides too; JSON text is valid YAML, so any path or value survives parsing.
    overrides = [f"{key}={json.dumps(getattr(args, flag))}" for flag, (key, _) in args.flags.items()
                 if getattr(args, flag) is not None]  # fmt: skip
    if args.use_wandb:
        overrides.append("logging.use_wandb=true")
    return load_config(args.config, overrides + list(args.overrides))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="rlhf", description="RLHF pipeline: SFT -> reward model -> PPO -> evaluation.")
    sub = parser.add_subparsers(dest="command", required=True)
    _stage_parser(sub, "sft", "Stage 1: supervised fine-tuning.", SFT_FLAGS,
                  [(SFTConfig, "sft"), (SafetyConfig, "safety"), (MonitorConfig, "monitor"),
                   (LoggingConfig, "logging")])  # fmt: skip
    _stage_parser(sub, "reward", "Stage 2: reward model (or an ensemble) on preference pairs.", REWARD_FLAGS,
                  [(RewardConfig, "reward"), (SafetyConfig, "safety"), (MonitorConfig, "monitor"),
                   (LoggingConfig, "logging")])  # fmt: skip
    _stage_parser(sub, "ppo", "Stage 3: PPO against the reward model.", PPO_FLAGS,
                  [(PPOConfig, "ppo"), (SafetyConfig, "safety"), (HackingConfig, "hacking"),
                   (MonitorConfig, "monitor"), (LoggingConfig, "logging")])  # fmt: skip
    _stage_parser(sub, "evaluate", "Helpfulness, harmlessness and honesty of --model, side by side with --baseline "
                  "(bootstrap intervals).", EVAL_FLAGS,
                  [(EvalConfig, "eval"), (SafetyConfig, "safety"), (LoggingConfig, "logging")])  # fmt: skip
    gen = sub.add_parser("generate", help="Answer prompts with a trained model (interactive without --prompt).")
    gen.add_argument("--model", required=True, help="model directory, built-in name or cached hub id")
    gen.add_argument("--tokenizer", help="tokenizer directory (default: the model's, else ../tokenizer beside it)")
    gen.add_argument("--prompt", action="append", help="a prompt; repeat for several; none = read lines from stdin")
    gen.add_argument("--max_new_tokens", type=int, default=128)
    gen.add_argument("--temperature", type=float, default=0.7, help="0 = greedy")
    gen.add_argument("--top_k", type=int, default=0)
    gen.add_argument("--top_p", type=float, default=1.0)
    gen.add_argument("--seed", type=int, default=None)
    gen.add_argument("--safety_filter", action="store_true",
                     help="replace an unsafe answer with safety.refusal_message (and say so on stderr)")
    gen.add_argument("--config", help="YAML file whose safety section configures --safety_filter")
    gen.set_defaults(overrides=[])
    pipe = sub.add_parser(
        "pipeline", help="All stages from one config: SFT, reward model, PPO, evaluation; finished ones are skipped.",
        description="SFT -> reward model -> PPO -> evaluation from one config. A re-run skips finished stages,\n"
                    "resumes an interrupted one and reruns what the config or data changed (OUTPUT/stage.json).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="config keys (set in --config YAML, or as key=value overrides):\n" + "\n".join(describe(Config)),
    )  # fmt: skip
    pipe.add_argument("--config", help="YAML file with the pipeline's settings (configs/rlhf_config.yaml)")
    pipe.add_argument("--only", nargs="+", metavar="STAGE", help="run just these stages: sft reward ppo evaluate")
    pipe.add_argument("--from_stage", metavar="STAGE", help="run this stage and every later one")
    pipe.add_argument("--force", action="store_true", help="run the selected stages from scratch, even when finished")
    pipe.add_argument("--use_wandb", action="store_true", help="also log to Weights & Biases (sets logging.use_wandb)")
    pipe.add_argument("overrides", nargs="*", metavar="key=value", help="dotted overrides, e.g. ppo.kl_coef=0.1")
    pipe.set_defaults(flags={})
    demo = sub.add_parser("demo", help="Run the pipeline on the built-in model and the sample data.")
    demo.add_argument("--config", default="configs/demo.yaml")
    demo.add_argument("overrides", nargs="*", metavar="key=value")
    rep = sub.add_parser("report", help="Write one self-contained HTML report of a stage or pipeline directory.")
    rep.add_argument("run_dir", help="a stage's output directory, or a pipeline root holding stage directories")
    rep.add_argument("--output", help="HTML file to write (default: RUN_DIR/report.html)")
    rep.set_defaults(overrides=[])
    # Overrides may stand anywhere among the flags; argparse only takes them in one block.
    args, extra = parser.parse_known_args(argv)
    unknown = [a for a in extra if a.startswith("-") or "=" not in a]
    if unknown or (extra and args.command in ("generate", "report")):
        parser.error(f"unrecognized arguments: {' '.join(unknown or extra)}")
    args.overrides += extra
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("rlhf").setLevel(logging.INFO)

    try:
        if args.command == "sft":
            from .sft import train_sft

            cfg = _config(args)
            out = train_sft(cfg, resume=args.resume)
            print(f"SFT model saved to {out}")
        elif args.command == "reward":
            from .reward_model import train_reward_model

            out = train_reward_model(_config(args), resume=args.resume)
            print(f"reward model saved to {out}")
        elif args.command == "ppo":
            from .ppo import train_ppo

            out = train_ppo(_config(args), resume=args.resume)
            print(f"PPO policy saved to {out / 'policy'}, tokenizer to {out / 'tokenizer'}")
        elif args.command == "evaluate":
            from .evaluation import evaluate_stage

            out = evaluate_stage(_config(args), resume=args.resume)
            print(f"evaluation written to {out}")
        elif args.command == "generate":
            _generate(args)
        elif args.command == "pipeline":
            from .pipeline import run_pipeline

            # `--only sft a.b=1`: the override is not a stage. Overrides keep their command-line order.
            only = [a for a in args.only or [] if "=" not in a]
            given = list(sys.argv[1:] if argv is None else argv)
            args.overrides = sorted(args.overrides + [a for a in args.only or [] if "=" in a], key=given.index)
            outs = run_pipeline(_config(args), stages=only or None, from_stage=args.from_stage, resume=not args.force)
            print("\n".join(["", "outputs:", *(f"  {stage:<9} {out}" for stage, out in outs.items())]))
        elif args.command == "demo":
            from .demo import run_demo

            run_demo(load_config(args.config, args.overrides))
        elif args.command == "report":
            from .report import write_report

            print(f"report written to {write_report(args.run_dir, args.output)}")
    except (ConfigError, DataError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


def _generate(args) -> None:
    """`rlhf generate`: answers to --prompt, or to each line typed on stdin until EOF."""
    import torch

    from .models import ModelConfig, load_causal_lm, load_tokenizer, model_dirs
    from .rollout import answer
    from .safety import SafetyFilter

    safety = SafetyFilter(load_config(args.config).safety) if args.safety_filter else None

    def shown(text: str) -> str:
        verdict = safety.check([text])[0] if safety else None
        if verdict and verdict.unsafe:
            print(f"safety filter: answer replaced ({', '.join(verdict.categories)})", file=sys.stderr)
            return safety.cfg.refusal_message
        return text.strip()

    model_dir, tokenizer_dir = model_dirs(args.model)
    tokenizer = load_tokenizer(args.tokenizer or tokenizer_dir, padding_side="left")
    model = load_causal_lm(ModelConfig(name=model_dir)).eval()
    if args.seed is not None:
        torch.manual_seed(args.seed)
    options = dict(max_new_tokens=args.max_new_tokens, temperature=args.temperature, top_k=args.top_k, top_p=args.top_p)
    if args.prompt:
        for text in answer(model, tokenizer, [[{"role": "user", "content": p}] for p in args.prompt], **options):
            print(shown(text))
        return
    print("Type a prompt and press Enter; Ctrl-D ends.", file=sys.stderr)
    for line in sys.stdin:
        if line.strip():
            print(shown(answer(model, tokenizer, [[{"role": "user", "content": line.strip()}]], **options)[0]), flush=True)


if __name__ == "__main__":
    sys.exit(main())
