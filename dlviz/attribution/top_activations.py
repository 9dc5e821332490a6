"""The dataset images that excite a feature map most, and the patches its strongest unit looks at.

The images are streamed in batches (from a tensor, a ``Dataset`` or a ``DataLoader``); only a running top-k per
channel is kept, so memory does not grow with the dataset. Each forward pass stops at the layer.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import torch
from torch import nn
from torch.utils.data import BatchSampler, DataLoader, SequentialSampler

from .. import _precision
from .._model import model_device, model_input, preserved
from .._progress import progress_bar
from .._validate import as_image_batch, as_int, check_count
from ..hooks import capture, resolve_layer, single_output
from .receptive_field import receptive_field

__all__ = ["top_activations", "TopActivations", "crop"]

_DEFAULT_BATCH = 256


@dataclass
class TopActivations:
    """The result of :func:`top_activations`. With ``channel=c`` the leading dimension ``(C',)`` is absent.

    Attributes:
        layer: the layer's name.
        channels: the channels described, in order.
        indices: (C', k) int64 dataset indices, strongest first (for a ``DataLoader``: positions in its iteration
            order, which are the dataset's indices when it does not shuffle).
        values: (C', k) the channel's maximum activation over its map in those images.
        positions: (C', k, 2) int64 (row, col) of that maximum in the map ((0, 0) for a linear layer).
        boxes: (C', k, 4) int64 receptive field ``(top, left, bottom, right)`` of that unit in input pixels
            (bottom/right exclusive, clipped to the image; never empty).
        field_size: (h, w) of the receptive field of a unit away from the border.
        crops: (C', k, C, h, w) the images' pixels inside those boxes, in [0, 1], zero-padded to the receptive
            field's full size where it reaches past the border (computed on first access; read from the dataset,
            so a ``DataLoader`` must not shuffle -- otherwise accessing ``crops`` raises ValueError).

    Example:
        >>> import torch
        >>> from torch import nn
        >>> from dlviz import top_activations
        >>> _ = torch.manual_seed(0)
        >>> model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 2))
        >>> top = top_activations(model, torch.rand(20, 1, 8, 8), layer="1", k=3, progress=False)
        >>> top.indices.shape, top.boxes.shape, top.field_size, top.crops.shape
        (torch.Size([4, 3]), torch.Size([4, 3, 4]), (3, 3), torch.Size([4, 3, 1, 3, 3]))
    """

    layer: str
    channels: list[int]
    indices: torch.Tensor
    values: torch.Tensor
    positions: torch.Tensor
    boxes: torch.Tensor
    field_size: tuple[int, int]
    _source: object = field(repr=False)

    @cached_property
    def crops(self) -> torch.Tensor:
        boxes = self.boxes.reshape(-1, 4).tolist()
        indices = self.indices.reshape(-1).tolist()
        cache: dict[int, torch.Tensor] = {}
        out = []
        for index, box in zip(indices, boxes):
            if index not in cache:
                cache[index] = self._source.image(index)
            out.append(crop(cache[index], box, self.field_size))
        return torch.stack(out).reshape(*self.indices.shape, *out[0].shape)


def top_activations(model: nn.Module, dataset, *, layer, channel: int | None = None, k: int = 9,
                    batch_size: int | None = None, progress: bool = True, precision: str = "fp32") -> TopActivations:
    """The ``k`` images of ``dataset`` on which a channel of ``layer`` fires most (Zeiler & Fergus's top-9).

    An image's activation for a channel is the maximum over the channel's map (for a linear layer, the feature's
    value). Streams over the dataset in batches, keeping a running top-k per channel.

    Args:
        model: a network taking (N, C, H, W) images in [0, 1].
        dataset: a tensor of images (N, C, H, W) in [0, 1]; a torch ``Dataset`` whose items are an image
            (C, H, W) or an ``(image, label)`` pair; or a ``DataLoader`` whose batches are images (N, C, H, W) or
            ``(images, labels)``. With a ``DataLoader``, indices are positions in its iteration order, and
            ``crops`` need one that does not shuffle (they are read back from ``loader.dataset``).
        layer: a name from ``model.named_modules()`` or a module of ``model`` (keyword-only); it must run once per
            forward pass.
        channel: the channel to rank images for; ``None`` ranks them for every channel.
        k: how many images to keep: an int in [1, the number of images].
        batch_size: images per forward pass for a tensor or a ``Dataset`` (default 256); a ``DataLoader`` sets its
            own.
        progress: show a progress bar over the batches.
        precision: "fp32" (default: the model's own arithmetic), "bf16" (forward passes under bfloat16 autocast,
            activations compared in float32) or "auto" (bf16 for float32 conv nets and MLPs on a device with native
            bfloat16, else fp32); see :func:`dlviz.fit`. bfloat16 rounds activations to about 3 significant digits,
            so images whose activations differ by less than that can change places (or drop out of the top k).

    Returns:
        A :class:`TopActivations` with ``indices``, ``values``, ``positions``, receptive-field ``boxes`` and
        ``crops``. Ties keep the lower index first. Model mode, flags and hooks are unchanged afterwards.

    Example:
        >>> import torch
        >>> from torch import nn
        >>> from dlviz import top_activations
        >>> net = nn.Sequential(nn.Conv2d(1, 1, 3, bias=False))
        >>> with torch.no_grad():
        ...     _ = net[0].weight.fill_(1.0)
        >>> images = torch.zeros(5, 1, 8, 8)
        >>> images[3, 0, 2, 2] = 1.0                        # image 3 has one bright pixel at (2, 2)
        >>> top = top_activations(net, images, layer="0", channel=0, k=2, progress=False)
        >>> top.indices.tolist(), top.positions[0].tolist(), top.boxes[0].tolist(), tuple(top.crops.shape)
        ([3, 0], [0, 0], [0, 0, 3, 3], (2, 1, 3, 3))
    """
    name, _ = resolve_layer(model, layer)
    source = _source(dataset, batch_size)
    k = check_count(k, "k", what=f"an int in [1, {source.size}] (the number of images)" if source.size
                    else "a positive int")
    if source.size is not None and k > source.size:
        raise ValueError(f"k must be an int in [1, {source.size}] (the number of images), got {k!r}")
    plan = _precision.plan(precision, model, model_device(model), channels_last=False)
    best_values = best_indices = best_positions = None
    image_shape = None
    seen = 0
    with preserved(model), torch.inference_mode(), \
            progress_bar(source.batches, f"top activations of {name}", enabled=progress, unit="batch") as bar:
        for start, images in source:
            batch, _ = model_input(model, images, f"dataset images {start}..{start + len(images) - 1}")
            first = image_shape is None
            # the first batch runs the whole model, to check that the layer runs exactly once per pass;
            # the others stop at the layer
            with capture(model, name, stop=not first) as cap, _precision.autocast(plan):
                act = cap(batch).get(name)
            act = _precision.as_float32(act)
            if first:
                image_shape = tuple(batch.shape[1:])
                single_output(cap, name, min_dim=2, who="top_activations", expected="a tensor (N, C, ...)")
                if channel is not None:
                    channel = _check_channel(channel, act, name)
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
            seen += len(batch)
            bar.update()
    if seen < k:
        raise ValueError(f"k must be at most the number of images, {seen}; got {k}" if seen else
                         "the DataLoader gave no images")
    channels = list(range(best_values.shape[0])) if channel is None else [channel]
    unique, inverse = torch.unique(best_positions.reshape(-1, 2).cpu(), dim=0, return_inverse=True)
    centre = receptive_field(model, image_shape, layer=name)
    boxes = receptive_field(model, image_shape, layer=name, positions=unique)[inverse]
    boxes = boxes.reshape(*best_positions.shape[:2], 4)
    field_size = (int(centre[2] - centre[0]), int(centre[3] - centre[1]))
    result = TopActivations(name, channels, best_indices.cpu(), best_values.cpu(), best_positions.cpu(), boxes,
                            field_size, source)
    if channel is not None:
        for attr in ("indices", "values", "positions", "boxes"):
            setattr(result, attr, getattr(result, attr)[0])
    return result


def _check_channel(channel, act, name) -> int:
    index = as_int(channel)
    if index is None or not 0 <= index < act.shape[1]:
        raise ValueError(f"channel must be an int in [0, {act.shape[1] - 1}] for layer {name!r} "
                         f"(output shape {tuple(act.shape[1:])} per image), got {channel!r}")
    return index


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


class _Images:
    """A tensor of images or a ``Dataset``, streamed in batches of ``batch_size`` with their first index."""

    def __init__(self, dataset, batch_size):
        self.dataset = dataset
        self.batch_size = _DEFAULT_BATCH if batch_size is None else check_count(batch_size, "batch_size",
                                                                                what="a positive int")
        self.size = _length(dataset)
        self.batches = -(-self.size // self.batch_size)

    def __iter__(self):
        for start in range(0, self.size, self.batch_size):
            stop = min(start + self.batch_size, self.size)
            if isinstance(self.dataset, torch.Tensor):
                yield start, self.dataset[start:stop]
            else:
                yield start, torch.stack([_image(self.dataset, i) for i in range(start, stop)])

    def image(self, index: int) -> torch.Tensor:
        return self.dataset[index] if isinstance(self.dataset, torch.Tensor) else _image(self.dataset, index)


class _Loader:
    """A ``DataLoader``'s batches, numbered by position in iteration order. Images are read back (for crops) from
    ``loader.dataset`` only when that order is the dataset's own (a sequential sampler)."""

    def __init__(self, loader: DataLoader, batch_size):
        if batch_size is not None:
            raise ValueError("batch_size= is for a tensor or a Dataset; a DataLoader brings its own batch size")
        self.loader = loader
        self.size = _length(loader.dataset) if _sized(loader.dataset) else None
        self.batches = len(loader) if _sized(loader) else None
        sampler = getattr(loader.batch_sampler, "sampler", None)
        self.in_order = type(loader.batch_sampler) is BatchSampler and isinstance(sampler, SequentialSampler)

    def __iter__(self):
        start = 0
        for item in self.loader:
            images = item[0] if isinstance(item, (tuple, list)) and item else item
            if not isinstance(images, torch.Tensor):
                raise TypeError(f"DataLoader batches must be image tensors (N, C, H, W) or (images, labels); got "
                                f"a {type(item).__name__}")
            yield start, images
            start += len(images)

    def image(self, index: int) -> torch.Tensor:
        if not self.in_order:
            raise ValueError("crops need the images, read back from loader.dataset by index; this DataLoader "
                             "shuffles (or uses its own sampler), so its positions are not dataset indices: use "
                             "DataLoader(dataset, shuffle=False), or pass the dataset itself")
        return _image(self.loader.dataset, index)


def _sized(thing) -> bool:
    try:
        len(thing)
    except TypeError:
        return False
    return True


def _source(dataset, batch_size):
    if isinstance(dataset, DataLoader):
        return _Loader(dataset, batch_size)
    return _Images(dataset, batch_size)


def _length(dataset) -> int:
    if isinstance(dataset, torch.Tensor):
        if dataset.dim() != 4:
            raise ValueError(f"a tensor dataset must be images of shape (N, C, H, W), got shape "
                             f"{tuple(dataset.shape)}" + (" (add the channel dimension: x.unsqueeze(1))"
                                                          if dataset.dim() == 3 else ""))
        as_image_batch(dataset[:1], "dataset")
        return len(dataset)
    if not hasattr(dataset, "__getitem__") or not hasattr(dataset, "__len__"):
        raise TypeError(f"dataset must be a tensor of images (N, C, H, W), a torch Dataset with __len__ or a "
                        f"DataLoader, got {type(dataset).__name__}")
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


def crop(image: torch.Tensor, box, size: tuple[int, int]) -> torch.Tensor:
    """The pixels of ``image`` (C, H, W) inside ``box`` = (top, left, bottom, right), zero-padded to ``size``
    (h, w) on the side where the box was cut by the image border -- as :attr:`TopActivations.crops` does, so that
    e.g. a deconvnet projection can be cut to the same patch.

    Args:
        image: (C, H, W).
        box: (top, left, bottom, right) ints, bottom/right exclusive, a non-empty box inside the image.
        size: (h, w) of the result at least.

    Returns:
        (C, max(h, box height), max(w, box width)), in ``image``'s dtype and on its device.

    Example:
        >>> import torch
        >>> from dlviz.attribution.top_activations import crop
        >>> crop(torch.ones(1, 4, 4), (0, 0, 2, 2), (3, 3))      # cut by the top-left corner: padded there
        tensor([[[0., 0., 0.],
                 [0., 1., 1.],
                 [0., 1., 1.]]])
    """
    top, left, bottom, right = (int(v) for v in box)
    height, width = image.shape[-2:]
    if not (0 <= top < bottom <= height and 0 <= left < right <= width):
        raise ValueError(f"box must be (top, left, bottom, right) with 0 <= top < bottom <= {height} and "
                         f"0 <= left < right <= {width}, got {tuple(box)}")
    patch = image[:, top:bottom, left:right]
    pad_h, pad_w = max(0, size[0] - patch.shape[1]), max(0, size[1] - patch.shape[2])
    above = pad_h if top == 0 and bottom < height else (0 if top > 0 else pad_h // 2)
    before = pad_w if left == 0 and right < width else (0 if left > 0 else pad_w // 2)
    out = image.new_zeros(image.shape[0], max(size[0], patch.shape[1]), max(size[1], patch.shape[2]))
    out[:, above:above + patch.shape[1], before:before + patch.shape[2]] = patch
    return out
