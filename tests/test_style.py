"""Style transfer and texture synthesis: losses go down, extractors say what they are, nothing extra runs."""
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from dlviz.style import StyleLoss, VGGFeatures, gram_matrix, style_transfer, texture_synthesis, vgg19_features


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
    copy = content.clone()
    result, history = style_transfer(content, painting, steps=15, extractor=extractor, return_history=True)
    assert result.shape == content.shape and float(result.min()) >= 0 and float(result.max()) <= 1
    assert torch.equal(content, copy)
    loss = StyleLoss(extractor, painting[None], content[None], style_weight=10.0)
    with torch.no_grad():
        _, before = loss(content[None])
        _, after = loss(result[None])
    assert float(after["style"]) < 0.5 * float(before["style"])
    assert history["loss"][-1] < history["loss"][0] and len(history["loss"]) <= 15
    assert history["extractor"] == extractor.description
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
    texture, history = texture_synthesis(painting, size=(32, 40), steps=20, extractor=extractor,
                                         style_layers=("conv1_1", "conv2_1", "conv3_1"), return_history=True)
    assert texture.shape == (3, 32, 40) and float(texture.min()) >= 0 and float(texture.max()) <= 1
    assert history["style"][-1] < 0.2 * history["style"][0]
    assert history["content"] == []


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
    (lambda e, c, s: style_transfer(c, s, extractor=e, size=3), ValueError, "size"),
    (lambda e, c, s: style_transfer(c, s, extractor=e, init="zeros"), ValueError, "init"),
    (lambda e, c, s: style_transfer(c, s, extractor=e, style_layers=["conv9_1"]), KeyError, "conv"),
    (lambda e, c, s: style_transfer(c, s, extractor=e, content_layer="relu4_2"), KeyError, "conv4_2"),
    (lambda e, c, s: style_transfer(c * 2, s, extractor=e), ValueError, r"\[0, 1\]"),
    (lambda e, c, s: style_transfer(c[:2], s, extractor=e), ValueError, "channels"),
    (lambda e, c, s: style_transfer(c[0], s, extractor=e), ValueError, "shape"),
    (lambda e, c, s: style_transfer(c, "starry", extractor=e), TypeError, "Tensor"),
    (lambda e, c, s: style_transfer(c, s, extractor=torch.nn.Conv2d(3, 3, 1)), TypeError, "VGGFeatures"),
    (lambda e, c, s: texture_synthesis(s, size=4, extractor=e), ValueError, "size"),
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
    style_transfer(content, painting, steps=3, extractor=extractor)
    texture_synthesis(painting, size=16, steps=3, extractor=extractor)
    assert extractor.training and all(p.requires_grad and p.grad is None for p in extractor.parameters())
    assert torch.equal(extractor.features[0].weight, weights)


def test_targets_are_computed_once_without_gradients(extractor, images):
    """The style and content images go through the network once each, before the optimization starts."""
    content, painting = images
    seen = []
    handle = extractor.features[0].register_forward_hook(
        lambda module, inputs, output: seen.append((inputs[0].shape, torch.is_grad_enabled())))
    try:
        style_transfer(content, painting, steps=6, extractor=extractor)
    finally:
        handle.remove()
    # first the painting and the photo without gradients, then every evaluation of the image being optimized
    assert [grad for _, grad in seen[:2]] == [False, False]
    assert all(grad for _, grad in seen[2:]) and 2 < len(seen) <= 2 + 6
