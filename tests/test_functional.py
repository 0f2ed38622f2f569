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


# ---------------------------------------------------------------- PPO math against naive loops

from rlhf.functional import (  # noqa: E402
    entropy_from_logits,
    explained_variance,
    gae,
    kl_penalty,
    logprobs_from_logits,
    masked_mean,
    masked_var,
    masked_whiten,
    policy_loss,
    shaped_rewards,
    value_loss,
)


def _prefix_mask(lengths, width):
    return torch.arange(width)[None, :] < torch.tensor(lengths)[:, None]  # (B, R)


def _valid(x, mask):
    return [v for v, m in zip(x.flatten().tolist(), mask.flatten().tolist(), strict=True) if m]


def test_masked_mean_var_whiten_use_only_masked_values():
    torch.manual_seed(0)
    x, mask = torch.randn(3, 5, dtype=torch.float64), _prefix_mask([5, 2, 3], 5)
    vals = _valid(x, mask)
    mean = sum(vals) / len(vals)
    var = sum((v - mean) ** 2 for v in vals) / (len(vals) - 1)
    assert math.isclose(masked_mean(x, mask).item(), mean, rel_tol=1e-12)
    assert math.isclose(masked_var(x, mask).item(), var, rel_tol=1e-12)
    white = masked_whiten(x, mask)
    assert (white[~mask] == 0).all()
    assert math.isclose(masked_mean(white, mask).item(), 0.0, abs_tol=1e-12)
    assert math.isclose(masked_var(white, mask).item(), 1.0, rel_tol=1e-6)
    # Garbage in the masked-out slots changes nothing.
    x2 = x.masked_fill(~mask, 1e6)
    torch.testing.assert_close(masked_whiten(x2, mask), white)
    # Along a dimension: per-row means.
    torch.testing.assert_close(masked_mean(x, mask, dim=1)[1], x[1, :2].mean())


def test_logprobs_and_entropy_match_a_naive_softmax():
    torch.manual_seed(0)
    logits, tokens = torch.randn(2, 3, 7, dtype=torch.float64), torch.randint(0, 7, (2, 3))
    lp, ent = logprobs_from_logits(logits, tokens, temperature=0.7), entropy_from_logits(logits, 0.7)
    for b in range(2):
        for t in range(3):
            z = [math.exp(v / 0.7) for v in logits[b, t].tolist()]
            p = [v / sum(z) for v in z]
            assert math.isclose(lp[b, t].item(), math.log(p[tokens[b, t]]), rel_tol=1e-6)
            assert math.isclose(ent[b, t].item(), -sum(q * math.log(q) for q in p), rel_tol=1e-6)


def test_kl_estimators():
    lp, ref = torch.tensor([-1.0, -2.0, -0.5]), torch.tensor([-1.5, -1.0, -0.5])
    torch.testing.assert_close(kl_penalty(lp, ref, "k1"), lp - ref)
    r = (ref - lp).exp()
    torch.testing.assert_close(kl_penalty(lp, ref, "k3"), (r - 1) - r.log())
    assert (kl_penalty(lp, ref, "k3") >= 0).all() and kl_penalty(lp, ref, "k3")[2] == 0
    # Both estimate KL(p || q): averaged over samples from p they approach the exact value.
    torch.manual_seed(0)
    p, q = torch.tensor([0.6, 0.3, 0.1]), torch.tensor([0.3, 0.3, 0.4])
    exact = (p * (p / q).log()).sum()
    x = torch.multinomial(p, 200_000, replacement=True)
    for est in ("k1", "k3"):
        assert abs(kl_penalty(p[x].log(), q[x].log(), est).mean() - exact) < 0.01


def test_shaped_rewards_put_the_score_on_the_last_real_token():
    mask = _prefix_mask([3, 1], 4)
    kl = torch.ones(2, 4)
    rewards = shaped_rewards(torch.tensor([2.0, -1.0]), kl, kl_coef=0.1, mask=mask)
    expected = torch.tensor([[-0.1, -0.1, 1.9, 0.0], [-1.1, 0.0, 0.0, 0.0]])
    torch.testing.assert_close(rewards, expected)


def _naive_gae(rewards, values, length, gamma, lam):
    adv, last = [0.0] * length, 0.0
    for t in reversed(range(length)):
        next_v = values[t + 1] if t + 1 < length else 0.0
        delta = rewards[t] + gamma * next_v - values[t]
        last = delta + gamma * lam * last
        adv[t] = last
    return adv


