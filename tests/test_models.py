import pytest
import torch
from transformers import AutoModelForCausalLM, GPT2Config, GPT2LMHeadModel

from rlhf.config import LoraConfig, ModelConfig
from rlhf.data import render_prompt
from rlhf.models import (
    ModelNotFoundError,
    apply_lora,
    count_parameters,
    is_checkpointing,
    load_causal_lm,
    load_tokenizer,
    lora_target_modules,
    resolve_model_path,
    save_model,
)


def test_tiny_random_is_small_and_shares_smollm2_tokenizer(tiny_path, tokenizer):
    model = AutoModelForCausalLM.from_pretrained(tiny_path)
    assert count_parameters(model) < 5_000_000
    assert model.config.vocab_size == len(tokenizer) == 49152
    assert tokenizer.eos_token == tokenizer.pad_token == "<|im_end|>"
    # Built deterministically: a second resolve returns the same cached directory.
    assert resolve_model_path("tiny-random") == tiny_path


def test_builtin_smollm2_converted_and_answers():
    path = resolve_model_path("smollm2-135m-instruct")
    model = load_causal_lm(ModelConfig(name=path))
    assert getattr(model.config, "quantization_config", None) is None
    assert 130e6 < count_parameters(model) < 140e6
    tokenizer = load_tokenizer(path)
    text = render_prompt(tokenizer, [{"role": "user", "content": "What is the capital of France?"}])
    ids = tokenizer(text, return_tensors="pt", add_special_tokens=False)
    out = model.generate(**ids, max_new_tokens=12, do_sample=False)
    assert "Paris" in tokenizer.decode(out[0, ids["input_ids"].shape[1] :])


def test_offline_hub_id_fails_fast_and_names_alternatives():
    with pytest.raises(
        ModelNotFoundError, match=r"model 'someone/missing-model'.*HF_HUB_OFFLINE.*tiny-random"
    ):
        resolve_model_path("someone/missing-model")


def test_missing_local_path(tmp_path):
    with pytest.raises(ModelNotFoundError, match=r"no such directory.*built-in model"):
        resolve_model_path(str(tmp_path / "nothing"))


def test_dtype_and_gradient_checkpointing(tiny_path):
    model = load_causal_lm(ModelConfig(name=tiny_path, dtype="bf16", gradient_checkpointing=True))
    assert model.dtype == torch.bfloat16
    assert is_checkpointing(model)


def test_lora_targets_detected_from_architecture(tiny_path):
    llama = AutoModelForCausalLM.from_pretrained(tiny_path)
    assert lora_target_modules(llama) == [
        "down_proj",
        "gate_proj",
        "k_proj",
        "o_proj",
        "q_proj",
        "up_proj",
        "v_proj",
    ]
    gpt2 = GPT2LMHeadModel(GPT2Config(n_layer=1, n_embd=16, n_head=2, vocab_size=50))
    assert lora_target_modules(gpt2) == ["c_attn", "c_fc", "c_proj"]  # Conv1D, not the lm_head


def test_lora_save_and_merge_round_trip(tiny_path, tmp_path):
    from peft import PeftModel

    torch.manual_seed(0)
    model = apply_lora(
        AutoModelForCausalLM.from_pretrained(tiny_path), LoraConfig(enabled=True, r=4, dropout=0.0)
    )
    assert count_parameters(model, trainable_only=True) < count_parameters(model) / 10
    with torch.no_grad():  # fresh adapters are a no-op (B = 0); make them do something
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.5)
    model.eval()
    ids = torch.tensor([[1, 2, 3, 4, 5]])
    expected = model(ids).logits
    base_logits = AutoModelForCausalLM.from_pretrained(tiny_path)(ids).logits
    assert not torch.allclose(expected, base_logits, atol=1e-3)

    save_model(model, None, tmp_path / "adapters", merge_lora=False)
    assert (tmp_path / "adapters" / "adapter_config.json").exists()
    reloaded = PeftModel.from_pretrained(
        AutoModelForCausalLM.from_pretrained(tiny_path), tmp_path / "adapters"
    )
    torch.testing.assert_close(reloaded.eval()(ids).logits, expected, atol=1e-5, rtol=1e-4)

    save_model(model, None, tmp_path / "merged", merge_lora=True)
    assert not (tmp_path / "merged" / "adapter_config.json").exists()
    merged = AutoModelForCausalLM.from_pretrained(tmp_path / "merged")  # plain transformers
    torch.testing.assert_close(merged(ids).logits, expected, atol=1e-5, rtol=1e-4)
