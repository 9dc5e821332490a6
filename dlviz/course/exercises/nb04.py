"""Exercises of notebook 04 (convolutional networks)."""
from . import register
from ._answers import square_side


# --- 04.1 the output size of a convolution or a pooling layer ----------------------------------------------------

_SIZE_CASES = [(28, 5, 1, 0), (24, 2, 2, 0), (227, 11, 4, 0), (224, 11, 4, 2), (55, 3, 2, 0), (27, 5, 1, 2),
               (13, 3, 1, 1), (32, 3, 2, 1), (7, 7, 1, 0), (10, 4, 3, 1), (100, 6, 5, 3)]


def _out_size_solution():
    def out_size(n, k, s=1, p=0):
        # the window's first position plus one per stride that still fits inside the padded input
        return (n + 2 * p - k) // s + 1
    return out_size


def _out_size_check(answer):
    import torch
    from torch import nn

    if not callable(answer):
        return False, "expected a function out_size(n, k, s, p) that returns an int"
    for n, k, s, p in _SIZE_CASES:
        expected = nn.Conv2d(1, 1, k, stride=s, padding=p)(torch.zeros(1, 1, n, n)).shape[-1]
        got = answer(n, k, s, p)
        if not isinstance(got, int) and not (isinstance(got, float) and got.is_integer()):
            return False, (f"out_size({n}, {k}, {s}, {p}) returned {got!r}, not a whole number: a window either "
                           "fits or it does not, so round down (integer division //)")
        if int(got) != expected:
            return False, (f"out_size({n}, {k}, {s}, {p}) returned {got}, nn.Conv2d gives {expected}: the formula "
                           "is floor((n + 2p - k) / s) + 1")
    return True, (f"floor((n + 2p - k) / s) + 1 matches nn.Conv2d on all {len(_SIZE_CASES)} settings, AlexNet's "
                  "227 -> 55 (k 11, stride 4) among them; max-pooling follows the same rule")


