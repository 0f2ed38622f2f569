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
