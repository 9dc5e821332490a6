"""Characters as numbers: a vocabulary, training batches from a long text, per-character loss, and sampling.

Used with :class:`dlviz.zoo.CharLSTM` on Tiny Shakespeare (:func:`dlviz.data.tiny_shakespeare`). The course splits
the text into its first 90% for training and its last 10% for validation (:func:`split`).
"""
from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from .hooks import preserved

__all__ = ["CharVocab", "split", "sequence_pairs", "loss_per_char", "sample"]


class CharVocab:
    """The sorted set of characters of a text, with ``encode`` (str -> int64 codes) and ``decode`` (codes -> str).

    Args:
        text: a non-empty string; its distinct characters, sorted, get the codes 0, 1, ...

    Example:
        >>> from dlviz.text import CharVocab
        >>> vocab = CharVocab("hello world")
        >>> vocab
        CharVocab(8 characters: ' dehlorw')
        >>> vocab.encode("hello")
        tensor([3, 2, 4, 4, 5])
        >>> vocab.decode([3, 2])
        'he'
    """

    def __init__(self, text: str):
        self.chars = "".join(sorted(set(text)))
        if not self.chars:
            raise ValueError("a vocabulary needs a non-empty text")
        self.index = {ch: i for i, ch in enumerate(self.chars)}

    def __len__(self) -> int:
        return len(self.chars)

    def __repr__(self) -> str:
        return f"CharVocab({len(self)} characters: {self.chars!r})"

    def encode(self, text: str) -> torch.Tensor:
        """Codes (len(text),) int64; a character outside the vocabulary raises a KeyError naming it."""
        try:
            return torch.tensor([self.index[ch] for ch in text], dtype=torch.long)
        except KeyError as error:
            raise KeyError(f"character {error.args[0]!r} is not in the vocabulary ({len(self)} characters: "
                           f"{self.chars!r})") from None

    def decode(self, codes) -> str:
        """The text of a 1-D sequence of codes (tensor or list of ints)."""
        if isinstance(codes, torch.Tensor):
            codes = codes.reshape(-1).tolist()
        return "".join(self.chars[int(i)] for i in codes)


def split(text: str, train_fraction: float = 0.9) -> tuple[str, str]:
    """The text's first ``train_fraction`` (training) and the rest (validation), cut at a character.

    Args:
        text: any string.
        train_fraction: in (0, 1); the training part has ``int(len(text) * train_fraction)`` characters.

    Returns ``(train, validation)``, two strings that make up ``text``.

    Example:
        >>> from dlviz.text import split
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
        >>> from dlviz.text import sequence_pairs
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
    ``model(codes, state) -> (logits, state)`` as :class:`dlviz.zoo.CharLSTM`. The model's mode is restored.

    Args:
        model: a character model as above, on any device.
        codes: a 1-D sequence of codes, more than ``streams`` of them.
        streams, chunk: positive ints: how many pieces are read in parallel, and how many steps at a time.

    Returns the loss as a float (nats; divide by ln 2 for bits per character).

    Example:
        >>> from dlviz import zoo
        >>> from dlviz.text import loss_per_char
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


@torch.no_grad()
def sample(model: nn.Module, prime: str, length: int, temperature: float = 1.0, seed: int | None = None,
           top_k: int | None = None) -> str:
    """Continue ``prime`` by ``length`` characters drawn from the model, one at a time; returns the new text only.

    ``temperature`` divides the logits before the softmax: 1 samples the model's distribution, below 1 is more
    conservative (0 takes the most likely character every time), above 1 more random. ``seed`` makes the draw
    repeatable (a private generator; the global random state is not touched). ``top_k`` keeps only the k most
    likely characters. The model needs ``model.vocab`` (see :class:`dlviz.zoo.CharLSTM`); its mode is restored.

    Args:
        model: a character model with ``model.vocab``, ``model(codes, state) -> (logits, state)``.
        prime: a non-empty string of characters in the vocabulary.
        length: how many characters to add, an int >= 0.
        temperature: a finite number >= 0.
        seed: an int for a repeatable draw, or None.
        top_k: a positive int, or None for all characters.

    Example:
        >>> from dlviz import zoo
        >>> from dlviz.text import sample
        >>> model = zoo.load("charlstm_shakespeare")
        >>> sample(model, "ROMEO:", 20, temperature=0).strip()   # the most likely character at every step
        'I will not the stan'
        >>> sample(model, "ROMEO:", 20, seed=1) == sample(model, "ROMEO:", 20, seed=1)
        True
    """
    if temperature < 0 or not math.isfinite(temperature):
        raise ValueError(f"temperature must be a finite number >= 0, got {temperature}")
    if length < 0:
        raise ValueError(f"length must be >= 0, got {length}")
    if not prime:
        raise ValueError("prime must be a non-empty string (the model needs a first character)")
    vocab = getattr(model, "vocab", None)
    if vocab is None:
        raise ValueError("the model has no vocabulary attached (model.vocab); load it with dlviz.zoo.load")
    device = next(model.parameters()).device
    generator = torch.Generator(device="cpu")
    if seed is not None:
        generator.manual_seed(seed)
    else:
        generator.seed()
    out = []
    with preserved(model):
        logits, state = model(vocab.encode(prime).to(device)[None], None)
        for _ in range(length):
            last = logits[0, -1].float().cpu()
            if temperature == 0:
                code = int(last.argmax())
            else:
                scaled = last / temperature
                if top_k is not None and top_k < len(scaled):
                    cutoff = scaled.topk(top_k).values[-1]
                    scaled = scaled.masked_fill(scaled < cutoff, float("-inf"))
                code = int(torch.multinomial(F.softmax(scaled, dim=0), 1, generator=generator))
            out.append(code)
            logits, state = model(torch.tensor([[code]], device=device), state)
    return vocab.decode(out)
