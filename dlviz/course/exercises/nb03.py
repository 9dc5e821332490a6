"""Exercises of notebook 03 (training deep networks: vanishing gradients, initialization, batch norm, dropout)."""
import math

from . import register
from ._answers import number


def _close(value, expected, rel):
    return abs(float(value) - expected) <= rel * abs(expected)


# --- 03.1 the backward factor r of tanh layers with weights N(0, 0.05^2) ------------------------------------------

def _tanh_factor_solution():
    import numpy as np
    import torch
    import torch.nn.functional as F
    from torch import nn

    import dlviz

    x, y = dlviz.data.tensors(dlviz.data.mnist(train=True), limit=256)
    torch.manual_seed(0)
    sizes = [784] + [128] * 9 + [10]
    linears = [nn.Linear(sizes[i], sizes[i + 1]) for i in range(10)]
    for linear in linears:
        nn.init.normal_(linear.weight, 0.0, 0.05)
        nn.init.zeros_(linear.bias)
    h, zs = x.flatten(1), []
    for i, linear in enumerate(linears):
        z = linear(h)
        z.retain_grad()
        zs.append(z)
        h = torch.tanh(z) if i < 9 else z
    F.cross_entropy(h, y).backward()
    delta = [z.grad.norm().item() for z in zs]
    # r: geometric mean of |delta_l| / |delta_(l+1)| over the links between two hidden layers of 128 (layers 2..9)
    return float(np.exp(np.mean([math.log(delta[l] / delta[l + 1]) for l in range(1, 8)])))


_TANH_FACTOR = 0.566      # sqrt(128 * 0.05^2 * E[tanh'(z)^2]) with E[tanh'^2] just below 1: small weights, small z


def _tanh_factor_check(answer):
    r = number(answer)
    if _close(r, _TANH_FACTOR, 0.05):
        return True, (f"r = {r:.3f}: sqrt(n Var(w) E[tanh'(z)^2]) = sqrt(128 * 0.05^2 * ~1) = 0.57 -- every layer "
                      f"multiplies the gradient by about 0.57, so it vanishes (0.57^8 = 0.011 over 8 links)")
    if _close(r, 1 / _TANH_FACTOR, 0.05):
        return False, f"{r:.3f} is the inverse: divide the gradient of the lower layer by that of the upper one"
    return False, (f"{r:.3f} is not it: expected about {_TANH_FACTOR:.2f} (within 5%), i.e. "
                   f"sqrt(n Var(w) E[f'(z)^2]) with n = 128, Var(w) = 0.05^2 and tanh' close to 1 for small z")


register("03.1", "The backward factor of tanh layers", check=_tanh_factor_check, solution=_tanh_factor_solution,
         wrong=[0.05, 0.32, 0.113, 1.77, 1.0])


# --- 03.2 ReLU's second moment and variance ------------------------------------------------------------------------

def _relu_moments_solution():
    import torch

    torch.manual_seed(0)
    z = 2.0 * torch.randn(4_000_000, dtype=torch.float64)         # Var(z) = 4
    a = torch.relu(z)
    return (a.pow(2).mean().item(), a.var().item())              # about (2.0, 4 * (1/2 - 1/(2 pi)) = 1.363)


def _relu_moments_check(answer):
    second_moment, variance = (float(v) for v in answer)
    expected = (2.0, 4 * (0.5 - 1 / (2 * math.pi)))
    ok = _close(second_moment, expected[0], 0.02) and _close(variance, expected[1], 0.02)
    why = (f"expected E[relu(z)^2] = Var(z)/2 = 2.0 and Var(relu(z)) = (1/2 - 1/(2 pi)) Var(z) = {expected[1]:.3f} "
           f"(within 2%); got ({second_moment:.3f}, {variance:.3f})")
    if not ok and _close(variance, 2.0, 0.02):
        why += ". ReLU halves the second moment, not the variance: relu(z) has a positive mean, which the variance removes"
    return ok, why


register("03.2", "ReLU halves the second moment", check=_relu_moments_check, solution=_relu_moments_solution,
         wrong=[(2.0, 2.0), (1.0, 0.68), (2.0, 4.0), (4.0, 1.363)])


# --- 03.3 He's rule for a leaky ReLU --------------------------------------------------------------------------------

def _leaky_he_solution():
    import math

    slope = 0.1
    # E[leaky(z)^2] = (1 + slope^2) / 2 * Var(z) for symmetric z, so n Var(w) (1 + slope^2) / 2 = 1
    return lambda n_in: math.sqrt(2 / ((1 + slope ** 2) * n_in))


