"""Exercises of notebook 10 (reconstruction from each layer, Mahendran & Vedaldi)."""
import torch

from . import register
from ._answers import number

# --- 10.1 The relative feature error ------------------------------------------------------------------------------


def _relative_error_solution():
    def relative_error(phi, target):
        # (N, ...) and (N, ...) -> (N,): |phi - target|^2 / |target|^2 for each image
        difference = (phi - target).flatten(1).pow(2).sum(1)
        return difference / target.flatten(1).pow(2).sum(1)
    return relative_error


def _tensor_of(answer, shape, what):
    got = torch.as_tensor(answer)
    if tuple(got.shape) != tuple(shape):
        raise ValueError(f"expected {what} of shape {tuple(shape)}, got shape {tuple(got.shape)}")
    if not bool(torch.isfinite(got).all()):
        raise ValueError(f"expected finite values for {what}, got NaN or infinity")
    return got.float()


def _relative_error_check(answer):
    generator = torch.Generator().manual_seed(0)
    for shape in ((3, 4, 5, 5), (2, 7)):
        target = torch.rand(shape, generator=generator)
        phi = target + 0.3 * torch.randn(shape, generator=generator)
        phi[0] = 0                      # an all-zero representation is at relative error 1
        expected = (phi - target).flatten(1).pow(2).sum(1) / target.flatten(1).pow(2).sum(1)
        got = _tensor_of(answer(phi.clone(), target.clone()), (shape[0],), "one error per image")
        if abs(float(got[0]) - 1) > 1e-4:
            return False, ("an all-zero representation should be at relative error exactly 1: divide the squared "
                           f"distance by |target|^2 (yours gives {float(got[0]):.4g})")
        if not torch.allclose(got, expected, rtol=1e-4, atol=1e-6):
            return False, ("the values differ from |phi - target|^2 / |target|^2 summed over everything but the "
                           "first dimension: square the differences (no square root) and sum, per image")
    return True, ("|phi - target|^2 / |target|^2 per image: 0 is a perfect match, 1 is as far as silence, so one "
                  "bound (say 0.05) means the same at every layer")


def _relative_error_plain(phi, target):
    return (phi - target).flatten(1).pow(2).sum(1)


def _relative_error_by_phi(phi, target):
    return (phi - target).flatten(1).pow(2).sum(1) / phi.flatten(1).pow(2).sum(1).clamp_min(1e-12)


def _relative_error_norms(phi, target):
    return (phi - target).flatten(1).norm(dim=1) / target.flatten(1).norm(dim=1)


register("10.1", "The relative feature error", check=_relative_error_check, solution=_relative_error_solution,
         wrong=[_relative_error_plain, _relative_error_by_phi, _relative_error_norms])


# --- 10.2 Total variation by hand ---------------------------------------------------------------------------------


def _tv_solution():
    def total_variation(x):
        # (N, C, H, W) -> (N,): the mean over the (H-1) x (W-1) corners and the channels of (dx^2 + dy^2) / V^2
        v = 0.5 / 6.5
        corner = x[:, :, :-1, :-1]
        dx = x[:, :, :-1, 1:] - corner
        dy = x[:, :, 1:, :-1] - corner
        return ((dx ** 2 + dy ** 2) / v ** 2).flatten(1).mean(1)
    return total_variation


def _tv_check(answer):
    from dlviz.synthesis.invert import tv_prior

    generator = torch.Generator().manual_seed(1)
    for shape in ((2, 1, 6, 6), (3, 3, 5, 8)):
        x = torch.rand(shape, generator=generator)
        got = _tensor_of(answer(x.clone()), (shape[0],), "one value per image")
        expected = tv_prior(x)
        if not torch.allclose(got, expected, rtol=1e-4, atol=1e-5):
            ratio = float(got.mean() / expected.mean())
            hint = (" (did you forget to divide by V^2 = (0.5 / 6.5)^2?)" if abs(ratio / (0.5 / 6.5) ** 2 - 1) < 0.05
                    else "")
            return False, (f"your values are {ratio:.3g} times tv_prior's{hint}. Take the differences to the right "
                           "and lower neighbours at the (H-1) x (W-1) pixels that have both, square, add, divide by "
                           "V^2, and average over pixels and channels")
    return True, "(dx^2 + dy^2) / V^2 averaged over pixels and channels, as dlviz.synthesis.invert.tv_prior with beta = 2"


def _tv_unscaled(x):
    corner = x[:, :, :-1, :-1]
    return ((x[:, :, :-1, 1:] - corner) ** 2 + (x[:, :, 1:, :-1] - corner) ** 2).flatten(1).mean(1)


