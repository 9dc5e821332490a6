"""Exercises of notebook 08 (visualizing and understanding convnets)."""
from . import register
from ._answers import number, square_side


def _as_tensor(answer):
    import torch

    return torch.as_tensor(answer, dtype=torch.float32).detach().cpu()


# --- 06.1 the saliency of a linear model is its weights ---------------------------------------------------------

def _linear_model():
    import torch
    from torch import nn

    with torch.random.fork_rng():          # the caller's random state is left as it was
        torch.manual_seed(0)
        return nn.Sequential(nn.Flatten(), nn.Linear(28 * 28, 10))


def _linear_saliency_solution():
    model = _linear_model()
    # score_3(x) = w_3 . x + b_3, so its gradient with respect to x is w_3, whatever the image
    return model[1].weight.detach()[3].view(1, 28, 28).clone()


def _linear_saliency_check(answer):
    import torch

    expected = _linear_model()[1].weight.detach()[3].view(1, 28, 28)
    a = _as_tensor(answer)
    if a.numel() != 28 * 28:
        return False, f"expected 784 numbers (shape (1, 28, 28)), got shape {tuple(a.shape)}"
    a = a.reshape(1, 28, 28)
    if torch.allclose(a, expected, rtol=1e-4, atol=1e-6):
        return True, ("the score of class 3 is w_3 . x + b_3, so its gradient is the weight row w_3 (reshaped to "
                      "28 x 28), the same for every image")
    if torch.allclose(a, expected.abs(), rtol=1e-4, atol=1e-6):
        return False, "these are the absolute values |w_3|: the signed saliency keeps the weights' signs"
    if torch.allclose(a, -expected, rtol=1e-4, atol=1e-6):
        return False, "the sign is flipped: the gradient of the score is +w_3"
    return False, ("not the weight row of class 3 (linear[1].weight[3]); the gradient of w . x + b with respect to x "
                   "is w")


register("08.1", "Saliency of a linear model", check=_linear_saliency_check, solution=_linear_saliency_solution,
         wrong=[_linear_saliency_solution().abs(), -_linear_saliency_solution(), __import__("torch").zeros(1, 28, 28)])


# --- 06.2 receptive field of a unit of LeNet's last pooling layer ----------------------------------------------

def _receptive_field_solution():
    # walk up the layers: a k x k window on a map whose units step `jump` pixels apart adds (k - 1) x jump pixels
    size, jump = 1, 1
    for kernel, stride in [(5, 1), (2, 2), (5, 1), (2, 2)]:      # conv1, pool1, conv2, pool2
        size += (kernel - 1) * jump
        jump *= stride
    return size                                                  # 1 + 4 + 1 + 4 x 2 + 1 x 2 = 16


def _receptive_field_check(answer):
    value = square_side(answer)
    if value == 16:
        return True, ("16 x 16 pixels: 5 (conv1) + 1 (pool1) + 4 x 2 (conv2, on a map whose units are 2 pixels "
                      "apart) + 1 x 2 (pool2, on conv2's map, also 2 pixels apart)")
    if value == 14:
        return False, "14 is the receptive field of conv2 (features.3); the 2x2 pool after it widens it further"
    if value == 18:
        return False, ("close: pool2's window adds one step of the map it pools (conv2's, whose units are 2 pixels "
                       "apart), not of its own output")
    return False, f"{answer!r} pixels is not it; add (kernel - 1) x (the input map's step in pixels) layer by layer"


register("08.2", "Receptive field of a pooled unit", check=_receptive_field_check, solution=_receptive_field_solution,
         wrong=[14, 18, 28, (14, 14)])


# --- 06.3 how much of the saliency is on or next to the ink -----------------------------------------------------

