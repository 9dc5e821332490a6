"""Exercises of notebook 05 (architectures, measured)."""
import math

from . import register


def _number(answer):
    """``answer`` as a finite float, or None (None, ..., strings, NaN, functions): a number, not text."""
    if isinstance(answer, (bool, str, bytes)):
        return None
    try:
        value = float(answer)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


# --- 05.1 multiply-adds of a strided convolution ------------------------------------------------------------------

def _conv_macs_solution():
    out = (32 + 2 * 1 - 3) // 2 + 1                 # 16 x 16 outputs per kernel
    return 128 * out * out * (64 * 3 * 3)           # each output: one multiply-add per weight of its kernel


def _conv_macs_check(answer):
    value = _number(answer)
    if value is None:
        return False, "expected a number: the multiply-adds of the layer for one image"
    if value == 18_874_368:
        return True, ("18,874,368 = 128 kernels x 16 x 16 positions x (64 x 3 x 3) weights each: stride 2 on a "
                      "32 x 32 input gives a 16 x 16 map, a quarter of the positions of stride 1")
    if value == 75_497_472:
        return False, "that is stride 1 (32 x 32 outputs); with stride 2 there are only 16 x 16 positions"
    if value in (73_728, 73_856):
        return False, "that is the number of parameters: every weight is used once at every output position"
    if value == 2 * 18_874_368:
        return False, "that counts multiplications and additions separately (FLOPs); a multiply-add is one of each"
    return False, f"{value:,.0f} is not it; (output positions) x (kernels) x (weights per kernel)"


register("05.1", "Multiply-adds of a strided convolution", check=_conv_macs_check, solution=_conv_macs_solution,
         wrong=[75_497_472, 73_856, 2 * 18_874_368, "18874368"])


# --- 05.2 three 3x3 convolutions against one 7x7 ------------------------------------------------------------------

def _vgg_solution():
    from torch import nn
    from dlviz.complexity import count_parameters

    channels = 256
    stack = nn.Sequential(*[nn.Conv2d(channels, channels, 3, padding=1, bias=False) for _ in range(3)])
    single = nn.Conv2d(channels, channels, 7, padding=3, bias=False)
    return count_parameters(stack) / count_parameters(single)      # 3 x 9 C^2 / 49 C^2


def _vgg_check(answer):
    value = _number(answer)
    if value is None:
        return False, "expected a number: the stack's weights divided by the single layer's"
    if abs(value - 27 / 49) < 1e-3:
        return True, ("27/49 = 0.551: three 3x3 layers have 3 x 9 C^2 weights, one 7x7 layer 49 C^2, for the same "
                      "7 x 7 receptive field and two more nonlinearities")
    if abs(value - 49 / 27) < 1e-3:
        return False, "that is the inverse: divide the stack's weights by the 7x7 layer's"
    if abs(value - 9 / 49) < 1e-3:
        return False, "that is one 3x3 layer; the stack has three"
    if abs(value - 3 / 7) < 1e-3:
        return False, "that compares kernel widths; weights grow with the kernel's area"
    return False, f"{value} is not it; count the weights of each (the channel count cancels)"


register("05.2", "Three 3x3 convolutions or one 7x7", check=_vgg_check, solution=_vgg_solution,
         wrong=[49 / 27, 9 / 49, 3 / 7, 1.0])


# --- 05.3 the 1x1 reduction of an inception branch ----------------------------------------------------------------

def _inception_solution():
    import torch
    from torch import nn
    from dlviz.complexity import multiply_adds

    x = torch.rand(1, 192, 28, 28)
    direct = nn.Conv2d(192, 32, 5, padding=2)
    reduced = nn.Sequential(nn.Conv2d(192, 16, 1), nn.ReLU(), nn.Conv2d(16, 32, 5, padding=2))
    return multiply_adds(direct, x) / multiply_adds(reduced, x)


