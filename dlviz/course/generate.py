"""Networks that generate 28 x 28 images: a small DCGAN, a network run in reverse, and a score for their samples.

* :class:`Generator` and :class:`Discriminator`: Radford et al.'s DCGAN recipe scaled to MNIST (transposed
  convolutions, batch norm, ReLU in the generator, LeakyReLU(0.2) in the discriminator); :func:`train_gan` trains
  them with Adam(lr=2e-4, betas=(0.5, 0.999)) and the non-saturating loss.
* :func:`sample_quality`: a classifier's view of generated images -- its mean top-class confidence, how the
  predicted classes spread, and a small "inception score" exp(E KL(p(y|x) || p(y))) computed with a course model.
* :func:`transform_digits` and :class:`ReverseRenderer`: after Dosovitskiy et al., a network from (class,
  transformation parameters) to an image, trained with a pixel loss on digits transformed with known parameters.

Generated images are in [0, 1] (a sigmoid output), shape (N, 1, 28, 28), like the course's data.
"""
from __future__ import annotations

import dataclasses
import math

import torch
from torch import nn
from torch.nn import functional as F

from .._model import model_device, model_input, preserved, select_scores
from .._progress import progress_bar
from ..models.zoo import WEIGHTS_DIR

__all__ = ["Generator", "Discriminator", "train_gan", "GanHistory", "sample_quality", "SampleQuality",
           "transform_digits", "ReverseRenderer", "save_generator", "load_generator"]


class Generator(nn.Module):
    """DCGAN generator: a latent vector (N, latent_dim) -> images (N, 1, 28, 28) in [0, 1].

    z -> transposed conv 7x7 (4w channels, 7 x 7) -> transposed conv 4/2 (2w, 14 x 14) -> transposed conv 4/2
    (1, 28 x 28) -> sigmoid; batch norm and ReLU after the first two (``batch_norm=False`` drops the norm).

    Example:
        >>> import torch
        >>> from dlviz.course.generate import Generator
        >>> g = Generator(latent_dim=16, width=8).eval()
        >>> images = g(torch.randn(3, 16))
        >>> tuple(images.shape), bool(images.min() >= 0 and images.max() <= 1)
        ((3, 1, 28, 28), True)
    """

    def __init__(self, latent_dim: int = 32, width: int = 32, batch_norm: bool = True):
        super().__init__()
        norm = (lambda c: nn.BatchNorm2d(c)) if batch_norm else (lambda c: nn.Identity())
        self.latent_dim = latent_dim
        self.net = nn.Sequential(
            nn.ConvTranspose2d(latent_dim, 4 * width, 7, 1, 0, bias=not batch_norm), norm(4 * width), nn.ReLU(),
            nn.ConvTranspose2d(4 * width, 2 * width, 4, 2, 1, bias=not batch_norm), norm(2 * width), nn.ReLU(),
            nn.ConvTranspose2d(2 * width, 1, 4, 2, 1), nn.Sigmoid())

    def forward(self, z):
        return self.net(z.reshape(len(z), self.latent_dim, 1, 1))


class Discriminator(nn.Module):
    """DCGAN discriminator: images (N, 1, 28, 28) in [0, 1] -> one logit per image, (N,) ("real" when positive).

    conv 4/2 (w, 14 x 14) -> LeakyReLU(0.2) -> conv 4/2 (2w, 7 x 7) -> batch norm -> LeakyReLU(0.2) -> conv 7x7 (1).

    Example:
        >>> import torch
        >>> from dlviz.course.generate import Discriminator
        >>> tuple(Discriminator(width=8)(torch.rand(5, 1, 28, 28)).shape)
        (5,)
    """

    def __init__(self, width: int = 32, batch_norm: bool = True):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(1, width, 4, 2, 1), nn.LeakyReLU(0.2),
            nn.Conv2d(width, 2 * width, 4, 2, 1, bias=not batch_norm),
            nn.BatchNorm2d(2 * width) if batch_norm else nn.Identity(), nn.LeakyReLU(0.2),
            nn.Conv2d(2 * width, 1, 7))

    def forward(self, x):
        return self.net(2 * x - 1).flatten()


def _dcgan_init(module):
    # Radford et al.: weights from N(0, 0.02), batch-norm scales from N(1, 0.02)
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(m.weight, 0.0, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)


