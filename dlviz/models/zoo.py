"""The course's models and their trained weights, shipped with the package.

``load(name)`` returns a trained model in eval mode that takes raw inputs:

- ``"mlp_mnist"``: FC256-FC256 multilayer perceptron with dropout; images (N, 1, 28, 28) in [0, 1] -> logits (N, 10).
- ``"lenet_mnist"``: LeNet 20C5-MP2-50C5-MP2-FC256; images (N, 1, 28, 28) in [0, 1] -> logits (N, 10).
- ``"charlstm_shakespeare"``: a character-level LSTM on Tiny Shakespeare; codes (N, T) int64 -> logits (N, T, V)
  and the LSTM state, with its vocabulary attached (``model.vocab``, ``model.encode``, ``model.decode``);
  :func:`sample` continues a prime at a chosen temperature.

Image models normalize inside (a :class:`~dlviz.models.normalize.Normalize` layer with MNIST's mean 0.1307 and
std 0.3081), so attacks and attributions work in pixel units. The weights live in ``dlviz/models/weights/`` and
are loaded with ``torch.load(weights_only=True)``; each checkpoint carries the metrics measured when it was trained
(``model.metadata``). ``python tools/train_zoo.py NAME`` retrains one from scratch.

The classes are exported so that a notebook can train a fresh one: ``MLP()``, ``LeNet()``, ``CharLSTM(vocab_size)``.
"""
from __future__ import annotations

import difflib
import math
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from .._model import preserved
from .._validate import check_generator
from .imagenet import imagenet  # torchvision's classifiers beside the course's own: zoo.imagenet("alexnet")
from .normalize import Normalize  # the one normalization module; the name stays here for notebooks, pickles

__all__ = ["load", "available", "metadata", "weights_path", "build", "Normalize", "MLP", "LeNet", "CharLSTM",
           "sample", "CharVocab", "MNIST_MEAN", "MNIST_STD", "imagenet"]

MNIST_MEAN, MNIST_STD = 0.1307, 0.3081
WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"


class MLP(nn.Module):
    """A fully connected classifier for 28x28 grey images: flatten, then ``hidden`` ReLU layers, then 10 scores.

    Input (N, 1, 28, 28) in [0, 1]; output logits (N, ``classes``). Layers: ``normalize``, ``flatten``, then in
    ``layers``: Linear, ReLU, Dropout per hidden layer (``layers.0`` is the first Linear), and the output Linear.
    ``hidden=(256, 256)`` is the talk's FC256-FC256; ``dropout=0`` leaves the Dropout modules out.

    Example:
        >>> import torch
        >>> from dlviz.models.zoo import MLP
        >>> model = MLP(hidden=(32,))
        >>> model(torch.rand(4, 1, 28, 28)).shape
        torch.Size([4, 10])
        >>> [name for name, _ in model.layers.named_children()]
        ['0', '1', '2']
    """

    def __init__(self, hidden=(256, 256), dropout: float = 0.0, activation=nn.ReLU, classes: int = 10,
                 in_features: int = 28 * 28):
        super().__init__()
        self.normalize = Normalize(MNIST_MEAN, MNIST_STD)
        self.flatten = nn.Flatten()
        layers, width = [], in_features
        for h in hidden:
            layers += [nn.Linear(width, h), activation()]
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            width = h
        layers.append(nn.Linear(width, classes))
        self.layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(self.flatten(self.normalize(x)))


