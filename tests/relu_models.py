"""Small convolutional classifiers whose ReLUs take every form that guided backprop and deconvnet must handle.

All take (N, 3, 16, 16) images and return 5 scores; ``Functional``, ``Reused`` and ``Distinct`` share parameter
names, so one's state_dict loads into another and they compute the same function.
"""
import torch
import torch.nn.functional as F
from torch import nn


class Inplace(nn.Module):
    """Distinct in-place ``nn.ReLU`` modules and overlapping 3x3 stride-2 max-pools (AlexNet's)."""

    def __init__(self, inplace: bool = True):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(inplace=inplace), nn.MaxPool2d(3, 2),
            nn.Conv2d(8, 12, 3, padding=1), nn.ReLU(inplace=inplace), nn.MaxPool2d(3, 2))
        self.classifier = nn.Sequential(nn.Flatten(), nn.Linear(12 * 3 * 3, 16), nn.ReLU(inplace=inplace),
                                        nn.Linear(16, 5))

    def forward(self, x):
        return self.classifier(self.features(x))


class _Body(nn.Module):
    def __init__(self):
        super().__init__()
        self.c1, self.p1 = nn.Conv2d(3, 8, 3, padding=1), nn.MaxPool2d(3, 2)
        self.c2, self.c3, self.p2 = nn.Conv2d(8, 12, 3, padding=1), nn.Conv2d(12, 12, 3, padding=1), nn.MaxPool2d(3, 2)
        self.fc1, self.fc2 = nn.Linear(12 * 3 * 3, 16), nn.Linear(16, 5)


class Functional(_Body):
    """ReLUs called as functions: ``F.relu``, ``torch.relu``, ``F.relu(inplace=True)``, ``Tensor.relu``."""

    def forward(self, x):
        x = self.p1(F.relu(self.c1(x)))
        x = torch.relu(self.c2(x))
        x = self.p2(F.relu(self.c3(x), inplace=True))
        return self.fc2(self.fc1(x.flatten(1)).relu())


class Reused(_Body):
    """One in-place ``nn.ReLU`` module called four times (as in torchvision's ResNet blocks)."""

    def __init__(self):
        super().__init__()
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x):
        x = self.p1(self.relu(self.c1(x)))
        x = self.relu(self.c2(x))
        x = self.p2(self.relu(self.c3(x)))
        return self.fc2(self.relu(self.fc1(x.flatten(1))))


class Distinct(_Body):
    """The same function as ``Functional`` and ``Reused`` with one ``nn.ReLU`` module per call: Captum's case."""

    def __init__(self):
        super().__init__()
        self.r1, self.r2, self.r3, self.r4 = nn.ReLU(), nn.ReLU(), nn.ReLU(), nn.ReLU()

    def forward(self, x):
        x = self.p1(self.r1(self.c1(x)))
        x = self.r2(self.c2(x))
        x = self.p2(self.r3(self.c3(x)))
        return self.fc2(self.r4(self.fc1(x.flatten(1))))


def distinct_twin(model: nn.Module) -> nn.Module:
    """A ``Distinct`` model with ``model``'s parameters (for ``Functional`` and ``Reused``)."""
    twin = Distinct()
    twin.load_state_dict(model.state_dict())
    return twin.eval()


def make(name: str, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return {"inplace": Inplace, "functional": Functional, "reused": Reused, "distinct": Distinct}[name]().eval()


def model_state(model: nn.Module):
    """Everything a dlviz call must leave as it was: modes, requires_grad flags and hook dicts of every module."""
    hooks = ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks",
             "_forward_hooks_with_kwargs", "_forward_pre_hooks_with_kwargs", "_forward_hooks_always_called")
    return ([(name, m.training, {h: dict(getattr(m, h, {})) for h in hooks}) for name, m in model.named_modules()],
            [(name, p.requires_grad) for name, p in model.named_parameters()])


class TupleOut(nn.Module):
    """Wraps a classifier to return (scores, extra), as GoogLeNet in train mode or many hub models do."""

    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x):
        return self.net(x), x.mean()


class DictOut(TupleOut):
    """Returns {"aux": ..., "logits": scores}."""

    def forward(self, x):
        return {"aux": x.mean(), "logits": self.net(x)}


class ObjectOut(TupleOut):
    """Returns an object with a ``logits`` attribute (as Hugging Face models do)."""

    def forward(self, x):
        return type("Output", (), {"logits": self.net(x)})()
