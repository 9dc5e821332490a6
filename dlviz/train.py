"""Training and evaluation with progress bars, and a history that plots itself.

``fit`` accepts a torch ``Dataset``, a ``DataLoader``, or a pair of tensors ``(inputs, labels)``. Pairs of
tensors (and ``TensorDataset``) are batched by slicing a shuffled index, which on a CPU is many times faster
than a ``DataLoader`` that collates item by item; use :func:`dlviz.data.tensors` to turn MNIST into such a pair.

Neither function fails silently:

* ``fit`` checks every batch before the optimizer step: NaN or infinite inputs raise ValueError, a NaN or
  infinite loss or gradient raises FloatingPointError. The error names the epoch and the batch, and the model
  (weights and buffers such as BatchNorm's running statistics) and the optimizer's state are left as they were
  before that batch.
* An empty dataset, or a DataLoader that yields no batch, gets its own error.
* The model's modes are restored per submodule after the call, also when it raises: a BatchNorm frozen with
  ``.eval()`` stays frozen.

Precision (``precision="auto" | "fp32" | "bf16"``, see ``dlviz._precision``): "bf16" runs the forward pass under
bfloat16 autocast while weights, gradients and the optimizer's state stay float32; the loss, the accuracy and the
finite checks are computed in float32. "auto" (the default) picks bfloat16 where the device computes it natively (a
CPU with avx512_bf16 or amx_bf16, a GPU with bfloat16 support) for conv nets and MLPs of float32 -- LeNet trains
about 2x (1.95-2.08x) faster than a plain float32 loop, with the same test accuracy (benchmarks/RESULTS.md) -- and
float32 otherwise (recurrent models, float64 models, CPUs without bfloat16 instructions). Models with an
``nn.Conv2d`` run in channels-last memory layout (model and batches) whatever the precision. The choice shows in the
progress bars and in ``History.precision`` / ``History.channels_last``. After the call the parameters hold their
trained float32 values in the dtype and memory layout (strides) they had before; the optimizer's moment buffers
created during the call may be in channels-last layout, which changes no result.
"""
from __future__ import annotations

import math
import numbers
import os
import random
import time
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, IterableDataset, TensorDataset

from . import _precision
from ._model import gradients_on, model_device, preserved, select_scores
from ._progress import progress, progress_bar as _progress_bar, StoredBar as _StoredBar
from ._validate import check_number

__all__ = ["fit", "evaluate", "History", "device", "seed", "shifted", "seed_offset", "progress"]

SEED_LIMIT = 2**32  # numpy's legacy generator takes seeds in [0, 2**32); Python's and torch's take more
SEED_OFFSET_VARIABLE = "DLVIZ_SEED_OFFSET"


def device() -> torch.device:
    """The best device here: ``cuda`` if a GPU is there, else Apple's ``mps``, else ``cpu``.

    Example:
        >>> import dlviz
        >>> dlviz.device().type in ("cuda", "mps", "cpu")
        True
    """
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def seed(n: int) -> None:
    """Seed Python's, NumPy's and PyTorch's generators (all devices) so that a run can be repeated.

    Args:
        n: an int with ``0 <= n < 2**32`` (the range all three generators accept). Anything else raises ValueError
            before any generator is seeded.

    Example:
        >>> import torch, dlviz
        >>> dlviz.seed(0); a = torch.rand(2)
        >>> dlviz.seed(0); b = torch.rand(2)
        >>> torch.equal(a, b)
        True
    """
    if isinstance(n, bool) or not isinstance(n, numbers.Integral) or not 0 <= n < SEED_LIMIT:
        raise ValueError(f"seed must be an int with 0 <= seed < 2**32 (the range Python's random, NumPy and torch "
                         f"all accept), got {n!r}")
    n = int(n)
    random.seed(n)
    np.random.seed(n)
    torch.manual_seed(n)


