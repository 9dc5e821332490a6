"""DeepDream and class/feature visualization: they raise what they should, keep shape and range, change nothing."""
import pytest
import torch
from torch import nn

import dlviz.synthesis.dream
from dlviz.synthesis.dream import class_visualization, deepdream, feature_visualization, layer_objective
from dlviz.hooks import activations


pytestmark = pytest.mark.usefixtures("one_thread")


def small_cnn():
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
        nn.Flatten(), nn.Dropout(0.2), nn.Linear(16, 5),
    )


@pytest.fixture
def model():
    return small_cnn()


@pytest.fixture
def image():
    torch.manual_seed(1)
    return torch.rand(2, 3, 32, 32) * 0.8 + 0.1


def hooks(model):
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())


@pytest.mark.parametrize("layer,channel", [("1", None), ("4", None), ("4", 3)])
def test_deepdream_raises_its_objective_and_keeps_shape_and_range(model, image, layer, channel):
    dreamed = deepdream(model, image, layer=layer, channel=channel, octaves=3, steps=5, jitter=4,
                        generator=torch.Generator().manual_seed(0))
    assert dreamed.shape == image.shape and dreamed.dtype == image.dtype
    assert float(dreamed.min()) >= 0 and float(dreamed.max()) <= 1
    before = layer_objective(activations(model, image, layer)[layer], channel)
    after = layer_objective(activations(model, dreamed, layer)[layer], channel)
    assert bool((after > before).all()), (before, after)


def test_deepdream_single_image_module_layer_and_generator(model, image):
    one = deepdream(model, image[0], layer=model[4], octaves=2, steps=3, generator=torch.Generator().manual_seed(0))
    assert one.shape == image[0].shape
    again = deepdream(model, image[:1], layer="4", octaves=2, steps=3, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(one, again[0])


def test_deepdream_drops_octaves_the_model_cannot_run(image):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 5), nn.ReLU(), nn.Conv2d(4, 4, 5), nn.ReLU())
    with pytest.warns(UserWarning, match="octaves"):
        out = deepdream(model, image[:, :, :12, :12], layer="3", octaves=4, octave_scale=1.5, steps=2)
    assert out.shape == (2, 3, 12, 12)


def test_model_and_image_unchanged(model, image):
    model.train()
    model[0].bias.requires_grad_(False)
    modes = [m.training for m in model.modules()]
    flags = [p.requires_grad for p in model.parameters()]
    weights = [p.clone() for p in model.parameters()]
    copy = image.clone()
    deepdream(model, image, layer="4", octaves=2, steps=2)
    class_visualization(model, [0, 1], shape=(3, 16, 16), steps=3)
    feature_visualization(model, layer="4", channel=[0, 2], shape=(3, 16, 16), steps=3)
    with pytest.raises(ValueError):
        deepdream(model, image, layer="4", channel=99)
    assert [m.training for m in model.modules()] == modes
    assert [p.requires_grad for p in model.parameters()] == flags
    assert all(torch.equal(a, b) for a, b in zip(weights, model.parameters()))
    assert hooks(model) == 0
    assert torch.equal(image, copy)


def test_class_visualization_raises_the_class_score(model):
    targets = [0, 3]
    images = class_visualization(model, targets, shape=(3, 24, 24), steps=30,
                                 generator=torch.Generator().manual_seed(0))
    assert images.shape == (2, 3, 24, 24) and float(images.min()) >= 0 and float(images.max()) <= 1
    model.eval()
    with torch.no_grad():
        grey = model(torch.full((1, 3, 24, 24), 0.5))[0, targets]
        scores = model(images)[torch.arange(2), torch.tensor(targets)]
    assert bool((scores > grey).all())


def test_feature_visualization_raises_the_channel(model):
    images = feature_visualization(model, layer="3", channel=[1, 5], shape=(3, 24, 24), steps=30,
                                   generator=torch.Generator().manual_seed(0))
    assert images.shape == (2, 3, 24, 24)
    grey = activations(model, torch.full((1, 3, 24, 24), 0.5), "3")["3"]
    acts = activations(model, images, "3")["3"]
    for i, channel in enumerate([1, 5]):
        assert float(acts[i, channel].mean()) > float(grey[0, channel].mean())


def test_linear_layers_and_their_units(model, image):
    dreamed = deepdream(model, image, layer="8", channel=2, octaves=1, steps=3)   # a unit of the output layer
    with torch.no_grad():
        assert bool((model.eval()(dreamed)[:, 2] > model(image)[:, 2]).all())
    units = feature_visualization(model, layer="8", channel=[0, 1], shape=(3, 16, 16), steps=5)
    assert units.shape == (2, 3, 16, 16)


