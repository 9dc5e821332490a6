"""dlviz.course.generate: shapes and ranges of the DCGAN networks, the sample score's limits, the affine transform's
geometry, the reverse renderer and the shipped generator."""
import torch

from dlviz.models import zoo
from dlviz.course.generate import (Discriminator, Generator, ReverseRenderer, load_generator, sample_quality,
                                   save_generator, train_gan, transform_digits)


def test_generator_and_discriminator_shapes_and_range():
    g, d = Generator(latent_dim=8, width=4).eval(), Discriminator(width=4).eval()
    images = g(torch.randn(5, 8))
    assert images.shape == (5, 1, 28, 28) and images.min() >= 0 and images.max() <= 1
    assert d(images).shape == (5,)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in Generator(8, 4, batch_norm=False).modules())


def test_train_gan_changes_weights_and_records_losses():
    g, d = Generator(latent_dim=8, width=4), Discriminator(width=4)
    real = torch.rand(64, 1, 28, 28)
    history = train_gan(g, d, real, steps=4, batch_size=8, snapshot_every=2, progress=False,
                        generator_rng=torch.Generator().manual_seed(0))
    assert len(history.d_loss) == len(history.g_loss) == 4
    assert not torch.equal(history.samples[0], history.samples[4])
    assert not g.training and not d.training
    again = train_gan(Generator(8, 4), Discriminator(4), real, steps=4, batch_size=8, snapshot_every=2,
                      progress=False, generator_rng=torch.Generator().manual_seed(0))
    assert again.d_loss == history.d_loss                      # seeded: the same run twice


def test_sample_quality_limits():
    lenet = zoo.load("lenet_mnist")
    lenet.train()
    one_class = torch.zeros(50, 1, 28, 28)
    q = sample_quality(lenet, one_class)
    assert lenet.training                                       # mode restored
    assert abs(q.inception_score - 1) < 1e-4 and q.classes == 1 and sum(q.counts) == 50


def test_transform_digits_geometry():
    x = torch.zeros(2, 1, 28, 28)
    x[:, :, 10:18, 13:15] = 1
    assert torch.allclose(transform_digits(x), x, atol=1e-5)
    shifted = transform_digits(x, shift=(3.0, 0.0))
    assert torch.allclose(shifted[..., 16:18], x[..., 13:15], atol=1e-5)   # moved 3 pixels right
    turned = transform_digits(x, angle=torch.tensor([90.0, 0.0]))
    assert turned[0, 0, 13:15, 10:18].mean() > 0.9 and torch.allclose(turned[1], x[1], atol=1e-5)
    assert transform_digits(x, scale=2.0).sum() > 1.5 * x[0].sum()


def test_reverse_renderer_fits_one_image():
    torch.manual_seed(0)
    net = ReverseRenderer(n_params=1, width=4, hidden=32)
    target = torch.zeros(1, 1, 28, 28)
    target[..., 8:20, 12:16] = 1
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-2)
    first = None
    for _ in range(60):
        loss = torch.nn.functional.mse_loss(net(torch.tensor([3]), torch.zeros(1, 1)), target)
        first = first if first is not None else loss.item()
        optimizer.zero_grad(); loss.backward(); optimizer.step()
    assert loss.item() < 0.3 * first


def test_save_and_load_generator(tmp_path):
    g = Generator(latent_dim=4, width=2, batch_norm=False).eval()
    save_generator(g, {"note": 1}, folder=tmp_path)
    loaded, meta = load_generator(folder=tmp_path)
    z = torch.randn(3, 4)
    assert meta == {"note": 1} and torch.allclose(loaded(z), g(z), atol=1e-2)


def test_shipped_generator_draws_digits_lenet_recognizes():
    g, meta = load_generator()
    with torch.no_grad():
        samples = g(torch.randn(500, g.latent_dim, generator=torch.Generator().manual_seed(0)))
    q = sample_quality(zoo.load("lenet_mnist"), samples)
    assert q.inception_score > 4 and q.classes == 10 and meta["recipe"]["steps"] == 2500
