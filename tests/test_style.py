"""Style transfer and texture synthesis: losses go down, extractors say what they are, nothing extra runs."""
import dataclasses
import math
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from dlviz.style import (StyleInfo, StyleLoss, VGGFeatures, _optimize, gram_matrix, style_transfer, texture_synthesis,
                         vgg19_features)


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def extractor():
    return vgg19_features(None, seed=0)


@pytest.fixture
def images():
    g = torch.Generator().manual_seed(0)
    # a smooth "photo" and a striped "painting"
    content = torch.nn.functional.interpolate(torch.rand(1, 3, 8, 8, generator=g), size=(40, 48), mode="bilinear")
    stripes = (torch.sin(torch.arange(48.0) / 2) * 0.5 + 0.5).expand(40, 48)
    painting = torch.stack([stripes, stripes.T[:40, :40].repeat(1, 2)[:, :48], 1 - stripes])
    return content[0], painting


def test_gram_matrix():
    f = torch.randn(2, 4, 3, 5)
    expected = torch.einsum("nchw,ndhw->ncd", f, f) / 15
    torch.testing.assert_close(gram_matrix(f), expected)


def test_extractor_names_and_runs_only_what_is_needed(extractor):
    assert extractor.layer_names[:3] == ["conv1_1", "conv1_2", "pool1"] and "conv5_4" in extractor.layer_names
    assert not extractor.pretrained and "random" in extractor.description
    ran = []
    handles = [m.register_forward_hook(lambda mod, i, o, k=k: ran.append(k))
               for k, m in enumerate(extractor.features)]
    try:
        out = extractor(torch.rand(1, 3, 32, 32), ["conv2_1", "conv1_1"])
    finally:
        for h in handles:
            h.remove()
    assert set(out) == {"conv1_1", "conv2_1"} and out["conv2_1"].shape == (1, 128, 16, 16)
    assert max(ran) == extractor._positions["conv2_1"]  # conv2_1's ReLU is the last module that ran
    assert isinstance(extractor.features[4], torch.nn.AvgPool2d) and extractor.features[0].padding_mode == "replicate"


def test_random_weights_are_seeded_and_do_not_touch_the_global_generator():
    state = torch.random.get_rng_state()
    a, b = vgg19_features(None, seed=3), vgg19_features(None, seed=3)
    assert torch.equal(state, torch.random.get_rng_state())
    assert torch.equal(a.features[0].weight, b.features[0].weight)
    assert not torch.equal(a.features[0].weight, vgg19_features(None, seed=4).features[0].weight)


def test_style_transfer_lowers_the_style_loss(extractor, images):
    content, painting = images
    copy, painting_copy = content.clone(), painting.clone()
    result, info = style_transfer(content, painting, steps=15, extractor=extractor, return_info=True, progress=False)
    assert result.shape == content.shape and float(result.min()) >= 0 and float(result.max()) <= 1
    assert torch.equal(content, copy) and torch.equal(painting, painting_copy)
    loss = StyleLoss(extractor, painting[None], content[None], style_weight=10.0)
    with torch.no_grad():
        _, before = loss(content[None])
        _, after = loss(result[None])
    assert float(after["style"]) < 0.5 * float(before["style"])
    assert isinstance(info, StyleInfo) and dataclasses.is_dataclass(info)
    assert info.loss[-1] < info.loss[0] and len(info.loss) == len(info.style) == len(info.content) <= 15
    assert info.extractor == extractor.description and info.seconds > 0
    assert info.range[0] <= float(result.min()) and info.range[1] >= float(result.max())
    with pytest.raises(dataclasses.FrozenInstanceError):
        info.seconds = 0
    assert all(not p.requires_grad for p in extractor.parameters()) and not extractor.training


def test_style_transfer_takes_pil_and_resizes(extractor, images):
    content, painting = images
    to_pil = lambda t: Image.fromarray((t.permute(1, 2, 0).numpy() * 255).astype(np.uint8))
    result = style_transfer(to_pil(content), to_pil(painting), steps=2, size=32, extractor=extractor)
    assert result.shape == (3, 32, 38)
    batch = style_transfer(content.expand(2, -1, -1, -1), painting, steps=2, extractor=extractor, init="noise")
    assert batch.shape == (2, 3, 40, 48)


def test_texture_synthesis_lowers_the_style_loss(extractor, images):
    _, painting = images
    copy = painting.clone()
    texture, info = texture_synthesis(painting, size=(32, 40), steps=20, extractor=extractor,
                                      style_layers=("conv1_1", "conv2_1", "conv3_1"), return_info=True,
                                      progress=False)
    assert texture.shape == (3, 32, 40) and float(texture.min()) >= 0 and float(texture.max()) <= 1
    assert info.style[-1] < 0.2 * info.style[0] and info.loss == info.style
    assert info.content == [] and info.extractor == extractor.description
    assert torch.equal(painting, copy)


