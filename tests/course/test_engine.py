"""The course's scalar autograd engine agrees with torch.autograd (float64) to a relative error below 1e-6."""
import math
import random

import pytest
import torch

from dlviz.course.engine import Value


def rel_error(a, b):
    return abs(a - b) / max(abs(a), abs(b), 1e-12)


def test_every_operation_matches_autograd():
    a, b = Value(1.3), Value(-0.7)
    ta = torch.tensor(1.3, dtype=torch.float64, requires_grad=True)
    tb = torch.tensor(-0.7, dtype=torch.float64, requires_grad=True)
    out = ((a * b + a ** 3).tanh() + (a - b).relu() * b.exp() - (a * a).log() / (2 + b) + 3 / a - (-b)).tanh()
    tout = ((ta * tb + ta ** 3).tanh() + (ta - tb).relu() * tb.exp() - (ta * ta).log() / (2 + tb) + 3 / ta
            - (-tb)).tanh()
    out.backward()
    tout.backward()
    assert rel_error(out.data, tout.item()) < 1e-12
    assert rel_error(a.grad, ta.grad.item()) < 1e-6 and rel_error(b.grad, tb.grad.item()) < 1e-6


def test_reused_value_accumulates_and_backward_twice_is_the_same():
    x = Value(2.0)
    y = x * x + x                      # x is used three times
    y.backward()
    assert x.grad == pytest.approx(5.0)
    y.backward()                       # gradients are reset, not accumulated across calls
    assert x.grad == pytest.approx(5.0)


def test_small_mlp_gradients_match_autograd():
    rng = random.Random(0)
    sizes = [2, 4, 3]
    weights = [[[rng.gauss(0, 1) for _ in range(n_in)] for _ in range(n_out)] for n_in, n_out in zip(sizes, sizes[1:])]
    xs = [[rng.uniform(-1, 1) for _ in range(2)] for _ in range(5)]
    ys = [rng.randrange(3) for _ in range(5)]

    params = [[[Value(w) for w in row] for row in layer] for layer in weights]
    loss = Value(0.0)
    for x, y in zip(xs, ys):
        h = [sum((w * xi for w, xi in zip(row, x)), Value(0.0)).tanh() for row in params[0]]
        s = [sum((w * hi for w, hi in zip(row, h)), Value(0.0)) for row in params[1]]
        loss = loss + (sum((si.exp() for si in s), Value(0.0)).log() - s[y]) / len(xs)
    loss.backward()

    t = [torch.tensor(layer, dtype=torch.float64, requires_grad=True) for layer in weights]
    X = torch.tensor(xs, dtype=torch.float64)
    tloss = torch.nn.functional.cross_entropy(torch.tanh(X @ t[0].T) @ t[1].T, torch.tensor(ys))
    tloss.backward()
    assert rel_error(loss.data, tloss.item()) < 1e-12
    for layer, tlayer in zip(params, t):
        for row, trow in zip(layer, tlayer.grad):
            for w, g in zip(row, trow):
                assert rel_error(w.grad, g.item()) < 1e-6


def test_deep_chain_does_not_hit_the_recursion_limit():
    x = Value(0.5)
    y = x
    for _ in range(5000):
        y = y * 1.0
    y.backward()
    assert x.grad == 1.0


def test_bad_input_errors():
    with pytest.raises(ValueError, match="non-positive"):
        Value(-1.0).log()
    with pytest.raises(TypeError, match="exponent"):
        Value(2.0) ** Value(2.0)
    assert math.isclose(Value(4.0).__rtruediv__(2).data, 0.5)
