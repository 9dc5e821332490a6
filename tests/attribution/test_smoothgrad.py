"""SmoothGrad against Captum 0.9's NoiseTunnel(nt_type="smoothgrad"), with its base methods and one's own.

Same noise: smoothgrad draws one float32 (N, C, H, W) noise tensor per sample from the generator; from torch's
global generator that is exactly what NoiseTunnel draws with nt_samples_batch_size=1, so after the same
torch.manual_seed both results are equal.
"""
import importlib
import functools
import warnings

import pytest
import torch
from torch import nn

captum_attr = pytest.importorskip("captum.attr")

smooth = importlib.import_module("dlviz.attribution.smoothgrad")  # the module: its function shadows the name
from dlviz.attribution.saliency import deconvnet, guided_backprop, saliency  # noqa: E402
from dlviz.attribution.integrated_gradients import integrated_gradients  # noqa: E402
from dlviz.attribution.smoothgrad import smoothgrad  # noqa: E402
from relu_models import distinct_twin, make, model_state  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")

TARGET = torch.tensor([0, 2, 4])


@pytest.fixture(scope="module")
def x():
    torch.manual_seed(1)
    return torch.rand(3, 3, 16, 16)


def noise_tunnel(captum_method, model, x, target, *, samples, stdev, seed, **kwargs):
    torch.manual_seed(seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return captum_attr.NoiseTunnel(captum_method(model)).attribute(
            x.clone(), nt_type="smoothgrad", nt_samples=samples, nt_samples_batch_size=1, stdevs=float(stdev),
            target=target, **kwargs)


def seeded_smoothgrad(model, x, target, *, seed, **kwargs):
    torch.manual_seed(seed)
    return smoothgrad(model, x, target, progress=False, **kwargs)


def assert_close_to_scale(ours, theirs, rtol=1e-5):
    error = float((ours - theirs).abs().max() / theirs.abs().max())
    assert error < rtol, f"max abs error {error:.2e} of the scale"


@pytest.mark.parametrize("kind", ["inplace", "functional", "reused", "distinct"])
@pytest.mark.parametrize("stdev", [0.0, 0.2])
def test_saliency_base_equals_captum_noise_tunnel(kind, stdev, x):
    model = make(kind)
    ours = seeded_smoothgrad(model, x, TARGET, samples=4, stdev=stdev, seed=5)
    assert_close_to_scale(ours, noise_tunnel(captum_attr.Saliency, model, x, TARGET, samples=4, stdev=stdev, seed=5))


@pytest.mark.parametrize("kind", ["inplace", "reused", "distinct", "functional"])
def test_guided_backprop_base_equals_captum_noise_tunnel(kind, x):
    model = make(kind)
    # Captum's module hooks miss functional ReLUs: compare with its result on the nn.ReLU twin
    theirs_model = distinct_twin(model) if kind == "functional" else model
    ours = seeded_smoothgrad(model, x, TARGET, base=guided_backprop, samples=3, stdev=0.1, seed=2)
    theirs = noise_tunnel(captum_attr.GuidedBackprop, theirs_model, x, TARGET, samples=3, stdev=0.1, seed=2)
    assert_close_to_scale(ours, theirs)


def test_deconvnet_and_integrated_gradients_bases_equal_captum(x):
    model = make("reused")
    ours = seeded_smoothgrad(model, x, TARGET, base=deconvnet, samples=3, stdev=0.1, seed=3)
    assert_close_to_scale(ours, noise_tunnel(captum_attr.Deconvolution, model, x, TARGET, samples=3, stdev=0.1,
                                             seed=3))
    ig = functools.partial(integrated_gradients, steps=5, baseline=0.5, method="riemann_middle")
    ours = seeded_smoothgrad(model, x, TARGET, base=ig, samples=3, stdev=0.1, seed=4)
    theirs = noise_tunnel(captum_attr.IntegratedGradients, model, x, TARGET, samples=3, stdev=0.1, seed=4,
                          n_steps=5, baselines=0.5, method="riemann_middle")
    assert_close_to_scale(ours, theirs)


@pytest.mark.parametrize("name", ["resnet18", "mobilenet_v3_small"])
def test_torchvision_models_equal_captum(name):
    torchvision = pytest.importorskip("torchvision")
    torch.manual_seed(0)
    model = getattr(torchvision.models, name)(num_classes=10).eval()
    x = torch.rand(2, 3, 32, 32)
    target = torch.tensor([1, 7])
    ours = seeded_smoothgrad(model, x, target, samples=3, stdev=0.15, seed=6)
    assert_close_to_scale(ours, noise_tunnel(captum_attr.Saliency, model, x, target, samples=3, stdev=0.15, seed=6))


@pytest.mark.parametrize("base, kwargs", [
    (saliency, {}), (functools.partial(saliency, abs=False), {"abs": False}), (guided_backprop, {}),
    (deconvnet, {}), (functools.partial(integrated_gradients, steps=4), {"steps": 4, "progress": False}),
])
def test_zero_noise_is_exactly_the_base_method(base, kwargs, x):
    model = make("inplace")
    plain = (base.func if isinstance(base, functools.partial) else base)(model, x, TARGET, **kwargs)
    assert torch.equal(smoothgrad(model, x, TARGET, base=base, stdev=0, progress=False), plain)


def test_noise_changes_the_map_and_the_generator_repeats_it(x):
    model = make("distinct")
    state = torch.get_rng_state()
    first = smoothgrad(model, x, TARGET, samples=5, generator=torch.Generator().manual_seed(7), progress=False)
    assert torch.equal(torch.get_rng_state(), state), "a generator given: the global one is not used"
    again = smoothgrad(model, x, TARGET, samples=5, generator=torch.Generator().manual_seed(7), progress=False)
    other = smoothgrad(model, x, TARGET, samples=5, generator=torch.Generator().manual_seed(8), progress=False)
    assert torch.equal(first, again)
    assert not torch.equal(first, other)
    assert not torch.allclose(first, saliency(model, x, TARGET))


def test_the_mean_over_samples_is_the_mean_of_the_base_on_each_noisy_copy(x):
    model = make("distinct")
    generator = torch.Generator().manual_seed(3)
    noise = [torch.randn(x.shape, generator=generator) * 0.2 for _ in range(4)]
    # the noisy copies go outside [0, 1]: the public saliency refuses them, so compare with Captum's Saliency
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = sum(captum_attr.Saliency(model).attribute(x + n, target=TARGET) for n in noise) / 4
    result = smoothgrad(model, x, TARGET, samples=4, stdev=0.2, generator=torch.Generator().manual_seed(3),
                        progress=False)
    assert_close_to_scale(result, expected)


def test_a_callable_base_gets_the_unclamped_noisy_images(x):
    model = make("distinct")
    seen = []

    def captum_saliency(model, images, targets):
        seen.append((float(images.min()), float(images.max()), images.shape, targets.tolist()))
        return captum_attr.Saliency(model).attribute(images, target=targets)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ours = smoothgrad(model, x, TARGET, base=captum_saliency, samples=3, stdev=0.3,
                          generator=torch.Generator().manual_seed(1), progress=False)
    reference = smoothgrad(model, x, TARGET, samples=3, stdev=0.3, generator=torch.Generator().manual_seed(1),
                           progress=False)
    assert_close_to_scale(ours, reference)
    assert len(seen) == 3
    assert all(lo < 0 and hi > 1 and shape == x.shape and t == [0, 2, 4] for lo, hi, shape, t in seen)


def test_a_callable_base_with_the_wrong_shape_gets_a_clear_error(x):
    with pytest.raises(ValueError, match="shaped like its images"):
        smoothgrad(make("distinct"), x, TARGET, base=lambda m, images, t: images.sum(1), samples=2, progress=False)


def test_float64_model_gets_float64_inputs(x):
    model = make("distinct").double()
    seen = []
    handle = model.register_forward_pre_hook(lambda module, args: seen.append(args[0].dtype))
    try:
        ours = seeded_smoothgrad(model, x, TARGET, samples=3, stdev=0.1, seed=9)
    finally:
        handle.remove()
    assert set(seen) == {torch.float64} and ours.dtype == torch.float32
    theirs = noise_tunnel(captum_attr.Saliency, model, x.double(), TARGET, samples=3, stdev=0.1, seed=9)
    assert_close_to_scale(ours.double(), theirs, rtol=1e-6)


def test_works_inside_inference_mode(x):
    model = make("reused")
    expected = smoothgrad(model, x, TARGET, samples=2, generator=torch.Generator().manual_seed(0), progress=False)
    with torch.inference_mode():
        inside = x + 0  # an inference tensor
        result = smoothgrad(model, inside, TARGET, samples=2, generator=torch.Generator().manual_seed(0),
                            progress=False)
    torch.testing.assert_close(result, expected)


def test_model_and_images_are_unchanged_and_single_images_keep_their_shape(x):
    model = make("inplace")
    model.train()
    before, copy = model_state(model), x.clone()
    single = smoothgrad(model, x[0], 3, samples=2, generator=torch.Generator().manual_seed(0), progress=False)
    assert model_state(model) == before and torch.equal(x, copy)
    assert single.shape == (3, 16, 16)


def test_output_argument_picks_the_scores_of_dlviz_bases(x):
    model = make("distinct")

    class Pair(nn.Module):
        def __init__(self):
            super().__init__()
            self.net = model

        def forward(self, images):
            return images.mean(), self.net(images)

    expected = smoothgrad(model, x, TARGET, samples=2, generator=torch.Generator().manual_seed(0), progress=False)
    result = smoothgrad(Pair(), x, TARGET, samples=2, generator=torch.Generator().manual_seed(0), output=1,
                        progress=False)
    torch.testing.assert_close(result, expected)
    with pytest.raises(ValueError, match="output="):
        smoothgrad(Pair(), x, TARGET, base=lambda m, images, t: images, output=1, progress=False)


def test_progress_bar_counts_the_samples(x, monkeypatch):
    from recording_bar import RecordingBar

    bar = RecordingBar()
    monkeypatch.setattr(smooth, "progress_bar", bar)
    smoothgrad(make("distinct"), x, TARGET, samples=3, progress=False)
    assert [(c["total"], c["enabled"]) for c in bar.calls] == [(3, False)]


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(samples=0), ValueError, "samples"),
    (dict(samples=2.5), ValueError, "samples"),
    (dict(stdev=-0.1), ValueError, "stdev"),
    (dict(generator=0), TypeError, "generator"),
    (dict(base="saliency"), TypeError, "base must be"),
    (dict(base=functools.partial(saliency, output=0)), ValueError, "output= is smoothgrad's own"),
    (dict(base=functools.partial(integrated_gradients, steps=1, method="riemann_left")), ValueError, "steps"),
    (dict(base=functools.partial(integrated_gradients, baseline=2.0)), ValueError, "baseline"),
])
def test_bad_arguments_get_clear_errors(kwargs, error, match, x):
    with pytest.raises(error, match=match):
        smoothgrad(make("distinct"), x, TARGET, **{"progress": False, **kwargs})


def test_guided_base_warns_when_the_model_has_no_relu_to_override(x):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 16 * 16, 8), nn.GELU(), nn.Linear(8, 5))
    with pytest.warns(UserWarning, match="no ReLU"):
        smoothgrad(model, x, TARGET, base=guided_backprop, samples=2, progress=False)