def _inception_check(answer):
    value = _number(answer)
    expected = (32 * 192 * 25) / (16 * 192 + 32 * 16 * 25)
    if value is None:
        return False, "expected a number: multiply-adds without the reduction divided by those with it"
    if abs(value - expected) < 0.01:
        return True, (f"{expected:.2f}x: per position 32 x 192 x 25 = 153,600 multiply-adds directly, against "
                      "16 x 192 + 32 x 16 x 25 = 15,872 through the 16-channel 1x1 reduction")
    if abs(value - 12) < 0.01:
        return False, "192 / 16 = 12 forgets the cost of the 1x1 convolution itself"
    if abs(value - 1 / expected) < 0.01:
        return False, "that is the inverse: divide the direct branch's cost by the reduced one's"
    return False, f"{value} is not it; count both versions per output position (the 28 x 28 cancels)"


register("05.3", "What a 1x1 reduction saves", check=_inception_check, solution=_inception_solution,
         wrong=[12, 1.0, 2.37, (16 * 192 + 32 * 16 * 25) / (32 * 192 * 25)])


# --- 05.4 a residual block that starts as the identity ------------------------------------------------------------

def _identity_block_solution():
    from torch import nn
    from torch.nn import functional as F

    class Block(nn.Module):
        def __init__(self, channels):
            super().__init__()
            self.conv1 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
            self.bn1 = nn.BatchNorm2d(channels)
            self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
            self.bn2 = nn.BatchNorm2d(channels)
            nn.init.zeros_(self.bn2.weight)      # the residual branch starts at zero: the block passes x through

        def forward(self, x):
            return F.relu(x + self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x))))))

    return Block


def _identity_block_check(answer):
    import torch
    from torch import nn

    if not callable(answer):
        return False, "expected a function or class make_block(channels) that returns an nn.Module"
    try:
        block = answer(8)
    except Exception as error:  # noqa: BLE001 -- a student's code: report what went wrong
        return False, f"make_block(8) raised {type(error).__name__}: {error}"
    if not isinstance(block, nn.Module):
        return False, f"make_block(8) returned {type(block).__name__}, not an nn.Module"
    convs = [m for m in block.modules() if isinstance(m, nn.Conv2d)]
    if len(convs) < 2:
        return False, "a residual block has two 3x3 convolutions in its branch; this one has fewer"
    x = torch.rand(4, 8, 7, 7, generator=torch.Generator().manual_seed(0))
    for mode in ("train", "eval"):
        getattr(block, mode)()
        with torch.no_grad():
            out = block(x)
        if not isinstance(out, torch.Tensor) or out.shape != x.shape or not torch.allclose(out, x, atol=1e-5):
            return False, (f"in {mode} mode the new block does not return its (non-negative) input: the residual "
                           "branch must start at zero while the skip connection carries x")
    block.train()
    out = block(x)
    (out * torch.randn(out.shape, generator=torch.Generator().manual_seed(1))).sum().backward()
    if not any(p.grad is not None and p.grad.abs().sum() > 0 for p in block.parameters()):
        return False, "no parameter gets a gradient: the block could never learn anything but the identity"
    with torch.no_grad():
        for p in block.parameters():
            p.add_(torch.randn(p.shape, generator=torch.Generator().manual_seed(2)) * 0.5)
        changed = not torch.allclose(block(x), x, atol=1e-3)
    if not changed:
        return False, "the output stays x whatever the weights: the residual branch is cut off"
    return True, ("the block adds a branch that starts at zero (zero scale in its last batch norm, as Goyal et al. "
                  "2017) to its input: a deep stack of them starts as the shallow network, and learning can only "
                  "add to it")


def _plain_block():
    from torch import nn
    return lambda channels: nn.Sequential(nn.Conv2d(channels, channels, 3, padding=1), nn.ReLU(),
                                          nn.Conv2d(channels, channels, 3, padding=1), nn.ReLU())


def _default_init_block():
    block = _identity_block_solution()

    def make(channels):
        made = block(channels)
        made.bn2.weight.data.fill_(1.0)
        return made
    return make


register("05.4", "A residual block that starts as the identity", check=_identity_block_check,
         solution=_identity_block_solution,
         wrong=[__import__("torch").nn.Identity, _plain_block(), _default_init_block()])
