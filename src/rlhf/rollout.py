"""Rollouts for PPO: the models they need, batched KV-cached generation, and the forward passes
that score it, giving a Rollout.

Sequences are a left-padded prompt block (B, P) followed by a response block (B, R) that is
padded after each response's EOS. Position ids always come from the attention mask, so padding
never shifts them, and masks come from lengths, never from comparing ids with the pad id (SmolLM2
pads with its EOS token).
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from .config import ConfigError, ModelConfig, PPOConfig
from .data import Messages, encode_prompt
from .functional import last_index, logprobs_from_logits
from .models import apply_lora, enable_gradient_checkpointing, load_causal_lm, load_tokenizer
from .reward_model import RewardModel, load_reward_model

# A score penalty: (prompts, responses) -> (B,) amounts subtracted from the scores (safety checks).
ScorePenalty = Callable[[list[Messages], list[str]], torch.Tensor]


def positions(mask: torch.Tensor) -> torch.Tensor:
    """Position ids (B, T) that count attended tokens, so left padding does not shift them."""
    return (mask.long().cumsum(-1) - 1).clamp(min=0)


def pad_left(sequences: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Left-padded ids (B, P) and a boolean mask (B, P), True on real tokens."""
    width = max(len(s) for s in sequences)
    ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(sequences), width), dtype=torch.bool)
    for i, s in enumerate(sequences):
        ids[i, width - len(s) :] = torch.tensor(s, dtype=torch.long)
        mask[i, width - len(s) :] = True
    return ids, mask


def filter_logits(logits: torch.Tensor, top_k: int = 0, top_p: float = 1.0) -> torch.Tensor:
    """Logits (B, V) with everything outside the top_k tokens, and outside the smallest set whose
    probability reaches top_p, set to -inf. top_k=0 and top_p=1 keep every token."""
    if top_k and top_k < logits.shape[-1]:
        kth = torch.topk(logits, top_k, dim=-1).values[:, -1:]  # (B, 1)
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p < 1.0:
        sorted_logits, order = torch.sort(logits, dim=-1, descending=True)
        cum = sorted_logits.softmax(-1).cumsum(-1)
        # Drop a token when the ones ranked above it already reach top_p; the first always stays.
        drop_sorted = (cum - sorted_logits.softmax(-1)) >= top_p
        drop = drop_sorted.scatter(-1, order, drop_sorted)
        logits = logits.masked_fill(drop, float("-inf"))
    return logits