def seed_offset() -> int:
    """The environment variable ``DLVIZ_SEED_OFFSET`` as an int (0 when unset): how far :func:`shifted` moves every
    seed the course uses. A value that is not a non-negative integer raises ValueError.

    Example:
        >>> import os, dlviz
        >>> dlviz.train.seed_offset() == int(os.environ.get("DLVIZ_SEED_OFFSET", "").strip() or 0)
        True
    """
    text = os.environ.get(SEED_OFFSET_VARIABLE, "").strip() or "0"
    if not text.isdigit():
        raise ValueError(f"the environment variable {SEED_OFFSET_VARIABLE} must be a non-negative integer (how far to "
                         f"shift every seed the course uses), got {os.environ[SEED_OFFSET_VARIABLE]!r}")
    return int(text)


def shifted(n: int) -> int:
    """The seed ``n`` moved by ``DLVIZ_SEED_OFFSET`` (``n`` itself when the variable is unset, as for a student).

    Every seed the notebooks use goes through this one function -- weight initializations, data draws, noise starts
    and lists of seeds such as ``SEEDS = [shifted(s) for s in (0, 1, 2)]`` -- so that ``DLVIZ_SEED_OFFSET=3`` reruns
    the whole course on seeds nobody tuned on, and a lesson that holds only on the seeds it was written with shows.

    Args:
        n: an int with ``0 <= n`` and ``n + offset < 2**32``; anything else raises ValueError.

    Example:
        >>> import dlviz
        >>> dlviz.train.shifted(0) == dlviz.train.seed_offset()
        True
    """
    if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 0:
        raise ValueError(f"shifted takes a non-negative int seed, got {n!r}")
    moved = int(n) + seed_offset()
    if moved >= SEED_LIMIT:
        raise ValueError(f"seed {n} shifted by {SEED_OFFSET_VARIABLE}={seed_offset()} is {moved}, past 2**32 - 1")
    return moved


@dataclass
class History:
    """Per-epoch metrics of a :func:`fit` run.

    Lists are indexed by epoch (0-based): ``train_loss`` and ``val_loss`` are mean losses, ``train_accuracy`` and
    ``val_accuracy`` fractions in [0, 1] (NaN when the outputs are not class scores); ``val_*`` are empty without
    validation data. ``batch_loss`` holds every mini-batch's training loss, ``seconds`` the run's duration.
    ``precision`` says what the forward passes ran in ("bf16" for bfloat16 autocast, else the model's dtype such
    as "fp32") and ``channels_last`` whether the model ran in channels-last memory layout.

    Example:
        >>> from dlviz.train import History
        >>> history = History(train_loss=[0.9, 0.4], train_accuracy=[0.6, 0.9])
        >>> history.epochs
        2
        >>> history.last()
        {'train_loss': 0.4, 'train_accuracy': 0.9}
    """
    train_loss: list[float] = field(default_factory=list)
    train_accuracy: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    val_accuracy: list[float] = field(default_factory=list)
    batch_loss: list[float] = field(default_factory=list)
    seconds: float = 0.0
    precision: str = ""
    channels_last: bool = False

    @property
    def epochs(self) -> int:
        """The number of epochs recorded."""
        return len(self.train_loss)

    def last(self) -> dict[str, float]:
        """The last epoch's metrics as a dict (only those that were measured)."""
        names = ("train_loss", "train_accuracy", "val_loss", "val_accuracy")
        return {name: getattr(self, name)[-1] for name in names if getattr(self, name)}

    def __repr__(self) -> str:
        metrics = ", ".join(f"{k}={v:.4f}" for k, v in self.last().items())
        return f"History(epochs={self.epochs}, {metrics})"

    def plot(self, axes=None, title: str | None = None):
        """Loss and accuracy per epoch, training and validation, on two axes; returns the figure.

        Args:
            axes: two matplotlib axes to draw on (loss, accuracy); default a new figure.
            title: the figure's title.

        Example:
            >>> import matplotlib.pyplot as plt
            >>> from dlviz.train import History
            >>> figure = History(train_loss=[0.9, 0.4], train_accuracy=[0.6, 0.9]).plot()
            >>> len(figure.axes)
            2
            >>> plt.close(figure)
        """
        from .plot import training_curves
        return training_curves(self, axes=axes, title=title)


