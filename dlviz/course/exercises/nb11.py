"""Exercises of notebook 11 (DeepDream and class visualization)."""
from . import register
from ._answers import number

# --- 07.1 The sizes of an image pyramid ----------------------------------------------------------------------


def _octave_sizes_solution():
    # deepdream's octave i works on the image shrunk by octave_scale ** i, rounded to whole pixels
    side, octaves, octave_scale = 96, 4, 1.4
    return [round(side / octave_scale ** i) for i in range(octaves)]


def _octave_sizes_check(answer):
    expected = [96, 69, 49, 35]
    sides = []
    for item in list(answer):
        if isinstance(item, (tuple, list)):               # (height, width) pairs are fine too
            if len(item) != 2 or item[0] != item[1]:
                return False, f"{item!r} is not the side of a square octave: the photo is 96 x 96, so every octave is square"
            item = item[0]
        sides.append(int(item) if float(item) == int(item) else float(item))
    if sorted(sides, reverse=True) == expected:
        return True, "96 / 1.4**i rounded: 96, 69 (68.6), 49 (49.0), 35 (35.0) pixels; deepdream starts on the 35-pixel copy"
    if sorted(sides, reverse=True) == [96, 68, 48, 34]:
        return False, "these are rounded down; deepdream rounds to the nearest pixel (96 / 1.4 = 68.6 -> 69)"
    if len(sides) != 4:
        return False, f"four octaves give four sizes, got {len(sides)}"
    return False, f"expected the sides 96 / 1.4**i for i = 0..3, rounded to whole pixels; got {sides}"


register("11.1", "The sizes of an image pyramid", check=_octave_sizes_check, solution=_octave_sizes_solution,
         wrong=[[96, 68, 48, 34], [96, 134, 188, 263], [96, 69, 49]])


# --- 07.2 How much larger is the gradient of a deeper layer? ----------------------------------------------------


def _gradient_scale_solution():
    import torch

    import dlviz
    from dlviz.models import zoo
    from dlviz.synthesis.dream import layer_objective
    from dlviz.hooks import activations

    lenet = zoo.load("lenet_mnist")
    test_X, _ = dlviz.data.tensors(dlviz.data.mnist(train=False), limit=1)
    scale = {}
    for layer in ("features.1", "classifier.1"):
        x = test_X[:1].clone().requires_grad_(True)
        objective = layer_objective(activations(lenet, x, layer, grad=True)[layer])
        grad, = torch.autograd.grad(objective.sum(), x)
        scale[layer] = float(grad.abs().mean())
    return scale["classifier.1"] / scale["features.1"]


_GRADIENT_RATIO = 22.7   # measured with the shipped LeNet weights (tests/test_exercises.py recomputes it)


def _gradient_scale_check(answer):
    ratio = number(answer)
    if abs(ratio - _GRADIENT_RATIO) < 0.05 * _GRADIENT_RATIO:
        return True, (f"the gradient of classifier.1's objective is about {_GRADIENT_RATIO:.0f} times that of "
                      "features.1's: a plain step x + lr * grad needs a different lr at every layer, which the "
                      "normalized step avoids")
    if abs(1 / ratio - _GRADIENT_RATIO) < 0.05 * _GRADIENT_RATIO:
        return False, "this is the inverse ratio: divide classifier.1's mean absolute gradient by features.1's"
    return False, (f"expected the ratio of the mean absolute gradients (classifier.1 / features.1) on the first "
                   f"test digit, about {_GRADIENT_RATIO:.0f} (within 5%); got {ratio:.3g}")


register("11.2", "How much larger is the gradient of a deeper layer?", check=_gradient_scale_check,
         solution=_gradient_scale_solution, wrong=[1.0, 1 / 22.7, 2.2])


# --- 07.3 Total variation -------------------------------------------------------------------------------------


def _total_variation_solution():
    def total_variation(x):
        # mean absolute jump between vertical neighbours plus between horizontal neighbours, one value per image
        vertical = (x[..., 1:, :] - x[..., :-1, :]).abs().flatten(1).mean(1)
        horizontal = (x[..., :, 1:] - x[..., :, :-1]).abs().flatten(1).mean(1)
        return vertical + horizontal
    return total_variation