@dataclasses.dataclass
class GanHistory:
    """What :func:`train_gan` records: the two losses per step, and fixed-noise samples after chosen steps.

    ``d_loss`` and ``g_loss`` are lists of floats (one per step); ``samples`` maps a step number to images
    (n, 1, 28, 28) drawn from the same latent vectors ``z`` at every snapshot (step 0 is before training).

    Example:
        >>> import torch
        >>> from dlviz.course.generate import GanHistory
        >>> history = GanHistory(d_loss=[1.4], g_loss=[0.7], samples={0: torch.zeros(2, 1, 28, 28)},
        ...                      z=torch.zeros(2, 8))
        >>> sorted(history.samples), history.seconds
        ([0], 0.0)
    """
    d_loss: list
    g_loss: list
    samples: dict
    z: torch.Tensor
    seconds: float = 0.0


def train_gan(generator: nn.Module, discriminator: nn.Module, x: torch.Tensor, *, steps: int = 500,
              batch_size: int = 64, lr: float = 2e-4, betas=(0.5, 0.999), d_lr: float | None = None,
              snapshot_every: int = 100, n_samples: int = 16, init: bool = True,
              generator_rng: torch.Generator | None = None, progress: bool = True) -> GanHistory:
    """Train a GAN in place: per step, one Adam step on the discriminator then one on the generator.

    Discriminator loss: binary cross-entropy, real images labelled 1 and generated ones 0. Generator loss: the
    non-saturating -log D(G(z)) (Goodfellow et al.). Both with Adam(``lr``, ``betas``) -- Radford et al.'s 2e-4 and
    (0.5, 0.999) by default; ``d_lr`` gives the discriminator its own rate.

    Args:
        generator: maps (N, latent_dim) noise to images; must have a ``latent_dim`` attribute.
        discriminator: maps images to one logit per image, (N,).
        x: real images (M, 1, 28, 28) in [0, 1]; batches are drawn at random from them.
        steps: optimizer steps (each one batch for each network).
        snapshot_every: store samples from fixed noise every this many steps (and at step 0 and the last).
        init: re-initialize both networks with the DCGAN initialization (N(0, 0.02) weights) first.
        generator_rng: a ``torch.Generator`` for the noise, the batch order and the initialization
            (named so because ``generator`` is the network).
        progress: a progress bar.

    Returns:
        a :class:`GanHistory`; both networks are left in eval mode.

    Example:
        >>> import torch
        >>> from dlviz.course.generate import Generator, Discriminator, train_gan
        >>> g, d = Generator(latent_dim=8, width=4), Discriminator(width=4)
        >>> real = torch.rand(32, 1, 28, 28)
        >>> history = train_gan(g, d, real, steps=3, batch_size=8, snapshot_every=2, progress=False,
        ...                     generator_rng=torch.Generator().manual_seed(0))
        >>> len(history.d_loss), sorted(history.samples), tuple(history.samples[3].shape)
        (3, [0, 2, 3], (16, 1, 28, 28))
    """
    import time

    if x.dim() != 4 or x.shape[1:] != (1, 28, 28):
        raise ValueError(f"expected real images of shape (N, 1, 28, 28), got {tuple(x.shape)}")
    rng = generator_rng if generator_rng is not None else torch.Generator().manual_seed(0)
    device = model_device(generator)
    if init:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(torch.randint(2 ** 31, (1,), generator=rng)))
            _dcgan_init(generator)
            _dcgan_init(discriminator)
    opt_g = torch.optim.Adam(generator.parameters(), lr=lr, betas=betas)
    opt_d = torch.optim.Adam(discriminator.parameters(), lr=lr if d_lr is None else d_lr, betas=betas)
    latent = generator.latent_dim
    z_fixed = torch.randn(n_samples, latent, generator=rng).to(device)
    history = GanHistory([], [], {}, z_fixed.cpu())

    def snapshot(step):
        generator.eval()
        with torch.no_grad():
            history.samples[step] = generator(z_fixed).cpu()
        generator.train()

    start = time.perf_counter()
    generator.train(), discriminator.train()
    snapshot(0)
    ones, zeros = torch.ones(batch_size, device=device), torch.zeros(batch_size, device=device)
    with progress_bar(steps, "GAN steps", progress) as bar:
        for step in range(1, steps + 1):
            real = x[torch.randint(len(x), (batch_size,), generator=rng)].to(device)
            z = torch.randn(batch_size, latent, generator=rng).to(device)
            fake = generator(z)
            d_loss = (F.binary_cross_entropy_with_logits(discriminator(real), ones)
                      + F.binary_cross_entropy_with_logits(discriminator(fake.detach()), zeros))
            opt_d.zero_grad(set_to_none=True)
            d_loss.backward()
            opt_d.step()
            g_loss = F.binary_cross_entropy_with_logits(discriminator(fake), ones)
            opt_g.zero_grad(set_to_none=True)
            g_loss.backward()
            opt_g.step()
            history.d_loss.append(float(d_loss.detach()))
            history.g_loss.append(float(g_loss.detach()))
            if step % snapshot_every == 0 or step == steps:
                snapshot(step)
            bar.update()
    generator.eval(), discriminator.eval()
    history.seconds = time.perf_counter() - start
    return history


