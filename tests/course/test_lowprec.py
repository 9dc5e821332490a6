"""dlviz.course.lowprec: fixed-point rounding (exact values, unbiasedness, saturation) and the hashed linear layer."""
import math

import pytest
import torch

from dlviz.course.lowprec import HashedLinear, fixed_point, fixed_point_range, fixed_point_ste, hash_positions


def test_round_to_nearest_exact_values():
    # step 0.25 (2 fraction bits), range [-8, 7.75] (4 integer bits)
    x = torch.tensor([0.0, 0.1, 0.124, 0.125, 0.126, 0.3, -0.1, -0.125, -0.126, -0.3, 1.0, 7.7])
    expected = torch.tensor([0.0, 0.0, 0.0, 0.25, 0.25, 0.25, 0.0, 0.0, -0.25, -0.25, 1.0, 7.75])
    assert torch.equal(fixed_point(x, 2, 4), expected)          # halves round up, as floor(x / step + 1/2)


def test_grid_points_are_kept_and_input_untouched():
    x = torch.arange(-64, 64, dtype=torch.float32) / 16           # every point of <3, 4>
    before = x.clone()
    for rounding in ("nearest", "stochastic"):
        assert torch.equal(fixed_point(x, 4, 3, rounding, generator=torch.Generator().manual_seed(0)), x)
    assert torch.equal(x, before)


@pytest.mark.parametrize("rounding", ["nearest", "stochastic"])
def test_saturates_at_the_range(rounding):
    step, low, high = fixed_point_range(3, 2)
    assert (step, low, high) == (0.125, -2.0, 1.875)
    x = torch.tensor([-100.0, -2.01, 1.9, 1.99, 100.0, float("inf"), -float("inf")])
    y = fixed_point(x, 3, 2, rounding, generator=torch.Generator().manual_seed(0))
    assert torch.equal(y, torch.tensor([-2.0, -2.0, 1.875, 1.875, 1.875, 1.875, -2.0]))


@pytest.mark.parametrize("value", [0.3, -0.3, 0.0625, 1.2499, -1.9])
def test_stochastic_rounding_is_unbiased(value):
    step, n = 0.25, 200_000
    x = torch.full((n,), value, dtype=torch.float64)
    y = fixed_point(x, 2, 2, "stochastic", generator=torch.Generator().manual_seed(1))
    lower = math.floor(value / step) * step
    assert set(y.unique().tolist()) <= {lower, lower + step}
    p = (value - lower) / step                                    # probability of rounding up
    std_of_mean = step * math.sqrt(p * (1 - p) / n)
    assert abs(y.mean().item() - value) < 5 * std_of_mean + 1e-12
    # round-to-nearest of the same values is biased by a whole fraction of a step
    if 0.05 < p < 0.45 or 0.55 < p < 0.95:
        assert abs(fixed_point(x, 2, 2).mean().item() - value) > 20 * std_of_mean


def test_stochastic_rounding_follows_the_generator():
    x = torch.rand(1000, generator=torch.Generator().manual_seed(0))
    a = fixed_point(x, 3, 2, "stochastic", generator=torch.Generator().manual_seed(5))
    b = fixed_point(x, 3, 2, "stochastic", generator=torch.Generator().manual_seed(5))
    c = fixed_point(x, 3, 2, "stochastic", generator=torch.Generator().manual_seed(6))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="rounding"):
        fixed_point(torch.zeros(2), 2, 2, "up")
    with pytest.raises(TypeError, match="float tensor"):
        fixed_point(torch.zeros(2, dtype=torch.int64), 2, 2)
    with pytest.raises(ValueError, match="integer_bits"):
        fixed_point(torch.zeros(2), 2, 0)


def test_straight_through_gradient():
    x = torch.tensor([0.3, -0.7, 9.0], requires_grad=True)
    y = fixed_point_ste(x, 2, 2)
    assert torch.equal(y.detach(), fixed_point(x.detach(), 2, 2))
    grad, = torch.autograd.grad((y * torch.tensor([1.0, 2.0, 3.0])).sum(), x)
    assert torch.equal(grad, torch.tensor([1.0, 2.0, 3.0]))


def test_hash_is_deterministic_and_spread():
    index, sign = hash_positions(100, 300, 64, seed=3)
    again, sign_again = hash_positions(100, 300, 64, seed=3)
    other, _ = hash_positions(100, 300, 64, seed=4)
    assert torch.equal(index, again) and torch.equal(sign, sign_again) and not torch.equal(index, other)
    counts = torch.bincount(index.flatten(), minlength=64).float()
    assert counts.min() > 0.8 * counts.mean() and counts.max() < 1.2 * counts.mean()   # 469 per bucket on average
    assert abs(sign.mean().item()) < 0.02
    # the sign is not a function of the bucket (two independent hashes)
    assert all(len(sign[index == b].unique()) == 2 for b in range(64))


def test_hashed_linear_parameters_and_determinism():
    layer = HashedLinear(50, 20, pool_size=37, seed=0)
    assert sum(p.numel() for p in layer.parameters()) == 37 + 20
    assert not any(name in dict(layer.named_parameters()) for name in ("index", "sign"))
    weight = layer.weight()
    assert weight.shape == (20, 50)
    assert len(weight.abs().unique()) <= 37                       # every virtual weight is +- a pool entry
    torch.manual_seed(0)
    a = HashedLinear(50, 20, 37, seed=1)
    torch.manual_seed(0)
    b = HashedLinear(50, 20, 37, seed=1)
    x = torch.rand(4, 50)
    assert torch.equal(a(x), b(x))
    assert torch.allclose(a(x), x @ a.weight().T + a.bias)
    assert not torch.equal(HashedLinear(50, 20, 37, seed=2).index, a.index)


def test_hashed_linear_gradient_flows_to_the_pool():
    layer = HashedLinear(30, 10, pool_size=12, seed=0)
    x = torch.rand(8, 30)
    layer(x).pow(2).sum().backward()
    assert layer.pool.grad is not None and layer.pool.grad.abs().sum() > 0
    # the pool's gradient is the signed sum of the virtual weights' gradients
    weight = layer.weight().detach().requires_grad_(True)
    torch.nn.functional.linear(x, weight, layer.bias.detach()).pow(2).sum().backward()
    expected = torch.zeros(12).index_add_(0, layer.index.flatten(), (weight.grad * layer.sign).flatten())
    assert torch.allclose(layer.pool.grad, expected, atol=1e-5)