def _near_ink_shares():
    import torch.nn.functional as F

    import dlviz
    from dlviz.models import zoo

    x, y = dlviz.data.tensors(dlviz.data.mnist(train=False), limit=100)
    lenet = zoo.load("lenet_mnist")
    ink = x > 0.3
    near = F.max_pool2d(ink.float(), 3, stride=1, padding=1) > 0          # the ink, grown by one pixel
    a = dlviz.saliency(lenet, x, y).flatten(1)
    return float(((a * near.flatten(1)).sum(1) / a.sum(1)).mean()), float(((a * ink.flatten(1)).sum(1) / a.sum(1)).mean()), \
        float(near.flatten(1).float().mean())


def _near_ink_solution():
    import torch.nn.functional as F

    import dlviz
    from dlviz.models import zoo

    x, y = dlviz.data.tensors(dlviz.data.mnist(train=False), limit=100)    # test digits 0..99
    lenet = zoo.load("lenet_mnist")
    near = F.max_pool2d((x > 0.3).float(), 3, stride=1, padding=1) > 0     # ink pixels and their 8 neighbours
    a = dlviz.saliency(lenet, x, y).flatten(1)                             # |gradient| of the true class's score
    return float(((a * near.flatten(1)).sum(1) / a.sum(1)).mean())


def _near_ink_check(answer):
    near, on_ink, area = _near_ink_shares()
    value = number(answer)
    if abs(value - near) < 0.01:
        return True, (f"{near:.1%} of the saliency lies on the ink or next to it, on {area:.0%} of the pixels; "
                      f"on the ink alone it is {on_ink:.1%}")
    if abs(value - on_ink) < 0.01:
        return False, f"{value:.1%} is the share on the ink alone; grow the ink mask by one pixel first"
    if abs(value - area) < 0.01:
        return False, f"{value:.1%} is the share of pixels near the ink (the chance level), not of the saliency"
    if abs(value - 100 * near) < 1:
        return False, "give a fraction between 0 and 1, not a percentage"
    return False, (f"expected the mean over test digits 0..99 of each map's share near the ink (about "
                   f"{near:.2f} within 0.01), got {value:.3f}")


register("08.3", "Saliency next to the ink", check=_near_ink_check, solution=_near_ink_solution,
         wrong=[0.29, 0.27, 52.0, 1.0])


# --- 06.4 occlusion by hand ----------------------------------------------------------------------------------

def _tiny_problem():
    import torch
    from torch import nn

    with torch.random.fork_rng():
        torch.manual_seed(0)
        tiny = nn.Sequential(nn.Flatten(), nn.Linear(16, 3))
    x = torch.arange(16.0).view(1, 1, 4, 4) / 15
    return tiny, x


def _occlusion_solution():
    import torch

    tiny, x = _tiny_problem()
    with torch.no_grad():
        before = tiny(x)[0, 2]
        drops = torch.zeros(2, 2)
        for i in range(2):
            for j in range(2):
                hidden = x.clone()
                hidden[..., 2 * i:2 * i + 2, 2 * j:2 * j + 2] = 0.0       # black out one 2x2 window
                drops[i, j] = before - tiny(hidden)[0, 2]
    return drops


def _occlusion_check(answer):
    import torch

    expected = _occlusion_solution()
    a = _as_tensor(answer)
    if a.numel() != 4:
        return False, f"expected a 2 x 2 tensor (one drop per window), got shape {tuple(a.shape)}"
    a = a.reshape(2, 2)
    if torch.allclose(a, expected, atol=1e-5):
        return True, ("for a linear model the drop of a window is the sum of w_2 * x over its pixels: "
                      f"{[[round(v, 3) for v in row] for row in expected.tolist()]}")
    if torch.allclose(a, -expected, atol=1e-5):
        return False, "the sign is flipped: a drop is the score before minus the score after occluding"
    if torch.allclose(a, expected.T, atol=1e-5):
        return False, "rows and columns are swapped: row i holds the windows starting at pixel row 2 i"
    return False, "not the drops of class 2's logit; black out each 2x2 window of x in turn and subtract"


register("08.4", "Occlusion by hand", check=_occlusion_check, solution=_occlusion_solution,
         wrong=[-_occlusion_solution(), _occlusion_solution().T, __import__("torch").zeros(2, 2)])