def test_gae_matches_a_naive_loop_per_row():
    torch.manual_seed(0)
    lengths = [6, 1, 4]
    mask = _prefix_mask(lengths, 6)
    rewards, values = torch.randn(3, 6, dtype=torch.float64), torch.randn(3, 6, dtype=torch.float64)
    adv, ret = gae(rewards * mask, values, mask, gamma=0.99, lam=0.9)
    for b, n in enumerate(lengths):
        expected = _naive_gae(rewards[b].tolist(), values[b].tolist(), n, 0.99, 0.9)
        torch.testing.assert_close(adv[b, :n], torch.tensor(expected, dtype=torch.float64))
        torch.testing.assert_close(ret[b, :n], adv[b, :n] + values[b, :n])
        assert (adv[b, n:] == 0).all() and (ret[b, n:] == 0).all()
    # gamma = lam = 1: the advantage is the reward-to-go minus the value.
    adv, _ = gae(rewards * mask, values, mask, 1.0, 1.0)
    torch.testing.assert_close(adv[0], rewards[0].flip(0).cumsum(0).flip(0) - values[0])


def test_policy_loss_at_ratio_one_and_beyond_the_clip():
    adv, mask = torch.tensor([[1.0, -2.0, 3.0]]), torch.tensor([[True, True, False]])
    lp = torch.tensor([[-1.0, -1.0, -1.0]], requires_grad=True)
    loss, clipfrac, approx_kl = policy_loss(lp, lp.detach(), adv, mask, clip_range=0.2)
    assert math.isclose(loss.item(), -(1.0 - 2.0) / 2) and clipfrac == 0 and approx_kl == 0
    loss.backward()  # at ratio 1 the gradient is -A / n per token, and 0 outside the mask
    torch.testing.assert_close(lp.grad, torch.tensor([[-0.5, 1.0, 0.0]]))

    # ratio 1.5 on a positive advantage: clipped at 1.2, no gradient; ratio 0.5 on a negative
    # advantage: clipped at 0.8, no gradient.
    old = torch.tensor([[0.0, 0.0, 0.0]])
    lp = torch.tensor([[math.log(1.5), math.log(0.5), 5.0]], requires_grad=True)
    loss, clipfrac, approx_kl = policy_loss(lp, old, adv, mask, clip_range=0.2)
    assert math.isclose(loss.item(), (-1.0 * 1.2 + 2.0 * 0.8) / 2, rel_tol=1e-6)
    assert clipfrac == 1.0
    expected_kl = ((0.5 - math.log(1.5)) + (-0.5 - math.log(0.5))) / 2
    assert math.isclose(approx_kl.item(), expected_kl, rel_tol=1e-6)
    loss.backward()
    assert (lp.grad == 0).all()
    # The pessimistic side is not clipped: ratio 1.5 on a negative advantage keeps its gradient.
    lp = torch.tensor([[0.0, math.log(1.5), 0.0]], requires_grad=True)
    loss, clipfrac, _ = policy_loss(lp, old, adv, mask, clip_range=0.2)
    assert math.isclose(loss.item(), (-1.0 + 2.0 * 1.5) / 2, rel_tol=1e-6) and clipfrac == 0
    loss.backward()
    assert lp.grad[0, 1] != 0 and lp.grad[0, 2] == 0


def test_value_loss_clips_around_the_old_values():
    old, ret = torch.zeros(1, 3), torch.tensor([[1.0, 1.0, 9.0]])
    mask = torch.tensor([[True, True, False]])
    v = torch.tensor([[0.1, 0.5, 0.0]], requires_grad=True)
    loss, clipfrac = value_loss(v, old, ret, mask, clip_range_value=0.2)
    # token 0: inside the clip, 0.81; token 1: clipped to 0.2 -> (0.8)^2 = 0.64 > 0.25 is taken.
    assert math.isclose(loss.item(), 0.5 * (0.81 + 0.64) / 2, rel_tol=1e-6)
    assert math.isclose(clipfrac.item(), 0.5)
    loss.backward()
    torch.testing.assert_close(v.grad, torch.tensor([[-0.45, 0.0, 0.0]]))


def test_explained_variance():
    mask = _prefix_mask([3, 2], 3)
    ret = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 0.0]])
    assert explained_variance(ret, ret, mask) == 1.0
    assert math.isclose(explained_variance(torch.full_like(ret, 3.0), ret, mask), 0.0, abs_tol=1e-6)
