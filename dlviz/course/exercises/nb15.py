"""Exercises of notebook 15 (computing with fewer bits: fixed point, stochastic rounding, bfloat16, HashedNets)."""
from . import register
from ._answers import number

# --- 11.1 The grid of a fixed-point format -------------------------------------------------------------------


def _grid_solution():
    # <IL, FL> = <4, 12>: 16 bits; the step is 2**-FL, the largest value 2**(IL - 1) - step (one bit is the sign)
    integer_bits, fraction_bits = 4, 12
    step = 2.0 ** -fraction_bits
    return step, 2.0 ** (integer_bits - 1) - step


def _grid_check(answer):
    step, high = (number(a) for a in answer)
    if step == 2.0 ** -12 and high == 8 - 2.0 ** -12:
        return True, "step 2**-12 = 0.000244, largest value 8 - 2**-12 = 7.99976; the smallest is -8"
    if step == 2.0 ** -12 and high == 8:
        return False, "8 itself is not representable: the largest value is one step below 2**(IL - 1)"
    if step == 2.0 ** -12 and high in (16 - 2.0 ** -12, 16):
        return False, "one of the four integer bits is the sign, so the range is [-8, 8 - step], not [0, 16)"
    return False, f"expected (step, largest value) of <IL=4, FL=12>; the step is 2**-FL. Got ({step!r}, {high!r})"


register("15.1", "The grid of a fixed-point format", check=_grid_check, solution=_grid_solution,
         wrong=[(2.0 ** -12, 8.0), (2.0 ** -12, 16 - 2.0 ** -12), (2.0 ** -4, 2048.0)])


# --- 11.2 The smallest update that survives round-to-nearest --------------------------------------------------


def _threshold_solution():
    # a weight on the grid moves only if lr * |gradient| reaches half a step: 2**-FL / 2
    fraction_bits, lr = 8, 0.05
    return 2.0 ** -fraction_bits / 2 / lr


def _threshold_check(answer):
    value = number(answer)
    expected = 2.0 ** -9 / 0.05
    if abs(value - expected) <= 0.01 * expected:
        return True, (f"|gradient| >= 2**-9 / 0.05 = {expected:.4f}: a smaller gradient gives an update under half a "
                      "step and the weight rounds back to where it was")
    if abs(value - 2 * expected) <= 0.01 * 2 * expected:
        return False, "this is a whole step over lr: round-to-nearest already moves a weight at half a step"
    if abs(value - 2.0 ** -9) <= 0.01 * 2.0 ** -9:
        return False, "this is the smallest update (half a step); the question asks for the gradient, update / lr"
    return False, f"expected the gradient size lr * |g| = half a step gives, with FL = 8 and lr = 0.05; got {value:.4g}"


register("15.2", "The smallest update that survives round-to-nearest", check=_threshold_check,
         solution=_threshold_solution, wrong=[2.0 ** -8 / 0.05, 2.0 ** -9, 0.05])


# --- 11.3 The price of unbiasedness ---------------------------------------------------------------------------


def _variance_solution():
    import torch

    from dlviz.course.lowprec import fixed_point

    # exactly: up (to 0.5) with probability p = 0.2, down (to 0.25) with 0.8: p (1 - p) step**2 = 0.01
    draws = fixed_point(torch.full((1_000_000,), 0.3, dtype=torch.float64), 2, 2, "stochastic",
                        generator=torch.Generator().manual_seed(0))
    return float(((draws - 0.3) ** 2).mean())


def _variance_check(answer):
    value = number(answer)
    if abs(value - 0.01) <= 0.0005:
        return True, ("p (1 - p) step**2 = 0.2 * 0.8 * 0.0625 = 0.01: four times round-to-nearest's 0.0025, the "
                      "price of an error that averages out")
    if abs(value - 0.0025) <= 0.0002:
        return False, "0.0025 is round-to-nearest's squared error (0.3 -> 0.25); stochastic rounding sometimes goes up"
    return False, f"expected the mean squared error of stochastic rounding of 0.3 on a grid of step 0.25; got {value:.4g}"


register("15.3", "The price of unbiasedness", check=_variance_check, solution=_variance_solution,
         wrong=[0.0025, 0.05, 0.0])


# --- 11.4 Free parameters of a hashed network -----------------------------------------------------------------


def _count_solution():
    from torch import nn

    from dlviz.course.lowprec import HashedLinear

    net = nn.Sequential(HashedLinear(784, 1000, 784 * 1000 // 8, seed=0), nn.ReLU(),
                        HashedLinear(1000, 10, 1000 * 10 // 8, seed=1))
    return sum(p.numel() for p in net.parameters())


def _count_check(answer):
    value = number(answer)
    if value == 100_260:
        return True, "98,000 + 1,250 shared weights and 1,010 biases: 100,260 free parameters for 794,000 virtual weights"
    if value == 99_250:
        return False, "the biases (1,000 + 10) are free parameters too: HashedLinear keeps them dense"
    if value == 795_010:
        return False, "this is the virtual network's size; count the pools and the biases only"
    return False, f"expected the number of trained numbers (pools and biases); got {value:g}"


register("15.4", "Free parameters of a hashed network", check=_count_check, solution=_count_solution,
         wrong=[99_250, 795_010, 99_376])