# --- batches ----------------------------------------------------------------------------------------------------

def _as_pair(data):
    """``(inputs, labels)`` when ``data`` is a pair of tensors or a two-tensor TensorDataset, else None."""
    if isinstance(data, TensorDataset) and len(data.tensors) == 2:
        data = data.tensors
    if isinstance(data, (tuple, list)) and len(data) == 2 and all(isinstance(t, torch.Tensor) for t in data):
        return data
    return None


def _as_batches(data, batch_size: int, shuffle: bool, generator: torch.Generator | None = None):
    """Yield ``(inputs, labels)`` batches from tensors, a TensorDataset, a Dataset or a DataLoader; also the count
    of batches (None when a DataLoader cannot tell)."""
    if isinstance(data, DataLoader):
        return iter(data), _loader_length(data)
    pair = _as_pair(data)
    if pair is not None:
        inputs, labels = pair
        if len(inputs) != len(labels):
            raise ValueError(f"inputs and labels differ in length: {len(inputs)} and {len(labels)}")
        n = len(inputs)
        order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
        count = math.ceil(n / batch_size)
        return ((inputs[idx], labels[idx]) for idx in order.split(batch_size)), count
    if isinstance(data, Dataset):
        shuffle = shuffle and not isinstance(data, IterableDataset)  # a stream comes in its own order
        loader = DataLoader(data, batch_size=batch_size, shuffle=shuffle, num_workers=0, generator=generator)
        return iter(loader), _loader_length(loader)
    raise TypeError("expected a Dataset, a DataLoader or a pair of tensors (inputs, labels), "
                    f"got {type(data).__name__}")


def _loader_length(loader: DataLoader) -> int | None:
    try:
        return len(loader)
    except TypeError:  # an IterableDataset without __len__
        return None


def _size(data) -> int | None:
    """How many items ``data`` holds (None when it cannot tell, as for an IterableDataset)."""
    pair = _as_pair(data)
    if pair is not None:
        return len(pair[0])
    try:
        return len(data.dataset if isinstance(data, DataLoader) else data)
    except TypeError:
        return None


def _check_not_empty(data, what: str) -> None:
    """ValueError when ``data`` holds no item, or is a DataLoader that yields no batch."""
    size = _size(data)
    if size == 0:
        raise ValueError(f"{what} is empty (0 items): give it at least one (input, label) pair")
    if isinstance(data, DataLoader) and _loader_length(data) == 0:
        raise ValueError(f"{what} is a DataLoader that yields no batch: its {size} items make no full batch of "
                         f"{data.batch_size} with drop_last=True; use a smaller batch_size or drop_last=False")


def _loss_and_hits(output: torch.Tensor, labels: torch.Tensor, loss_fn) -> tuple[torch.Tensor, int, int]:
    """Loss, number of correct predictions and number of predictions; sequences (N, T, C) vs (N, T) are flattened."""
    if output.dim() == labels.dim() + 1 and output.dim() > 2 and output.shape[:-1] == labels.shape:
        output, labels = output.reshape(-1, output.shape[-1]), labels.reshape(-1)
    loss = loss_fn(output, labels)
    if output.dim() == 2 and labels.dim() == 1 and not labels.is_floating_point():
        return loss, int((output.argmax(1) == labels).sum()), labels.numel()
    return loss, 0, 0


# --- evaluation ---------------------------------------------------------------------------------------------------