def _tv_absolute(x):
    corner = x[:, :, :-1, :-1]
    v = 0.5 / 6.5
    return (((x[:, :, :-1, 1:] - corner).abs() + (x[:, :, 1:, :-1] - corner).abs()) / v).flatten(1).mean(1)


def _tv_wrapped(x):
    v = 0.5 / 6.5
    dx, dy = torch.roll(x, -1, 3) - x, torch.roll(x, -1, 2) - x
    return ((dx ** 2 + dy ** 2) / v ** 2).flatten(1).mean(1)


register("10.2", "Total variation by hand", check=_tv_check, solution=_tv_solution,
         wrong=[_tv_unscaled, _tv_absolute, _tv_wrapped])


# --- 10.3 How many numbers pool2 keeps ------------------------------------------------------------------------------


def _pool2_size_solution():
    # 28 -> conv 5x5 -> 24 -> pool -> 12 -> conv 5x5 -> 8 -> pool -> 4; 50 channels
    side = ((28 - 4) // 2 - 4) // 2
    return 50 * side * side


def _pool2_size_check(answer):
    got = number(answer)
    if got == 800:
        return True, ("800 numbers (50 x 4 x 4) for 784 pixels: more numbers than pixels, yet the reconstruction "
                      "from pool2 is not the digit -- the ReLUs and the max-pooling, not the count, lose the "
                      "information")
    if got == 1250:
        return False, "50 x 5 x 5 forgets that the second 5x5 convolution shrinks 12 to 8 before the pooling"
    if got == 3200:
        return False, "50 x 8 x 8 is conv2's output; pool2 halves each side"
    if got == 784:
        return False, "784 is the number of pixels; count pool2's channels times its height times its width"
    return False, f"{got:g} is not it: follow 28 x 28 through conv 5x5, pool 2, conv 5x5, pool 2, with 50 channels"


register("10.3", "How many numbers pool2 keeps", check=_pool2_size_check, solution=_pool2_size_solution,
         wrong=[1250, 3200, 784, 256])


# --- 10.4 Reconstruct digits from pool2 -----------------------------------------------------------------------------


def _digits():
    import dlviz

    x, y = dlviz.data.tensors(dlviz.data.mnist(train=True))
    (_, _), (x_val, y_val) = dlviz.data.train_val_split(x, y, val=10_000, seed=0)
    return x_val[:8], y_val[:8]


def _reconstruct_solution():
    import dlviz

    lenet = dlviz.models.zoo.load("lenet_mnist")
    digits, _ = _digits()
    return dlviz.invert(lenet, digits, layer="features.5", generator=torch.Generator().manual_seed(0), progress=False)


def _reconstruct_check(answer):
    import dlviz

    images = _tensor_of(answer, (8, 1, 28, 28), "8 reconstructed digits")
    if float(images.min()) < 0 or float(images.max()) > 1:
        return False, "images in dlviz are in [0, 1]; invert returns them so"
    lenet = dlviz.models.zoo.load("lenet_mnist")
    digits, labels = _digits()
    with torch.no_grad():
        phi = lenet.features(lenet.normalize(images))
        target = lenet.features(lenet.normalize(digits))
        error = (phi - target).flatten(1).pow(2).sum(1) / target.flatten(1).pow(2).sum(1)
        predicted = lenet(images).argmax(1)
    distance = (images - digits).flatten(1).pow(2).mean(1).sqrt()
    if float(distance.min()) < 0.02:
        return False, "these are the digits themselves (or nearly): start from noise, as invert does"
    if float(error.max()) > 0.05:
        return False, (f"the relative error at features.5 reaches {float(error.max()):.3g} (it should be below "
                       "0.05): invert the first 8 validation digits at layer 'features.5'")
    if not bool((predicted == labels).all()):
        return False, "LeNet does not classify every reconstruction as its digit's class"
    return True, (f"relative error at pool2 at most {float(error.max()):.3f}, distance to the digits "
                  f"{float(distance.min()):.2f}-{float(distance.max()):.2f} RMS, and LeNet still reads every "
                  "digit: pool2 keeps the class, not the exact strokes")


register("10.4", "Reconstruct digits from pool2", check=_reconstruct_check, solution=_reconstruct_solution,
         wrong=[torch.full((8, 1, 28, 28), 0.5), torch.zeros(8, 28, 28),
                torch.rand(8, 1, 28, 28, generator=torch.Generator().manual_seed(0))])
