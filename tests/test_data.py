import json
import logging

import pytest
import torch

from rlhf.data import (
    IGNORE_INDEX,
    DataError,
    SFTExample,
    encode_pair,
    load_preferences,
    load_prompts,
    load_sft,
    pad_right,
    render_prompt,
    render_response,
    split,
    tokenize_sft,
)


def write(tmp_path, name, content):
    path = tmp_path / name
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    return path


GOOD = {"prompt": "What is rain?", "response": "Water falling from clouds."}


@pytest.mark.parametrize(
    "content, message",
    [
        ('[{"prompt": "a", ', r"d\.json: invalid JSON at line 1 column"),
        ({"prompt": "a", "response": "b"}, r"d\.json: top level must be a JSON array of records, got dict"),
        ([GOOD, "just text"], r"d\.json: record 1: must be a JSON object, got str"),
        ([GOOD, {"prompt": "Hi"}], r"d\.json: record 1: missing field 'response'"),
        ([{"prompt": "  ", "response": "b"}], r"d\.json: record 0: field 'prompt' is empty"),
        ([{"prompt": "a", "response": 3}], r"d\.json: record 0: field 'response' must be a string, got int"),
        ([], r"d\.json: holds no records"),
        (
            [{"messages": [{"role": "user", "content": "hi"}]}],
            r"record 0: field 'messages' must hold a user turn and end",
        ),
        (
            [{"messages": [{"role": "bot", "content": "hi"}]}],
            r"record 0: field 'messages\[0\]': role must be one of",
        ),
        ([{"messages": [{"role": "user"}]}], r"record 0: field 'messages\[0\]': missing field 'content'"),
    ],
)
def test_sft_bad_input_names_file_record_field(tmp_path, content, message):
    with pytest.raises(DataError, match=message):
        load_sft(write(tmp_path, "d.json", content))


def test_jsonl_errors_name_the_line(tmp_path):
    path = write(tmp_path, "d.jsonl", json.dumps(GOOD) + "\n{oops\n")
    with pytest.raises(DataError, match=r"d\.jsonl: line 2: invalid JSON"):
        load_sft(path)
    path = write(tmp_path, "e.jsonl", json.dumps(GOOD) + "\n\n" + json.dumps({"prompt": "x"}) + "\n")
    with pytest.raises(DataError, match=r"e\.jsonl: line 3: missing field 'response'"):
        load_sft(path)


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match=r"nope\.json: cannot read"):
        load_sft(tmp_path / "nope.json")


def test_sft_formats(tmp_path):
    chat = {"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"},
                         {"role": "assistant", "content": "Hello!"}]}  # fmt: skip
    examples = load_sft(write(tmp_path, "d.json", [GOOD, chat]))
    assert examples[0] == SFTExample(
        [{"role": "user", "content": "What is rain?"}], "Water falling from clouds."
    )
    assert examples[1].prompt == chat["messages"][:2] and examples[1].response == "Hello!"
    jsonl = write(tmp_path, "d.jsonl", "\n".join(json.dumps(r) for r in [GOOD, chat]))
    assert load_sft(jsonl) == examples


def test_duplicates_warn(tmp_path, caplog):
    with caplog.at_level(logging.WARNING):
        examples = load_sft(write(tmp_path, "d.json", [GOOD, {"prompt": "b", "response": "c"}, GOOD]))
    assert len(examples) == 3  # kept: a warning, not an error
    assert "d.json: record 2: duplicates record 0" in caplog.text


def test_preferences(tmp_path):
    pairs = [{"prompt": "p", "chosen": "good", "rejected": "bad", "margin": 2},
             {"prompt": [{"role": "user", "content": "q"}], "chosen": [{"role": "assistant", "content": "yes"}],
              "rejected": "no"}]  # fmt: skip
    examples = load_preferences(write(tmp_path, "p.json", pairs))
    assert examples[0].margin == 2.0 and examples[1].margin is None
    assert examples[1].chosen == "yes" and examples[1].prompt == [{"role": "user", "content": "q"}]


@pytest.mark.parametrize(
    "record, message",
    [
        (
            {"prompt": "p", "chosen": "same", "rejected": "same "},
            r"p\.json: record 0: field 'rejected' is identical to 'chosen'",
        ),
        ({"prompt": "p", "chosen": "a"}, r"record 0: missing field 'rejected'"),
        ({"prompt": "p", "chosen": "", "rejected": "b"}, r"record 0: field 'chosen' is empty"),
        (
            {"prompt": "p", "chosen": ["a"], "rejected": "b"},
            r"record 0: field 'chosen\[0\]': must be an object",
        ),
        (
            {"prompt": "p", "chosen": "a", "rejected": "b", "margin": "big"},
            r"field 'margin' must be a number",
        ),
    ],
)
def test_preference_bad_input(tmp_path, record, message):
    with pytest.raises(DataError, match=message):
        load_preferences(write(tmp_path, "p.json", [record]))