@torch.no_grad()
def evaluate(model: nn.Module, data, *, batch_size: int = 256, loss_fn=None, device=None,
             output=None, precision: str = "fp32", progress: bool = False) -> dict[str, float]:
    """Mean loss and accuracy of ``model`` over ``data``, in eval mode.

    Args:
        model: any ``nn.Module`` mapping a batch of inputs to class scores (N, C) or per-step scores (N, T, C).
        data: a Dataset, a DataLoader, or a pair of tensors ``(inputs, labels)``; not empty.
        batch_size: items per forward pass (int >= 1; ignored for a DataLoader). The default, 256, evaluated
            LeNet 1.5x faster than 1,000 on a CPU (a smaller batch's feature maps stay in cache); MLPs take the
            same time either way.
        loss_fn: default cross-entropy.
        device: where to run; default the device of the model's parameters.
        output: how to get the class scores from what the model returns, when that is not a tensor: an int
            indexes a tuple or list (``output=0``), a str is a dict key or an attribute (``output="logits"``), a
            callable maps the output to the scores; None (default) expects a tensor.
        precision: "fp32" (default: a reported accuracy is the model's exact float32 one), "auto" or "bf16", as
            for :func:`fit` (whose per-epoch validation runs in fit's own precision); the loss and the accuracy are
            computed in float32 either way.
        progress: ``True`` shows a tqdm bar over the batches; off by default, because an evaluation usually takes
            about a second and is often called in a loop (one bar per call would bury the results).

    Returns:
        ``{"loss": mean loss, "accuracy": fraction in [0, 1]}``; accuracy is NaN when outputs are not class scores.
        Every submodule's train/eval mode, and the parameters' memory layout, are restored afterwards, also when
        the call raises.

    Example:
        >>> import torch, dlviz
        >>> from torch import nn
        >>> model = nn.Linear(1, 2)
        >>> with torch.no_grad():
        ...     _ = model.weight.copy_(torch.tensor([[-1.0], [1.0]])), model.bias.zero_()
        >>> x, y = torch.tensor([[-2.0], [-1.0], [1.0], [2.0]]), torch.tensor([0, 0, 1, 0])
        >>> dlviz.evaluate(model, (x, y), progress=False)["accuracy"]
        0.75
    """
    check_number(batch_size, "batch_size", kind=int)
    _check_not_empty(data, "evaluate()'s data")
    loss_fn = loss_fn or nn.CrossEntropyLoss()
    device = torch.device(device) if device is not None else model_device(model)
    plan = _precision.plan(precision, model, device)
    total_loss, hits, count, seen = 0.0, 0, 0, 0
    with preserved(model, freeze=False), _precision.Layout(model, plan.channels_last) as layout:
        batches, total = _as_batches(data, batch_size, shuffle=False)
        with _progress_bar(total, f"evaluate ({plan.label})", progress, unit="batch") as bar:
            for inputs, labels in batches:
                inputs, labels = inputs.to(device), labels.to(device)
                out = _forward(model, inputs, plan, layout, output, first=seen == 0)
                loss, h, c = _loss_and_hits(out, labels, loss_fn)
                total_loss += float(loss) * len(inputs)
                hits, count, seen = hits + h, count + c, seen + len(inputs)
                bar.update()
    if seen == 0:
        raise ValueError("evaluate()'s data yielded no batch: it is empty")
    return {"loss": total_loss / seen, "accuracy": hits / count if count else float("nan")}


def _forward(model, inputs, plan, layout, output, first: bool, buffers=()):
    """The scores of ``model`` on ``inputs`` in the plan's precision and layout, in float32 when autocast made
    them bfloat16. On the first batch, a model that fails in channels-last layout (one calling ``.view`` on its
    feature maps) has its layout put back and is run again in the usual layout, for the rest of the call."""
    try:
        with _precision.autocast(plan):
            out = model(layout(inputs))
    except RuntimeError:
        if not (first and layout.enabled):
            raise
        layout.disable()
        with torch.no_grad():
            for buffer, saved in buffers:  # what the failed pass changed (BatchNorm statistics)
                buffer.copy_(saved)
        with _precision.autocast(plan):
            out = model(inputs)
    # the scores the loss is computed on: a tensor output as it is (also (N, T, C) per-step scores)
    return _precision.as_float32(select_scores(out, output, model=model, as_is=True))


