"""Training and evaluation with progress bars, and a history that plots itself.

``fit`` accepts a torch ``Dataset``, a ``DataLoader``, or a pair of tensors ``(inputs, labels)``. Pairs of
tensors (and ``TensorDataset``) are batched by slicing a shuffled index, which on a CPU is many times faster
than a ``DataLoader`` that collates item by item; use :func:`dlviz.data.tensors` to turn MNIST into such a pair.
"""
from __future__ import annotations

import math
import random
import time
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, TensorDataset
from tqdm.auto import tqdm

__all__ = ["fit", "evaluate", "History", "device", "seed"]


def device() -> torch.device:
    """The best device here: ``cuda`` if a GPU is there, else Apple's ``mps``, else ``cpu``."""
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def seed(n: int) -> None:
    """Seed Python's, NumPy's and PyTorch's generators (all devices) so that a run can be repeated."""
    random.seed(n)
    np.random.seed(n % 2**32)
    torch.manual_seed(n)


@dataclass
class History:
    """Per-epoch metrics of a :func:`fit` run. Lists are indexed by epoch (0-based); ``val_*`` are empty without
    validation data; ``batch_loss`` holds every mini-batch's training loss."""
    train_loss: list[float] = field(default_factory=list)
    train_accuracy: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    val_accuracy: list[float] = field(default_factory=list)
    batch_loss: list[float] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def epochs(self) -> int:
        return len(self.train_loss)

    def last(self) -> dict[str, float]:
        """The last epoch's metrics as a dict (only those that were measured)."""
        names = ("train_loss", "train_accuracy", "val_loss", "val_accuracy")
        return {name: getattr(self, name)[-1] for name in names if getattr(self, name)}

    def __repr__(self) -> str:
        metrics = ", ".join(f"{k}={v:.4f}" for k, v in self.last().items())
        return f"History(epochs={self.epochs}, {metrics})"

    def plot(self, axes=None, title: str | None = None):
        """Loss and accuracy per epoch, training and validation, on two axes; returns the figure."""
        from .plot import training_curves
        return training_curves(self, axes=axes, title=title)


def _as_batches(data, batch_size: int, shuffle: bool, generator: torch.Generator | None = None):
    """Yield ``(inputs, labels)`` batches from tensors, a TensorDataset, a Dataset or a DataLoader; also the count."""
    if isinstance(data, DataLoader):
        return iter(data), len(data)
    if isinstance(data, TensorDataset) and len(data.tensors) == 2:
        data = data.tensors
    if isinstance(data, (tuple, list)) and len(data) == 2 and all(isinstance(t, torch.Tensor) for t in data):
        inputs, labels = data
        if len(inputs) != len(labels):
            raise ValueError(f"inputs and labels differ in length: {len(inputs)} and {len(labels)}")
        n = len(inputs)
        order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
        count = math.ceil(n / batch_size)
        return ((inputs[idx], labels[idx]) for idx in order.split(batch_size)), count
    if isinstance(data, Dataset):
        loader = DataLoader(data, batch_size=batch_size, shuffle=shuffle, num_workers=0, generator=generator)
        return iter(loader), len(loader)
    raise TypeError("expected a Dataset, a DataLoader or a pair of tensors (inputs, labels), "
                    f"got {type(data).__name__}")


def _loss_and_hits(output: torch.Tensor, labels: torch.Tensor, loss_fn) -> tuple[torch.Tensor, int, int]:
    """Loss, number of correct predictions and number of predictions; sequences (N, T, C) vs (N, T) are flattened."""
    if output.dim() == labels.dim() + 1 and output.dim() > 2 and output.shape[:-1] == labels.shape:
        output, labels = output.reshape(-1, output.shape[-1]), labels.reshape(-1)
    loss = loss_fn(output, labels)
    if output.dim() == 2 and labels.dim() == 1 and not labels.is_floating_point():
        return loss, int((output.argmax(1) == labels).sum()), labels.numel()
    return loss, 0, 0


def _model_device(model: nn.Module) -> torch.device:
    parameter = next(model.parameters(), None)
    return parameter.device if parameter is not None else torch.device("cpu")


@torch.no_grad()
def evaluate(model: nn.Module, data, *, batch_size: int = 1000, loss_fn=None, device=None) -> dict[str, float]:
    """Mean loss and accuracy (fraction in [0, 1]) of ``model`` over ``data``; the model's mode is restored.

    ``data`` is a Dataset, a DataLoader or a pair of tensors; the default loss is cross-entropy.
    Accuracy is NaN when outputs are not class scores.
    """
    loss_fn = loss_fn or nn.CrossEntropyLoss()
    device = torch.device(device) if device is not None else _model_device(model)
    was_training = model.training
    model.eval()
    total_loss, hits, count, seen = 0.0, 0, 0, 0
    try:
        batches, _ = _as_batches(data, batch_size, shuffle=False)
        for inputs, labels in batches:
            inputs, labels = inputs.to(device), labels.to(device)
            loss, h, c = _loss_and_hits(model(inputs), labels, loss_fn)
            total_loss += float(loss) * len(inputs)
            hits, count, seen = hits + h, count + c, seen + len(inputs)
    finally:
        model.train(was_training)
    if seen == 0:
        raise ValueError("evaluate() got an empty dataset")
    return {"loss": total_loss / seen, "accuracy": hits / count if count else float("nan")}