def _total_variation_check(answer):
    import torch

    reference = _total_variation_solution()
    images = torch.rand(3, 1, 7, 9, generator=torch.Generator().manual_seed(0))
    images[1] = (torch.arange(7)[:, None] + torch.arange(9)[None, :]).remainder(2).float()  # a checkerboard: TV 2
    images[2] = torch.linspace(0, 1, 9).expand(7, 9)                                     # a ramp: TV 1/8
    got = torch.as_tensor(answer(images.clone()), dtype=torch.float32).flatten()
    expected = reference(images)
    if got.numel() != 3:
        return False, f"return one value per image: a tensor of shape (3,) for 3 images, got {got.numel()} values"
    if torch.allclose(got, expected, atol=1e-5):
        return True, "a checkerboard has total variation 2, a ramp from 0 to 1 over 9 columns 1/8"
    return False, (f"on a random image, a checkerboard and a horizontal ramp expected {expected.numpy().round(4)}, "
                   f"got {got.numpy().round(4)} (mean absolute jump between vertical neighbours plus between "
                   "horizontal ones)")


def _tv_wrong_sum(x):
    return (x[..., 1:, :] - x[..., :-1, :]).abs().flatten(1).sum(1) + (x[..., 1:] - x[..., :-1]).abs().flatten(1).sum(1)


def _tv_wrong_one_direction(x):
    return (x[..., 1:] - x[..., :-1]).abs().flatten(1).mean(1)


def _tv_wrong_squared(x):
    return (x[..., 1:, :] - x[..., :-1, :]).pow(2).flatten(1).mean(1) + (x[..., 1:] - x[..., :-1]).pow(2).flatten(1).mean(1)


register("11.3", "Total variation", check=_total_variation_check, solution=_total_variation_solution,
         wrong=[_tv_wrong_sum, _tv_wrong_one_direction, _tv_wrong_squared])


# --- 07.4 One regularizer at a time ---------------------------------------------------------------------------


def _one_regularizer_solution():
    import torch

    from dlviz.models import zoo
    from dlviz.synthesis.dream import class_visualization

    lenet = zoo.load("lenet_mnist")
    alone = {"l2": dict(l2=0.01, jitter=0, blur_every=0),         # each regularizer at its default strength
             "jitter": dict(l2=0, jitter=2, blur_every=0),
             "blur": dict(l2=0, jitter=0, blur_every=4)}
    result = {}
    for name, settings in alone.items():
        images = class_visualization(lenet, list(range(10)), steps=200, generator=torch.Generator().manual_seed(0),
                                     progress=False, **settings)
        tv = ((images[..., 1:, :] - images[..., :-1, :]).abs().mean() + (images[..., 1:] - images[..., :-1]).abs().mean())
        result[name] = float(tv)
    return result


# mean total variation of the ten class visualizations, each regularizer alone (noise seeds 0, 1, 2 measured:
# l2 0.457-0.477, jitter 0.420-0.430, blur 0.268-0.275; with none 0.52-0.54, with all three 0.23)
_ALONE = {"l2": 0.467, "jitter": 0.425, "blur": 0.271}


def _one_regularizer_check(answer):
    answer = {str(k).lower(): float(v) for k, v in dict(answer).items()}
    if set(answer) != set(_ALONE):
        return False, f"expected a dict with the keys 'l2', 'jitter' and 'blur', got {sorted(answer)}"
    off = {k: v for k, v in answer.items() if abs(v - _ALONE[k]) > 0.04}
    if not off:
        return True, ("blur alone does most (total variation about 0.27, against 0.52-0.54 with no regularizer); "
                      "L2 decay alone (about 0.47) and jitter alone (about 0.43) remove much less of the speckle")
    return False, (f"expected, within 0.04, about {_ALONE} (the mean total variation of the ten images, 200 steps, "
                   f"default strengths); these are off: {off}")


register("11.4", "One regularizer at a time", check=_one_regularizer_check, solution=_one_regularizer_solution,
         wrong=[{"l2": 0.23, "jitter": 0.23, "blur": 0.23}, {"l2": 0.271, "jitter": 0.425, "blur": 0.467},
                {"l2": 0.53, "jitter": 0.53, "blur": 0.53}])