# --- one checked training step ------------------------------------------------------------------------------------

def _where(epoch: int, epochs: int, batch: int, batches: int | None) -> str:
    """Where a batch is, counted from 1, for error messages: ``epoch 2 of 5, batch 7 of 94``."""
    of = f" of {batches}" if batches is not None else ""
    return f"epoch {epoch + 1} of {epochs}, batch {batch + 1}{of}"


def _check_finite_batch(inputs, labels, where: str) -> None:
    for name, tensor in (("inputs", inputs), ("labels", labels)):
        if isinstance(tensor, torch.Tensor) and tensor.is_floating_point():
            if tensor.numel() and math.isfinite(float(tensor.sum(dtype=torch.float32))):
                continue  # a finite sum (one pass, no copy) means every value is finite; else look closer
            finite = torch.isfinite(tensor)
            if not bool(finite.all()):
                bad = int((~finite).sum())
                raise ValueError(f"{where}: the {name} hold {bad} NaN or infinite values (of {tensor.numel()}); "
                                 f"nothing was trained on this batch and the weights are as they were before it. "
                                 f"Check the data, for example with torch.isfinite(x).all().")


def _first_non_finite_gradient(model: nn.Module) -> str | None:
    """The name of the first parameter whose gradient holds NaN or infinity, or None. One device sync when all
    gradients are finite (the usual case, screened by one sum per gradient); the name is looked up only when one is
    not."""
    named = [(name, p.grad.coalesce().values() if p.grad.is_sparse else p.grad)
             for name, p in model.named_parameters() if p.grad is not None]
    if not named:
        return None
    # screen: a finite sum of the per-gradient sums (float32) means every gradient is finite; a non-finite one is
    # NaN, infinity or (rarely) an overflow of large finite values, which the exact test below tells apart
    device = named[0][1].device
    if math.isfinite(float(torch.stack([grad.sum(dtype=torch.float32).to(device) for _, grad in named]).sum())):
        return None
    finite = torch.stack([torch.isfinite(grad).all().to(named[0][1].device) for _, grad in named])
    if bool(finite.all()):
        return None
    return named[int((~finite).nonzero()[0])][0]


def _train_step(model, inputs, labels, *, loss_fn, optimizer, clip_grad_norm, output, where, plan, layout,
                first=False):
    """One optimizer step on a batch, taken only when inputs, loss and gradients are finite; returns
    ``(loss, hits, predictions)``. When anything raises, the model's buffers (BatchNorm statistics) are put back
    and the gradients cleared, so the model and the optimizer are as they were before the batch."""
    _check_finite_batch(inputs, labels, where)
    buffers = [(b, b.detach().clone()) for b in model.buffers()]
    optimizer.zero_grad(set_to_none=True)
    try:
        scores = _forward(model, inputs, plan, layout, output, first, buffers)
        loss, hits, predictions = _loss_and_hits(scores, labels, loss_fn)
        value = float(loss.detach())
        if not math.isfinite(value):
            raise FloatingPointError(f"{where}: the training loss is {value}; the weights are as they were before "
                                     f"this batch. Try a smaller learning rate (or clip_grad_norm=...).")
        loss.backward()
        bad = _first_non_finite_gradient(model)
        if bad is not None:
            raise FloatingPointError(f"{where}: the gradient of {bad!r} holds NaN or infinite values although the "
                                     f"loss is {value}; the weights are as they were before this batch. Look for "
                                     f"an operation with an infinite derivative (sqrt or log at 0, for example).")
    except BaseException:
        with torch.no_grad():
            for buffer, saved in buffers:
                buffer.copy_(saved)
        optimizer.zero_grad(set_to_none=True)
        raise
    if clip_grad_norm is not None:
        nn.utils.clip_grad_norm_(model.parameters(), clip_grad_norm)
    optimizer.step()
    return value, hits, predictions


