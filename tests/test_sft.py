import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, AutoTokenizer

from rlhf.cli import main
from rlhf.config import load_config, plan_steps
from rlhf.data import SFTExample, pad_right, tokenize_sft
from rlhf.monitor import read_metrics

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--config", str(ROOT / "configs" / "tiny.yaml"), f"sft.data.path={ROOT / 'data' / 'sft_data.json'}"]


def test_prompt_tokens_contribute_no_loss(tiny_path, tokenizer):
    examples = [SFTExample([{"role": "user", "content": "Name a colour."}], "Blue."),
                SFTExample([{"role": "user", "content": "Count to three, please."}], "One, two, three.")]  # fmt: skip
    features, _ = tokenize_sft(examples, tokenizer, 128, "truncate")
    batch = pad_right(features, tokenizer.pad_token_id)
    model = AutoModelForCausalLM.from_pretrained(tiny_path)
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    logits.retain_grad()
    loss = model.loss_function(logits, batch["labels"], vocab_size=model.config.vocab_size)
    loss.backward()
    grad_per_position = logits.grad.abs().sum(-1)  # (B, T): position t predicts token t + 1
    for i, f in enumerate(features):
        n_prompt = f["labels"].index(next(x for x in f["labels"] if x != -100))
        n = len(f["input_ids"])
        assert torch.all(grad_per_position[i, : n_prompt - 1] == 0)  # predicting prompt tokens: no loss
        assert torch.all(grad_per_position[i, n_prompt - 1 : n - 1] > 0)  # predicting response tokens
        assert torch.all(grad_per_position[i, n - 1 :] == 0)  # past the end (and padding)
    # The loss is the mean cross-entropy over response tokens alone.
    targets = batch["labels"][:, 1:]
    mask = targets != -100
    ce = torch.nn.functional.cross_entropy(logits[:, :-1][mask], targets[mask])
    torch.testing.assert_close(loss, ce)


def _weights(path):
    return load_file(str(Path(path) / "model.safetensors"))


def test_sft_cli_on_tiny_random(tmp_path, tiny_path):
    out = tmp_path / "sft"
    assert main(["sft", *TINY, "--output_dir", str(out), "--num_epochs", "2", "--batch_size", "4"]) == 0

    before, after = _weights(tiny_path), _weights(out)
    assert any(not torch.equal(before[k], after[k]) for k in before)
    model = AutoModelForCausalLM.from_pretrained(out)  # plain transformers, no rlhf
    tokenizer = AutoTokenizer.from_pretrained(out)
    ids = tokenizer("Hello", return_tensors="pt")
    assert model.generate(**ids, max_new_tokens=3, do_sample=False).shape[1] == ids["input_ids"].shape[1] + 3

    saved = load_config(out / "config.yaml")  # the resolved config: flags, file and overrides
    assert (saved.sft.num_epochs, saved.sft.batch_size, saved.sft.model.name) == (2, 4, "tiny-random")

    rows = read_metrics(out)
    evals = [r for r in rows if "loss/eval" in r]
    assert [r["step"] for r in evals][0] == 0 and len(evals) == 3  # before training, then each epoch
    assert evals[-1]["loss/eval"] < evals[0]["loss/eval"]
    # 32 records, 10% held out -> 29 train records / batch 4 -> 8 steps per epoch, 2 epochs.
    assert max(r["step"] for r in rows) == plan_steps(29, 4, 1, 2, None, 0.1)["total_steps"] == 16
    assert all("loss/train" in r and "optim/lr" in r for r in rows if "epoch" in r and "loss/eval" not in r
               and "train/train_loss" not in r)  # fmt: skip
    assert (out / "plots" / "sft.png").stat().st_size > 1000
    assert "eval loss" in (out / "README.md").read_text()