def fit(model: nn.Module, train_data, *, epochs: int, optimizer: torch.optim.Optimizer | None = None,
        lr: float = 1e-3, batch_size: int = 64, val_data=None, device=None, progress: bool = True,
        loss_fn=None, clip_grad_norm: float | None = None, scheduler=None) -> History:
    """Train ``model`` on ``train_data`` for ``epochs`` passes and return its :class:`History`.

    Args:
        model: any ``nn.Module`` mapping a batch of inputs to class scores (N, C) or per-step scores (N, T, C).
        train_data: a Dataset, a DataLoader, or a pair of tensors ``(inputs, labels)`` (fastest on a CPU).
        epochs: number of passes over ``train_data`` (>= 1).
        optimizer: an optimizer over ``model``'s parameters; default Adam with learning rate ``lr``.
        batch_size: mini-batch size (ignored for a DataLoader).
        val_data: evaluated after every epoch when given (same forms as ``train_data``).
        device: where to train; default the device of the model's parameters (so the model decides).
        progress: show tqdm bars (epochs, and batches with the running loss and accuracy).
        loss_fn: default cross-entropy.
        clip_grad_norm: clip the gradient's global norm to this value before every step (RNNs).
        scheduler: a learning-rate scheduler stepped once per epoch.

    The model is left in the train/eval mode it had before the call.
    """
    if epochs < 1:
        raise ValueError(f"epochs must be >= 1, got {epochs}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    loss_fn = loss_fn or nn.CrossEntropyLoss()
    device = torch.device(device) if device is not None else _model_device(model)
    model.to(device)
    optimizer = optimizer or torch.optim.Adam(model.parameters(), lr=lr)
    history, start, was_training = History(), time.perf_counter(), model.training
    epoch_stored = _StoredBar(range(epochs), desc="epochs", disable=not progress, unit="epoch")
    epoch_bar = epoch_stored.bar
    try:
        for _ in epoch_bar:
            model.train()
            batches, count = _as_batches(train_data, batch_size, shuffle=True)
            total_loss, hits, predictions, seen = 0.0, 0, 0, 0
            batch_stored = _StoredBar(batches, total=count, desc="batches", leave=False, disable=not progress,
                                      unit="batch")
            batch_bar = batch_stored.bar
            for step, (inputs, labels) in enumerate(batch_bar):
                inputs, labels = inputs.to(device), labels.to(device)
                optimizer.zero_grad(set_to_none=True)
                loss, h, c = _loss_and_hits(model(inputs), labels, loss_fn)
                loss.backward()
                if clip_grad_norm is not None:
                    nn.utils.clip_grad_norm_(model.parameters(), clip_grad_norm)
                optimizer.step()
                value = float(loss.detach())
                if not math.isfinite(value):
                    raise FloatingPointError(f"the training loss became {value}; try a smaller learning rate")
                history.batch_loss.append(value)
                total_loss, hits, predictions = total_loss + value * len(inputs), hits + h, predictions + c
                seen += len(inputs)
                if progress and step % 20 == 0:
                    postfix = {"loss": f"{total_loss / seen:.3f}"}
                    if predictions:
                        postfix["acc"] = f"{hits / predictions:.3f}"
                    batch_bar.set_postfix(postfix, refresh=False)
            batch_stored.close()
            if scheduler is not None:
                scheduler.step()
            history.train_loss.append(total_loss / max(seen, 1))
            history.train_accuracy.append(hits / predictions if predictions else float("nan"))
            if val_data is not None:
                metrics = evaluate(model, val_data, loss_fn=loss_fn, device=device)
                history.val_loss.append(metrics["loss"])
                history.val_accuracy.append(metrics["accuracy"])
            epoch_bar.set_postfix({k: f"{v:.3f}" for k, v in history.last().items()})
    finally:
        epoch_stored.close()
        model.train(was_training)
        history.seconds = time.perf_counter() - start
    return history


class _StoredBar:
    """A ``tqdm.auto`` bar whose saved notebook text is its final state, not the 0% it showed first.

    A notebook bar (an ipywidget) keeps, as the plain text saved in the ``.ipynb``, what it showed when it was first
    displayed: 0%. Here the bar is displayed under a display id and that display is updated with its final state
    when the bar closes. Outside Jupyter it is an ordinary ``tqdm`` bar.
    """

    def __init__(self, iterable=None, **kwargs):
        from tqdm.notebook import tqdm as notebook_tqdm

        self._handle = None
        if isinstance(tqdm, type) and issubclass(tqdm, notebook_tqdm) and not kwargs.get("disable"):
            from IPython.display import display

            self.bar = tqdm(iterable, display=False, **kwargs)
            self._handle = display(self.bar.container, display_id=True)
        else:
            self.bar = tqdm(iterable, **kwargs)

    def close(self):
        self.bar.close()
        if self._handle is not None:
            self._handle.update(self.bar.container)   # a leave=False bar is hidden by tqdm; its text is final
            self._handle = None


def progress(iterable, **kwargs):
    """Iterate with a ``tqdm.auto`` bar that a notebook stores in its final state, not at 0%.

    ``kwargs`` go to ``tqdm`` (``desc``, ``total``...); ``leave`` is always true (the bar that stays is the point).
    """
    kwargs["leave"] = True
    stored = _StoredBar(iterable, **kwargs)
    try:
        yield from stored.bar
    finally:
        stored.close()