def _train_modes(model: nn.Module) -> None:
    """Train mode for training: a model in eval mode goes wholly into train mode; a model already in train mode
    keeps the submodules its user put in eval mode (a frozen BatchNorm) in eval mode."""
    if not model.training:
        model.train()


# --- training -----------------------------------------------------------------------------------------------------

def fit(model: nn.Module, train_data, *, epochs: int, optimizer: torch.optim.Optimizer | None = None,
        lr: float = 1e-3, batch_size: int = 64, val_data=None, device=None, progress: bool = True,
        loss_fn=None, clip_grad_norm: float | None = None, scheduler=None, output=None,
        precision: str = "auto") -> History:
    """Train ``model`` on ``train_data`` for ``epochs`` passes and return its :class:`History`.

    Args:
        model: any ``nn.Module`` mapping a batch of inputs to class scores (N, C) or per-step scores (N, T, C).
        train_data: a Dataset, a DataLoader, or a pair of tensors ``(inputs, labels)`` (fastest on a CPU); not empty.
        epochs: number of passes over ``train_data`` (int >= 1).
        optimizer: an optimizer over ``model``'s parameters; default Adam with learning rate ``lr``.
        lr: the default optimizer's learning rate.
        batch_size: mini-batch size (int >= 1; ignored for a DataLoader).
        val_data: evaluated after every epoch when given (same forms as ``train_data``).
        device: where to train; default the device of the model's parameters (so the model decides).
        progress: show tqdm bars (epochs, and batches with the running loss and accuracy).
        loss_fn: default cross-entropy.
        clip_grad_norm: clip the gradient's global norm to this value before every step (RNNs).
        scheduler: a learning-rate scheduler stepped once per epoch.
        output: how to get the class scores from what the model returns, when that is not a tensor: an int
            indexes a tuple or list (``output=0``), a str is a dict key or an attribute (``output="logits"``), a
            callable maps the output to the scores; None (default) expects a tensor.
        precision: "auto" (default): bfloat16 autocast for float32 conv nets and MLPs where the device computes
            bfloat16 natively, float32 otherwise; "fp32": the model's own dtype, no autocast; "bf16": bfloat16
            autocast (weights and optimizer state stay float32), which warns and runs in float32 on a device
            without native bfloat16. Conv nets run in channels-last layout in every case. The loss, the accuracy
            and the finite checks are float32. The choice shows in the progress bars and in the History.

    Returns:
        The :class:`History` of losses and accuracies per epoch.

    Raises:
        ValueError: bad ``epochs``, ``batch_size`` or ``precision`` ("bf16" for a model that is not float32), empty
            data, or a batch with NaN or infinite inputs.
        FloatingPointError: a NaN or infinite loss or gradient (a learning rate too large, for example).
        Both name the epoch and the batch; the model and the optimizer are then as they were before that batch.

    Training runs in train mode: a model in eval mode is put wholly in train mode, while a model in train mode
    keeps the submodules its user set to eval mode (a frozen BatchNorm) in eval mode. Afterwards every submodule's
    mode is as it was before the call, also when the call raises; so are the dtype and the memory layout
    (strides) of every parameter and buffer, which hold the trained values.

    Example:
        >>> import torch, dlviz
        >>> from torch import nn
        >>> dlviz.seed(0)
        >>> x, y = torch.tensor([[-2.0], [-1.0], [1.0], [2.0]]), torch.tensor([0, 0, 1, 1])
        >>> model = nn.Linear(1, 2)
        >>> history = dlviz.fit(model, (x, y), epochs=30, lr=0.1, progress=False)
        >>> history.epochs, history.train_accuracy[-1]
        (30, 1.0)
    """
    check_number(epochs, "epochs", kind=int)
    check_number(batch_size, "batch_size", kind=int)
    _check_not_empty(train_data, "fit()'s train_data")
    if val_data is not None:
        _check_not_empty(val_data, "fit()'s val_data")
    loss_fn = loss_fn or nn.CrossEntropyLoss()
    device = torch.device(device) if device is not None else model_device(model)
    plan = _precision.plan(precision, model, device)
    model.to(device)
    optimizer = optimizer or torch.optim.Adam(model.parameters(), lr=lr)
    history, start = History(precision=plan.precision, channels_last=plan.channels_last), time.perf_counter()
    epoch_stored = _StoredBar(range(epochs), desc=f"epochs ({plan.label})", disable=not progress, unit="epoch")
    epoch_bar = epoch_stored.bar
    try:
        with preserved(model, eval_mode=False, freeze=False), gradients_on(), \
                _precision.Layout(model, plan.channels_last) as layout:
            _train_modes(model)
            for epoch in epoch_bar:
                _train_epoch(model, train_data, history, epoch=epoch, epochs=epochs, batch_size=batch_size,
                             progress=progress, loss_fn=loss_fn, optimizer=optimizer, clip_grad_norm=clip_grad_norm,
                             output=output, device=device, plan=plan, layout=layout)
                if not layout.enabled and history.channels_last:
                    history.channels_last = False
                    epoch_bar.set_description(f"epochs ({plan.precision})", refresh=False)
                if scheduler is not None:
                    scheduler.step()
                if val_data is not None:
                    metrics = evaluate(model, val_data, loss_fn=loss_fn, device=device, output=output,
                                       precision="bf16" if plan.autocast else "fp32", progress=False)
                    history.val_loss.append(metrics["loss"])
                    history.val_accuracy.append(metrics["accuracy"])
                epoch_bar.set_postfix({k: f"{v:.3f}" for k, v in history.last().items()})
    finally:
        epoch_stored.close()
        history.seconds = time.perf_counter() - start
    return history