def test_shape_inferred_from_model():
    torch.manual_seed(0)
    mnist_like = nn.Sequential(nn.Flatten(), nn.Linear(784, 10))
    assert class_visualization(mnist_like, 2, steps=2).shape == (1, 1, 28, 28)


@pytest.mark.parametrize("call,error,match", [
    (lambda m, x: deepdream(m, x, layer="features.9"), KeyError, "no layer named"),
    (lambda m, x: deepdream(m, x, layer="4", channel=16), ValueError, "channel"),
    (lambda m, x: deepdream(m, x, layer="4", channel=True), ValueError, "channel"),
    (lambda m, x: deepdream(m, x[0, 0], layer="4"), ValueError, "shape"),
    (lambda m, x: deepdream(m, x * 3, layer="4"), ValueError, r"\[0, 1\]"),
    (lambda m, x: deepdream(m, x, layer="4", octaves=0), ValueError, "octaves"),
    (lambda m, x: deepdream(m, x, layer="4", octave_scale=0.5), ValueError, "octave_scale"),
    (lambda m, x: deepdream(m, x, layer="4", lr=-1), ValueError, "lr"),
    (lambda m, x: deepdream(m, x, layer="4", jitter=-2), ValueError, "jitter"),
    (lambda m, x: deepdream(m, x.long(), layer="4"), TypeError, "floating"),
    (lambda m, x: class_visualization(m, 7, shape=(3, 8, 8)), ValueError, r"\[0, 4\]"),
    (lambda m, x: class_visualization(m, 1, shape=(3, 8)), ValueError, "shape"),
    (lambda m, x: class_visualization(m, 1, shape=(3, 8, 8), l2=1.5), ValueError, "l2"),
    (lambda m, x: feature_visualization(m, layer="4", channel=40, shape=(3, 8, 8)), ValueError, "channel"),
    (lambda m, x: feature_visualization(m, layer="nope", channel=0, shape=(3, 8, 8)), KeyError, "no layer named"),
])
def test_clear_errors(model, image, call, error, match):
    with pytest.raises(error, match=match):
        call(model, image)
    assert hooks(model) == 0


def test_dream_explorer_draws_a_static_figure(model, image):
    from dlviz.widgets import dream_explorer

    explorer = dream_explorer(model, image[0], ["1", "4"], layer="4", channel=-1, octaves=2, steps=2)
    assert len(explorer.figure.axes) == 3
    figure = explorer.redraw(layer="1", channel=20)  # wraps around to a channel the layer has
    assert "ch 4/8" in figure.axes[1].get_title()
    assert hooks(model) == 0
    with pytest.raises(ValueError, match="not among"):
        dream_explorer(model, image[0], ["1"], layer="4")


def test_dream_explorer_title_counts_every_dropped_octave(image):
    from dlviz.widgets import dream_explorer

    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 5), nn.ReLU(), nn.Conv2d(4, 4, 5), nn.ReLU())
    # 12 px, scale 1.4: 12 and 9 px run; 6 and 4 px are too small for two 5x5 convolutions
    explorer = dream_explorer(model, image[0, :, :12, :12], ["3"], octaves=4, steps=1)
    assert "2 octaves" in explorer.figure.axes[1].get_title()


def test_deepdream_on_googlenet_inception4c():
    """The notebook's ImageNet path, with random weights: GoogLeNet's inception4c (functional ReLUs, branches)."""
    from dlviz.models.imagenet import imagenet

    torch.manual_seed(0)
    googlenet = imagenet("googlenet", weights=None)
    photo = torch.rand(3, 96, 96) * 0.5 + 0.25
    dreamed = deepdream(googlenet, photo, layer="inception4c", octaves=2, steps=2, jitter=4,
                        generator=torch.Generator().manual_seed(0))
    assert dreamed.shape == photo.shape and float(dreamed.min()) >= 0 and float(dreamed.max()) <= 1
    before = layer_objective(activations(googlenet, photo, "inception4c")["inception4c"][None])
    after = layer_objective(activations(googlenet, dreamed, "inception4c")["inception4c"][None])
    assert float(after) > float(before)
    assert hooks(googlenet) == 0 and not googlenet.training


# --- any model: dtypes, inference mode, output=, progress, pixels at the bounds ---------------------------------


