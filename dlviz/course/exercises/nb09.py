"""Exercises of notebook 09 (object detectors that emerge: CAM and Grad-CAM)."""
from . import register
from ._answers import number

# --- 09.1 intersection over union of two boxes -------------------------------------------------------------------

_BOX_A = (2, 3, 10, 9)      # (top, left, bottom, right), bottom and right exclusive: 8 rows x 6 columns
_BOX_B = (4, 5, 12, 13)     # 8 rows x 8 columns


def _iou_solution():
    a, b = _BOX_A, _BOX_B
    height = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    width = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = height * width                                           # 6 x 4 = 24 pixels
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter   # 48 + 64 - 24 = 88
    return inter / union


def _iou_check(answer):
    value = number(answer)
    if abs(value - 24 / 88) < 1e-3:
        return True, "the boxes share 6 x 4 = 24 pixels; their union is 48 + 64 - 24 = 88, so IoU = 24/88 = 0.273"
    if abs(value - 24) < 1e-6:
        return False, "24 is the intersection's area; divide it by the area of the union"
    if abs(value - 24 / 112) < 1e-3:
        return False, "you divided by the sum of the two areas; the union counts the shared 24 pixels once"
    if abs(value - 35 / 99) < 1e-3 or abs(value - 35 / 111) < 1e-3:
        return False, "bottom and right are exclusive: box A has rows 2..9 (8 rows), not 9"
    return False, f"{value:.3f} is not it: IoU = area(A and B) / area(A or B), with bottom/right exclusive"


register("09.1", "Intersection over union", check=_iou_check, solution=_iou_solution,
         wrong=[24, 24 / 112, 35 / 99, 0.5])


# --- 09.2 Grad-CAM of a GAP network is CAM divided by the map's area ---------------------------------------------

def _factor_solution():
    import torch
    from torch import nn

    import dlviz

    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                        nn.Linear(4, 3))
    x = torch.rand(1, 1, 7, 7)
    with torch.no_grad():
        maps = net[:2](x)[0]                                          # (4, 7, 7)
        cam = torch.einsum("k,khw->hw", net[4].weight[2], maps)      # CAM of class 2
    grad = dlviz.grad_cam(net, x, 2, layer="1", upsample=False)[0, 0]
    where = grad > 0
    return float((cam[where] / grad[where]).mean())                  # h x w = 49


def _factor_check(answer):
    value = number(answer)
    if abs(value - 49) < 0.01:
        return True, ("the score is b + (1/49) sum_k w_k sum_ij A_k(i, j), so each gradient is w_k / 49 at every "
                      "position: Grad-CAM = ReLU(CAM) / 49")
    if abs(value - 1 / 49) < 1e-3:
        return False, "that is Grad-CAM / CAM; the question asks for CAM / Grad-CAM"
    if abs(value - 7) < 0.01:
        return False, "the average runs over all 7 x 7 positions, not over one row"
    return False, f"{value} is not it: differentiate the average over the h x w map with respect to one position"


register("09.2", "Grad-CAM against CAM", check=_factor_check, solution=_factor_solution, wrong=[1 / 49, 7, 1])


# --- 09.3 class purity of a unit's top inputs ----------------------------------------------------------------------

_CASES = ([3, 3, 3, 8, 3, 5, 3, 3, 8], [1, 1, 1, 1], [0, 1, 2, 3, 4, 5, 6, 7, 8, 9], [7, 2, 2, 7, 7, 2])


def _purity_solution():
    from collections import Counter

    def purity(labels):
        labels = [int(label) for label in labels]
        return Counter(labels).most_common(1)[0][1] / len(labels)   # share of the most common class

    return purity


def _purity_check(answer):
    if not callable(answer):
        return False, "expected a function purity(labels) that returns a number"
    expected = (6 / 9, 1.0, 0.1, 0.5)
    for labels, want in zip(_CASES, expected):
        try:
            got = number(answer(list(labels)))
        except Exception as error:     # a stub returning None, or code that raises
            return False, f"purity({labels}) did not give a number: {error}"
        if abs(got - want) > 1e-6:
            hint = " (a share in [0, 1], not a count)" if abs(got - want * len(labels)) < 1e-6 else ""
            return False, f"purity({labels}) should be {want:.3f}, got {got:.3f}{hint}"
    return True, "purity is the share of the most common class among a unit's top inputs: 1 for a pure detector"


def _count_purity(labels):
    from collections import Counter

    return Counter(labels).most_common(1)[0][1]


def _distinct_share(labels):
    return len(set(labels)) / len(labels)


register("09.3", "Class purity of a unit", check=_purity_check, solution=_purity_solution,
         wrong=[_count_purity, _distinct_share, 0.67])
