"""Models that expect normalized inputs, made into classifiers of [0, 1] images -- with their own layer names.

dlviz takes images as pixels in [0, 1] (attacks clamp there, and ``eps=8/255`` means 8 grey levels), so the
normalization a model was trained with belongs in front of the model. ``nn.Sequential(normalize, model)`` would do
that but rename every layer (``"1.layer2.0.conv1"``); :func:`normalized` keeps the model's own names.

:class:`Normalize` is the one normalization module of dlviz: the first layer of the course's models
(:mod:`~dlviz.models.zoo`) and of the ImageNet classifiers (:mod:`~dlviz.models.imagenet`), and what
:class:`Normalized` applies before the model it wraps.
"""
from __future__ import annotations

import torch
from torch import nn

__all__ = ["normalized", "Normalized", "Normalize"]


class Normalize(nn.Module):
    """``(x - mean) / std`` per channel: the normalization a model was trained with, as a layer taking [0, 1] pixels.

    Args:
        mean, std: one number each, or one per channel (C numbers, equal lengths); std positive, mean finite.
            Images (N, C, H, W); with several channels, C must match (a mismatch raises ValueError rather than
            broadcasting a grey image into colours).

    ``mean`` and ``std`` are buffers outside the ``state_dict`` (they belong to the data, not to the weights), so a
    model holding a ``Normalize`` keeps the checkpoint keys of the model without it.

    Example:
        >>> import torch
        >>> from dlviz.models.normalize import Normalize
        >>> Normalize(0.5, 0.25)(torch.tensor([[[[0.0, 0.5, 1.0]]]]))
        tensor([[[[-2.,  0.,  2.]]]])
        >>> Normalize((0.5, 0.5, 0.5), (0.25, 0.25, 0.25))(torch.rand(2, 3, 8, 8)).shape
        torch.Size([2, 3, 8, 8])
        >>> list(Normalize(0.5, 0.25).state_dict())
        []
    """

    def __init__(self, mean, std):
        super().__init__()
        mean = torch.as_tensor(mean, dtype=torch.float32).flatten()
        std = torch.as_tensor(std, dtype=torch.float32).flatten()
        if mean.numel() == 0 or mean.shape != std.shape:
            raise ValueError(f"mean and std must be one number each, or one per channel of equal length; got "
                             f"{mean.numel()} and {std.numel()} values")
        if not bool(torch.isfinite(mean).all()) or not bool((std > 0).all()):
            raise ValueError(f"std must be positive and mean finite, got mean={mean.tolist()}, std={std.tolist()}")
        # not in the state_dict: they belong to the data, not to the weights
        self.register_buffer("mean", mean.view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", std.view(1, -1, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        channels = self.mean.shape[1]
        if channels > 1 and (x.dim() < 2 or x.shape[1] != channels):
            # broadcasting would quietly turn a 1-channel image into `channels` different ones
            raise ValueError(f"the normalization has {channels} channels (mean {self.mean.flatten().tolist()}), "
                             f"but the images have shape {tuple(x.shape)}; give (N, {channels}, H, W) images")
        return (x - self.mean) / self.std

    def extra_repr(self) -> str:
        return f"mean={self.mean.flatten().tolist()}, std={self.std.flatten().tolist()}"


class Normalized(Normalize):
    """``model((x - mean) / std)`` for images ``x`` (N, C, H, W) in [0, 1]; made by :func:`normalized`.

    ``named_modules()``, ``named_parameters()``, ``state_dict()`` and ``load_state_dict()`` use the wrapped model's
    own names, so a layer is named as in the model (``"layer2.0.conv1"``) and checkpoints load unchanged. The wrapped
    model is ``.model`` and shares its parameters and buffers (no copy is made).

    Example:
        >>> import torch
        >>> from torch import nn
        >>> from dlviz.models.normalize import Normalized
        >>> model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten(), nn.Linear(4 * 6 * 6, 10))
        >>> net = Normalized(model, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
        >>> net(torch.rand(2, 3, 8, 8)).shape
        torch.Size([2, 10])
        >>> list(net.state_dict()) == list(model.state_dict()), net.model is model
        (True, True)
        >>> "0" in dict(net.named_modules())   # the model's names, not "model.0"
        True
    """

    def __init__(self, model: nn.Module, mean, std):
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        super().__init__(mean, std)
        self.model = model
        self.input_shape = getattr(model, "input_shape", None)

    def forward(self, x: torch.Tensor, *args, **kwargs):
        return self.model(super().forward(x), *args, **kwargs)

    def named_modules(self, memo=None, prefix: str = "", remove_duplicate: bool = True):
        # the wrapper first, then the model's modules under the model's own names (the model itself is "" too:
        # it is listed, so that modules() and eval()/train() bookkeeping still see it)
        if memo is None:
            memo = set()
        if self not in memo:
            if remove_duplicate:
                memo.add(self)
            yield prefix, self
        yield from self.model.named_modules(memo, prefix, remove_duplicate)

    def state_dict(self, *args, **kwargs):
        return self.model.state_dict(*args, **kwargs)

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        return self.model.load_state_dict(state_dict, strict=strict, assign=assign)


def normalized(model: nn.Module, mean, std) -> Normalized:
    """A classifier of [0, 1] images for a ``model`` trained on normalized inputs: ``model((x - mean) / std)``.

    Args:
        model: any ``nn.Module`` (a torchvision model, a hub model, your own).
        mean, std: per-channel statistics (sequences of C numbers, or one number each), e.g. ImageNet's
            ``(0.485, 0.456, 0.406)`` and ``(0.229, 0.224, 0.225)``.

    Returns a :class:`Normalized` module taking (N, C, H, W) images in [0, 1]. Its layer names are the model's own
    (``dlviz.grad_cam(wrapped, x, 3, layer="layer4")`` works as on the model), and it shares the model's parameters.

    Example:
        >>> import torch, torchvision, dlviz
        >>> net = dlviz.normalized(torchvision.models.resnet18(), (0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
        >>> "layer2.0.conv1" in dict(net.named_modules())
        True
        >>> net.eval()(torch.rand(1, 3, 64, 64)).shape
        torch.Size([1, 1000])
    """
    return Normalized(model, mean, std)
