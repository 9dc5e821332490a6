"""Characters as numbers: a vocabulary, training batches from a long text, per-character loss, and sampling.

Used with :class:`dlviz.models.zoo.CharLSTM` on Tiny Shakespeare (:func:`dlviz.data.tiny_shakespeare`). The course
splits the text into its first 90% for training and its last 10% for validation (:func:`split`).
"""
from __future__ import annotations


import torch
from torch import nn
from torch.nn import functional as F

from .._model import preserved
from ..models.zoo import CharVocab, sample

__all__ = ["CharVocab", "split", "sequence_pairs", "loss_per_char", "sample"]


def split(text: str, train_fraction: float = 0.9) -> tuple[str, str]:
    """The text's first ``train_fraction`` (training) and the rest (validation), cut at a character.

    Args:
        text: any string.
        train_fraction: in (0, 1); the training part has ``int(len(text) * train_fraction)`` characters.

    Returns ``(train, validation)``, two strings that make up ``text``.

    Example:
        >>> from dlviz.course.text import split
        >>> split("abcdefghij")
        ('abcdefghi', 'j')
        >>> split("abcdefghij", train_fraction=0.8)
        ('abcdefgh', 'ij')
    """
    if not 0 < train_fraction < 1:
        raise ValueError(f"train_fraction must be in (0, 1), got {train_fraction}")
    cut = int(len(text) * train_fraction)
    return text[:cut], text[cut:]


def sequence_pairs(codes: torch.Tensor, length: int, stride: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Cut a 1-D code sequence into training pairs for next-character prediction.

    Returns ``(inputs, targets)``, both (N, length) int64, where ``targets[i, t] == inputs[i, t+1]`` within the
    text: window i starts at ``i * stride`` (default ``stride = length``: non-overlapping windows). The pair can be
    given to :func:`dlviz.fit` as training data for a model returning logits (N, length, V).

    Args:
        codes: a 1-D sequence of codes (at least ``length + 1`` of them).
        length: the window length T, a positive int.
        stride: the step between window starts (default ``length``).

    Example:
        >>> import torch
        >>> from dlviz.course.text import sequence_pairs
        >>> inputs, targets = sequence_pairs(torch.arange(10), length=4)
        >>> inputs
        tensor([[0, 1, 2, 3],
                [4, 5, 6, 7]])
        >>> targets
        tensor([[1, 2, 3, 4],
                [5, 6, 7, 8]])
        >>> sequence_pairs(torch.arange(10), length=4, stride=2)[0].shape
        torch.Size([3, 4])
    """
    codes = torch.as_tensor(codes).reshape(-1)
    stride = stride or length
    if len(codes) < length + 1:
        raise ValueError(f"a text of {len(codes)} characters is too short for windows of {length} + 1")
    starts = torch.arange(0, len(codes) - length, stride)
    index = starts[:, None] + torch.arange(length + 1)
    windows = codes[index]
    return windows[:, :-1].contiguous(), windows[:, 1:].contiguous()


@torch.no_grad()
def loss_per_char(model: nn.Module, codes: torch.Tensor, streams: int = 16, chunk: int = 256) -> float:
    """Mean cross-entropy in nats per character of predicting ``codes[t+1]`` from ``codes[:t+1]``.

    The text is cut into ``streams`` contiguous pieces read in parallel, ``chunk`` steps at a time, carrying the
    LSTM state across chunks (so every character but the first of each stream is predicted with its full past).
    ``model(codes, state) -> (logits, state)`` as :class:`dlviz.models.zoo.CharLSTM`. The model's mode is restored.

    Args:
        model: a character model as above, on any device.
        codes: a 1-D sequence of codes, more than ``streams`` of them.
        streams, chunk: positive ints: how many pieces are read in parallel, and how many steps at a time.

    Returns the loss as a float (nats; divide by ln 2 for bits per character).

    Example:
        >>> from dlviz.models import zoo
        >>> from dlviz.course.text import loss_per_char
        >>> model = zoo.load("charlstm_shakespeare")
        >>> codes = model.encode("First Citizen: Before we proceed any further, hear me speak.")
        >>> round(loss_per_char(model, codes, streams=2, chunk=16), 2)
        1.45
    """
    codes = torch.as_tensor(codes).reshape(-1)
    per_stream = (len(codes) - 1) // streams
    if per_stream < 1:
        raise ValueError(f"a text of {len(codes)} characters is too short for {streams} streams")
    parameter = next(model.parameters())
    usable = codes[: streams * per_stream + 1]
    inputs = usable[:-1].reshape(streams, per_stream).to(parameter.device)
    targets = usable[1:].reshape(streams, per_stream).to(parameter.device)
    total, state = 0.0, None
    with preserved(model):
        for start in range(0, per_stream, chunk):
            logits, state = model(inputs[:, start:start + chunk], state)
            total += float(F.cross_entropy(logits.reshape(-1, logits.shape[-1]),
                                           targets[:, start:start + chunk].reshape(-1), reduction="sum"))
    return total / targets.numel()