register("04.1", "Output size of a convolution", check=_out_size_check, solution=_out_size_solution,
         wrong=[lambda n, k, s=1, p=0: (n + 2 * p - k) / s + 1, lambda n, k, s=1, p=0: (n - k) // s + 1,
                lambda n, k, s=1, p=0: (n + 2 * p - k) // s, 55])


# --- 04.2 parameters of a grouped convolution --------------------------------------------------------------------

def _grouped_params_solution():
    # 256 kernels of 5 x 5, each seeing only its group's 96 / 2 = 48 input channels, plus one bias per kernel
    return 256 * (96 // 2) * 5 * 5 + 256


def _grouped_params_check(answer):
    value = int(answer)
    if value == 307_456:
        return True, ("307,456 = 256 kernels x (48 channels x 5 x 5) + 256 biases: with two groups each kernel sees "
                      "half of the 96 input channels, which halves the weights")
    if value == 614_656:
        return False, "that is the count without grouping: each kernel sees only its group's 48 channels, not all 96"
    if value == 307_200:
        return False, "close: the 256 biases are parameters too"
    return False, f"{value:,} is not it; count (input channels per group) x kernel area per kernel, plus the biases"


register("04.2", "Parameters of a grouped convolution", check=_grouped_params_check,
         solution=_grouped_params_solution, wrong=[614_656, 307_200, 153_728])


# --- 04.3 receptive field of a unit of AlexNet's conv5 -----------------------------------------------------------

def _alexnet_rf_solution():
    size, jump = 1, 1
    # conv1 11/4, pool1 3/2, conv2 5/1, pool2 3/2, conv3, conv4, conv5 3/1 (padding does not change the field)
    for kernel, stride in [(11, 4), (3, 2), (5, 1), (3, 2), (3, 1), (3, 1), (3, 1)]:
        size += (kernel - 1) * jump
        jump *= stride
    return size


def _alexnet_rf_check(answer):
    value = square_side(answer)
    if value == 163:
        return True, ("163 x 163 pixels: 11 (conv1), + 2 x 4 (pool1), + 4 x 8 (conv2), + 2 x 8 (pool2), "
                      "+ 3 x (2 x 16) (conv3-5): each layer adds (kernel - 1) x the pixel step of the map it reads")
    if value == 195:
        return False, "195 is the field of pool5, one layer further; conv5's is smaller"
    if value in (35, 27):
        return False, "that multiplies kernels or adds them without the steps: a 3x3 kernel on a map whose units are 16 pixels apart adds 2 x 16"
    return False, f"{answer!r} pixels is not it; add (kernel - 1) x (the input map's step in pixels), layer by layer"


register("04.3", "Receptive field of AlexNet's conv5", check=_alexnet_rf_check, solution=_alexnet_rf_solution,
         wrong=[195, 131, 35, (163, 195)])


# --- 04.4 local response normalization by hand -------------------------------------------------------------------

LRN_ACTIVATIONS = [40.0, 0.0, 120.0, 80.0, 10.0, 60.0]


def _lrn_solution():
    import torch

    a = torch.tensor(LRN_ACTIVATIONS)
    k, n, alpha, beta = 2.0, 5, 1e-4, 0.75
    out = torch.empty_like(a)
    for i in range(len(a)):
        window = a[max(0, i - n // 2): i + n // 2 + 1]           # cut at the first and last channel
        out[i] = a[i] / (k + alpha * (window ** 2).sum()) ** beta
    return out


def _lrn_check(answer):
    import torch

    a = torch.as_tensor(answer, dtype=torch.float32).flatten()
    expected = _lrn_solution()
    if a.numel() != expected.numel():
        return False, f"expected {expected.numel()} numbers, one per channel, got {a.numel()}"
    if torch.allclose(a, expected, rtol=1e-3, atol=1e-4):
        return True, ("b_i = a_i / (2 + 1e-4 x sum of a_j^2 over the 5 channels centred on i)^0.75; the large "
                      f"channels damp each other: {[round(v, 2) for v in expected.tolist()]}")
    torch_style = torch.nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=2.0)(torch.tensor(LRN_ACTIVATIONS).view(1, -1, 1, 1)).flatten()
    if torch.allclose(a, torch_style, rtol=1e-3, atol=1e-4):
        return False, ("that is nn.LocalResponseNorm(5, alpha=1e-4, ...), which divides alpha by n = 5; the paper's "
                       "alpha multiplies the plain sum (in PyTorch: alpha=5e-4)")
    if torch.allclose(a, torch.tensor(LRN_ACTIVATIONS) / 2.0 ** 0.75, rtol=1e-3, atol=1e-4):
        return False, "that divides by k^beta only: the sum of squares over the neighbouring channels is missing"
    return False, "not the paper's b_i = a_i / (k + alpha x sum_j a_j^2)^beta with k=2, n=5, alpha=1e-4, beta=0.75"


register("04.4", "Local response normalization", check=_lrn_check, solution=_lrn_solution,
         wrong=[LRN_ACTIVATIONS, [v / 2 ** 0.75 for v in LRN_ACTIVATIONS],
                __import__("torch").nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=2.0)(
                    __import__("torch").tensor(LRN_ACTIVATIONS).view(1, -1, 1, 1)).flatten()])


# --- 04.5 LeNet's multiply-adds ----------------------------------------------------------------------------------

def _lenet_macs_solution():
    conv1 = 20 * 24 * 24 * (1 * 5 * 5)       # every output value: one multiply-add per weight of its kernel
    conv2 = 50 * 8 * 8 * (20 * 5 * 5)
    fc1, fc2 = 800 * 256, 256 * 10             # fully connected: one per weight
    return conv1 + conv2 + fc1 + fc2


def _lenet_macs_check(answer):
    value = int(answer)
    if value == 2_095_360:
        return True, ("2,095,360: conv1 288,000, conv2 1,600,000 (76%), fc1 204,800, fc2 2,560: the second "
                      "convolution does most of the work with 25,050 of the 233,196 parameters")
    if value == 233_196 or value == 232_910:
        return False, "that is the number of parameters: a convolution's weights are reused at every position"
    if value == 1_888_000:
        return False, "those are the convolutions only; add the two fully connected layers"
    return False, f"{value:,} is not it; count, for every output value, the weights it is computed from"


register("04.5", "LeNet's multiply-adds", check=_lenet_macs_check, solution=_lenet_macs_solution,
         wrong=[233_196, 1_888_000, 2_095_360 * 2])


# --- 04.6 batch normalization of a convolutional layer's output -------------------------------------------------

def _bn_solution():
    def batch_norm(x, eps=1e-5):
        # one mean and one variance per channel, over the batch and every position (dims 0, 2, 3)
        mean = x.mean(dim=(0, 2, 3), keepdim=True)
        var = x.var(dim=(0, 2, 3), unbiased=False, keepdim=True)
        return (x - mean) / (var + eps).sqrt()
    return batch_norm


def _bn_check(answer):
    import torch
    from torch.nn import functional as F

    if not callable(answer):
        return False, "expected a function batch_norm(x) of a tensor (N, C, H, W)"
    generator = torch.Generator().manual_seed(0)
    for shape in [(2, 3, 3, 3), (4, 5, 2, 2), (1, 2, 4, 4)]:
        x = torch.randn(shape, generator=generator) * torch.rand(1, shape[1], 1, 1, generator=generator) * 5 + 3
        expected = F.batch_norm(x, None, None, training=True, eps=1e-5)
        got = torch.as_tensor(answer(x.clone()))
        if got.shape != x.shape:
            return False, f"for an input of shape {shape} the output has shape {tuple(got.shape)}; it should keep it"
        if not torch.allclose(got, expected, rtol=1e-4, atol=1e-4):
            return False, (f"differs from F.batch_norm(x, training=True) on an input of shape {shape}: normalize each "
                           "channel with the mean and the biased variance of its N x H x W values")
    return True, "matches F.batch_norm in train mode: per channel, over the batch and all positions, biased variance"


register("04.6", "Batch norm for feature maps", check=_bn_check, solution=_bn_solution,
         wrong=[lambda x: (x - x.mean()) / x.std(),
                lambda x: (x - x.mean((2, 3), keepdim=True)) / (x.var((2, 3), unbiased=False, keepdim=True) + 1e-5).sqrt(),
                lambda x: (x - x.mean((0, 2, 3), keepdim=True)) / (x.var((0, 2, 3), keepdim=True) + 1e-5).sqrt()])
