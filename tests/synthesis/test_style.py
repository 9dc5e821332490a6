"""Style transfer and texture synthesis: losses go down, extractors say what they are, nothing extra runs."""
import dataclasses
import math
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from dlviz.synthesis.style import StyleInfo, StyleLoss, _optimize, gram_matrix, style_transfer, texture_synthesis
from dlviz.models.vgg import VGGFeatures, vgg19_features


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
    """The style and content images go through the network once each, before the optimization starts; after them,
    every pass is an evaluation of the image being optimized, with gradients, and each is recorded once.

    How many evaluations L-BFGS's last line search takes depends on rounding (9 on one processor, 8 on another for
    steps=6), so the count is checked against the run's own record, not against a number."""
    content, painting = images
    seen = []
    handle = extractor.features[0].register_forward_hook(
        lambda module, inputs, output: seen.append((inputs[0].shape, torch.is_grad_enabled())))
    try:
        _, info = style_transfer(content, painting, steps=6, extractor=extractor, progress=False, return_info=True)
    finally:
        handle.remove()
    assert [grad for _, grad in seen[:2]] == [False, False]
    evaluations = seen[2:]
    assert evaluations and all(grad for _, grad in evaluations)
    assert len(evaluations) == len(info.loss) == len(info.style) == len(info.content)


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
    for precision in ("bf16", "fp32"):   # bfloat16 convolutions on the GPU, float32 losses: it converges
        result, info = style_transfer(content.cuda(), painting.cuda(), steps=10, extractor=gpu, progress=False,
                                      precision=precision, return_info=True, **SHALLOW)
        assert info.precision == precision and result.dtype == torch.float32 and result.device.type == "cuda"
        assert info.loss[-1] < 0.5 * info.loss[0]


# --- precision: bfloat16 convolutions, float32 Gram matrices and losses ---------------------------------------------

def _guard_images(size=48):
    g = torch.Generator().manual_seed(0)
    content = torch.nn.functional.interpolate(torch.rand(1, 3, 8, 8, generator=g), size=(size, size),
                                              mode="bilinear")[0]
    return content, torch.rand(3, size, size, generator=g)


GUARD_LAYERS = dict(style_layers=("conv1_1", "conv2_1", "conv3_1"), content_layer="conv3_1")


class _PlainAutocast:
    """The loss with everything -- convolutions, Gram matrices, losses -- under bfloat16 autocast."""

    def __init__(self, loss):
        self.loss, self.precision, self.dtype = loss, "bf16", torch.bfloat16

    def __call__(self, x):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            total, parts = self.loss(x)
        return total.float(), {k: v.float() for k, v in parts.items()}


@pytest.mark.slow
def test_plain_autocast_stops_lbfgs_but_bf16_convolutions_keep_it_going(extractor):
    """Why the Gram matrices and losses stay in float32: with all of it in bfloat16, L-BFGS's line search sees
    only rounding noise and stops within 15 of 30 evaluations without lowering the loss; with bfloat16
    convolutions and float32 losses it runs all 30 and the loss falls below 10% of its start (as in float32)."""
    content, painting = _guard_images()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        plain = _PlainAutocast(StyleLoss(extractor, painting[None], content[None], style_weight=10.0,
                                         precision="fp32", **GUARD_LAYERS))
    _, history = _optimize(plain, content[None], 30, False, "plain autocast")
    assert len(history["loss"]) <= 15 and history["loss"][-1] > 0.9 * history["loss"][0]
    for precision in ("bf16", "fp32"):
        _, info = style_transfer(content, painting, steps=30, extractor=extractor, precision=precision,
                                 return_info=True, progress=False, **GUARD_LAYERS)
        assert info.precision == precision and info.fp32_from is None
        assert len(info.loss) >= 30 and info.loss[-1] < 0.1 * info.loss[0]


def test_bf16_falls_back_to_fp32_when_lbfgs_stops_early(extractor, monkeypatch):
    """If L-BFGS still stops early in bfloat16, the rest of the budget runs in float32 (here, from the 6th
    evaluation on, the bfloat16 loss passes no gradient -- only the pull back into [0, 1] does -- so L-BFGS soon stops,
    as rounding noise makes it stop in long runs -- at evaluation 161 of 200 in a 48 px run with these layers)."""
    content, painting = _guard_images()
    call, calls = StyleLoss.__call__, []

    def coarse(self, x):
        total, parts = call(self, x)
        calls.append(self.precision)
        return (total.detach() if self.precision == "bf16" and len(calls) > 5 else total), parts

    monkeypatch.setattr(StyleLoss, "__call__", coarse)
    _, info = style_transfer(content, painting, steps=30, extractor=extractor, precision="bf16",
                             return_info=True, progress=False, **GUARD_LAYERS)
    assert info.precision == "bf16" and info.fp32_from is not None and 5 < info.fp32_from < 30
    assert calls[info.fp32_from - 1:info.fp32_from + 1] == ["bf16", "fp32"]
    assert len(info.loss) >= 30 and info.loss[-1] < 0.5 * info.loss[info.fp32_from - 1]
    # the float32 targets replaced the bfloat16 ones: the content term of the content image is 0 again
    loss = StyleLoss(extractor, painting[None], content[None], precision="fp32", **GUARD_LAYERS)
    assert float(call(loss, content[None])[1]["content"]) == 0


