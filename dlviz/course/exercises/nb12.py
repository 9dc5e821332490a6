"""Exercises of notebook 12 (adversarial and fooling images).

Exercises 1-3 ask for a function: the check runs it on linear models and images it makes up (seeded) and compares
with the exact answer, so any correct way of writing it passes. Exercises 4-5 use :func:`linear_model`, a softmax
regression on MNIST that every call trains again, identically.
"""
import functools

from . import register
from ._answers import number


@functools.lru_cache(maxsize=1)
def linear_model():
    """A softmax regression on 28 x 28 MNIST digits (``nn.Sequential(nn.Flatten(), nn.Linear(784, 10))``), trained
    like section 3's 28-pixel model: one pass with Adam (lr 3e-3, batches of 50) over 10,000 digits of the training
    split, seed 0. About 89% accuracy on the validation split. The same model on every call."""
    import torch
    import torch.nn.functional as F
    from torch import nn

    import dlviz

    train_X, train_y = dlviz.data.tensors(dlviz.data.mnist(train=True))
    (x_tr, y_tr), _ = dlviz.data.train_val_split(train_X, train_y, val=10_000, seed=0)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        torch.manual_seed(0)
        model = nn.Sequential(nn.Flatten(), nn.Linear(784, 10))
        optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
        order = torch.randperm(10_000, generator=torch.Generator().manual_seed(0))
        for start in range(0, 10_000, 50):
            idx = order[start:start + 50]
            loss = F.cross_entropy(model(x_tr[idx]), y_tr[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    finally:
        torch.set_num_threads(threads)
    for p in model.parameters():
        p.requires_grad_(False)
    return model.eval()


def _cases(seed, n=6, d=30, classes=5):
    """Made-up linear classifiers and images in [0, 1] (some pixels at 0 or 1, so that clipping matters)."""
    import torch

    g = torch.Generator().manual_seed(seed)
    W = torch.randn(classes, d, generator=g)
    b = torch.randn(classes, generator=g)
    x = torch.rand(n, d, generator=g)
    x[:, : d // 3] = (x[:, : d // 3] > 0.5).float()
    y = torch.randint(0, classes, (n,), generator=g)
    return W, b, x, y


def _call(function, *args):
    import torch

    out = function(*args)
    return torch.as_tensor(out, dtype=torch.float64).detach()


# --- 08.1 FGSM on a linear model, by hand -----------------------------------------------------------------------


def _fgsm_linear_solution():
    import torch

    def fgsm_linear(W, b, x, y, eps):
        # the gradient of the cross-entropy of softmax(x W^T + b) with respect to x is (p - onehot(y)) W
        p = torch.softmax(x @ W.T + b, dim=1)
        grad = (p - torch.nn.functional.one_hot(y, W.shape[0]).to(p.dtype)) @ W
        return (x + eps * grad.sign()).clamp(0, 1)

    return fgsm_linear


def _fgsm_linear_check(answer):
    import torch
    from torch import nn

    from dlviz.adversarial.attacks import fgsm

    if not callable(answer):
        return False, "expected a function fgsm_linear(W, b, x, y, eps) that returns the FGSM images, shape (N, D)"
    for seed, eps in ((0, 0.1), (1, 0.25), (2, 0.03)):
        W, b, x, y = _cases(seed)
        model = nn.Sequential(nn.Flatten(), nn.Linear(W.shape[1], W.shape[0]))
        with torch.no_grad():
            model[1].weight.copy_(W)
            model[1].bias.copy_(b)
        expected = fgsm(model, x.view(len(x), 1, 1, -1), y, eps).view(len(x), -1).double()
        got = _call(answer, W.clone(), b.clone(), x.clone(), y.clone(), eps)
        if got.shape != expected.shape:
            return False, f"expected images of shape {tuple(expected.shape)} (one row per image), got {tuple(got.shape)}"
        if got.min() < -1e-9 or got.max() > 1 + 1e-9:
            return False, "some pixels leave [0, 1]: FGSM clips the stepped image back into the valid range"
        if not torch.allclose(got, expected, atol=1e-5):
            xd = x.double()
            p = torch.softmax(xd @ W.double().T + b.double(), dim=1)
            grad = (p - torch.nn.functional.one_hot(y, W.shape[0]).double()) @ W.double()
            if torch.allclose(got, (xd - eps * grad.sign()).clamp(0, 1), atol=1e-5):
                return False, "the step goes the wrong way: FGSM moves x *up* the gradient of the loss of the true class"
            if torch.allclose(got, (xd + eps * grad).clamp(0, 1), atol=1e-5):
                return False, ("this steps along the gradient itself: FGSM steps by eps times its *sign*, so every "
                               "pixel that is not clipped moves by exactly eps")
            return False, (f"on a test case with eps = {eps} the images differ from dlviz.fgsm's by up to "
                           f"{float((got - expected).abs().max()):.3g}")
    return True, ("matches dlviz.fgsm on three made-up linear classifiers: the gradient (softmax(Wx + b) - e_y)^T W "
                  "needs no autograd for a linear model, and its sign is the whole attack")


register("12.1", "FGSM on a linear model, by hand", check=_fgsm_linear_check, solution=_fgsm_linear_solution,
         wrong=[lambda W, b, x, y, eps: x + eps * ((torch_softmax(x @ W.T + b) - onehot(y, W)) @ W).sign(),
                lambda W, b, x, y, eps: (x - eps * ((torch_softmax(x @ W.T + b) - onehot(y, W)) @ W).sign()).clamp(0, 1),
                lambda W, b, x, y, eps: (x + eps * ((torch_softmax(x @ W.T + b) - onehot(y, W)) @ W)).clamp(0, 1),
                "x + eps * sign(grad)"])


def torch_softmax(scores):
    import torch
    return torch.softmax(scores, dim=1)


def onehot(y, W):
    import torch
    return torch.nn.functional.one_hot(y, W.shape[0]).float()


# --- 08.2 The smallest eps that changes a linear model's answer ---------------------------------------------------


def _min_eps_solution():
    import torch

    def min_eps(W, b, x, y):
        # moving every pixel by at most eps changes s_y - s_j by at most eps * ||w_y - w_j||_1 (dual norm of L-inf)
        scores = x @ W.T + b
        margins = scores.gather(1, y[:, None]) - scores              # (N, classes), s_y - s_j
        l1 = (W[y][:, None, :] - W[None, :, :]).abs().sum(2)         # (N, classes), ||w_y - w_j||_1
        ratio = margins / l1
        ratio[torch.arange(len(y)), y] = float("inf")                # j = y is not another answer
        return ratio.min(1).values

    return min_eps


def _min_eps_reference(W, b, x, y, norm):
    import torch
    W, b, x = W.double(), b.double(), x.double()
    scores = x @ W.T + b
    margins = scores.gather(1, y[:, None]) - scores
    size = (W[y][:, None, :] - W[None, :, :]).norm(p=norm, dim=2)
    ratio = margins / size
    ratio[torch.arange(len(y)), y] = float("inf")
    return ratio.min(1).values


def _min_eps_check(answer):
    import torch

    if not callable(answer):
        return False, "expected a function min_eps(W, b, x, y) that returns one eps per image, shape (N,)"
    for seed in (3, 4, 5):
        W, b, x, y = _cases(seed)
        with torch.no_grad():
            scores = x @ W.T + b
        y = scores.argmax(1)                                          # images the model gets right
        expected = _min_eps_reference(W, b, x, y, 1)
        got = _call(answer, W.clone(), b.clone(), x.clone(), y.clone()).reshape(-1)
        if got.shape != expected.shape:
            return False, f"expected one eps per image, shape {tuple(expected.shape)}, got {tuple(got.shape)}"
        if torch.allclose(got, expected, rtol=1e-4, atol=1e-7):
            continue
        if torch.allclose(got, _min_eps_reference(W, b, x, y, 2), rtol=1e-4):
            return False, ("this divides by the L2 norm of w_y - w_j: the budget is on the largest pixel change "
                           "(L-infinity), whose worst case is eps * ||w_y - w_j||_1, the L1 norm")
        if torch.allclose(got, 255 * expected, rtol=1e-4):
            return False, "these are grey levels: return eps in pixel units (divide by 255)"
        return False, f"for made-up test case {seed} expected {[round(v, 4) for v in expected.tolist()]}, got {[round(v, 4) for v in got.tolist()]}"
    return True, ("the answer changes once eps * ||w_y - w_j||_1 reaches the margin s_y - s_j for the easiest class j: "
                  "eps* = min_j (s_y - s_j) / ||w_y - w_j||_1 (ignoring the [0, 1] box, which can only make it larger)")


def _min_eps_l2(W, b, x, y):
    return _min_eps_reference(W, b, x, y, 2)


def _min_eps_max(W, b, x, y):
    import torch
    W, b, x = W.double(), b.double(), x.double()
    scores = x @ W.T + b
    ratio = (scores.gather(1, y[:, None]) - scores) / (W[y][:, None, :] - W[None, :, :]).abs().sum(2)
    ratio[torch.arange(len(y)), y] = 0.0
    return ratio.max(1).values


register("12.2", "The smallest eps that changes a linear model's answer", check=_min_eps_check,
         solution=_min_eps_solution, wrong=[_min_eps_l2, _min_eps_max, 0.05])


# --- 08.3 The same classifier, spread over more pixels -------------------------------------------------------------


def _spread_solution():
    def spread(W, k):
        # every pixel becomes a k x k block of copies; each copy gets 1/k^2 of the pixel's weight
        classes, side = W.shape[0], int(round(W.shape[1] ** 0.5))
        image = W.reshape(classes, 1, side, side)
        return image.repeat_interleave(k, 2).repeat_interleave(k, 3).reshape(classes, -1) / k ** 2

    return spread


def _enlarge(x, k):
    return x.repeat_interleave(k, 2).repeat_interleave(k, 3)


def _spread_check(answer):
    import torch

    if not callable(answer):
        return False, "expected a function spread(W, k) that returns the weights (classes, (28k)^2) of the twin"
    g = torch.Generator().manual_seed(6)
    W = torch.randn(10, 784, generator=g, dtype=torch.float64)
    x = torch.rand(4, 1, 28, 28, generator=g, dtype=torch.float64)
    for k in (2, 4):
        got = _call(answer, W.clone(), k)
        if got.shape != (10, 784 * k * k):
            return False, f"for k = {k} expected weights of shape (10, {784 * k * k}), got {tuple(got.shape)}"
        big = _enlarge(x, k).reshape(4, -1)
        if not torch.allclose(big @ got.T, x.reshape(4, -1) @ W.T, rtol=1e-6, atol=1e-9):
            if torch.allclose(big @ got.T, k * k * (x.reshape(4, -1) @ W.T), rtol=1e-6):
                return False, (f"the scores come out {k * k} times too large: each pixel now has {k * k} copies, "
                               f"so each copy may carry only 1/{k * k} of its weight")
            return False, (f"for k = {k} the twin's scores on enlarged images differ from the small model's: the "
                           "copies of a pixel must sit where repeat_interleave puts them (row by row, k x k blocks)")
        if abs(float(got.abs().sum()) - float(W.abs().sum())) > 1e-6 * float(W.abs().sum()):
            return False, "the scores match but ||W||_1 changed: spread each weight evenly over its copies"
    return True, ("the twin gives the same scores on every enlarged image and has the same ||w||_1, so FGSM changes "
                  "its scores by the same eps * ||w||_1: more pixels alone do not make a model easier to fool")


def _spread_no_division(W, k):
    return _spread_solution()(W, k) * k ** 2


def _spread_wrong_order(W, k):
    # copies laid out as k^2 whole images one after another, not as blocks
    return W.repeat(1, k * k) / k ** 2


register("12.3", "The same classifier, spread over more pixels", check=_spread_check, solution=_spread_solution,
         wrong=[_spread_no_division, _spread_wrong_order, "W / k**2"])


# --- 08.4 Why random noise does so little --------------------------------------------------------------------------


def _direction_solution():
    model = linear_model()
    W = model[1].weight
    v = W[3] - W[8]
    return float(v.abs().sum() / v.norm())


def _direction_check(answer):
    import math

    value = number(answer)
    expected = _direction_solution()
    if math.isfinite(value) and abs(value - expected) <= 0.01 * expected:
        return True, (f"||v||_1 / ||v||_2 = {expected:.1f}: FGSM's step changes s_3 - s_8 by eps * ||v||_1, about "
                      f"{expected:.0f} times the typical change (standard deviation eps * ||v||_2) that random +-eps "
                      "noise of the same size makes -- the root of section 2's random-noise curve")
    if abs(value - 1 / expected) <= 0.01 / expected:
        return False, "this is the inverse: divide the L1 norm of v = w_3 - w_8 by its L2 norm"
    if abs(value - 28.0) < 1e-6:
        return False, ("28 = sqrt(784) is the largest possible ratio, reached only when every |v_i| is equal; "
                       "compute it for this model's v = w_3 - w_8")
    return False, (f"expected ||v||_1 / ||v||_2 for v = w_3 - w_8 of linear_model() (within 1%), about "
                   f"{expected:.1f}; got {value:.4g}")


register("12.4", "Why random noise does so little", check=_direction_check, solution=_direction_solution,
         wrong=[28.0, 1.0, 1 / 20.4])


# --- 08.5 A fooling image for a linear model -------------------------------------------------------------------------


def _fooling_solution():
    model = linear_model()
    W = model[1].weight
    # in the box [0, 1]^784 the score difference s_3 - s_j is largest at a corner: ink wherever w_3 beats the rest
    return (W[3] > W.mean(0)).float().reshape(1, 1, 28, 28)


def _fooling_check(answer):
    import torch

    x = torch.as_tensor(answer).detach().float()
    if x.numel() != 784:
        return False, f"expected one 28 x 28 image, shape (1, 1, 28, 28), got shape {tuple(x.shape)}"
    x = x.reshape(1, 1, 28, 28)
    if not bool(torch.isfinite(x).all()) or float(x.min()) < 0 or float(x.max()) > 1:
        return False, "the image must have every pixel in [0, 1]: outside that box any score is easy"
    with torch.no_grad():
        p = torch.softmax(linear_model()(x), 1)[0]
    if float(p[3]) >= 0.99:
        return True, (f"linear_model() gives it class 3 with {float(p[3]):.2%}: for a linear model the most "
                      "convincing image is a corner of the box, a pattern of ink where w_3 is large -- no 3 needed")
    return False, (f"linear_model() gives this image class 3 with only {float(p[3]):.2%} (its answer: "
                   f"{int(p.argmax())}); push it further, e.g. by gradient ascent on log p_3, clipping to [0, 1]")


register("12.5", "A fooling image for a linear model", check=_fooling_check, solution=_fooling_solution,
         wrong=[[[0.0] * 28] * 28, [[1.0] * 28] * 28, [[2.0] * 28] * 28, [0.5] * 10])
