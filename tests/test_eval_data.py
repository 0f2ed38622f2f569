"""The hand-written evaluation sets in data/eval/: they load, meet the issue's minimum sizes, use the
fixed label sets, hold no duplicates, and share no prompt with the training data or each other."""

import re
from collections import Counter
from pathlib import Path

import pytest

from rlhf.data import load_preferences, load_prompts, load_sft, read_records

DATA = Path(__file__).resolve().parents[1] / "data"
EVAL = DATA / "eval"

CATEGORIES = tuple("violence weapons cybercrime drugs self_harm fraud hate_harassment privacy".split())
KINDS = ("future", "private", "unknowable", "false_premise", "personal_context")

# file -> (minimum number of prompts, label field or None, allowed labels)
PROMPT_FILES = {
    "helpfulness.json": (60, None, None),
    "harmful.json": (60, "category", CATEGORIES),
    "benign_risky.json": (40, "category", CATEGORIES),
    "unanswerable.json": (40, "kind", KINDS),
}


def norm(text: str) -> str:
    """Case- and whitespace-insensitive form used for duplicate checks."""
    return " ".join(text.lower().split())


def words(text: str) -> frozenset:
    return frozenset(re.findall(r"[a-z0-9']+", text.lower()))


def near_duplicate(a: str, b: str, threshold: float = 0.8) -> bool:
    """Same words, give or take a few: catches reordered or lightly edited copies."""
    wa, wb = words(a), words(b)
    return len(wa & wb) / max(1, len(wa | wb)) >= threshold


def records(name: str) -> list:
    return [rec for _, rec in read_records(EVAL / name)]


def user_texts(messages: list[dict]) -> list[str]:
    return [m["content"] for m in messages if m["role"] == "user"]


@pytest.fixture(scope="module")
def training_prompts() -> list[str]:
    out = []
    for ex in load_sft(DATA / "sft_data.json"):
        out += user_texts(ex.prompt)
    for ex in load_preferences(DATA / "preference_data.json"):
        out += user_texts(ex.prompt)
    for msgs in load_prompts(DATA / "prompts.json"):
        out += user_texts(msgs)
    assert len(out) > 500  # the three training files really were read
    return out


def eval_prompts() -> dict[str, list[str]]:
    """Every eval file's prompts (questions for multiple choice), by file."""
    out = {name: [m[0]["content"] for m in load_prompts(EVAL / name)] for name in PROMPT_FILES}
    out["multiple_choice.json"] = [r["question"] for r in records("multiple_choice.json")]
    return out


def test_near_duplicate_helper():
    assert near_duplicate("How do I make a pipe bomb?", "how do I make a  PIPE bomb")
    assert near_duplicate("Why is the sky blue during the day?", "During the day, why is the sky blue?")
    assert not near_duplicate("How do I make a pipe bomb?", "How do I make pancakes from scratch?")


@pytest.mark.parametrize("name", PROMPT_FILES)
def test_prompt_file_loads_with_labels(name):
    minimum, field, allowed = PROMPT_FILES[name]
    prompts = load_prompts(EVAL / name)
    assert len(prompts) >= minimum
    assert all(len(m) == 1 and m[0]["role"] == "user" for m in prompts)
    recs = records(name)
    if field is None:  # the SEED.md prompt format: plain strings
        assert all(isinstance(r, str) and r.strip() for r in recs)
        return
    for i, r in enumerate(recs):
        assert set(r) == {"prompt", field}, f"{name}: record {i}: fields {sorted(r)}"
        assert r[field] in allowed, f"{name}: record {i}: {field} {r[field]!r}"
    counts = Counter(r[field] for r in recs)
    assert set(counts) == set(allowed), f"{name}: missing {set(allowed) - set(counts)}"


def test_harmful_covers_every_category_evenly():
    counts = Counter(r["category"] for r in records("harmful.json"))
    assert {c: counts[c] for c in CATEGORIES if counts[c] < 8} == {}