def test_bf16_loss_and_gradient_match_fp32(extractor):
    """One evaluation (default layers, 64 px): the bfloat16 loss is within 1% of float32's (measured: 0.01-0.04%
    at 64-256 px) and the gradients point the same way (cosine > 0.99); the content image's content term is 0."""
    g = torch.Generator().manual_seed(1)
    painting, content = torch.rand(1, 3, 64, 64, generator=g), torch.rand(1, 3, 64, 64, generator=g)
    x0 = 0.5 * content + 0.5 * torch.rand(1, 3, 64, 64, generator=g)
    results = {}
    for precision in ("fp32", "bf16"):
        loss = StyleLoss(extractor, painting, content, style_weight=10.0, precision=precision)
        assert loss.precision == precision
        x = x0.clone().requires_grad_(True)
        total, parts = loss(x)
        total.backward()
        assert total.dtype == parts["style"].dtype == torch.float32
        results[precision] = float(total.detach()), x.grad.flatten()
        assert float(loss(content)[1]["content"]) == 0
    (l32, g32), (l16, g16) = results["fp32"], results["bf16"]
    assert abs(l16 - l32) < 0.01 * l32
    assert float(torch.nn.functional.cosine_similarity(g16, g32, dim=0)) > 0.99


def test_precision_choice(extractor, images, monkeypatch, capsys):
    """auto: bfloat16 where the CPU has it natively, float32 where not; fp32 forced; a float64 extractor stays in
    float64; the choice is in the info and in the progress bar."""
    from dlviz.synthesis import style as module
    content, painting = images
    run = lambda ex=extractor, **kw: style_transfer(content, painting, steps=1, extractor=ex, return_info=True,
                                                    progress=False, **SHALLOW, **kw)[1].precision
    monkeypatch.setattr(module, "auto_bf16", lambda device: True)
    assert run() == "bf16" and run(precision="fp32") == "fp32" and run(precision="bf16") == "bf16"
    assert run(vgg19_features(None).double()) == "fp64"
    monkeypatch.setattr(module, "auto_bf16", lambda device: False)
    assert run() == "fp32" and run(precision="bf16") == "bf16"   # forced bf16 runs (emulated) anyway
    assert texture_synthesis(painting, size=16, steps=1, extractor=extractor, style_layers=("conv1_1",),
                             return_info=True, progress=False)[1].precision == "fp32"
    texture_synthesis(painting, size=16, steps=2, extractor=extractor, style_layers=("conv1_1",), precision="bf16")
    assert "texture synthesis (bf16)" in capsys.readouterr().err
    for bad in ("fp16", "float32", None, 16):
        with pytest.raises(ValueError, match="precision must be one of"):
            run(precision=bad)


def test_only_the_layers_used_are_built(monkeypatch):
    """up_to builds VGG-19 up to a layer, with the same weights; the default extractor stops at the deepest layer
    that the call uses."""
    from dlviz.synthesis import style as module
    short, full = VGGFeatures(up_to="conv4_2"), VGGFeatures()
    assert short.layer_names[-1] == "conv4_2" and len(short.features) == full._positions["conv4_2"] + 1
    for a, b in zip(short.parameters(), full.parameters()):
        assert torch.equal(a, b)
    with pytest.raises(KeyError, match="built only up to conv4_2"):
        short(torch.rand(1, 3, 32, 32), ["conv5_1"])
    with pytest.raises(KeyError, match="up_to"):
        VGGFeatures(up_to="conv6_1")
    built = []
    original = module.vgg19_features

    def recording(weights="auto", **kwargs):
        built.append(kwargs.get("up_to"))
        return original(None, **kwargs)   # random weights: nothing read from the hub cache

    monkeypatch.setattr(module, "vgg19_features", recording)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        style_transfer(torch.rand(3, 16, 16), torch.rand(3, 16, 16), steps=1, progress=False)
        style_transfer(torch.rand(3, 16, 16), torch.rand(3, 16, 16), steps=1, progress=False, **SHALLOW)
        texture_synthesis(torch.rand(3, 16, 16), size=16, steps=1, progress=False, style_layers="conv1_1")
    assert built == ["conv5_1", "conv2_1", "conv1_1"]