@torch.no_grad()
def generate(
    model: nn.Module,
    query_ids: torch.Tensor,
    query_mask: torch.Tensor,
    max_new_tokens: int,
    eos_id: int,
    pad_id: int,
    temperature: float = 1.0,
    top_k: int = 0,
    top_p: float = 1.0,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Sample responses to left-padded prompts with a KV cache; temperature 0 is greedy.

    Returns response ids (B, R) (pad after EOS), response mask (B, R) (True up to and including
    EOS), and each sampled token's log-probability under softmax(logits / temperature) (B, R):
    the rollout's "old" logprobs, read off the sampling pass instead of a second forward pass.
    """
    B = query_ids.shape[0]
    mask = query_mask.long()
    out = model(input_ids=query_ids, attention_mask=mask, position_ids=positions(mask), use_cache=True)
    next_pos = mask.sum(-1, keepdim=True)  # (B, 1) position of the first response token
    done = torch.zeros(B, dtype=torch.bool, device=query_ids.device)
    tokens, logprobs, alive = [], [], []
    for _ in range(max_new_tokens):
        logits = out.logits[:, -1].float()  # (B, V)
        if temperature > 0:
            probs = filter_logits(logits / temperature, top_k, top_p).softmax(-1)
            token = torch.multinomial(probs, 1).squeeze(-1)  # (B,)
        else:
            token = logits.argmax(-1)
        token = token.masked_fill(done, pad_id)
        tokens.append(token)
        logprobs.append(logprobs_from_logits(logits[:, None], token[:, None], temperature or 1.0)[:, 0])
        alive.append(~done)
        done = done | (token == eos_id)
        if done.all():
            break
        mask = torch.cat([mask, torch.ones_like(mask[:, :1])], dim=1)
        # transformers 5.2x renamed past_key_values to cache; use whichever this version returned.
        cache_name = "cache" if "cache" in out else "past_key_values"
        out = model(
            input_ids=token[:, None],
            attention_mask=mask,
            position_ids=next_pos,
            use_cache=True,
            **{cache_name: out[cache_name]},
        )
        next_pos = next_pos + 1
    response = torch.stack(tokens, 1)  # (B, R)
    response_mask = torch.stack(alive, 1)  # (B, R)
    return response, response_mask, torch.stack(logprobs, 1).masked_fill(~response_mask, 0.0)


def response_logits(
    model: nn.Module,
    query_ids: torch.Tensor,
    query_mask: torch.Tensor,
    response_ids: torch.Tensor,
    response_mask: torch.Tensor,
) -> torch.Tensor:
    """Logits (B, R, V) that predict each response token, in one forward pass over prompt +
    response. Only the last R + 1 positions go through the LM head."""
    ids = torch.cat([query_ids, response_ids], 1)  # (B, P + R)
    mask = torch.cat([query_mask, response_mask], 1).long()
    R = response_ids.shape[1]
    logits = model(input_ids=ids, attention_mask=mask, position_ids=positions(mask), logits_to_keep=R + 1).logits
    return logits[:, :-1]  # (B, R, V): position P - 1 + t predicts response token t


class ValueModel(nn.Module):
    """The critic: a transformer trunk with a linear value head read at every position.

    It starts from the reward model: the trunk is the reward model's (frozen, with LoRA adapters,
    or fully trained), and the head is the reward head rescaled to normalised rewards, so the first
    values are the reward model's normalised score of each prefix. The reward head itself is kept
    frozen beside it: with a frozen trunk, or with adapters switched off, the same trunk scores
    the responses, so the reward model costs no extra copy in memory.
    """

    def __init__(self, trunk: nn.Module, reward_head: nn.Linear, mean: float, std: float):
        super().__init__()
        self.trunk = trunk  # e.g. LlamaModel, possibly wrapped by peft
        self.reward_head = reward_head.requires_grad_(False)  # raw reward, as trained
        self.value_head = nn.Linear(reward_head.in_features, 1, dtype=reward_head.weight.dtype)
        with torch.no_grad():
            self.value_head.weight.copy_(reward_head.weight / std)
            self.value_head.bias.fill_(-mean / std)

    def hidden(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Last hidden states (B, T, H)."""
        mask = mask.long()
        return self.trunk(input_ids=ids, attention_mask=mask, position_ids=positions(mask)).last_hidden_state

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Values (B, T) at every position."""
        return self.value_head(self.hidden(ids, mask)).squeeze(-1).float()

    def reward(self, hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Raw rewards (B,) read at each row's last attended token of the reward model's hidden
        states, as RewardModel.forward reads them."""
        last = hidden[torch.arange(hidden.shape[0]), last_index(mask)]  # (B, H)
        return self.reward_head(last).squeeze(-1).float()


@dataclass
class Rollout:
    """One batch of episodes. B episodes, P prompt positions, R response positions."""

    query_ids: torch.Tensor  # (B, P) left-padded prompts
    query_mask: torch.Tensor  # (B, P) bool
    response_ids: torch.Tensor  # (B, R) pad after EOS
    response_mask: torch.Tensor  # (B, R) bool, True up to and including EOS
    logprobs: torch.Tensor  # (B, R) under the policy that sampled them
    ref_logprobs: torch.Tensor  # (B, R) under the reference (SFT) policy
    values: torch.Tensor  # (B, R) critic's value of the state before each response token
    features: torch.Tensor | None  # (B, R, H) frozen-trunk hidden states, when only the head trains
    rm_score: torch.Tensor  # (B,) normalised reward-model score
    score: torch.Tensor  # (B,) the score PPO maximises: rm_score with penalties, clipped
    advantages: torch.Tensor | None = None  # (B, R) filled in after scoring
    returns: torch.Tensor | None = None  # (B, R) targets of the critic

    def __len__(self) -> int:
        return self.query_ids.shape[0]

    def select(self, index: torch.Tensor) -> Rollout:
        """The episodes at `index`, without the prompt padding and response positions that none
        of them uses (a smaller forward pass)."""
        start = int(self.query_mask[index].any(0).long().argmax())  # first prompt column in use
        width = int(self.response_mask[index].sum(-1).max())
        fields = {}
        for name, value in vars(self).items():
            if value is not None:
                value = value[index]
                if name.startswith("query"):
                    value = value[:, start:]
                elif value.dim() > 1:
                    value = value[:, :width]
            fields[name] = value
        return Rollout(**fields)