class LeNet(nn.Module):
    """LeNet as in the course: 20C5-MP2-50C5-MP2-FC256-10 with ReLU (``activation`` can be swapped, e.g. nn.Tanh).

    Input (N, 1, 28, 28) in [0, 1]; output logits (N, 10). Layer names:
    ``normalize``; ``features.0`` conv1 (20 5x5 filters, 28 -> 24), ``features.1`` its activation,
    ``features.2`` max-pool (24 -> 12), ``features.3`` conv2 (50 5x5 filters, 12 -> 8), ``features.4`` activation,
    ``features.5`` max-pool (8 -> 4); ``flatten`` (50*4*4 = 800); ``classifier.0`` FC 800 -> 256,
    ``classifier.1`` activation, ``classifier.2`` dropout, ``classifier.3`` FC 256 -> 10.

    Example:
        >>> import torch
        >>> from dlviz.models.zoo import LeNet
        >>> model = LeNet().eval()
        >>> model(torch.rand(2, 1, 28, 28)).shape
        torch.Size([2, 10])
        >>> model.features[:3](torch.rand(1, 1, 28, 28)).shape   # conv1, ReLU, max-pool
        torch.Size([1, 20, 12, 12])
    """

    def __init__(self, activation=nn.ReLU, dropout: float = 0.5, classes: int = 10):
        super().__init__()
        self.normalize = Normalize(MNIST_MEAN, MNIST_STD)
        self.features = nn.Sequential(
            nn.Conv2d(1, 20, kernel_size=5), activation(), nn.MaxPool2d(2),
            nn.Conv2d(20, 50, kernel_size=5), activation(), nn.MaxPool2d(2),
        )
        self.flatten = nn.Flatten()
        self.classifier = nn.Sequential(
            nn.Linear(50 * 4 * 4, 256), activation(), nn.Dropout(dropout), nn.Linear(256, classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.flatten(self.features(self.normalize(x))))


class CharLSTM(nn.Module):
    """A character-level language model: embedding, a ``layers``-deep LSTM, and a linear read-out.

    ``forward(codes, state=None)`` takes int64 codes (N, T) and returns ``(logits, state)``: logits (N, T, V) for
    the next character at every step, and the LSTM state ``(h, c)`` (each (layers, N, hidden)) to continue from.
    A loaded model carries its vocabulary: ``model.vocab`` (a :class:`~dlviz.models.zoo.CharVocab`),
    ``model.encode(str)`` and ``model.decode(codes)``.

    Example:
        >>> import torch
        >>> from dlviz.models.zoo import CharVocab
        >>> from dlviz.models.zoo import CharLSTM
        >>> vocab = CharVocab("hello world")
        >>> model = CharLSTM(len(vocab), hidden=16, layers=1, embed=8)
        >>> model.vocab = vocab
        >>> logits, (h, c) = model(model.encode("hello")[None])
        >>> logits.shape, h.shape
        (torch.Size([1, 5, 8]), torch.Size([1, 1, 16]))
    """

    def __init__(self, vocab_size: int, hidden: int = 256, layers: int = 2, embed: int = 48, dropout: float = 0.0):
        super().__init__()
        self.vocab_size, self.hidden, self.num_layers = vocab_size, hidden, layers
        self.embed = nn.Embedding(vocab_size, embed)
        self.lstm = nn.LSTM(embed, hidden, num_layers=layers, batch_first=True,
                            dropout=dropout if layers > 1 else 0.0)
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(hidden, vocab_size)
        self.vocab: CharVocab | None = None

    def forward(self, codes: torch.Tensor, state=None):
        out, state = self.lstm(self.embed(codes), state)
        return self.head(self.drop(out)), state

    def encode(self, text: str) -> torch.Tensor:
        """Text -> int64 codes (len(text),) with the attached vocabulary."""
        return self._vocab().encode(text)

    def decode(self, codes) -> str:
        """Codes (a tensor or a list of ints) -> text with the attached vocabulary."""
        return self._vocab().decode(codes)

    def _vocab(self) -> CharVocab:
        if self.vocab is None:
            raise RuntimeError("this CharLSTM has no vocabulary attached; set model.vocab = CharVocab(text)")
        return self.vocab


# --- the registry ---------------------------------------------------------------------------------------------

_MODELS = {
    "mlp_mnist": "mlp_mnist.pt",
    "lenet_mnist": "lenet_mnist.pt",
    "charlstm_shakespeare": "charlstm_shakespeare.pt",
}


def available() -> list[str]:
    """Names accepted by :func:`load`.

    Example:
        >>> from dlviz.models import zoo
        >>> zoo.available()
        ['mlp_mnist', 'lenet_mnist', 'charlstm_shakespeare']
    """
    return list(_MODELS)


def _check_name(name: str) -> None:
    if name not in _MODELS:
        close = difflib.get_close_matches(str(name), list(_MODELS), n=2)
        hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
        raise KeyError(f"unknown model {name!r}.{hint} Available models: {', '.join(_MODELS)}")


def weights_path(name: str) -> Path:
    """Where the weights of model ``name`` are stored (inside the package); an unknown name raises KeyError.

    Example:
        >>> from dlviz.models import zoo
        >>> path = zoo.weights_path("lenet_mnist")
        >>> path.name, path.parent.name, path.is_file()
        ('lenet_mnist.pt', 'weights', True)
    """
    _check_name(name)
    return WEIGHTS_DIR / _MODELS[name]


def build(name: str, config: dict | None = None) -> nn.Module:
    """A fresh, untrained model of the architecture registered as ``name`` (``config`` from its checkpoint).

    Args:
        name: one of :func:`available`.
        config: the architecture's settings (e.g. ``{"hidden": [128], "dropout": 0.1}`` for ``"mlp_mnist"``);
            None for the course's defaults.

    Example:
        >>> import torch
        >>> from dlviz.models import zoo
        >>> model = zoo.build("mlp_mnist", {"hidden": [64]})
        >>> type(model).__name__, model(torch.rand(3, 1, 28, 28)).shape
        ('MLP', torch.Size([3, 10]))
    """
    _check_name(name)
    config = dict(config or {})
    if name == "mlp_mnist":
        return MLP(hidden=tuple(config.get("hidden", (256, 256))), dropout=config.get("dropout", 0.2))
    if name == "lenet_mnist":
        return LeNet(dropout=config.get("dropout", 0.5))
    vocab = CharVocab(config["vocab"]) if "vocab" in config else None
    model = CharLSTM(config.get("vocab_size", len(vocab) if vocab else 65), hidden=config.get("hidden", 256),
                     layers=config.get("layers", 2), embed=config.get("embed", 48), dropout=config.get("dropout", 0.0))
    model.vocab = vocab
    return model


def _checkpoint(name: str) -> dict:
    path = weights_path(name)
    if not path.exists():
        raise FileNotFoundError(f"the weights of {name!r} are missing: {path} does not exist. "
                                f"Retrain them with: python tools/train_zoo.py {name}")
    return torch.load(path, map_location="cpu", weights_only=True)


def metadata(name: str) -> dict:
    """What was measured when model ``name`` was trained (test accuracy or validation loss, seed, epochs, time).

    Returns a new dict (changing it changes nothing stored); the keys depend on the model.

    Example:
        >>> from dlviz.models import zoo
        >>> facts = zoo.metadata("lenet_mnist")
        >>> facts["test_accuracy"] > 0.99, facts["epochs"]
        (True, 5)
    """
    return dict(_checkpoint(name)["metadata"])


def load(name: str, device=None) -> nn.Module:
    """The trained model ``name`` (one of :func:`available`), in eval mode, on ``device`` (default CPU).

    Image models take (N, 1, 28, 28) floats in [0, 1] and return logits (N, 10). The char-LSTM takes codes
    (N, T) and returns ``(logits (N, T, V), state)``; it carries ``vocab``/``encode``/``decode``.
    ``model.metadata`` holds the metrics measured at training time.

    Example:
        >>> import torch
        >>> from dlviz.models import zoo
        >>> model = zoo.load("lenet_mnist")
        >>> model(torch.rand(2, 1, 28, 28)).shape, model.training
        (torch.Size([2, 10]), False)
        >>> lstm = zoo.load("charlstm_shakespeare")
        >>> len(lstm.vocab), lstm.decode(lstm.encode("To be"))
        (65, 'To be')
    """
    checkpoint = _checkpoint(name)
    model = build(name, checkpoint["config"])
    state = {k: v.float() if v.is_floating_point() else v for k, v in checkpoint["state_dict"].items()}
    model.load_state_dict(state)
    model.metadata = dict(checkpoint["metadata"])
    model.eval()
    if device is not None:
        model.to(device)
    return model


def save(name: str, model: nn.Module, config: dict, metrics: dict, half: bool = False, folder=None) -> Path:
    """Write ``model``'s weights, its ``config`` and ``metrics`` as the checkpoint of ``name`` (used by training).

    ``folder`` defaults to the package's weights folder; ``half`` stores floating-point tensors as float16."""
    state = {k: (v.half() if half and v.is_floating_point() else v).detach().cpu().clone()
             for k, v in model.state_dict().items()}
    path = weights_path(name) if folder is None else Path(folder) / weights_path(name).name
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"state_dict": state, "config": config, "metadata": metrics}, path)
    return path


