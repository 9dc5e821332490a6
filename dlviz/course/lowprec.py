"""Computing with fewer bits: fixed-point rounding (Gupta et al. 2015) and hashed weights (Chen et al. 2015).

:func:`fixed_point` rounds a tensor to a signed fixed-point grid, to the nearest point or stochastically;
:func:`fixed_point_ste` does the same inside a network, passing gradients straight through;
:class:`HashedLinear` is a linear layer whose weights are drawn from a small shared pool by a hash of their position.
"""
from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

__all__ = ["fixed_point", "fixed_point_ste", "fixed_point_range", "HashedLinear", "hash_positions"]


def fixed_point_range(fraction_bits: int, integer_bits: int) -> tuple[float, float, float]:
    """The grid of signed fixed point with ``integer_bits`` (sign included) and ``fraction_bits``: (step, low, high).

    A word of ``integer_bits + fraction_bits`` bits in two's complement holds the multiples of
    ``step = 2 ** -fraction_bits`` from ``low = -2 ** (integer_bits - 1)`` to ``high = 2 ** (integer_bits - 1) - step``
    (Gupta et al. 2015's <IL, FL> format).

    Example:
        >>> from dlviz.course.lowprec import fixed_point_range
        >>> fixed_point_range(8, 8)        # 16 bits: <8, 8>
        (0.00390625, -128.0, 127.99609375)
        >>> fixed_point_range(2, 2)
        (0.25, -2.0, 1.75)
    """
    if int(fraction_bits) != fraction_bits or int(integer_bits) != integer_bits or integer_bits < 1:
        raise ValueError(f"expected whole numbers of bits, integer_bits >= 1 (it holds the sign); got "
                         f"fraction_bits={fraction_bits!r}, integer_bits={integer_bits!r}")
    step = 2.0 ** -fraction_bits
    return step, -(2.0 ** (integer_bits - 1)), 2.0 ** (integer_bits - 1) - step