def _leaky_he_check(answer):
    import torch

    for n_in in (64, 256, 1000):
        std = float(answer(n_in))
        expected = math.sqrt(2 / (1.01 * n_in))
        if not _close(std, expected, 0.003):
            return False, (f"for n_in = {n_in} your function gives {std:.5f}, expected sqrt(2 / ((1 + 0.1^2) n_in)) = "
                           f"{expected:.5f}: the leaky ReLU keeps (1 + 0.1^2)/2 of the second moment, not 1/2")
    # and it does what it promises: the pre-activations keep their spread through 20 layers
    torch.manual_seed(0)
    h = torch.randn(2000, 256)
    start = h.std().item()
    for _ in range(20):
        h = torch.nn.functional.leaky_relu(h, 0.1) @ (torch.randn(256, 256) * float(answer(256)))
    ratio = h.std().item() / start
    return True, (f"sqrt(2 / ((1 + a^2) n_in)) with a = 0.1 (Kaiming He et al. 2015); after 20 leaky-ReLU "
                  f"layers of 256 the pre-activations keep {ratio:.2f} of their standard deviation")


register("03.3", "He's rule for a leaky ReLU", check=_leaky_he_check, solution=_leaky_he_solution,
         wrong=[lambda n: math.sqrt(2 / n), lambda n: math.sqrt(1 / n), lambda n: math.sqrt(2 / (1.1 * n)),
                lambda n: 2 / ((1 + 0.01) * n)])


# --- 03.4 inverted dropout by the numbers --------------------------------------------------------------------------

def _dropout_numbers_solution():
    import torch

    p, x = 0.3, 2.0
    torch.manual_seed(0)
    out = torch.nn.functional.dropout(torch.full((2_000_000,), x), p, training=True)
    kept_value = out.max().item()                       # x / (1 - p)
    return (kept_value, out.mean().item(), out.var().item())   # about (2.857, 2.0, x^2 p / (1 - p) = 1.714)


def _dropout_numbers_check(answer):
    kept, mean, variance = (float(v) for v in answer)
    expected = (2 / 0.7, 2.0, 4 * 0.3 / 0.7)
    ok = all(_close(v, e, 0.01) for v, e in zip((kept, mean, variance), expected))
    why = (f"expected a kept unit worth 2 / (1 - 0.3) = {expected[0]:.3f}, a mean of 2.0 (inverted dropout keeps the "
           f"expected value) and a variance of 2^2 * 0.3 / 0.7 = {expected[2]:.3f} (within 1%); got "
           f"({kept:.3f}, {mean:.3f}, {variance:.3f})")
    return ok, why


register("03.4", "Inverted dropout by the numbers", check=_dropout_numbers_check, solution=_dropout_numbers_solution,
         wrong=[(2.0, 2.0, 0.84), (2 / 0.7, 2.0, 0.84), (2.6, 1.82, 1.09), (2 / 0.7, 1.4, 1.714)])


# --- 03.5 batch norm in eval mode is an affine map -----------------------------------------------------------------

def _bn_affine_solution():
    import torch

    def affine(bn):
        # eval mode: y = gamma (z - running_mean) / sqrt(running_var + eps) + beta = a z + c
        a = bn.weight / torch.sqrt(bn.running_var + bn.eps)
        return a.detach(), (bn.bias - a * bn.running_mean).detach()
    return affine


def _bn_affine_check(answer):
    import torch
    from torch import nn

    torch.manual_seed(0)
    bn = nn.BatchNorm1d(20)
    with torch.no_grad():
        bn.weight.uniform_(0.5, 2.0)
        bn.bias.normal_()
        for _ in range(30):                       # running statistics from batches with mean 3 and spread 2.5
            bn(3 + 2.5 * torch.randn(32, 20))
    bn.eval()
    a, c = answer(bn)
    z = 3 + 2.5 * torch.randn(100, 20)
    with torch.no_grad():
        expected = bn(z)
    error = (torch.as_tensor(a) * z + torch.as_tensor(c) - expected).abs().max().item()
    if error < 1e-4:
        return True, f"a z + c reproduces nn.BatchNorm1d in eval mode (largest difference {error:.1e})"
    return False, (f"a z + c differs from nn.BatchNorm1d in eval mode by up to {error:.2f}: expected "
                   "a = gamma / sqrt(running_var + eps) and c = beta - a * running_mean")


register("03.5", "Batch norm in eval mode is an affine map", check=_bn_affine_check, solution=_bn_affine_solution,
         wrong=[lambda bn: (bn.weight.detach(), bn.bias.detach()),
                lambda bn: ((bn.weight / (bn.running_var + bn.eps).sqrt()).detach(), bn.bias.detach()),
                lambda bn: ((bn.weight / (bn.running_var + bn.eps)).detach(),
                            (bn.bias - bn.weight * bn.running_mean / (bn.running_var + bn.eps)).detach())])
