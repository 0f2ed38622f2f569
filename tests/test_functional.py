import math

import torch

from rlhf.functional import expected_calibration_error, pairwise_loss


def _naive_pairwise(chosen, rejected, margin, center_coef):
    total = 0.0
    for c, r, m in zip(chosen.tolist(), rejected.tolist(), margin.tolist(), strict=True):
        total += -math.log(1 / (1 + math.exp(-(c - r - m)))) + center_coef * (c + r) ** 2
    return total / len(chosen)


def test_pairwise_loss_hand_computed():
    # -log sigmoid(1) = 0.313262, -log sigmoid(0) = log 2
    loss = pairwise_loss(torch.tensor([1.0, 0.0]), torch.tensor([0.0, 0.0]))
    assert math.isclose(loss.item(), (0.3132617 + math.log(2)) / 2, rel_tol=1e-6)


def test_margin_and_centering_terms():
    # The margin is subtracted inside the sigmoid: a gap of exactly the margin costs log 2.
    loss = pairwise_loss(torch.tensor([2.0]), torch.tensor([1.0]), margin=torch.tensor([1.0]))
    assert math.isclose(loss.item(), math.log(2), rel_tol=1e-6)
    # Centering adds coef * (r_c + r_r)^2: rewards 1 and 1 -> 0.5 * 4.
    loss = pairwise_loss(torch.tensor([1.0]), torch.tensor([1.0]), center_coef=0.5)
    assert math.isclose(loss.item(), math.log(2) + 2.0, rel_tol=1e-6)
    # A constant shift of every reward changes nothing without centering, and is penalised with it.
    c, r = torch.randn(6), torch.randn(6)
    torch.testing.assert_close(pairwise_loss(c + 3, r + 3), pairwise_loss(c, r))
    assert pairwise_loss(c + 3, r + 3, center_coef=0.1) > pairwise_loss(c, r, center_coef=0.1)


def test_pairwise_loss_matches_naive_reference_and_its_gradient():
    torch.manual_seed(0)
    chosen = torch.randn(7, dtype=torch.float64, requires_grad=True)
    rejected = torch.randn(7, dtype=torch.float64, requires_grad=True)
    margin = torch.rand(7, dtype=torch.float64)
    loss = pairwise_loss(chosen, rejected, margin, center_coef=0.05)
    assert math.isclose(loss.item(), _naive_pairwise(chosen, rejected, margin, 0.05), rel_tol=1e-12)
    loss.backward()
    # d/dc of -log sigmoid(c - r - m) = -(1 - sigmoid(c - r - m)); centering adds 2 k (c + r).
    s = torch.sigmoid(chosen - rejected - margin).detach()
    centre = 2 * 0.05 * (chosen + rejected).detach()
    torch.testing.assert_close(chosen.grad, (-(1 - s) + centre) / 7)
    torch.testing.assert_close(rejected.grad, ((1 - s) + centre) / 7)


def test_ece_hand_computed():
    # Bin (0.9, 1]: confidence 0.95, accuracy 1/2 -> weight 1/2 * 0.45.
    # Bin (0.6, 0.7]: confidence 0.65, accuracy 1 -> weight 1/2 * 0.35.
    conf = torch.tensor([0.95, 0.95, 0.65, 0.65], dtype=torch.float64)
    correct = torch.tensor([True, False, True, True])
    assert math.isclose(expected_calibration_error(conf, correct), 0.225 + 0.175, rel_tol=1e-9)
    # Perfectly calibrated: 70% confident and right 7 times in 10.
    assert expected_calibration_error(torch.full((10,), 0.7, dtype=torch.float64), torch.arange(10) < 7) < 1e-12
    # Edges go to the bin below: 0.5 and 0.45 share (0.4, 0.5].
    assert math.isclose(
        expected_calibration_error(torch.tensor([0.5, 0.45], dtype=torch.float64), torch.tensor([True, False])), abs(0.5 - 0.475)
    )


def test_ece_matches_naive_reference():
    torch.manual_seed(1)
    conf = torch.rand(200)
    correct = torch.rand(200) < conf
    naive = 0.0
    for b in range(10):
        lo, hi = b / 10, (b + 1) / 10
        idx = [i for i in range(200) if (lo < conf[i] <= hi) or (b == 0 and conf[i] == 0)]
        if idx:
            acc = sum(bool(correct[i]) for i in idx) / len(idx)
            mean_conf = sum(float(conf[i]) for i in idx) / len(idx)
            naive += len(idx) / 200 * abs(acc - mean_conf)
    assert math.isclose(expected_calibration_error(conf, correct), naive, rel_tol=1e-5)
