"""Exercises of notebook 06 (features that transfer)."""
from . import register
from ._answers import number


# --- 06.1 weights of a linear classifier on each representation -------------------------------------------------

def _linear_params_solution():
    # one weight per (feature, class) plus one bias per class, for pixels (784), conv2 (800) and FC1 (256) features
    return {kind: dim * 10 + 10 for kind, dim in {"pixels": 784, "conv": 800, "fc": 256}.items()}


def _linear_params_check(answer):
    if not isinstance(answer, dict):
        return False, "expected a dict {'pixels': ..., 'conv': ..., 'fc': ...} of parameter counts"
    expected = _linear_params_solution()
    if set(answer) != set(expected):
        return False, f"expected the keys {sorted(expected)}, got {sorted(answer)}"
    for kind, value in expected.items():
        got = number(answer[kind])
        if got == value - 10:
            return False, f"{kind}: {int(got):,} counts the weights only; each of the 10 classes has a bias too"
        if got != value:
            return False, f"{kind}: {got:g} is not it; a linear classifier has (features x classes) weights + classes biases"
    return True, ("pixels 7,850, conv 8,010, fc 2,570: the FC1 features need a third of the weights of the pixels, "
                  "which is part of why 100 labels go further on them")


register("06.1", "Weights of a linear classifier", check=_linear_params_check, solution=_linear_params_solution,
         wrong=[{"pixels": 7840, "conv": 8000, "fc": 2560}, {"pixels": 7850, "conv": 8010, "fc": 2560}, 2570,
                {"pixels": 7850}])


# --- 06.2 a class-balanced subset of labels ----------------------------------------------------------------------

def _balanced_solution():
    import torch

    def balanced_subset(y, per_class, seed=0):
        # per class: a random permutation of that class's indices, keep the first per_class
        generator = torch.Generator().manual_seed(seed)
        picks = []
        for c in torch.unique(y):
            members = torch.nonzero(y == c).flatten()
            picks.append(members[torch.randperm(len(members), generator=generator)[:per_class]])
        return torch.cat(picks)
    return balanced_subset


def _balanced_check(answer):
    import torch

    if not callable(answer):
        return False, "expected a function balanced_subset(y, per_class, seed) returning indices into y"
    y = torch.randint(0, 10, (2000,), generator=torch.Generator().manual_seed(1))
    chosen = []
    for seed in (0, 1):
        result = answer(y.clone(), 10, seed)
        if result is None or result is ...:
            return False, f"balanced_subset returned {result!r}: return the chosen indices (a tensor or a list of ints)"
        idx = torch.as_tensor(result).long().flatten()
        if len(idx) != 100:
            return False, f"10 per class for 10 classes is 100 indices, got {len(idx)}"
        if len(torch.unique(idx)) != len(idx):
            return False, "some indices appear twice: draw without replacement"
        if idx.min() < 0 or idx.max() >= len(y):
            return False, "indices outside 0 .. len(y) - 1"
        counts = torch.bincount(y[idx], minlength=10)
        if not bool((counts == 10).all()):
            return False, f"the classes get {counts.tolist()} images; each should get exactly 10"
        chosen.append(set(idx.tolist()))
    if chosen[0] == chosen[1]:
        return False, "seeds 0 and 1 give the same subset: the seed must change which images are drawn"
    if chosen[0] == set(_first_per_class(y, 10).tolist()):
        return False, "that is the first 10 images of each class, not a random draw"
    return True, "10 images of every class, drawn at random, another draw for another seed"


def _first_per_class(y, per_class):
    import torch
    return torch.cat([torch.nonzero(y == c).flatten()[:per_class] for c in torch.unique(y)])


register("06.2", "A class-balanced subset of labels", check=_balanced_check, solution=_balanced_solution,
         wrong=[lambda y, k, seed=0: __import__("torch").arange(k * 10),
                lambda y, k, seed=0: _first_per_class(y, k),
                lambda y, k, seed=0: __import__("torch").randperm(len(y))[:k * 10]])


# --- 06.3 what fine-tuning trains when the convolutions are frozen ----------------------------------------------

def _frozen_solution():
    # LeNet with conv1 and conv2 frozen: FC1 (800 -> 256) and the new FC2 (256 -> 10) are trained
    return (800 * 256 + 256) + (256 * 10 + 10)


def _frozen_check(answer):
    value = number(answer)
    if value == 207_626:
        return True, ("207,626 of LeNet's 233,196 parameters (89%): the two convolutions hold only 25,570, so "
                      "freezing them saves little computation of gradients for the weights but keeps the features")
    if value == 233_196:
        return False, "that is every parameter; the frozen convolutions (520 + 25,050) are not trained"
    if value == 2_570:
        return False, "that is the last layer only (the linear probe); FC1 is trained too"
    if value == 207_360:
        return False, "close: the biases of FC1 and FC2 (256 + 10) are trained too"
    return False, f"{value:g} is not it; count FC1 (800 -> 256) and FC2 (256 -> 10), weights and biases"


register("06.3", "Trainable parameters with frozen convolutions", check=_frozen_check, solution=_frozen_solution,
         wrong=[233_196, 2_570, 207_360, 25_570])