def fixed_point(x: torch.Tensor, fraction_bits: int, integer_bits: int = 8, rounding: str = "nearest",
                generator: torch.Generator | None = None) -> torch.Tensor:
    """Round ``x`` to signed fixed point with ``fraction_bits`` bits after the binary point, saturating at the range.

    Args:
        x: a float tensor of any shape (not modified).
        fraction_bits: FL; the grid step is ``2 ** -fraction_bits``.
        integer_bits: IL, sign bit included; values saturate at ``-2 ** (IL - 1)`` and ``2 ** (IL - 1) - step``.
        rounding: ``"nearest"``: the nearest grid point, halves rounded up (floor(x / step + 1/2) * step), as in
            Gupta et al.; ``"stochastic"``: down to ``floor(x / step) * step`` or up one step, up with probability
            equal to the distance from the lower point in steps, so that the expected result is ``x`` (unbiased)
            inside the range.
        generator: a ``torch.Generator`` for the uniform draws of stochastic rounding (on ``x``'s device).

    Returns:
        a tensor of ``x``'s shape, dtype and device, every value a multiple of the step inside the range.

    Example:
        >>> import torch
        >>> from dlviz.course.lowprec import fixed_point
        >>> x = torch.tensor([0.3, -0.3, 0.125, 5.0])
        >>> fixed_point(x, fraction_bits=2, integer_bits=2)           # step 0.25, range [-2, 1.75]
        tensor([ 0.2500, -0.2500,  0.2500,  1.7500])
        >>> draws = fixed_point(torch.full((100_000,), 0.3), 2, 2, "stochastic",
        ...                     generator=torch.Generator().manual_seed(0))
        >>> sorted(draws.unique().tolist()), round(draws.mean().item(), 2)   # 0.25 or 0.5, 0.3 on average
        ([0.25, 0.5], 0.3)
    """
    if not torch.is_tensor(x) or not x.is_floating_point():
        raise TypeError(f"expected a float tensor, got {type(x).__name__}"
                        + (f" of dtype {x.dtype}" if torch.is_tensor(x) else ""))
    step, low, high = fixed_point_range(fraction_bits, integer_bits)
    scaled = x / step
    if rounding == "nearest":
        scaled = torch.floor(scaled + 0.5)
    elif rounding == "stochastic":
        noise = torch.rand(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        scaled = torch.floor(scaled + noise)
    else:
        raise ValueError(f"rounding must be 'nearest' or 'stochastic', got {rounding!r}")
    return (scaled * step).clamp(low, high)


class _StraightThrough(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, fraction_bits, integer_bits, rounding, generator):
        return fixed_point(x, fraction_bits, integer_bits, rounding, generator)

    @staticmethod
    def backward(ctx, grad):
        return grad, None, None, None, None


def fixed_point_ste(x: torch.Tensor, fraction_bits: int, integer_bits: int = 8, rounding: str = "nearest",
                    generator: torch.Generator | None = None) -> torch.Tensor:
    """:func:`fixed_point` in the forward pass, identity in the backward pass (the straight-through estimator).

    For rounding the activations inside a network that is trained: the gradient of the rounded value is taken to be
    that of the unrounded one. Arguments and result as :func:`fixed_point`.

    Example:
        >>> import torch
        >>> from dlviz.course.lowprec import fixed_point_ste
        >>> x = torch.tensor([0.3, 0.9], requires_grad=True)
        >>> y = fixed_point_ste(x, fraction_bits=1)
        >>> y.detach(), torch.autograd.grad(y.sum(), x)[0]
        (tensor([0.5000, 1.0000]), tensor([1., 1.]))
    """
    return _StraightThrough.apply(x, fraction_bits, integer_bits, rounding, generator)


def _splitmix64(values: np.ndarray) -> np.ndarray:
    """Steele, Lea & Flood's SplitMix64 finalizer: a well-mixed 64-bit hash of each uint64."""
    with np.errstate(over="ignore"):
        z = values + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def hash_positions(rows: int, cols: int, buckets: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """The bucket h(i, j) in [0, buckets) and the sign xi(i, j) in {-1, +1} of every position of a (rows, cols) matrix.

    Two independent hashes of the position (and ``seed``), as Chen et al.'s HashedNets use: the bucket picks the shared
    weight, the sign removes the bias that collisions would add to inner products (Weinberger et al. 2009). The same
    arguments always give the same result, on every machine.

    Returns:
        ``(index, sign)``: int64 and float32 tensors of shape (rows, cols).

    Example:
        >>> from dlviz.course.lowprec import hash_positions
        >>> index, sign = hash_positions(2, 3, buckets=4, seed=0)
        >>> index.shape, bool(((index >= 0) & (index < 4)).all()), sorted(sign.unique().tolist())
        (torch.Size([2, 3]), True, [-1.0, 1.0])
    """
    if rows < 1 or cols < 1 or buckets < 1:
        raise ValueError(f"expected rows, cols and buckets >= 1, got {rows}, {cols}, {buckets}")
    position = np.arange(rows * cols, dtype=np.uint64)
    salt = np.uint64((int(seed) * 0x632BE59BD9B4E019) % 2 ** 64)
    with np.errstate(over="ignore"):
        h1 = _splitmix64(position ^ salt)
        h2 = _splitmix64(h1 ^ np.uint64(0xD6E8FEB86659FD93))
    index = torch.from_numpy((h1 % np.uint64(buckets)).astype(np.int64)).view(rows, cols)
    sign = torch.from_numpy(((h2 >> np.uint64(63)).astype(np.float32) * 2 - 1)).view(rows, cols)
    return index, sign


class HashedLinear(nn.Module):
    """A linear layer of ``out_features x in_features`` virtual weights drawn from a pool of ``pool_size`` free ones.

    Weight ``V[i, j] = sign(i, j) * pool[index(i, j)]`` with the two hashes of :func:`hash_positions` (Chen et al.
    2015, HashedNets). Only the pool (and the bias, ``out_features`` numbers, not hashed) is trained; the gradient of
    a pool entry is the signed sum of the gradients of the virtual weights that share it.

    Args:
        in_features, out_features: as ``nn.Linear``.
        pool_size: the number of free weights (the compression factor is ``pool_size / (in_features * out_features)``).
        seed: picks the hash functions; the same seed gives the same weight sharing.
        bias: add a dense bias of ``out_features`` (default True).

    Input (N, in_features) -> output (N, out_features). The pool is initialized as ``nn.Linear``'s weights are
    (uniform in +-1/sqrt(in_features)), so a virtual weight has the same distribution.

    Example:
        >>> import torch
        >>> from dlviz.course.lowprec import HashedLinear
        >>> layer = HashedLinear(784, 100, pool_size=1000, seed=0)
        >>> sum(p.numel() for p in layer.parameters())          # 1000 shared weights + 100 biases
        1100
        >>> layer(torch.rand(5, 784)).shape, layer.weight().shape
        (torch.Size([5, 100]), torch.Size([100, 784]))
    """

    def __init__(self, in_features: int, out_features: int, pool_size: int, seed: int = 0, bias: bool = True):
        super().__init__()
        self.in_features, self.out_features, self.pool_size, self.seed = in_features, out_features, pool_size, seed
        bound = 1 / math.sqrt(in_features)
        self.pool = nn.Parameter(torch.empty(pool_size).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(out_features).uniform_(-bound, bound)) if bias else None
        index, sign = hash_positions(out_features, in_features, pool_size, seed)
        self.register_buffer("index", index, persistent=False)
        self.register_buffer("sign", sign, persistent=False)

    def weight(self) -> torch.Tensor:
        """The virtual weight matrix (out_features, in_features), computed from the pool (differentiable)."""
        return self.pool[self.index] * self.sign

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.linear(x, self.weight(), self.bias)

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, pool_size={self.pool_size}, "
                f"seed={self.seed}, bias={self.bias is not None}")
