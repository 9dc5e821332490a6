"""dlviz.synthesis.invert: reconstructions from one layer (Mahendran & Vedaldi) on tiny models and on the course's
LeNet."""
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from dlviz.synthesis.invert import InversionInfo, alpha_prior, invert, tv_prior
from relu_models import make, model_state

pytestmark = pytest.mark.usefixtures("one_thread")


def small_cnn(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2),
                         nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(16 * 36, 4)).eval()


def smooth_images(n: int = 3, size: int = 12, seed: int = 0) -> torch.Tensor:
    """Blobs: coarse noise upsampled, stretched to fill [0, 1] (exact 0 and 1 included)."""
    coarse = torch.rand(n, 1, 4, 4, generator=torch.Generator().manual_seed(seed))
    fine = F.interpolate(coarse, size=(size, size), mode="bilinear", align_corners=True)
    low, high = fine.amin((1, 2, 3), keepdim=True), fine.amax((1, 2, 3), keepdim=True)
    return (fine - low) / (high - low)


def seeded(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def rms(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a - b).pow(2).flatten(1).mean(1).sqrt()


@pytest.mark.parametrize("layer", ["0", "1"])
def test_an_early_layer_gives_back_the_image(layer):
    model, x = small_cnn(), smooth_images()
    images, info = invert(model, x, layer=layer, generator=seeded(), progress=False, return_info=True)
    assert isinstance(info, InversionInfo) and info.layer == layer
    assert info.feature_error.shape == (3,) and bool((info.feature_error < 0.02).all()), info.feature_error
    assert bool((rms(images, x) < 0.05).all()), rms(images, x)
    assert len(info.loss) == 200 and info.loss[-1] < info.loss[0] and info.seconds > 0


@pytest.mark.parametrize("layer", ["2", "4", "6"])
def test_deeper_layers_are_matched_below_the_bound_too(layer):
    # the stated bound holds at every layer of a small convnet: pooling, the second conv's ReLU, the logits
    model, x = small_cnn(), smooth_images()
    _, info = invert(model, x, layer=layer, generator=seeded(), progress=False, return_info=True)
    assert bool((info.feature_error < 0.02).all()), (layer, info.feature_error)


def test_the_reported_error_is_that_of_the_returned_images():
    model, x = small_cnn(), smooth_images()
    images, info = invert(model, x, layer="4", steps=30, generator=seeded(), progress=False, return_info=True)
    with torch.no_grad():
        phi, target = model[:5](images), model[:5](x)
    expected = (phi - target).pow(2).flatten(1).sum(1) / target.pow(2).flatten(1).sum(1)
    torch.testing.assert_close(info.feature_error, expected, rtol=1e-4, atol=1e-6)


@pytest.fixture(scope="module")
def lenet_digits(data_dir):
    import dlviz

    x, _ = dlviz.data.tensors(dlviz.data.mnist(train=False), limit=8)
    return dlviz.models.zoo.load("lenet_mnist"), x


def test_deeper_layers_of_lenet_lose_more_of_the_digit(lenet_digits):
    model, x = lenet_digits
    errors = {}
    for layer in ("features.1", "classifier.1"):   # conv1's ReLU, the ReLU of the 256-unit layer
        images, info = invert(model, x, layer=layer, generator=seeded(), progress=False, return_info=True)
        assert bool((info.feature_error < 0.05).all()), (layer, info.feature_error)   # both matched closely
        errors[layer] = rms(images, x)
    assert bool((errors["features.1"] < 0.06).all()), errors
    assert bool((errors["classifier.1"] > 3 * errors["features.1"]).all()), errors   # every digit, not on average


def test_black_and_white_pixels_move():
    model, x = small_cnn(), torch.full((2, 1, 12, 12), 0.5)
    init = torch.zeros_like(x)
    init[:, :, :, 6:] = 1   # every starting pixel sits exactly on a bound
    images = invert(model, x, layer="0", steps=20, init=init, progress=False)
    assert bool((images != init).all())
    assert float((images - x).abs().max()) < 0.3


def test_pixels_reach_0_and_1_where_the_image_has_them():
    model, x = small_cnn(), smooth_images()
    images = invert(model, x, layer="0", tv_weight=0, alpha_weight=0, generator=seeded(), progress=False)
    assert float(images.min()) == 0.0 and float(images.max()) == 1.0
    assert bool((images[x == 0] < 0.02).all()) and bool((images[x == 1] > 0.98).all())


def test_model_and_images_are_left_as_they_were():
    model = make("inplace")
    model.features[1].train()
    model.classifier[1].weight.requires_grad_(False)
    handle = model.features[3].register_forward_hook(lambda m, i, o: None)
    x = torch.rand(2, 3, 16, 16, generator=seeded())
    x[0, 0, 0, :2] = torch.tensor([0.0, 1.0])
    copy, before = x.clone(), model_state(model)
    params = {k: v.clone() for k, v in model.state_dict().items()}
    invert(model, x, layer="features.1", steps=5, generator=seeded(), progress=False)
    with pytest.raises(ValueError):
        invert(model, x, layer="features.1", steps=0, progress=False)
    with pytest.raises(KeyError):
        invert(model, x, layer="features.9", steps=5, progress=False)
    assert model_state(model) == before
    assert all(torch.equal(params[k], v) for k, v in model.state_dict().items())
    assert torch.equal(x, copy) and not x.requires_grad and x.grad is None
    handle.remove()


def test_a_model_that_normalizes_in_place_and_returns_a_dict():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.body = small_cnn()

        def forward(self, x):
            x.sub_(0.5).div_(0.25)
            return {"logits": self.body(x)}

    x = smooth_images()
    copy = x.clone()
    images, info = invert(Net(), x, layer="body.1", generator=seeded(), progress=False, return_info=True)
    assert torch.equal(x, copy) and bool((info.feature_error < 0.02).all())


def test_single_image_in_and_out():
    model, x = small_cnn(), smooth_images(1)
    image, info = invert(model, x[0], layer=model[1], steps=10, generator=seeded(), progress=False, return_info=True)
    assert image.shape == (1, 12, 12) and info.feature_error.shape == (1,)
    batch = invert(model, x, layer="1", steps=10, generator=seeded(), progress=False)
    torch.testing.assert_close(image, batch[0])


def test_each_image_is_reconstructed_as_if_it_were_alone():
    model, x = small_cnn(), smooth_images(3)
    init = torch.rand(3, 1, 12, 12, generator=seeded())
    together = invert(model, x, layer="4", steps=20, init=init, progress=False)
    alone = invert(model, x[1:2], layer="4", steps=20, init=init[1], progress=False)
    torch.testing.assert_close(together[1:2], alone, rtol=1e-4, atol=1e-4)


def test_float64_model_and_callers_dtype():
    model, x = small_cnn().double(), smooth_images()
    images, info = invert(model, x, layer="1", steps=50, generator=seeded(), progress=False, return_info=True)
    assert images.dtype == torch.float32 and info.feature_error.dtype == torch.float32
    images64 = invert(model, x.double(), layer="1", steps=50, generator=seeded(), progress=False)
    assert images64.dtype == torch.float64
    torch.testing.assert_close(images64.float(), images, rtol=1e-4, atol=1e-4)
    assert model[0].weight.dtype == torch.float64


def test_works_inside_inference_mode_and_no_grad():
    model, x = small_cnn(), smooth_images()
    outside = invert(model, x, layer="1", steps=10, generator=seeded(), progress=False)
    with torch.inference_mode():
        inside = invert(model, x, layer="1", steps=10, generator=seeded(), progress=False)
    with torch.no_grad():
        no_grad = invert(model, x, layer="1", steps=10, generator=seeded(), progress=False)
    assert torch.equal(outside, inside) and torch.equal(outside, no_grad)


def test_a_reused_layer_is_refused():
    model = make("reused")
    x = torch.rand(1, 3, 16, 16, generator=seeded())
    before = model_state(model)
    with pytest.raises(ValueError, match="ran 4 times in one forward pass"):
        invert(model, x, layer="relu", steps=5, progress=False)
    assert model_state(model) == before
    invert(model, x, layer="c2", steps=5, progress=False)   # a layer that runs once is fine


def test_layers_without_a_representation_are_refused():
    class Unused(nn.Module):
        def __init__(self):
            super().__init__()
            self.body, self.spare = small_cnn(), nn.ReLU()

        def forward(self, x):
            return self.body(x)

    class Pair(nn.Module):
        def forward(self, x):
            return x, x

    x = smooth_images(1)
    with pytest.raises(ValueError, match="did not run"):
        invert(Unused(), x, layer="spare", steps=5, progress=False)
    with pytest.raises(ValueError, match="outputs tuple"):
        invert(nn.Sequential(Pair()), x, layer="0", steps=5, progress=False)


@pytest.mark.parametrize("kwargs, error, match", [
    ({"steps": 0}, ValueError, "steps"),
    ({"steps": -3}, ValueError, "steps"),
    ({"steps": 10.0}, TypeError, "steps"),
    ({"steps": True}, TypeError, "steps"),
    ({"lr": 0}, ValueError, "lr"),
    ({"lr": -0.1}, ValueError, "lr"),
    ({"alpha": 0.5}, ValueError, "alpha"),
    ({"alpha_weight": -1}, ValueError, "alpha_weight"),
    ({"tv_weight": -0.01}, ValueError, "tv_weight"),
    ({"tv_weight": float("nan")}, ValueError, "tv_weight"),
    ({"tv_beta": 0}, ValueError, "tv_beta"),
    ({"init": torch.rand(2, 1, 10, 10)}, ValueError, "init"),
    ({"init": torch.full((3, 1, 12, 12), 2.0)}, ValueError, "init"),
    ({"generator": 0}, TypeError, "generator"),
    ({"progress": "yes"}, TypeError, "progress"),
])
def test_bad_arguments_get_clear_errors(kwargs, error, match):
    with pytest.raises(error, match=match):
        invert(small_cnn(), smooth_images(), layer="1", **kwargs)


def test_bad_images_get_clear_errors():
    model = small_cnn()
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        invert(model, smooth_images() * 2, layer="1", steps=1, progress=False)
    with pytest.raises(TypeError, match="floating"):
        invert(model, torch.zeros(1, 1, 12, 12, dtype=torch.uint8), layer="1", steps=1, progress=False)
    with pytest.raises(KeyError, match="no layer named 'l'"):
        invert(model, smooth_images(), layer="l", steps=1, progress=False)


def test_a_seeded_generator_repeats_and_another_seed_differs():
    model, x = small_cnn(), smooth_images()
    first = invert(model, x, layer="4", steps=10, generator=seeded(3), progress=False)
    again = invert(model, x, layer="4", steps=10, generator=seeded(3), progress=False)
    other = invert(model, x, layer="4", steps=10, generator=seeded(4), progress=False)
    assert torch.equal(first, again) and not torch.equal(first, other)


def test_a_given_start_is_used_and_not_changed():
    model, x = small_cnn(), smooth_images()
    init = x.clone()
    images, info = invert(model, x, layer="4", steps=1, init=init, lr=1e-6, alpha_weight=0, tv_weight=0,
                          progress=False, return_info=True)
    assert torch.equal(init, x) and float((images - x).abs().max()) < 1e-5
    assert float(info.feature_error.max()) < 1e-8


def test_the_priors():
    grey, black = torch.full((1, 1, 5, 5), 0.5), torch.zeros(1, 1, 5, 5)
    assert float(alpha_prior(grey)) == 0 and float(alpha_prior(black)) == 1
    assert float(alpha_prior(torch.full((1, 3, 2, 2), 0.75), alpha=2)) == pytest.approx(0.25)
    assert float(tv_prior(black)) == 0 and float(tv_prior(torch.zeros(1, 1, 1, 5))) == 0
    edge = torch.zeros(1, 1, 3, 3)
    edge[..., 1:] = 1 / 13   # V = 0.5 / 6.5: one typical step
    assert float(tv_prior(edge)) == pytest.approx(0.5)   # two of the four differences are V, two are 0
    assert float(tv_prior(edge, beta=1)) == pytest.approx(0.5, rel=1e-3)
    x = torch.rand(2, 1, 4, 4, requires_grad=True)
    tv_prior(torch.zeros(2, 1, 4, 4) + 0 * x, beta=1).sum().backward()   # flat: finite gradient
    assert bool(torch.isfinite(x.grad).all())


def test_progress_bar_runs(capsys):
    invert(small_cnn(), smooth_images(1), layer="1", steps=3, progress=True)