def test_prompts(tmp_path):
    prompts = load_prompts(write(tmp_path, "q.json", ["What is AI?", {"prompt": "Hi"}]))
    assert prompts == [[{"role": "user", "content": "What is AI?"}], [{"role": "user", "content": "Hi"}]]
    with pytest.raises(DataError, match=r"q\.json: record 1: prompt is empty"):
        load_prompts(write(tmp_path, "q.json", ["ok", ""]))
    with pytest.raises(DataError, match=r"q\.json: record 0: must be a string or an object, got int"):
        load_prompts(write(tmp_path, "q.json", [5]))


def test_split_is_deterministic_and_disjoint():
    records = list(range(50))
    train, held = split(records, 0.2, seed=1)
    assert (train, held) == split(records, 0.2, seed=1)
    assert len(held) == 10 and sorted(train + held) == records
    assert split(records, 0.2, seed=2)[1] != held
    assert split(records, 0.0, seed=1) == (records, [])


def test_chat_template_rendering(tokenizer):
    msgs = [{"role": "user", "content": "Hi"}]
    prompt = render_prompt(tokenizer, msgs)
    assert prompt.endswith("<|im_start|>assistant\n")
    assert render_response(tokenizer, msgs, "Hello.") == "Hello.<|im_end|>"
    prompt_ids, response_ids = encode_pair(tokenizer, msgs, "Hello.")
    assert response_ids[-1] == tokenizer.eos_token_id
    assert tokenizer.decode(prompt_ids + response_ids).startswith("<|im_start|>system")


def test_plain_format_without_chat_template(tokenizer):
    plain = tokenizer.__class__.from_pretrained(tokenizer.name_or_path)
    plain.chat_template = None
    msgs = [{"role": "user", "content": "Hi"}]
    assert render_prompt(plain, msgs) == "User: Hi\n\nAssistant:"
    assert render_response(plain, msgs, "Hello.") == " Hello.<|im_end|>"


def test_overlong_records_truncated_or_dropped(tokenizer):
    examples = [SFTExample([{"role": "user", "content": "Hi"}], "word " * 200),
                SFTExample([{"role": "user", "content": "Hi"}], "Short.")]  # fmt: skip
    prompt_len = len(encode_pair(tokenizer, examples[0].prompt, "x")[0])
    features, stats = tokenize_sft(examples, tokenizer, max_length=prompt_len + 10, overlong="truncate")
    assert (stats.records, stats.truncated, stats.dropped) == (2, 1, 0)
    assert len(features[0]["input_ids"]) == prompt_len + 10
    features, stats = tokenize_sft(examples, tokenizer, max_length=prompt_len + 10, overlong="drop")
    assert (stats.records, stats.truncated, stats.dropped) == (1, 0, 1)
    assert "1 dropped as too long" in stats.summary("x")
    # A prompt that alone fills the limit leaves nothing to learn from: dropped even when truncating.
    _, stats = tokenize_sft(examples, tokenizer, max_length=prompt_len, overlong="truncate")
    assert stats.dropped == 2


def test_labels_mask_the_prompt(tokenizer):
    ex = SFTExample([{"role": "user", "content": "Name a colour."}], "Blue.")
    (feature,), _ = tokenize_sft([ex], tokenizer, 512, "truncate")
    prompt_ids, response_ids = encode_pair(tokenizer, ex.prompt, ex.response)
    assert feature["labels"] == [IGNORE_INDEX] * len(prompt_ids) + response_ids


def test_padding_keeps_eos_that_equals_pad(tokenizer):
    # SmolLM2 pads with its EOS: the mask must come from lengths, not from comparing with pad_id.
    pad = tokenizer.pad_token_id
    assert pad == tokenizer.eos_token_id
    batch = pad_right(
        [{"input_ids": [5, 6, pad], "labels": [-100, 6, pad]}, {"input_ids": [7], "labels": [7]}], pad
    )
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0]]
    assert batch["labels"].tolist() == [[-100, 6, pad], [7, -100, -100]]
    assert batch["input_ids"].dtype == torch.long


def test_shipped_sample_data():
    from pathlib import Path

    data = Path(__file__).resolve().parents[1] / "data"
    sft = load_sft(data / "sft_data.json")
    prefs = load_preferences(data / "preference_data.json")
    prompts = load_prompts(data / "prompts.json")
    assert len(sft) >= 150 and len(prefs) >= 300 and len(prompts) >= 200

    def key(messages):
        return " ".join(messages[-1]["content"].lower().split())

    sets = [{key(e.prompt) for e in sft}, {key(e.prompt) for e in prefs}, {key(p) for p in prompts}]
    assert [len(s) for s in sets] == [len(sft), len(prefs), len(prompts)]  # no repeats within a file
    assert not (sets[0] & sets[1]) and not (sets[0] & sets[2]) and not (sets[1] & sets[2])  # disjoint