def test_bad_data_fails_before_touching_output(tmp_path, capsys):
    out = tmp_path / "sft"
    out.mkdir()
    (out / "metrics.jsonl").write_text('{"step": 1}\n')
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([{"prompt": "a", "response": "b"}, {"prompt": "c"}]))
    assert main(["sft", *TINY, f"sft.data.path={bad}", "--output_dir", str(out)]) == 2
    assert "bad.json: record 1: missing field 'response'" in capsys.readouterr().err
    assert (out / "metrics.jsonl").read_text() == '{"step": 1}\n'


def test_lora_sft_merges_into_plain_model(tmp_path, tiny_path):
    # With gradient checkpointing too: frozen embeddings must still pass gradients to adapters.
    out = tmp_path / "lora"
    assert main(["sft", *TINY, "--output_dir", str(out), "sft.lora.enabled=true", "sft.lora.r=4",
                 "sft.model.gradient_checkpointing=true", "sft.max_steps=3", "sft.learning_rate=1e-2"]) == 0  # fmt: skip
    assert not (out / "adapter_config.json").exists()
    before, after = _weights(tiny_path), _weights(out)
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed and all("proj" in k for k in changed)  # only adapted layers moved
    assert AutoModelForCausalLM.from_pretrained(out).config.vocab_size == 49152


def test_resume_matches_uninterrupted_run(tmp_path):
    common = [*TINY, "sft.max_steps=6", "sft.save_steps=3", "sft.save_total_limit=0"]
    full, cut = tmp_path / "full", tmp_path / "cut"
    assert main(["sft", *common, "--output_dir", str(full)]) == 0
    assert main(["sft", *common, "--output_dir", str(cut)]) == 0
    # Simulate a run killed after step 3: drop the later checkpoint and the final model.
    import shutil

    shutil.rmtree(cut / "checkpoints" / "checkpoint-6")
    (cut / "model.safetensors").unlink()
    assert main(["sft", *common, "--output_dir", str(cut), "--resume"]) == 0
    a, b = _weights(full), _weights(cut)
    for k in a:
        torch.testing.assert_close(a[k], b[k], atol=1e-6, rtol=1e-5)
    steps = [r["step"] for r in read_metrics(cut) if "loss/train" in r]
    assert steps == [1, 2, 3, 4, 5, 6]  # one uninterrupted history, no repeated steps


@pytest.mark.skipif(torch.cuda.is_available(), reason="fp16 is allowed on a GPU")
def test_fp16_on_cpu_is_a_clear_error(tmp_path, capsys):
    assert main(["sft", *TINY, "--output_dir", str(tmp_path / "x"), "sft.mixed_precision=fp16"]) == 2
    assert "sft.mixed_precision: fp16 needs a GPU" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_resume_without_checkpoint_is_a_clear_error(tmp_path, capsys):
    assert main(["sft", *TINY, "--output_dir", str(tmp_path / "x"), "--resume"]) == 2
    assert "no checkpoint in" in capsys.readouterr().err


@pytest.mark.parametrize("flag", ["--num_epochs", "--batch_size"])
def test_seed_flags_are_typed(flag, capsys):
    with pytest.raises(SystemExit):
        main(["sft", flag, "many"])
    assert "invalid int value" in capsys.readouterr().err


def test_gradient_accumulation_matches_a_large_batch(tmp_path, tiny_path):
    # Batch 8 x accumulation 1 and batch 1 x accumulation 8 see the same records per optimizer
    # step; with the loss normalised over all response tokens of the step, the updates agree.
    common = [*TINY, "sft.max_steps=2", "sft.data.eval_fraction=0", "sft.learning_rate=1e-2"]
    big, small = tmp_path / "big", tmp_path / "small"
    assert main(["sft", *common, "--output_dir", str(big), "--batch_size", "8"]) == 0
    assert main(["sft", *common, "--output_dir", str(small), "--batch_size", "1",
                 "sft.gradient_accumulation_steps=8"]) == 0  # fmt: skip
    a, b = _weights(big), _weights(small)
    base = _weights(tiny_path)
    assert any(not torch.equal(a[k], base[k]) for k in a)
    for k in a:
        torch.testing.assert_close(a[k], b[k], atol=1e-5, rtol=1e-4)