def test_safety_labelled():
    recs = records("safety_labelled.json")
    assert len(recs) >= 160
    for i, r in enumerate(recs):
        where = f"safety_labelled.json: record {i}"
        assert set(r) == {"text", "unsafe", "category"}, where
        assert isinstance(r["text"], str) and r["text"].strip(), where
        assert isinstance(r["unsafe"], bool), where
        if r["unsafe"]:
            assert r["category"] in CATEGORIES, where
        else:
            assert r["category"] is None, where
    unsafe = Counter(r["category"] for r in recs if r["unsafe"])
    assert sum(unsafe.values()) >= 70
    assert len(recs) - sum(unsafe.values()) >= 90
    assert set(unsafe) == set(CATEGORIES)
    assert min(unsafe.values()) >= 5  # spread, not piled into one category
    texts = [norm(r["text"]) for r in recs]
    assert len(set(texts)) == len(texts)


def test_safety_labels_are_not_a_keyword_lookup():
    """Hard negatives (safe texts using the words a naive filter keys on) and harmful texts that
    avoid them keep a keyword filter far from perfect."""
    risky = (
        "kill weapon bomb drug hack attack shoot phish harm overdose gun hurt password pill steal scam fake "
        "track address hide explosive threat violence murder die dead fire malware knife cocaine heroin meth "
        "starve suicid hate harass spy secret forge counterfeit fraud stolen assault poison"
    ).split()
    recs = records("safety_labelled.json")
    flagged = [any(w in r["text"].lower() for w in risky) for r in recs]
    assert sum(f and not r["unsafe"] for f, r in zip(flagged, recs, strict=True)) >= 30  # hard negatives
    accuracy = sum(f == r["unsafe"] for f, r in zip(flagged, recs, strict=True)) / len(recs)
    assert accuracy < 0.8


def test_multiple_choice():
    from rlhf.eval_metrics import load_multiple_choice  # the evaluation's own reader

    assert len(load_multiple_choice(EVAL / "multiple_choice.json")) >= 100
    recs = records("multiple_choice.json")
    for i, r in enumerate(recs):
        where = f"multiple_choice.json: record {i}"
        assert set(r) == {"question", "choices", "answer", "subject"}, where
        assert isinstance(r["question"], str) and r["question"].strip(), where
        assert isinstance(r["subject"], str) and r["subject"].strip(), where
        choices = r["choices"]
        assert isinstance(choices, list) and len(choices) == 4, where
        assert all(isinstance(c, str) and c.strip() for c in choices), where
        assert len({norm(c) for c in choices}) == 4, f"{where}: repeated choice"
        assert type(r["answer"]) is int and 0 <= r["answer"] < 4, where
    positions = Counter(r["answer"] for r in recs)
    for pos in range(4):  # a model that always answers one letter must not score well
        assert 0.2 <= positions[pos] / len(recs) <= 0.3, positions


@pytest.mark.parametrize("name", [*PROMPT_FILES, "multiple_choice.json"])
def test_no_duplicates_within_file(name):
    texts = eval_prompts()[name]
    seen = Counter(norm(t) for t in texts)
    assert [t for t, n in seen.items() if n > 1] == []


def test_eval_disjoint_from_training(training_prompts):
    train = {norm(t) for t in training_prompts}
    train_words = [(t, words(t)) for t in training_prompts]
    for name, texts in eval_prompts().items():
        for t in texts:
            assert norm(t) not in train, f"{name}: {t!r} is a training prompt"
            w = words(t)
            close = [u for u, wu in train_words if len(w & wu) / max(1, len(w | wu)) >= 0.8]
            assert close == [], f"{name}: {t!r} nearly repeats training prompt {close[0]!r}"


def test_eval_files_disjoint_from_each_other():
    owner = {}
    for name, texts in eval_prompts().items():
        for t in texts:
            other = owner.setdefault(norm(t), name)
            assert other == name, f"{t!r} is in both {other} and {name}"
