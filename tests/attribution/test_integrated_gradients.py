"""Integrated gradients against Captum 0.9's IntegratedGradients, on every kind of ReLU and on torchvision models."""
import importlib
import warnings

import pytest
import torch
from torch import nn

captum_attr = pytest.importorskip("captum.attr")

integrated = importlib.import_module(
    "dlviz.attribution.integrated_gradients")  # the module: its function shadows the name
from dlviz.attribution.integrated_gradients import IntegratedGradientsInfo, integrated_gradients  # noqa: E402
from relu_models import DictOut, make, model_state  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")

METHODS = ["gausslegendre", "riemann_right", "riemann_left", "riemann_middle", "riemann_trapezoid"]
TARGET = torch.tensor([0, 2, 4])


@pytest.fixture(scope="module")
def x():
    torch.manual_seed(1)
    return torch.rand(3, 3, 16, 16)


def captum_ig(model, x, target, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return captum_attr.IntegratedGradients(model).attribute(x.clone(), target=target, **kwargs)


def assert_close_to_scale(ours, theirs, rtol=1e-5):
    """Equal up to float32 rounding, relative to the larger attribution (the error is also reported)."""
    error = float((ours - theirs).abs().max() / theirs.abs().max())
    assert error < rtol, f"max abs error {error:.2e} of the scale"


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("kind", ["inplace", "functional", "reused", "distinct"])
def test_equals_captum_for_every_method_and_relu_kind(kind, method, x):
    model = make(kind)
    ours = integrated_gradients(model, x, TARGET, steps=8, method=method, progress=False)
    assert_close_to_scale(ours, captum_ig(model, x, TARGET, baselines=0.0, n_steps=8, method=method))


@pytest.mark.parametrize("baseline", [0.5, "image", "per-image"])
def test_equals_captum_for_number_and_tensor_baselines(baseline, x):
    model = make("distinct")
    if baseline == "image":  # one (C, H, W) baseline for every image
        baseline = torch.linspace(0, 1, 16 * 16 * 3).reshape(3, 16, 16)
        theirs_baseline = baseline[None]
    elif baseline == "per-image":
        baseline = theirs_baseline = x.flip(-1) * 0.5
    else:
        theirs_baseline = baseline
    ours = integrated_gradients(model, x, TARGET, baseline=baseline, steps=10, progress=False)
    assert_close_to_scale(ours, captum_ig(model, x, TARGET, baselines=theirs_baseline, n_steps=10))


@pytest.mark.parametrize("name", ["resnet18", "mobilenet_v3_small"])
def test_torchvision_models_equal_captum(name):
    torchvision = pytest.importorskip("torchvision")
    torch.manual_seed(0)
    model = getattr(torchvision.models, name)(num_classes=10).eval()
    x = torch.rand(2, 3, 32, 32)
    target = torch.tensor([1, 7])
    ours, info = integrated_gradients(model, x, target, steps=6, progress=False, return_info=True)
    theirs, delta = captum_ig(model, x, target, n_steps=6, return_convergence_delta=True)
    assert_close_to_scale(ours, theirs)
    torch.testing.assert_close(info.delta, delta, atol=1e-5, rtol=1e-4)


def test_completeness_gap_is_captums_delta_and_shrinks_with_steps(x):
    model = make("reused")
    _, coarse = integrated_gradients(model, x, TARGET, steps=4, progress=False, return_info=True)
    attributions, fine = integrated_gradients(model, x, TARGET, steps=300, progress=False, return_info=True)
    _, delta = captum_ig(model, x, TARGET, n_steps=300, return_convergence_delta=True)
    torch.testing.assert_close(fine.delta, delta, atol=1e-5, rtol=1e-4)
    gap = fine.scores - fine.baseline_scores
    assert bool((fine.delta.abs() < 1e-2 * gap.abs()).all()), (fine.delta, gap)
    assert float(fine.delta.abs().max()) < float(coarse.delta.abs().max())
    torch.testing.assert_close(attributions.flatten(1).sum(1) - gap, fine.delta)


def test_info_holds_the_scores_of_images_and_baselines(x):
    model = make("distinct")
    baseline = torch.full((3, 16, 16), 0.25)
    _, info = integrated_gradients(model, x, TARGET, baseline=baseline, steps=4, progress=False, return_info=True)
    assert isinstance(info, IntegratedGradientsInfo)
    with torch.no_grad():
        torch.testing.assert_close(info.scores, model(x)[torch.arange(3), TARGET])
        torch.testing.assert_close(info.baseline_scores, model(baseline.expand_as(x))[torch.arange(3), TARGET])
    with pytest.raises(AttributeError):
        info.delta = None  # frozen


class BatchSizes:
    """Records the batch size of every forward pass of a model."""

    def __init__(self, model):
        self.sizes = []
        self.handle = model.register_forward_pre_hook(lambda module, args: self.sizes.append(args[0].shape[0]))


@pytest.mark.parametrize("batch_size", [1, 5, 24, 1000])
def test_batch_size_bounds_the_images_per_pass_but_not_the_result(batch_size, x):
    model = make("inplace")
    reference = integrated_gradients(model, x, TARGET, steps=8, progress=False)
    record = BatchSizes(model)
    try:
        result = integrated_gradients(model, x, TARGET, steps=8, batch_size=batch_size, progress=False)
    finally:
        record.handle.remove()
    assert max(record.sizes) == min(batch_size, 3 * 8)
    assert sum(record.sizes) == 3 * 8
    torch.testing.assert_close(result, reference, atol=1e-6, rtol=1e-5)


def test_default_batch_is_one_images_path(x):
    model = make("distinct")
    record = BatchSizes(model)
    try:
        integrated_gradients(model, x, TARGET, steps=7, progress=False)
    finally:
        record.handle.remove()
    assert record.sizes == [7, 7, 7]


def test_progress_bar_counts_the_passes(x, monkeypatch):
    from recording_bar import RecordingBar

    bar = RecordingBar()
    monkeypatch.setattr(integrated, "progress_bar", bar)
    integrated_gradients(make("distinct"), x, TARGET, steps=4, batch_size=5, progress=False)
    assert [(c["total"], c["enabled"]) for c in bar.calls] == [(3, False)]  # 12 scaled images, 5 per pass


def test_float64_model_gets_float64_inputs_and_results_follow_x(x):
    model = make("distinct").double()
    seen = []
    handle = model.register_forward_pre_hook(lambda module, args: seen.append(args[0].dtype))
    try:
        ours = integrated_gradients(model, x, TARGET, steps=8, progress=False)
    finally:
        handle.remove()
    assert set(seen) == {torch.float64}
    assert ours.dtype == torch.float32
    theirs = captum_ig(model, x.double(), TARGET, n_steps=8)
    assert_close_to_scale(ours.double(), theirs, rtol=1e-6)
    assert integrated_gradients(model, x.double(), TARGET, steps=8, progress=False).dtype == torch.float64


def test_bfloat16_model_accumulates_in_float32(x):
    # a linear model: every step's gradient is the weight row, so the attributions are W[t] * (x - 0) up to the
    # rounding of the sum over steps, which bfloat16 (8 bits) would make visible and float32 does not
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 16 * 16, 5)).to(torch.bfloat16)
    ours = integrated_gradients(model, x, TARGET, steps=200, method="riemann_middle", progress=False)
    expected = model[1].weight.float()[TARGET].reshape(x.shape) * x.bfloat16().float()
    assert ours.dtype == torch.float32
    torch.testing.assert_close(ours, expected, atol=1e-7, rtol=1e-5)