def test_auto_uses_cached_pretrained_weights(tmp_path, monkeypatch, extractor):
    """The pretrained path with a stand-in weights file in a temporary hub cache."""
    monkeypatch.setattr(torch.hub, "_hub_dir", str(tmp_path))
    assert not vgg19_features("auto").pretrained
    with pytest.warns(UserWarning, match="random-weight VGG-19"):
        style_transfer(torch.rand(3, 16, 16), torch.rand(3, 16, 16), steps=1)
    with pytest.raises(FileNotFoundError, match="vgg19"):
        vgg19_features("imagenet", download=False)
    fake = {f"features.{k}": v for k, v in vgg19_features(None, seed=7).features.state_dict().items()}
    fake["classifier.0.weight"] = torch.zeros(2, 2)
    (tmp_path / "checkpoints").mkdir()
    torch.save(fake, tmp_path / "checkpoints" / "vgg19-dcbb9e9d.pth")
    loaded = vgg19_features("auto")
    assert loaded.pretrained and "ImageNet" in loaded.description
    assert torch.equal(loaded.features[0].weight, fake["features.0.weight"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        style_transfer(torch.rand(3, 16, 16), torch.rand(3, 16, 16), steps=1)  # no warning with pretrained


@pytest.mark.parametrize("call,error,match", [
    (lambda e, c, s: style_transfer(c, s, extractor=e, steps=-1), ValueError, "steps"),
    (lambda e, c, s: style_transfer(c, s, extractor=e, style_weight=-1), ValueError, "style_weight"),
    (lambda e, c, s: style_transfer(c, s, extractor=e, size=3), ValueError, "size must be at least 16 pixels"),
    (lambda e, c, s: style_transfer(c, s, extractor=e, size=64.0), TypeError, "size must be an int"),
    (lambda e, c, s: style_transfer(c, s, extractor=e, size="64"), TypeError, "size must be an int"),
    (lambda e, c, s: style_transfer(c, s, extractor=e, size=True), TypeError, "size must be an int"),
    (lambda e, c, s: style_transfer(c, s, extractor=e, size=(64, 64)), TypeError, "size must be an int"),
    (lambda e, c, s: style_transfer(c[:, :12], s, extractor=e), ValueError, "12x48 pixels.*at least 16 pixels"),
    (lambda e, c, s: style_transfer(c, s, extractor=e, steps=2.0), ValueError, "steps"),
    (lambda e, c, s: style_transfer(c, s, extractor=e, progress="no"), TypeError, "progress"),
    (lambda e, c, s: style_transfer(c, s, extractor=e, return_history=True), TypeError, "return_history"),
    (lambda e, c, s: style_transfer(content=c, style=s, extractor=e), TypeError, "content"),
    (lambda e, c, s: style_transfer(c, s, extractor=e, init="zeros"), ValueError, "init"),
    (lambda e, c, s: style_transfer(c, s, extractor=e, style_layers=["conv9_1"]), KeyError, "conv"),
    (lambda e, c, s: style_transfer(c, s, extractor=e, content_layer="relu4_2"), KeyError, "conv4_2"),
    (lambda e, c, s: style_transfer(c * 2, s, extractor=e), ValueError, r"\[0, 1\]"),
    (lambda e, c, s: style_transfer(c[:2], s, extractor=e), ValueError, "channels"),
    (lambda e, c, s: style_transfer(c[0], s, extractor=e), ValueError, "shape"),
    (lambda e, c, s: style_transfer(c, "starry", extractor=e), TypeError, "Tensor"),
    (lambda e, c, s: style_transfer(c, s, extractor=torch.nn.Conv2d(3, 3, 1)), TypeError, "VGGFeatures"),
    (lambda e, c, s: texture_synthesis(s, size=4, extractor=e), ValueError, "size must be at least 16 pixels"),
    (lambda e, c, s: texture_synthesis(s, size=(64, 64.5), extractor=e), TypeError, "size must be an int"),
    (lambda e, c, s: texture_synthesis(s, size=(64, 64, 3), extractor=e), TypeError, "size must be an int"),
    (lambda e, c, s: texture_synthesis(s, size="64", extractor=e), TypeError, "size must be an int"),
    (lambda e, c, s: texture_synthesis(s[:, :10, :10], extractor=e), ValueError, "style is 10x10.*at least 16"),
    (lambda e, c, s: texture_synthesis(s, extractor=e, style_layers=[]), ValueError, "at least one layer"),
    (lambda e, c, s: style_transfer(c, s, extractor=e, style_layers=[]), ValueError, "at least one layer"),
    (lambda e, c, s: vgg19_features("imagenet21k"), ValueError, "weights"),
    (lambda e, c, s: VGGFeatures(pooling="min"), ValueError, "pooling"),
    (lambda e, c, s: vgg19_features(None, padding="circular"), ValueError, "padding"),
])
def test_clear_errors(extractor, images, call, error, match):
    content, painting = images
    with pytest.raises(error, match=match):
        call(extractor, content, painting)


def test_a_trainable_extractor_is_left_as_it_was(images):
    """A caller's extractor in train mode with trainable weights: no gradients accumulate, flags and mode return."""
    content, painting = images
    extractor = vgg19_features(None, seed=1)
    extractor.train()
    for p in extractor.parameters():
        p.requires_grad_(True)
    weights = extractor.features[0].weight.detach().clone()
    style_transfer(content, painting, steps=3, extractor=extractor, progress=False)
    texture_synthesis(painting, size=16, steps=3, extractor=extractor, progress=False)
    assert extractor.training and all(p.requires_grad and p.grad is None for p in extractor.parameters())
    assert torch.equal(extractor.features[0].weight, weights)


def test_targets_are_computed_once_without_gradients(extractor, images):
    """The style and content images go through the network once each, before the optimization starts."""
    content, painting = images
    seen = []
    handle = extractor.features[0].register_forward_hook(
        lambda module, inputs, output: seen.append((inputs[0].shape, torch.is_grad_enabled())))
    try:
        style_transfer(content, painting, steps=6, extractor=extractor, progress=False)
    finally:
        handle.remove()
    # first the painting and the photo without gradients, then every evaluation of the image being optimized
    assert [grad for _, grad in seen[:2]] == [False, False]
    assert all(grad for _, grad in seen[2:]) and 2 < len(seen) <= 2 + 6


SHALLOW = dict(style_layers=("conv1_1", "conv2_1"), content_layer="conv2_1")   # fast: two layers, one pooling


@pytest.mark.parametrize("layer,smallest", [("conv1_1", 1), ("conv2_1", 2), ("conv4_2", 8), ("conv5_1", 16),
                                            ("pool5", 32)])
def test_the_smallest_size_is_exact(extractor, layer, smallest):
    """Each pooling layer up to the deepest layer halves the image: 2 ** pools pixels work, one fewer does not."""
    style = torch.rand(3, 32, 32)
    assert texture_synthesis(style, size=smallest, steps=1, extractor=extractor, style_layers=[layer],
                             progress=False).shape == (3, smallest, smallest)
    with pytest.raises(ValueError, match=f"at least {smallest} pixels"):
        texture_synthesis(style, size=(smallest + 3, smallest - 1), steps=1, extractor=extractor,
                          style_layers=[layer], progress=False)
    if smallest > 1:
        small = torch.rand(3, smallest, smallest + 5)
        assert style_transfer(small, small, steps=1, extractor=extractor, style_layers=["conv1_1"],
                              content_layer=layer, progress=False).shape == small.shape
        with pytest.raises(ValueError, match=f"at least {smallest} pixels"):
            style_transfer(small[:, 1:], small, steps=1, extractor=extractor, style_layers=["conv1_1"],
                           content_layer=layer, progress=False)


def _inward(loss: StyleLoss, image: torch.Tensor) -> torch.Tensor:
    """Pixels (1, 3, H, W) exactly at 0 or 1 whose unconstrained loss gradient points into [0, 1]."""
    image = image.clone().requires_grad_(True)
    loss(image)[0].backward()
    grad = image.grad
    return ((image == 0) & (grad < 0)) | ((image == 1) & (grad > 0))


def test_pixels_at_0_and_1_move_in_style_transfer(extractor, images):
    """torch.clamp passes no gradient to a value exactly at a bound: black and white pixels used to stay put."""
    content, painting = images
    content = content.clone()
    content[:, :20, :16] = 0.0   # a black region
    content[:, 20:, 32:] = 1.0   # a white region
    loss = StyleLoss(extractor, painting[None], content[None], style_weight=10.0, **SHALLOW)
    inward = _inward(loss, content[None])[0]
    assert inward.sum() > 200
    result = style_transfer(content, painting, steps=3, extractor=extractor, progress=False, **SHALLOW)
    moved = (result != content)[inward].float().mean()
    assert moved > 0.9


def test_pixels_at_0_and_1_move_in_texture_synthesis(extractor, images):
    """Texture synthesis runs the same optimizer: from black-and-white noise, every pixel the loss pulls inward
    moves (none moved before)."""
    _, painting = images
    noise = (torch.rand(1, 3, 24, 24, generator=torch.Generator().manual_seed(1)) > 0.5).float()
    loss = StyleLoss(extractor, painting[None], None, style_layers=("conv1_1", "conv2_1"))
    inward = _inward(loss, noise)
    assert inward.sum() > 200
    result, history = _optimize(loss, noise, 3, False, "texture")
    assert (result != noise)[inward].float().mean() > 0.9
    assert history["style"][-1] < history["style"][0]


def test_dtype_and_device_follow_the_image(extractor, images):
    content, painting = images
    double = style_transfer(content.double(), painting, steps=2, extractor=extractor, progress=False, **SHALLOW)
    assert double.dtype == torch.float64 and double.shape == content.shape
    to_pil = lambda t: Image.fromarray((t.permute(1, 2, 0).numpy() * 255).astype(np.uint8))
    assert style_transfer(to_pil(content), to_pil(painting), steps=1, extractor=extractor, progress=False,
                          **SHALLOW).dtype == torch.float32
    wide = vgg19_features(None).double()   # a float64 extractor: float64 inputs, results in the image's dtype
    result = style_transfer(content, painting, steps=2, extractor=wide, progress=False, **SHALLOW)
    assert result.dtype == torch.float32 and torch.isfinite(result).all()
    texture = texture_synthesis(painting, size=16, steps=2, extractor=wide, progress=False,
                                style_layers=("conv1_1",))
    assert texture.dtype == torch.float32
    half = vgg19_features(None).to(torch.bfloat16)   # optimized in float32, the extractor sees bfloat16
    result, info = style_transfer(content, painting, steps=2, extractor=half, progress=False, return_info=True,
                                  style_layers=("conv1_1",), content_layer="conv1_1")
    assert result.dtype == torch.float32 and all(math.isfinite(v) for v in info.loss)


@pytest.mark.parametrize("mode", [torch.no_grad, torch.inference_mode])
def test_works_without_gradients_around_it(extractor, images, mode):
    content, painting = images
    expected = style_transfer(content, painting, steps=2, extractor=extractor, progress=False, **SHALLOW)
    texture = texture_synthesis(painting, size=16, steps=2, extractor=extractor, progress=False,
                                style_layers=("conv1_1", "conv2_1"))
    with mode():
        inside_content = content.clone()   # an inference tensor under inference_mode
        result = style_transfer(inside_content, painting, steps=2, extractor=extractor, progress=False, **SHALLOW)
        inside_texture = texture_synthesis(painting, size=16, steps=2, extractor=extractor, progress=False,
                                           style_layers=("conv1_1", "conv2_1"))
    torch.testing.assert_close(result, expected)
    torch.testing.assert_close(inside_texture, texture)


def test_noise_start_follows_the_generator(extractor, images):
    content, painting = images
    run = lambda seed: style_transfer(content, painting, steps=1, extractor=extractor, init="noise",
                                      progress=False, generator=torch.Generator().manual_seed(seed), **SHALLOW)
    assert torch.equal(run(3), run(3)) and not torch.equal(run(3), run(4))


def test_progress_bar_on_by_default(extractor, images, capsys):
    content, painting = images
    style_transfer(content, painting, steps=2, extractor=extractor, **SHALLOW)
    texture_synthesis(painting, size=16, steps=2, extractor=extractor, style_layers=("conv1_1",))
    err = capsys.readouterr().err
    assert "style transfer" in err and "texture synthesis" in err
    style_transfer(content, painting, steps=2, extractor=extractor, progress=False, **SHALLOW)
    texture_synthesis(painting, size=16, steps=2, extractor=extractor, style_layers=("conv1_1",), progress=False)
    assert capsys.readouterr().err == ""


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_results_come_back_where_the_image_was(images):
    content, painting = images
    gpu = vgg19_features(None, device="cuda")
    on_cpu = style_transfer(content, painting, steps=2, extractor=gpu, progress=False, init="noise", **SHALLOW)
    assert on_cpu.device.type == "cpu"
    on_gpu = style_transfer(content.cuda().double(), painting.cuda(), steps=2, extractor=gpu, progress=False,
                            **SHALLOW)
    assert on_gpu.device.type == "cuda" and on_gpu.dtype == torch.float64
    texture = texture_synthesis(painting, size=16, steps=2, extractor=gpu, progress=False,
                                style_layers=("conv1_1",), generator=torch.Generator().manual_seed(2))
    assert texture.device.type == "cuda" and texture.dtype == torch.float32