@dataclasses.dataclass
class SampleQuality:
    """A classifier's view of a set of images (see :func:`sample_quality`).

    confidence: mean top-class probability; counts: images per predicted class (a list of ``n_classes`` ints);
    classes: how many classes hold at least 2% of the images; entropy: entropy of the mean prediction p(y) in
    nats (log 10 = 2.30 when every class is equally frequent); inception_score: exp(E_x KL(p(y|x) || p(y))),
    between 1 (every image gets the same prediction, or no image a confident one) and the number of classes.

    Example:
        >>> import torch
        >>> from dlviz.models import zoo
        >>> from dlviz.course.generate import sample_quality
        >>> quality = sample_quality(zoo.load("lenet_mnist"), torch.zeros(10, 1, 28, 28))
        >>> quality.classes, round(quality.inception_score, 3)
        (1, 1.0)
    """
    confidence: float
    counts: list
    classes: int
    entropy: float
    inception_score: float


@torch.no_grad()
def sample_quality(classifier: nn.Module, x: torch.Tensor, batch_size: int = 500, *, output=None) -> SampleQuality:
    """How confidently and how diversely ``classifier`` recognizes images ``x`` (N, C, H, W) in [0, 1].

    A small "inception score" (Salimans et al. 2016) computed with a course classifier instead of Inception:
    exp of the mean KL divergence between each image's predicted distribution p(y|x) and their average p(y). It is
    high when every image is classified confidently (p(y|x) peaked) and the classes are spread (p(y) flat). The
    classifier's modes (per module) are restored, and ``x`` is not handed to it (it sees a copy). ``output`` says
    where the class scores are when the classifier does not return a tensor: an int indexes a tuple
    (``output=0``), a str is a dict key or an attribute (``output="logits"``), a callable maps the output to the
    scores; None (default) expects a tensor.

    Example:
        >>> import torch
        >>> from dlviz.models import zoo
        >>> from dlviz.course.generate import sample_quality
        >>> lenet = zoo.load("lenet_mnist")
        >>> noise = sample_quality(lenet, torch.rand(200, 1, 28, 28, generator=torch.Generator().manual_seed(0)))
        >>> noise.inception_score < 2
        True
    """
    with preserved(classifier), torch.no_grad():
        images, _ = model_input(classifier, x)     # a copy in the classifier's device and dtype
        probs = torch.cat([F.softmax(select_scores(classifier(chunk), output, model=classifier, n=len(chunk),
                                                   need_classes=True).float(), dim=1).cpu()
                           for chunk in images.split(batch_size)])
    marginal = probs.mean(0)
    kl = (probs * (probs.clamp_min(1e-12).log() - marginal.clamp_min(1e-12).log())).sum(1)
    counts = torch.bincount(probs.argmax(1), minlength=probs.shape[1])
    return SampleQuality(confidence=float(probs.max(1).values.mean()), counts=counts.tolist(),
                         classes=int((counts >= 0.02 * len(x)).sum()),
                         entropy=float(-(marginal * marginal.clamp_min(1e-12).log()).sum()),
                         inception_score=float(kl.mean().exp()))