def test_works_inside_inference_mode_and_no_grad(x):
    model = make("reused")
    expected = integrated_gradients(model, x, TARGET, steps=4, progress=False)
    with torch.inference_mode():
        inside = torch.rand(3, 3, 16, 16) * 0 + x  # an inference tensor
        result = integrated_gradients(model, inside, TARGET, baseline=torch.zeros(3, 16, 16), steps=4,
                                      progress=False)
    torch.testing.assert_close(result, expected)
    with torch.no_grad():
        torch.testing.assert_close(integrated_gradients(model, x, TARGET, steps=4, progress=False), expected)


def test_model_and_images_are_unchanged(x):
    model = make("inplace")
    model.classifier.train()
    model.features[0].weight.requires_grad_(False)
    before, copy = model_state(model), x.clone()
    integrated_gradients(model, x, TARGET, steps=4, progress=False)
    assert model_state(model) == before
    assert torch.equal(x, copy)


def test_single_image_gives_chw_and_scalar_info(x):
    model = make("distinct")
    single, info = integrated_gradients(model, x[1], 2, steps=4, progress=False, return_info=True)
    batch = integrated_gradients(model, x[1:2], [2], steps=4, progress=False)
    assert single.shape == (3, 16, 16) and info.delta.shape == ()
    torch.testing.assert_close(single, batch[0])


def test_tuple_output_with_output_argument(x):
    model = make("distinct")

    expected = integrated_gradients(model, x, TARGET, steps=4, progress=False)
    torch.testing.assert_close(integrated_gradients(DictOut(model), x, TARGET, steps=4, output="logits",
                                                    progress=False), expected)
    with pytest.raises(TypeError, match="output="):
        integrated_gradients(DictOut(model), x, TARGET, steps=4, progress=False)


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(method="simpson"), ValueError, "method must be one of"),
    (dict(method="riemann_left", steps=1), ValueError, "steps must be an int >= 2"),
    (dict(steps=0), ValueError, "steps must be an int >= 1"),
    (dict(steps=2.0), ValueError, "steps"),
    (dict(batch_size=0), ValueError, "batch_size"),
    (dict(baseline=1.5), ValueError, "baseline must be a number in"),
    (dict(baseline=torch.zeros(2, 16, 16)), ValueError, "broadcast"),
    (dict(baseline=torch.full((3, 16, 16), -0.1)), ValueError, "values in"),
    (dict(progress="yes"), TypeError, "progress"),
])
def test_bad_arguments_get_clear_errors(kwargs, error, match, x):
    with pytest.raises(error, match=match):
        integrated_gradients(make("distinct"), x, TARGET, **{"progress": False, **kwargs})


def test_bad_targets_and_images_get_clear_errors(x):
    model = make("distinct")
    with pytest.raises(ValueError, match=r"class indices in \[0, 4\]"):
        integrated_gradients(model, x, 5, steps=2, progress=False)
    with pytest.raises(ValueError, match="one entry per image"):
        integrated_gradients(model, x, [1, 2], steps=2, progress=False)
    with pytest.raises(ValueError, match=r"values in \[0, 1\]"):
        integrated_gradients(model, x * 2, 1, steps=2, progress=False)
