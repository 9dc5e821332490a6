"""Exercises of notebook 14 (networks that generate)."""
from . import register
from ._answers import number

# --- 10.1 The output size of a transposed convolution ---------------------------------------------------------


def _transposed_size_solution():
    def out_size(n, k, s=1, p=0):
        # a transposed convolution places one k x k copy of its kernel every s pixels, then crops p on each side
        return (n - 1) * s - 2 * p + k
    return out_size


def _transposed_size_check(answer):
    import torch

    cases = [(1, 7, 1, 0), (7, 4, 2, 1), (14, 4, 2, 1), (5, 3, 2, 0), (10, 5, 3, 2), (3, 1, 1, 0)]
    for n, k, s, p in cases:
        layer = torch.nn.ConvTranspose2d(1, 1, k, s, p)
        expected = layer(torch.zeros(1, 1, n, n)).shape[-1]
        try:
            got = answer(n, k, s, p)
        except Exception as error:                                    # noqa: BLE001 (shown to the student)
            return False, f"out_size({n}, {k}, {s}, {p}) raised {error!r}"
        if got != expected:
            return False, (f"out_size({n}, {k}, {s}, {p}) should be {expected} (what nn.ConvTranspose2d gives), "
                           f"got {got!r}")
    return True, "(n - 1) * s - 2p + k: 1 -> 7 with a 7 x 7 kernel, then 7 -> 14 -> 28 with k=4, s=2, p=1"


register("14.1", "The output size of a transposed convolution", check=_transposed_size_check,
         solution=_transposed_size_solution,
         wrong=[lambda n, k, s=1, p=0: (n + 2 * p - k) // s + 1, lambda n, k, s=1, p=0: n * s,
                lambda n, k, s=1, p=0: (n - 1) * s + k])


# --- 10.2 An inception score by hand --------------------------------------------------------------------------


def _inception_solution():
    def inception_score(probs):
        # probs: (N, classes), rows p(y|x); exp of the mean KL divergence from p(y|x) to the marginal p(y)
        marginal = probs.mean(0, keepdim=True)
        kl = (probs * (probs.clamp_min(1e-12).log() - marginal.clamp_min(1e-12).log())).sum(1)
        return kl.mean().exp()
    return inception_score


def _inception_check(answer):
    import torch

    reference = _inception_solution()
    g = torch.Generator().manual_seed(0)
    sets = {"random predictions": torch.softmax(3 * torch.randn(50, 10, generator=g), 1),
            "ten confident classes": torch.eye(10).repeat(5, 1) * 0.99 + 0.001,
            "one confident class": torch.eye(10)[[3] * 50] * 0.99 + 0.001}
    for name, probs in sets.items():
        try:
            returned = answer(probs.clone())
        except Exception as error:                                    # noqa: BLE001
            return False, f"on {name} your function raised {error!r}"
        try:
            got = number(returned)
        except ValueError as error:
            return False, f"on {name}: {error}"
        expected = float(reference(probs))
        if abs(got - expected) > 1e-3 * max(1, expected):
            return False, (f"on {name} expected {expected:.4f}, got {got:.4f}: exp(mean over images of "
                           "KL(p(y|x) || p(y))), where p(y) is the mean of the rows")
    return True, "about 9.3 for ten confidently recognized classes, 1.0 when every image gets the same class"


def _is_wrong_no_exp(probs):
    marginal = probs.mean(0, keepdim=True)
    return (probs * (probs.log() - marginal.log())).sum(1).mean()


def _is_wrong_reversed(probs):
    marginal = probs.mean(0, keepdim=True)
    return (marginal * (marginal.log() - probs.log())).sum(1).mean().exp()


def _is_wrong_entropy(probs):
    marginal = probs.mean(0)
    return (-(marginal * marginal.log()).sum()).exp()


register("14.2", "An inception score by hand", check=_inception_check, solution=_inception_solution,
         wrong=[_is_wrong_no_exp, _is_wrong_reversed, _is_wrong_entropy])


# --- 10.3 How many numbers does the generator learn? -----------------------------------------------------------


def _generator_size_solution():
    from dlviz.course.generate import Generator

    return sum(p.numel() for p in Generator(latent_dim=32, width=16).parameters())


def _generator_size_check(answer):
    # 32*64*7*7 (no bias: batch norm follows) + 2*64 + 64*32*4*4 + 2*32 + 32*1*4*4 + 1
    expected = 32 * 64 * 49 + 128 + 64 * 32 * 16 + 64 + 32 * 16 + 1
    try:
        got = number(answer)
    except ValueError as error:
        return False, str(error)
    if got == expected:
        return True, (f"{expected:,} numbers, most of them in the first layer (32 x 64 x 7 x 7 = {32 * 64 * 49:,}); "
                      "the last layer's 32 x 4 x 4 kernel paints every pixel")
    if got == expected - 192:
        return False, "close: batch norm's scale and shift (two per channel) are learned parameters too"
    if got == expected + 96:
        return False, "the layers followed by batch norm have no bias (bias=False): the norm's shift plays its part"
    return False, f"count the weights of the three transposed convolutions and the batch norms' parameters; got {got:g}"


register("14.3", "How many numbers does the generator learn?", check=_generator_size_check,
         solution=_generator_size_solution, wrong=[32 * 64 * 49 + 64 * 32 * 16 + 32 * 16 + 1, 32 * 64 * 49 + 128 + 64 * 32 * 16 + 64 + 32 * 16 + 1 + 96, 784])