@torch.no_grad()
def answer(
    model: nn.Module, tokenizer, prompts: list[Messages], max_new_tokens: int = 128,
    temperature: float = 0.7, top_k: int = 0, top_p: float = 1.0,
) -> list[str]:
    """Texts of the model's answers to chat prompts, formatted with the chat template."""
    device = next(model.parameters()).device
    ids, mask = pad_left([encode_prompt(tokenizer, p) for p in prompts], tokenizer.pad_token_id)
    response, r_mask, _ = generate(model, ids.to(device), mask.to(device), max_new_tokens, tokenizer.eos_token_id,
                                   tokenizer.pad_token_id, temperature, top_k, top_p)  # fmt: skip
    return tokenizer.batch_decode([r[m] for r, m in zip(response, r_mask, strict=True)], skip_special_tokens=True)


# ---------------------------------------------------------------- the models a rollout needs


class PPOModels:
    """Policy, reference, critic and reward model, with as few copies of weights as the config
    allows."""

    def __init__(self, cfg: PPOConfig, tokenizer, device: torch.device):
        model_cfg = ModelConfig(name=cfg.sft_model_path, dtype=cfg.dtype, gradient_checkpointing=cfg.gradient_checkpointing)
        self.policy = load_causal_lm(model_cfg)
        self.ref = None
        if cfg.lora.enabled:
            self.policy = apply_lora(self.policy, cfg.lora)
        else:
            self.ref = load_causal_lm(dataclasses.replace(model_cfg, gradient_checkpointing=False)).requires_grad_(False)

        self.reward_model = load_reward_model(cfg.reward_model_path, cfg.dtype).requires_grad_(False)
        single = isinstance(self.reward_model, RewardModel)
        rm_tokenizer = load_tokenizer(cfg.reward_model_path) if single else self.reward_model.tokenizer
        _check_vocab(tokenizer, rm_tokenizer, cfg.reward_model_path)
        source = self.reward_model if single else self.reward_model.members[0]
        classifier = source.model  # HF sequence classifier with one output
        head = getattr(classifier, "score", None)
        if not isinstance(head, nn.Linear):
            raise ConfigError(
                f"ppo.reward_model_path: {type(classifier).__name__} has no linear `score` head to start the critic from"
            )
        # The reward model's own trunk can score while it serves the critic only if scoring is
        # RewardModel.forward itself and the trunk keeps its weights (frozen, or adapters off).
        self.shared = type(self.reward_model) is RewardModel and (cfg.critic_trunk == "frozen" or cfg.lora.enabled)
        # A frozen trunk is never written to, so it need not be copied either.
        frozen = cfg.critic_trunk == "frozen"
        trunk = classifier.base_model if self.shared or frozen else copy.deepcopy(classifier.base_model)
        self.mean, self.std = source.mean, source.std
        if cfg.critic_trunk == "trained":
            trunk.requires_grad_(True)
            if cfg.gradient_checkpointing:
                enable_gradient_checkpointing(trunk)
            if cfg.lora.enabled:
                trunk = apply_lora(trunk, cfg.lora, task_type="FEATURE_EXTRACTION")
        self.critic = ValueModel(trunk, copy.deepcopy(head), self.mean, self.std)
        if self.shared:
            self.reward_model = None  # the critic's trunk scores
        for m in (self.policy, self.ref, self.critic, self.reward_model):
            if m is not None:
                # No dropout anywhere: the ratio p / p_old must be exactly 1 before an update.
                disable_dropout(m.to(device)).eval()

    def reference(self):
        """Context giving the reference policy: the policy with adapters off, or the frozen copy."""
        if self.ref is None:
            return self.policy.disable_adapter()
        return contextlib.nullcontext(self.ref)

    def reward_trunk(self):
        """Context in which the critic's trunk is the reward model's."""
        trunk = self.critic.trunk
        return trunk.disable_adapter() if hasattr(trunk, "disable_adapter") else contextlib.nullcontext()

    def trainable(self, model: nn.Module) -> list[nn.Parameter]:
        return [p for p in model.parameters() if p.requires_grad]