def _train_epoch(model, train_data, history: History, *, epoch, epochs, batch_size, progress, loss_fn, optimizer,
                 clip_grad_norm, output, device, plan, layout) -> None:
    """One pass over ``train_data``; appends the epoch's loss and accuracy (and each batch's loss) to ``history``."""
    batches, count = _as_batches(train_data, batch_size, shuffle=True)
    total_loss, hits, predictions, seen = 0.0, 0, 0, 0
    label = plan.label if layout.enabled else plan.precision   # the layout falls back on a model that cannot use it
    batch_stored = _StoredBar(batches, total=count, desc=f"batches ({label})", leave=False, disable=not progress,
                              unit="batch")
    batch_bar = batch_stored.bar
    try:
        for step, (inputs, labels) in enumerate(batch_bar):
            inputs, labels = inputs.to(device), labels.to(device)
            value, h, c = _train_step(model, inputs, labels, loss_fn=loss_fn, optimizer=optimizer,
                                      clip_grad_norm=clip_grad_norm, output=output,
                                      where=_where(epoch, epochs, step, count), plan=plan, layout=layout,
                                      first=epoch == 0 and step == 0)
            history.batch_loss.append(value)
            total_loss, hits, predictions = total_loss + value * len(inputs), hits + h, predictions + c
            seen += len(inputs)
            if progress and step % 20 == 0:
                postfix = {"loss": f"{total_loss / seen:.3f}"}
                if predictions:
                    postfix["acc"] = f"{hits / predictions:.3f}"
                batch_bar.set_postfix(postfix, refresh=False)
    finally:
        batch_stored.close()
    if seen == 0:
        raise ValueError(f"fit()'s train_data yielded no batch in epoch {epoch + 1}: it is empty")
    history.train_loss.append(total_loss / seen)
    history.train_accuracy.append(hits / predictions if predictions else float("nan"))
