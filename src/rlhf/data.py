"""Read, validate and tokenize SFT, preference and prompt data.

Accepted files: a `.json` array (the SEED.md formats) or `.jsonl` (one record a line). A record's
prompt is a string or a chat (`messages`: a list of {role, content}). Every error names the file,
the record index (0-based, as in the array; a 1-based line for `.jsonl`) and the field.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import random
from dataclasses import dataclass
from pathlib import Path

import torch

log = logging.getLogger(__name__)

ROLES = ("system", "user", "assistant")
IGNORE_INDEX = -100  # label of tokens that carry no loss (prompt tokens, padding)


class DataError(ValueError):
    """A data file or record is malformed. The message names file, record and field."""


Messages = list[dict]


@dataclass
class SFTExample:
    prompt: Messages  # conversation up to the response, ending with a user turn
    response: str


@dataclass
class PreferenceExample:
    prompt: Messages
    chosen: str
    rejected: str
    margin: float | None = None  # optional per-pair margin for the Bradley-Terry loss


# ---------------------------------------------------------------- reading


def read_records(path: str | Path) -> list[tuple[str, object]]:
    """The records of a .json array or .jsonl file, each with the location errors name."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise DataError(f"{path}: cannot read: {e.strerror}") from None
    if path.suffix == ".jsonl":
        records = []
        for lineno, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                records.append((f"{path}: line {lineno}", json.loads(line)))
            except json.JSONDecodeError as e:
                raise DataError(f"{path}: line {lineno}: invalid JSON: {e.msg} (column {e.colno})") from None
        return records
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise DataError(f"{path}: invalid JSON at line {e.lineno} column {e.colno}: {e.msg}") from None
    if not isinstance(data, list):
        raise DataError(f"{path}: top level must be a JSON array of records, got {type(data).__name__}")
    return [(f"{path}: record {i}", rec) for i, rec in enumerate(data)]


def _text(rec: dict, key: str, where: str) -> str:
    if key not in rec:
        raise DataError(f"{where}: missing field '{key}'")
    value = rec[key]
    if not isinstance(value, str):
        raise DataError(f"{where}: field '{key}' must be a string, got {type(value).__name__}")
    if not value.strip():
        raise DataError(f"{where}: field '{key}' is empty")
    return value


def _messages(value: object, where: str, key: str) -> Messages:
    if not isinstance(value, list) or not value:
        raise DataError(f"{where}: field '{key}' must be a non-empty list of messages")
    out = []
    for j, msg in enumerate(value):
        at = f"{where}: field '{key}[{j}]'"
        if not isinstance(msg, dict):
            raise DataError(f"{at}: must be an object with 'role' and 'content'")
        role = _text(msg, "role", at)
        if role not in ROLES:
            raise DataError(f"{at}: role must be one of {', '.join(ROLES)}, got {role!r}")
        out.append({"role": role, "content": _text(msg, "content", at)})
    return out


def _prompt(rec: dict, where: str) -> Messages:
    """A record's prompt as messages: a string becomes one user turn."""
    if isinstance(rec.get("prompt"), list):
        return _messages(rec["prompt"], where, "prompt")
    return [{"role": "user", "content": _text(rec, "prompt", where)}]


def _completion(rec: dict, key: str, where: str) -> str:
    """A response given as a string, or as a chat whose last turn is the assistant's."""
    if isinstance(rec.get(key), list):
        msgs = _messages(rec[key], where, key)
        if msgs[-1]["role"] != "assistant":
            raise DataError(f"{where}: field '{key}' must end with an assistant message")
        return msgs[-1]["content"]
    return _text(rec, key, where)


def _object(rec: object, where: str) -> dict:
    if not isinstance(rec, dict):
        raise DataError(f"{where}: must be a JSON object, got {type(rec).__name__}")
    return rec


def _load(path: str | Path, max_records: int | None, parse) -> list:
    """`parse(record, where)` applied to each record; a repeated record is kept with a warning
    that names both places."""
    items, seen = [], {}
    for where, rec in read_records(path)[:max_records]:
        item = parse(rec, where)
        key = json.dumps(dataclasses.asdict(item) if dataclasses.is_dataclass(item) else item)
        if key in seen:
            log.warning("%s: duplicates %s", where, seen[key].split(": ", 1)[1])
        seen.setdefault(key, where)
        items.append(item)
    if not items:
        raise DataError(f"{path}: holds no records")
    return items