class CharVocab:
    """The sorted set of characters of a text, with ``encode`` (str -> int64 codes) and ``decode`` (codes -> str).

    Args:
        text: a non-empty string; its distinct characters, sorted, get the codes 0, 1, ...

    Example:
        >>> from dlviz.models.zoo import CharVocab
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


@torch.no_grad()
def sample(model: nn.Module, prime: str, length: int, temperature: float = 1.0, seed: int | None = None,
           top_k: int | None = None, *, generator: torch.Generator | None = None) -> str:
    """Continue ``prime`` by ``length`` characters drawn from the model, one at a time; returns the new text only.

    ``temperature`` divides the logits before the softmax: 1 samples the model's distribution, below 1 is more
    conservative (0 takes the most likely character every time), above 1 more random. ``generator`` (a CPU
    ``torch.Generator``) or ``seed`` (a private generator seeded with it) makes the draw repeatable; with neither,
    a fresh randomly seeded generator draws, and the global random state is not touched either way. ``top_k`` keeps
    only the k most likely characters. The model needs ``model.vocab`` (see :class:`dlviz.models.zoo.CharLSTM`); its
    mode is restored.

    Args:
        model: a character model with ``model.vocab``, ``model(codes, state) -> (logits, state)``.
        prime: a non-empty string of characters in the vocabulary.
        length: how many characters to add, an int >= 0.
        temperature: a finite number >= 0.
        seed: an int for a repeatable draw, or None (kept for existing code; prefer ``generator``).
        top_k: a positive int, or None for all characters.
        generator: a CPU ``torch.Generator`` for the draws, or None; not together with ``seed``.

    Example:
        >>> from dlviz.models import zoo
        >>> from dlviz.models.zoo import sample
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
        raise ValueError("the model has no vocabulary attached (model.vocab); load it with dlviz.models.zoo.load")
    device = next(model.parameters()).device
    check_generator(generator)
    if generator is not None and seed is not None:
        raise ValueError("give sample a seed or a generator, not both")
    if generator is None:
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