@pytest.mark.parametrize("dtype", [torch.float64, torch.bfloat16])
def test_models_in_other_dtypes(image, dtype):
    typed = small_cnn().to(dtype)
    dreamed = deepdream(typed, image, layer="4", octaves=2, steps=3, jitter=2, progress=False)
    assert dreamed.dtype == image.dtype and dreamed.shape == image.shape
    assert not torch.equal(dreamed, image)
    half = deepdream(typed, image.to(dtype), layer="4", octaves=1, steps=2, progress=False)
    assert half.dtype == dtype
    for made in (class_visualization(typed, [0, 1], shape=(3, 16, 16), steps=3, progress=False),
                 feature_visualization(typed, layer="3", channel=[0, 1], shape=(3, 16, 16), steps=3, progress=False)):
        assert made.dtype == torch.float32 and made.shape == (2, 3, 16, 16)


def test_inside_inference_mode(model, image):
    expected = deepdream(model, image, layer="4", octaves=2, steps=2, jitter=0, progress=False)
    with torch.inference_mode():
        inside = image.clone()
        got = deepdream(model, inside, layer="4", octaves=2, steps=2, jitter=0, progress=False)
        made = class_visualization(model, 1, shape=(3, 16, 16), steps=2, progress=False)
        features = feature_visualization(model, layer="3", channel=1, shape=(3, 16, 16), steps=2, progress=False)
    torch.testing.assert_close(got, expected, rtol=0, atol=0)
    assert made.shape == features.shape == (1, 3, 16, 16)


def test_class_visualization_output_argument_and_shape_probe(model):
    class Named(nn.Module):
        def __init__(self):
            super().__init__()
            self.net = model

        def forward(self, x):
            return {"logits": self.net(x)}

    g = torch.Generator
    expected = class_visualization(model, [1, 2], shape=(3, 16, 16), steps=3, progress=False,
                                   generator=g().manual_seed(0))
    got = class_visualization(Named(), [1, 2], shape=(3, 16, 16), steps=3, progress=False, output="logits",
                              generator=g().manual_seed(0))
    torch.testing.assert_close(got, expected, rtol=0, atol=0)
    with pytest.raises(TypeError, match="output="):
        class_visualization(Named(), 1, shape=(3, 16, 16), steps=1, progress=False)
    # no shape: probed with the first convolution's 3 channels (CIFAR's size)
    assert class_visualization(Named(), 1, steps=1, progress=False, output="logits").shape == (1, 3, 32, 32)


def test_progress_bars_on_by_default(capsys, model, image):
    deepdream(model, image, layer="4", octaves=1, steps=1)
    class_visualization(model, 1, shape=(3, 8, 8), steps=1)
    feature_visualization(model, layer="3", channel=1, shape=(3, 8, 8), steps=1)
    err = capsys.readouterr().err
    assert "deepdream" in err and "class visualization" in err and "feature visualization" in err
    deepdream(model, image, layer="4", octaves=1, steps=1, progress=False)
    class_visualization(model, 1, shape=(3, 8, 8), steps=1, progress=False)
    assert capsys.readouterr().err == ""


def _signed_conv(sign):
    """A convolution whose channel 0 rises when every pixel rises (sign 1) or falls (sign -1)."""
    conv = nn.Conv2d(3, 2, 3, padding=1)
    with torch.no_grad():
        conv.weight.fill_(sign)
        conv.bias.zero_()
    return nn.Sequential(conv)


@pytest.mark.parametrize("start,sign", [(0.0, 1.0), (1.0, -1.0)])
def test_deepdream_moves_pixels_that_start_at_the_bounds(start, sign):
    image = torch.full((1, 3, 12, 12), start)
    dreamed = deepdream(_signed_conv(sign), image, layer="0", channel=0, octaves=2, steps=3, jitter=0, progress=False)
    assert bool((dreamed != start).all()), dreamed


@pytest.mark.parametrize("start,sign", [(0.0, 1.0), (1.0, -1.0)])
def test_visualizations_move_pixels_that_start_at_the_bounds(monkeypatch, start, sign):
    """Regularizers off (they alone would pull pixels inwards): the gradient must move every pixel."""
    monkeypatch.setattr(dlviz.synthesis.dream, "_start_noise",
                        lambda n, shape, generator, device: torch.full((n, *shape), start, device=device))
    plain = {"steps": 3, "l2": 0, "jitter": 0, "blur_every": 0, "progress": False, "shape": (3, 6, 6)}
    classifier = nn.Sequential(nn.Flatten(), nn.Linear(108, 2, bias=False))
    with torch.no_grad():
        classifier[1].weight.copy_(torch.stack([torch.full((108,), sign), torch.zeros(108)]))
    made = class_visualization(classifier, 0, **plain)
    assert bool((made != start).all()), made
    made = feature_visualization(_signed_conv(sign), layer="0", channel=0, **plain)
    assert bool((made != start).all()), made