def transform_digits(x: torch.Tensor, angle=0.0, scale=1.0, shift=(0.0, 0.0)) -> torch.Tensor:
    """Rotate (degrees, counter-clockwise), scale and shift (pixels, (right, down)) images about their centre.

    ``angle`` and ``scale`` are numbers or one per image (tensors of shape (N,)); ``shift`` is a pair or a tensor
    (N, 2). Bilinear sampling, zeros outside; returns a new tensor shaped like ``x`` (N, C, H, W), in [0, 1] when
    ``x`` is.

    Example:
        >>> import torch
        >>> from dlviz.course.generate import transform_digits
        >>> x = torch.zeros(1, 1, 28, 28); x[..., 10:18, 13:15] = 1        # a vertical bar
        >>> turned = transform_digits(x, angle=90.0)                        # a horizontal one
        >>> bool(turned[0, 0, 13:15, 10:18].mean() > 0.9), bool(turned[0, 0, 10:18, 13:15].mean() < 0.4)
        (True, True)
        >>> bool(torch.allclose(transform_digits(x), x, atol=1e-5))
        True
    """
    if x.dim() != 4:
        raise ValueError(f"expected images (N, C, H, W), got shape {tuple(x.shape)}")
    n, _, h, w = x.shape
    angle = torch.as_tensor(angle, dtype=x.dtype).expand(n) * (math.pi / 180)
    scale = torch.as_tensor(scale, dtype=x.dtype).expand(n)
    shift = torch.as_tensor(shift, dtype=x.dtype).expand(n, 2)
    cos, sin = angle.cos() / scale, angle.sin() / scale
    # affine_grid maps output coordinates (in [-1, 1]) to input ones: the inverse of the wanted transform
    tx = -(cos * shift[:, 0] * 2 / w + sin * shift[:, 1] * 2 / h)
    ty = -(-sin * shift[:, 0] * 2 / w + cos * shift[:, 1] * 2 / h)
    theta = torch.stack([torch.stack([cos, sin, tx], 1), torch.stack([-sin, cos, ty], 1)], 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


class ReverseRenderer(nn.Module):
    """A network run in reverse (after Dosovitskiy et al.): (class, parameters) -> image (N, 1, 28, 28) in [0, 1].

    The class (ints (N,)) is embedded as a one-hot vector, the ``n_params`` transformation parameters (floats
    (N, n_params), e.g. angle and scale scaled to about [-1, 1]) pass through a small fully connected layer; both are
    joined, expanded by fully connected layers to a 7 x 7 map, and rendered by two transposed convolutions.

    Example:
        >>> import torch
        >>> from dlviz.course.generate import ReverseRenderer
        >>> net = ReverseRenderer(n_params=2, width=8)
        >>> tuple(net(torch.tensor([3, 7]), torch.zeros(2, 2)).shape)
        (2, 1, 28, 28)
    """

    def __init__(self, n_classes: int = 10, n_params: int = 2, width: int = 32, hidden: int = 256):
        super().__init__()
        self.n_classes, self.width = n_classes, width
        self.classes = nn.Linear(n_classes, hidden // 2)
        self.params = nn.Linear(n_params, hidden // 2)
        self.fc = nn.Sequential(nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                                nn.Linear(hidden, 2 * width * 7 * 7), nn.ReLU())
        self.up = nn.Sequential(nn.ConvTranspose2d(2 * width, width, 4, 2, 1), nn.ReLU(),
                                nn.ConvTranspose2d(width, 1, 4, 2, 1), nn.Sigmoid())

    def forward(self, labels, params):
        onehot = F.one_hot(torch.as_tensor(labels).long(), self.n_classes).to(params.dtype)
        h = self.fc(torch.cat([self.classes(onehot), self.params(params)], 1))
        return self.up(h.reshape(len(h), 2 * self.width, 7, 7))


def _weights_file(folder=None):
    from pathlib import Path

    return (WEIGHTS_DIR if folder is None else Path(folder)) / "dcgan_mnist.pt"


def save_generator(generator: Generator, meta: dict, folder=None):
    """Write a :class:`Generator`'s weights (as float16) with its configuration and ``meta`` (used by
    ``tools/train_zoo.py dcgan_mnist``); ``folder`` defaults to the package's weights folder. Returns the path.

    Example:
        >>> import tempfile
        >>> from dlviz.course.generate import Generator, save_generator, load_generator
        >>> folder = tempfile.mkdtemp()
        >>> path = save_generator(Generator(latent_dim=4, width=2), {"note": "untrained"}, folder=folder)
        >>> g, meta = load_generator(folder=folder)
        >>> g.latent_dim, meta["note"]
        (4, 'untrained')
    """
    state = {k: (v.half() if v.is_floating_point() else v) for k, v in generator.state_dict().items()}
    config = dict(latent_dim=generator.latent_dim, width=generator.net[0].out_channels // 4,
                  batch_norm=isinstance(generator.net[1], nn.BatchNorm2d))
    path = _weights_file(folder)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(dict(state=state, config=config, meta=dict(meta)), path)
    return path


def load_generator(folder=None):
    """The DCGAN generator shipped with the package (trained by ``python tools/train_zoo.py dcgan_mnist``), in eval
    mode on the CPU, and the metadata of its training run (recipe, seconds, sample quality measured then).

    Example:
        >>> import torch
        >>> from dlviz.course.generate import load_generator
        >>> g, meta = load_generator()
        >>> tuple(g(torch.randn(2, g.latent_dim)).shape), meta["recipe"]["lr"]
        ((2, 1, 28, 28), 0.0002)
    """
    path = _weights_file(folder)
    if not path.exists():
        raise FileNotFoundError(f"the DCGAN weights are missing: {path} does not exist. "
                                "Train them with: python tools/train_zoo.py dcgan_mnist")
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    g = Generator(**checkpoint["config"])
    g.load_state_dict({k: v.float() for k, v in checkpoint["state"].items()})
    return g.eval(), checkpoint["meta"]