def _sft_record(rec: object, where: str) -> SFTExample:
    rec = _object(rec, where)
    if "messages" not in rec:
        return SFTExample(prompt=_prompt(rec, where), response=_completion(rec, "response", where))
    msgs = _messages(rec["messages"], where, "messages")
    if msgs[-1]["role"] != "assistant" or not any(m["role"] == "user" for m in msgs):
        raise DataError(f"{where}: field 'messages' must hold a user turn and end with the assistant's")
    return SFTExample(prompt=msgs[:-1], response=msgs[-1]["content"])


def _preference_record(rec: object, where: str) -> PreferenceExample:
    rec = _object(rec, where)
    ex = PreferenceExample(
        prompt=_prompt(rec, where),
        chosen=_completion(rec, "chosen", where),
        rejected=_completion(rec, "rejected", where),
    )
    if ex.chosen.strip() == ex.rejected.strip():
        raise DataError(f"{where}: field 'rejected' is identical to 'chosen'")
    if "margin" in rec:
        margin = rec["margin"]
        if not isinstance(margin, (int, float)) or isinstance(margin, bool):
            raise DataError(f"{where}: field 'margin' must be a number, got {margin!r}")
        ex.margin = float(margin)
    return ex


def _prompt_record(rec: object, where: str) -> Messages:
    if isinstance(rec, str):
        if not rec.strip():
            raise DataError(f"{where}: prompt is empty")
        return [{"role": "user", "content": rec}]
    if isinstance(rec, dict) and "messages" in rec:
        return _messages(rec["messages"], where, "messages")
    if isinstance(rec, dict):
        return _prompt(rec, where)
    raise DataError(f"{where}: must be a string or an object, got {type(rec).__name__}")


def load_sft(path: str | Path, max_records: int | None = None) -> list[SFTExample]:
    """Records {prompt, response} or {messages: [..., {role: assistant, ...}]}."""
    return _load(path, max_records, _sft_record)


def load_preferences(path: str | Path, max_records: int | None = None) -> list[PreferenceExample]:
    """Records {prompt, chosen, rejected[, margin]}; chosen and rejected must differ."""
    return _load(path, max_records, _preference_record)


def load_prompts(path: str | Path, max_records: int | None = None) -> list[Messages]:
    """Prompts: strings (SEED.md), or objects with 'prompt' or 'messages'."""
    return _load(path, max_records, _prompt_record)


def split(records: list, eval_fraction: float, seed: int) -> tuple[list, list]:
    """Deterministic (train, eval) split: a seeded shuffle of indices, order kept within each."""
    if eval_fraction <= 0 or len(records) < 2:
        return list(records), []
    n_eval = max(1, round(len(records) * eval_fraction))
    order = list(range(len(records)))
    random.Random(seed).shuffle(order)
    held = set(order[:n_eval])
    train = [r for i, r in enumerate(records) if i not in held]
    return train, [r for i, r in enumerate(records) if i in held]


# ---------------------------------------------------------------- formatting and tokenizing


def render_prompt(tokenizer, messages: Messages) -> str:
    """The prompt text the model continues: the chat template, or a plain User/Assistant form."""
    if tokenizer.chat_template:
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    turns = [f"{m['role'].capitalize()}: {m['content']}" for m in messages]
    return "\n\n".join(turns) + "\n\nAssistant:"


def render_response(tokenizer, messages: Messages, response: str) -> str:
    """The text that follows render_prompt(...) for this response, ending with EOS."""
    eos = tokenizer.eos_token
    if tokenizer.chat_template:
        prompt = render_prompt(tokenizer, messages)
        full = tokenizer.apply_chat_template(
            messages + [{"role": "assistant", "content": response}], tokenize=False
        )
        if full.startswith(prompt):
            text = full[len(prompt) :]
            # Templates add a newline after the end-of-turn token; the response ends at EOS.
            if eos and eos in text:
                text = text[: text.rindex(eos) + len(eos)]
            return text
    return " " + response.strip() + (eos or "")


@dataclass
class TokenStats:
    records: int = 0
    truncated: int = 0
    dropped: int = 0
    tokens: int = 0

    def summary(self, name: str) -> str:
        return (
            f"{name}: {self.records} records kept, {self.truncated} truncated, "
            f"{self.dropped} dropped as too long, {self.tokens} tokens"
        )


def encode_prompt(tokenizer, messages: Messages) -> list[int]:
    """Token ids of the prompt a response continues."""
    # Chat templates write their own special tokens; the plain form gets the tokenizer's BOS.
    return tokenizer(render_prompt(tokenizer, messages), add_special_tokens=not tokenizer.chat_template)["input_ids"]


