"""The dataset images that excite a feature map most, and the patches its strongest unit looks at.

The dataset is streamed in batches; only a running top-k per channel is kept, so memory does not grow with the
dataset. Each forward pass stops at the layer.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import torch
from torch import nn

from ._validate import as_image_batch
from .hooks import capture, model_device, preserved, resolve_layer
from .receptive import receptive_field

__all__ = ["top_activations", "TopActivations", "crop"]


@dataclass
class TopActivations:
    """The result of :func:`top_activations`. With ``channel=c`` the leading dimension ``(C',)`` is absent.

    Attributes:
        layer: the layer's name.
        channels: the channels described, in order.
        indices: (C', k) int64 dataset indices, strongest first.
        values: (C', k) the channel's maximum activation over its map in those images.
        positions: (C', k, 2) int64 (row, col) of that maximum in the map ((0, 0) for a linear layer).
        boxes: (C', k, 4) int64 receptive field ``(top, left, bottom, right)`` of that unit in input pixels
            (bottom/right exclusive, clipped to the image).
        crops: (C', k, C, h, w) the images' pixels inside those boxes, in [0, 1], zero-padded to the receptive
            field's full size where it reaches past the border (computed on first access).
    """

    layer: str
    channels: list[int]
    indices: torch.Tensor
    values: torch.Tensor
    positions: torch.Tensor
    boxes: torch.Tensor
    field_size: tuple[int, int]
    _dataset: object = field(repr=False)

    @cached_property
    def crops(self) -> torch.Tensor:
        boxes = self.boxes.reshape(-1, 4).tolist()
        indices = self.indices.reshape(-1).tolist()
        cache: dict[int, torch.Tensor] = {}
        out = []
        for index, box in zip(indices, boxes):
            if index not in cache:
                cache[index] = _image(self._dataset, index)
            out.append(crop(cache[index], box, self.field_size))
        return torch.stack(out).reshape(*self.indices.shape, *out[0].shape)


def top_activations(model: nn.Module, layer, dataset, *, channel: int | None = None, k: int = 9,
                    batch_size: int = 256, progress: bool = False) -> TopActivations:
    """The ``k`` images of ``dataset`` on which a channel of ``layer`` fires most (Zeiler & Fergus's top-9).

    An image's activation for a channel is the maximum over the channel's map (for a linear layer, the feature's
    value). Streams over the dataset in batches of ``batch_size``, keeping a running top-k per channel.

    Args:
        model: a network taking (N, C, H, W) images in [0, 1].
        layer: a name from ``model.named_modules()`` or a module of ``model``; it must run once per forward pass.
        dataset: a tensor of images (N, C, H, W) in [0, 1], or a torch ``Dataset`` whose items are an image
            (C, H, W) or an ``(image, label)`` pair.
        channel: the channel to rank images for; ``None`` ranks them for every channel.
        k: how many images to keep (at most the dataset's size).
        progress: show a progress bar.

    Returns a :class:`TopActivations` with ``indices``, ``values``, ``positions``, receptive-field ``boxes`` and
    ``crops``. Ties keep the lower dataset index first. Model mode, flags and hooks are unchanged afterwards.
    """
    name, _ = resolve_layer(model, layer)
    size = _length(dataset)
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= size:
        raise ValueError(f"k must be an int in [1, {size}] (the dataset's size), got {k!r}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    device = model_device(model)
    best_values = best_indices = best_positions = None
    image_shape = None
    starts = range(0, size, batch_size)
    if progress:
        from tqdm.auto import tqdm
        starts = tqdm(starts, desc=f"top activations of {name}", unit="batch")
    with preserved(model), torch.inference_mode():
        for start in starts:
            batch = _batch(dataset, start, min(start + batch_size, size)).to(device)
            first = image_shape is None
            # the first batch runs the whole model, to check that the layer runs exactly once per pass;
            # the others stop at the layer
            with capture(model, name, stop=not first) as cap:
                act = cap(batch).get(name)
            if first:
                image_shape = tuple(batch.shape[1:])
                _check_layer_output(cap, name, act)
                if channel is not None:
                    _check_channel(channel, act, name)
            elif tuple(batch.shape[1:]) != image_shape:
                raise ValueError(f"dataset images must all have shape {image_shape}; the batch at index "
                                 f"{start} has {tuple(batch.shape[1:])}")
            values, positions = _map_maxima(act if channel is None else act[:, channel:channel + 1])
            indices = torch.arange(start, start + len(batch), device=values.device).expand_as(values)
            if best_values is None:
                best_values, best_indices, best_positions = values[:, :0], indices[:, :0], positions[:, :0]
            # stable sort: among equal values the earlier (lower) dataset index stays first
            values = torch.cat([best_values, values], 1)
            order = torch.sort(values, dim=1, descending=True, stable=True).indices[:, :k]
            best_values = values.gather(1, order)
            best_indices = torch.cat([best_indices, indices], 1).gather(1, order)
            best_positions = torch.cat([best_positions, positions], 1).gather(
                1, order[..., None].expand(-1, -1, 2))
    channels = list(range(best_values.shape[0])) if channel is None else [channel]
    unique, inverse = torch.unique(best_positions.reshape(-1, 2).cpu(), dim=0, return_inverse=True)
    centre = receptive_field(model, name, image_shape)
    boxes = receptive_field(model, name, image_shape, unique)[inverse].reshape(*best_positions.shape[:2], 4)
    field_size = (int(centre[2] - centre[0]), int(centre[3] - centre[1]))
    result = TopActivations(name, channels, best_indices.cpu(), best_values.cpu(), best_positions.cpu(), boxes,
                            field_size, dataset)
    if channel is not None:
        for attr in ("indices", "values", "positions", "boxes"):
            setattr(result, attr, getattr(result, attr)[0])
    return result


def _check_layer_output(cap, name, act):
    calls = cap.calls[name]
    if calls != 1:
        raise ValueError(f"layer {name!r} ran {calls} times in one forward pass; pick a layer that runs once "
                         f"(a reused module, such as a shared ReLU, has no single activation map)")
    if not isinstance(act, torch.Tensor) or act.dim() < 2:
        raise ValueError(f"layer {name!r} must output a tensor (N, C, ...), got "
                         f"{tuple(act.shape) if isinstance(act, torch.Tensor) else type(act).__name__}")


def _check_channel(channel, act, name):
    if isinstance(channel, bool) or not isinstance(channel, int) or not 0 <= channel < act.shape[1]:
        raise ValueError(f"channel must be an int in [0, {act.shape[1] - 1}] for layer {name!r} "
                         f"(output shape {tuple(act.shape[1:])} per image), got {channel!r}")


def _map_maxima(act: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per channel and image, the map's maximum (C, N) and its (row, col) position (C, N, 2)."""
    n, channels = act.shape[:2]
    act = act.float()
    if act.dim() == 2:
        return act.t(), torch.zeros(channels, n, 2, dtype=torch.long, device=act.device)
    if act.dim() == 3:
        act = act[..., None]
    flat = act.reshape(n, channels, -1)
    values, where = flat.max(dim=2)
    width = act.shape[-1]
    positions = torch.stack([where // width, where % width], -1)
    return values.t(), positions.transpose(0, 1)


def _length(dataset) -> int:
    if isinstance(dataset, torch.Tensor):
        if dataset.dim() != 4:
            raise ValueError(f"a tensor dataset must be images of shape (N, C, H, W), got shape "
                             f"{tuple(dataset.shape)}" + (" (add the channel dimension: x.unsqueeze(1))"
                                                          if dataset.dim() == 3 else ""))
        as_image_batch(dataset[:1], "dataset")
        return len(dataset)
    if not hasattr(dataset, "__getitem__") or not hasattr(dataset, "__len__"):
        raise TypeError(f"dataset must be a tensor of images (N, C, H, W) or a torch Dataset with __len__, got "
                        f"{type(dataset).__name__}")
    if len(dataset) == 0:
        raise ValueError("dataset is empty")
    return len(dataset)


def _image(dataset, index: int) -> torch.Tensor:
    item = dataset[index]
    if isinstance(item, (tuple, list)):
        item = item[0]
    if not isinstance(item, torch.Tensor):
        raise TypeError(f"dataset items must be image tensors (C, H, W) or (image, label) pairs; item {index} is a "
                        f"{type(item).__name__} (give the dataset a transform such as ToTensor())")
    return item


def _batch(dataset, start: int, stop: int) -> torch.Tensor:
    if isinstance(dataset, torch.Tensor):
        batch = dataset[start:stop]
    else:
        batch = torch.stack([_image(dataset, i) for i in range(start, stop)])
    batch, _ = as_image_batch(batch, f"dataset images {start}..{stop - 1}")
    return batch.detach()


def crop(image: torch.Tensor, box, size: tuple[int, int]) -> torch.Tensor:
    """The pixels of ``image`` (C, H, W) inside ``box`` = (top, left, bottom, right), zero-padded to ``size``
    (h, w) on the side where the box was cut by the image border -- as :attr:`TopActivations.crops` does, so that
    e.g. a deconvnet projection can be cut to the same patch."""
    top, left, bottom, right = (int(v) for v in box)
    height, width = image.shape[-2:]
    patch = image[:, top:bottom, left:right]
    pad_h, pad_w = max(0, size[0] - patch.shape[1]), max(0, size[1] - patch.shape[2])
    above = pad_h if top == 0 and bottom < height else (0 if top > 0 else pad_h // 2)
    before = pad_w if left == 0 and right < width else (0 if left > 0 else pad_w // 2)
    out = image.new_zeros(image.shape[0], max(size[0], patch.shape[1]), max(size[1], patch.shape[2]))
    out[:, above:above + patch.shape[1], before:before + patch.shape[2]] = patch
    return out