def disable_dropout(model: nn.Module) -> nn.Module:
    for m in model.modules():
        if isinstance(m, nn.Dropout):
            m.p = 0.0
        if isinstance(getattr(m, "attention_dropout", None), float):
            m.attention_dropout = 0.0
    return model


def _check_vocab(tokenizer, rm_tokenizer, reward_path: str) -> None:
    """PPO hands the policy's token ids to the reward model, so they must mean the same tokens."""
    rm_vocab = rm_tokenizer.get_vocab()
    mismatched = [t for t, i in tokenizer.get_vocab().items() if rm_vocab.get(t) != i]
    if mismatched:
        raise ConfigError(
            f"ppo.reward_model_path: {reward_path} uses a different tokenizer from the policy "
            f"({len(mismatched)} tokens differ, e.g. {mismatched[:3]}); train the reward model from the SFT model"
        )


# ---------------------------------------------------------------- PPO phases 1 and 2: rollout and score


@torch.no_grad()
def rollout(
    models: PPOModels,
    cfg: PPOConfig,
    tokenizer,
    prompts: list[Messages],
    prompt_ids: list[list[int]],
    autocast,
    penalties: Sequence[ScorePenalty] = (),
    use_reference: bool = False,
) -> tuple[Rollout, list[str], dict[str, float]]:
    """Answer `prompts` with the policy (or the reference) and score the answers: the Rollout,
    the response texts, and the mean of each penalty."""
    device = next(models.critic.parameters()).device
    q_ids, q_mask = (t.to(device) for t in pad_left(prompt_ids, tokenizer.pad_token_id))
    P = q_ids.shape[1]

    # 1. rollout: sample with the policy (or the reference), keep the sampling logprobs.
    with autocast(), (models.reference() if use_reference else contextlib.nullcontext(models.policy)) as actor:
        r_ids, r_mask, logprobs = generate(
            actor or models.policy, q_ids, q_mask, cfg.max_new_tokens, tokenizer.eos_token_id,
            tokenizer.pad_token_id, cfg.temperature, cfg.top_k, cfg.top_p,
        )  # fmt: skip
    with autocast(), models.reference() as ref:
        ref_logits = response_logits(ref or models.policy, q_ids, q_mask, r_ids, r_mask)  # (B, R, V)
    ref_logprobs = logprobs_from_logits(ref_logits, r_ids, cfg.temperature).masked_fill(~r_mask, 0.0)
    del ref_logits

    # 2. score, and the critic's values (B, R) of the state before each response token.
    ids, mask = torch.cat([q_ids, r_ids], 1), torch.cat([q_mask, r_mask], 1)  # (B, P + R)
    features = None
    with autocast():
        if models.shared:
            with models.reward_trunk():
                hidden = models.critic.hidden(ids, mask)  # (B, P + R, H)
            rm_score = (models.critic.reward(hidden, mask) - models.mean) / models.std
        else:
            rm_score = models.reward_model.normalize(models.reward_model(ids, mask).float())
        if cfg.critic_trunk == "frozen":
            if not models.shared:
                hidden = models.critic.hidden(ids, mask)
            features = hidden[:, P - 1 : -1].float()  # (B, R, H)
            values = models.critic.value_head(features).squeeze(-1).float()
        else:
            values = models.critic(ids, mask)[:, P - 1 : -1]
    values = values.masked_fill(~r_mask, 0.0)

    texts = tokenizer.batch_decode([r[m] for r, m in zip(r_ids, r_mask, strict=True)], skip_special_tokens=True)
    score = rm_score.clone()
    has_eos = (r_ids == tokenizer.eos_token_id).logical_and(r_mask).any(-1)  # (B,)
    penalty_means = {"missing_eos": (~has_eos).float().mean().item()}
    score -= cfg.missing_eos_penalty * (~has_eos).float()
    score -= cfg.length_penalty * r_mask.sum(-1).float()
    for fn in penalties:
        amount = torch.as_tensor(fn(prompts, texts), dtype=torch.float32, device=device)
        penalty_means[getattr(fn, "__name__", type(fn).__name__)] = amount.mean().item()
        score -= amount
    if cfg.reward_clip:
        score = score.clamp(-cfg.reward_clip, cfg.reward_clip)
    batch = Rollout(q_ids, q_mask, r_ids, r_mask, logprobs, ref_logprobs, values, features, rm_score, score)
    return batch, texts, penalty_means