def encode_pair(tokenizer, messages: Messages, response: str) -> tuple[list[int], list[int]]:
    """Token ids of (prompt, response); the response ends with EOS."""
    prompt_ids = encode_prompt(tokenizer, messages)
    response_ids = tokenizer(render_response(tokenizer, messages, response), add_special_tokens=False)[
        "input_ids"
    ]
    return prompt_ids, response_ids


def fit_length(
    prompt_ids: list[int], response_ids: list[int], max_length: int, overlong: str, stats: TokenStats
) -> list[int] | None:
    """The response ids that fit in max_length after the prompt, or None to drop the record."""
    if len(prompt_ids) + len(response_ids) <= max_length:
        return response_ids
    if overlong == "drop" or len(prompt_ids) >= max_length:
        stats.dropped += 1
        return None
    stats.truncated += 1
    return response_ids[: max_length - len(prompt_ids)]


def tokenize_sft(
    examples: list[SFTExample], tokenizer, max_length: int, overlong: str
) -> tuple[list[dict], TokenStats]:
    """input_ids and labels per example; prompt tokens are labelled IGNORE_INDEX (no loss)."""
    features, stats = [], TokenStats()
    for ex in examples:
        prompt_ids, response_ids = encode_pair(tokenizer, ex.prompt, ex.response)
        response_ids = fit_length(prompt_ids, response_ids, max_length, overlong, stats)
        if response_ids is None:
            continue
        features.append(
            {
                "input_ids": prompt_ids + response_ids,
                "labels": [IGNORE_INDEX] * len(prompt_ids) + response_ids,
            }
        )
        stats.records += 1
        stats.tokens += len(prompt_ids) + len(response_ids)
    return features, stats


def pad_right(features: list[dict], pad_id: int) -> dict[str, torch.Tensor]:
    """Collate right-padded tensors. The mask comes from lengths, never from comparing ids with
    pad_id: SmolLM2 pads with its EOS token, which must stay visible where it ends a response."""
    width = max(len(f["input_ids"]) for f in features)
    batch = {
        "input_ids": torch.full((len(features), width), pad_id, dtype=torch.long),  # (B, T)
        "attention_mask": torch.zeros((len(features), width), dtype=torch.long),  # (B, T)
    }
    if "labels" in features[0]:
        batch["labels"] = torch.full((len(features), width), IGNORE_INDEX, dtype=torch.long)
    for i, f in enumerate(features):
        n = len(f["input_ids"])
        batch["input_ids"][i, :n] = torch.tensor(f["input_ids"])
        batch["attention_mask"][i, :n] = 1
        if "labels" in batch:
            batch["labels"][i, :n] = torch.tensor(f["labels"])
    return batch


def tokenize_preferences(
    examples: list[PreferenceExample], tokenizer, max_length: int, overlong: str
) -> tuple[list[dict], TokenStats]:
    """Token ids of prompt + chosen and prompt + rejected per pair, each ending with EOS, with
    the response lengths in tokens and the pair's margin (0 when it has none). A pair is dropped
    when either side is; stats count pairs."""
    features, stats = [], TokenStats()
    for ex in examples:
        pair_stats, sides = TokenStats(), []
        for response in (ex.chosen, ex.rejected):
            prompt_ids, response_ids = encode_pair(tokenizer, ex.prompt, response)
            response_ids = fit_length(prompt_ids, response_ids, max_length, overlong, pair_stats)
            sides.append((prompt_ids, response_ids))
        if pair_stats.dropped:
            stats.dropped += 1
            continue
        stats.truncated += pair_stats.truncated > 0
        (p_c, r_c), (p_r, r_r) = sides
        features.append(
            {
                "chosen_ids": p_c + r_c,
                "rejected_ids": p_r + r_r,
                "response_lengths": [len(r_c), len(r_r)],
                "margin": ex.margin or 0.0,
            }
        )
        stats.records += 1
        stats.tokens += len(p_c) + len(r_c) + len(p_r) + len(r_r)
    return features, stats


def collate_pairs(features: list[dict], pad_id: int) -> dict[str, torch.Tensor]:
    """One right-padded batch of 2B sequences, the B chosen ones first, then the B rejected."""
    sequences = [{"input_ids": f["chosen_ids"]} for f in features]
    sequences += [{"input_ids": f["rejected_ids"]} for f in features]
    batch = pad_right(sequences, pad_id)  # (2B, T)
    batch["margin"] = torch.tensor([f["margin"] for f in features], dtype=torch.float32)  # (B,)
    batch["response_lengths"] = torch.tensor([f["response_lengths"] for f in features])  # (B, 2)
    return batch
