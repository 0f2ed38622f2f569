"""Pure tensor math of the pipeline: tensors in, tensors out, shapes in the docstrings.

Imports torch alone. Every function here is tested against a naive reference in tests/.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def pairwise_loss(
    chosen: torch.Tensor,
    rejected: torch.Tensor,
    margin: torch.Tensor | None = None,
    center_coef: float = 0.0,
) -> torch.Tensor:
    """Bradley-Terry loss of a reward model on preference pairs, averaged over the pairs.

    chosen, rejected: (B,) rewards of the preferred and the other response.
    margin: (B,) or None. The chosen reward must beat the rejected one by at least this much
        before the loss fades (Llama 2's margin loss): -log sigmoid(r_c - r_r - margin).
    center_coef: weight of mean((r_c + r_r)^2), which keeps rewards near zero; the pairwise term
        alone is blind to a constant shift (Eisenstein et al., 2023).
    """
    diff = chosen - rejected  # (B,)
    if margin is not None:
        diff = diff - margin
    loss = -F.logsigmoid(diff).mean()
    if center_coef:
        loss = loss + center_coef * ((chosen + rejected) ** 2).mean()
    return loss


def expected_calibration_error(confidence: torch.Tensor, correct: torch.Tensor, bins: int = 10) -> float:
    """ECE: sum over equal-width confidence bins of |bin share| * |accuracy - mean confidence|.

    confidence: (N,) probabilities in [0, 1] that a prediction is right; correct: (N,) booleans.
    Bins are (lo, hi], the first one [0, 1/bins]. 0 is perfect calibration.
    """
    confidence = confidence.double()
    correct = correct.double()
    # Bin b holds (b / bins, (b + 1) / bins]; ceil puts an exact edge into the bin below it.
    index = (torch.ceil(confidence * bins) - 1).clamp(0, bins - 1).long()  # (N,)
    ece = 0.0
    for b in range(bins):
        in_bin = index == b
        if in_bin.any():
            gap = correct[in_bin].mean() - confidence[in_bin].mean()
            ece += in_bin.double().mean().item() * abs(gap.item())
    return ece


# ---------------------------------------------------------------- PPO
# Conventions: B rows (episodes), R response positions. `mask` (B, R) is a boolean tensor that is
# True on real response tokens (up to and including EOS) and False on padding after it.


def masked_mean(x: torch.Tensor, mask: torch.Tensor, dim: int | None = None) -> torch.Tensor:
    """Mean of x over the positions where mask is True (over all of them, or along `dim`)."""
    mask = mask.to(x.dtype)
    if dim is None:
        return (x * mask).sum() / mask.sum().clamp(min=1)
    return (x * mask).sum(dim) / mask.sum(dim).clamp(min=1)


def masked_var(x: torch.Tensor, mask: torch.Tensor, unbiased: bool = True) -> torch.Tensor:
    """Variance of x over the masked positions (Bessel-corrected unless unbiased=False)."""
    mean = masked_mean(x, mask)
    var = masked_mean((x - mean) ** 2, mask)
    if unbiased:
        n = mask.sum()
        var = var * n / (n - 1).clamp(min=1)
    return var


def masked_whiten(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(x - mean) / std over the masked positions; masked-out positions come back as 0."""
    mean, var = masked_mean(x, mask), masked_var(x, mask)
    return (x - mean) * torch.rsqrt(var + 1e-8) * mask


def last_index(mask: torch.Tensor) -> torch.Tensor:
    """Index (B,) of each row's last True position in a (B, T) mask."""
    return mask.long().cumsum(-1).argmax(-1)


def logprobs_from_logits(logits: torch.Tensor, tokens: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """log p(token) under softmax(logits / temperature). logits (B, R, V), tokens (B, R) -> (B, R)."""
    logp = F.log_softmax(logits.float() / temperature, dim=-1)  # (B, R, V)
    return logp.gather(-1, tokens.unsqueeze(-1)).squeeze(-1)


def entropy_from_logits(logits: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """Entropy of softmax(logits / temperature) at every position. (B, R, V) -> (B, R)."""
    logp = F.log_softmax(logits.float() / temperature, dim=-1)
    return -(logp.exp() * logp).sum(-1)


def kl_penalty(logprobs: torch.Tensor, ref_logprobs: torch.Tensor, estimator: str = "k1") -> torch.Tensor:
    """Per-token estimate of KL(policy || reference) from tokens sampled by the policy (Schulman,
    "Approximating KL divergence"). k1 = log r, unbiased but can go negative; k3 = (r - 1) - log r
    with r = p_ref / p_policy, unbiased and never negative. (B, R) -> (B, R)."""
    log_ratio = logprobs - ref_logprobs  # log p / p_ref
    if estimator == "k1":
        return log_ratio
    if estimator == "k3":
        return torch.expm1(-log_ratio) + log_ratio
    raise ValueError(f"unknown KL estimator {estimator!r}; use k1 or k3")


def shaped_rewards(score: torch.Tensor, kl: torch.Tensor, kl_coef: float, mask: torch.Tensor) -> torch.Tensor:
    """Per-token rewards: -kl_coef * KL at every response token, plus the sequence score at its
    last real token. score (B,), kl (B, R), mask (B, R) -> (B, R), 0 where masked."""
    rewards = -kl_coef * kl * mask
    rewards[torch.arange(len(score)), last_index(mask)] += score
    return rewards


def gae(
    rewards: torch.Tensor, values: torch.Tensor, mask: torch.Tensor, gamma: float, lam: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalised advantage estimation (Schulman et al., 2016) over response tokens.

    rewards, values, mask: (B, R); each row's mask is a prefix (the response up to its EOS), so
    the episode ends at the last real token and the value after it is 0. Returns (advantages,
    returns), each (B, R), 0 where masked; returns = advantages + values.
    """
    mask = mask.to(values.dtype)
    values, rewards = values * mask, rewards * mask
    advantages = torch.zeros_like(rewards)
    running = torch.zeros_like(rewards[:, 0])  # (B,)
    for t in reversed(range(rewards.shape[1])):
        # Past a row's end rewards and values are 0, so `running` is still 0 at its last token.
        next_value = values[:, t + 1] if t + 1 < rewards.shape[1] else torch.zeros_like(running)
        delta = rewards[:, t] + gamma * next_value - values[:, t]
        running = delta + gamma * lam * running
        advantages[:, t] = running
    return advantages, (advantages + values) * mask


def policy_loss(
    logprobs: torch.Tensor,
    old_logprobs: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    clip_range: float,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """PPO's clipped surrogate (Schulman et al., 2017), averaged over masked tokens.

    All inputs (B, R). Returns (loss, clipfrac, approx_kl): clipfrac is the share of tokens where
    the clipped term was the active one; approx_kl = mean((r - 1) - log r), r = p / p_old (k3).
    """
    log_ratio = logprobs - old_logprobs
    ratio = log_ratio.exp()
    unclipped = -advantages * ratio
    clipped = -advantages * ratio.clamp(1.0 - clip_range, 1.0 + clip_range)
    loss = masked_mean(torch.maximum(unclipped, clipped), mask)
    with torch.no_grad():
        clipfrac = masked_mean((clipped > unclipped).float(), mask)
        approx_kl = masked_mean(torch.expm1(log_ratio) - log_ratio, mask)
    return loss, clipfrac, approx_kl


def value_loss(
    values: torch.Tensor,
    old_values: torch.Tensor,
    returns: torch.Tensor,
    mask: torch.Tensor,
    clip_range_value: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Clipped value loss 0.5 * mean(max((v - R)^2, (v_clip - R)^2)) with v_clip within
    clip_range_value of the rollout's value. All inputs (B, R). Returns (loss, clipfrac)."""
    clipped_values = old_values + (values - old_values).clamp(-clip_range_value, clip_range_value)
    unclipped_err = (values - returns) ** 2
    clipped_err = (clipped_values - returns) ** 2
    loss = 0.5 * masked_mean(torch.maximum(unclipped_err, clipped_err), mask)
    with torch.no_grad():
        clipfrac = masked_mean((clipped_err > unclipped_err).float(), mask)
    return loss, clipfrac


def explained_variance(values: torch.Tensor, returns: torch.Tensor, mask: torch.Tensor) -> float:
    """1 - Var(returns - values) / Var(returns) over masked tokens: 1 is a perfect critic, 0 is
    no better than a constant, below 0 is worse."""
    var_returns = masked_var(returns, mask)
    return (1 - masked_var(returns - values, mask) / var_returns).item() if var_returns > 0 else float("nan")
