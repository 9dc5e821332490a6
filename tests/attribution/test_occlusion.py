"""Occlusion against Captum 0.9's Occlusion (windows over all channels, softmax forward for probabilities)."""
import importlib
import pytest
import torch

captum_attr = pytest.importorskip("captum.attr")

from dlviz import occlusion  # noqa: E402
from dlviz.attribution.occlusion import window_starts  # noqa: E402
from recording_bar import RecordingBar  # noqa: E402
from relu_models import DictOut, TupleOut, make, model_state  # noqa: E402


@pytest.fixture(scope="module")
def x():
    torch.manual_seed(2)
    return torch.rand(3, 3, 16, 16)


def captum_occlusion(model, x, target, window, stride, baseline, score, per_eval=32):
    forward = (lambda z: torch.softmax(model(z), 1)) if score == "prob" else model
    wh, ww = (window, window) if isinstance(window, int) else window
    sh, sw = (stride, stride) if isinstance(stride, int) else stride
    return captum_attr.Occlusion(forward).attribute(
        x.clone(), target=target, sliding_window_shapes=(x.shape[1], wh, ww), strides=(x.shape[1], sh, sw),
        baselines=baseline, perturbations_per_eval=per_eval)


@pytest.mark.parametrize("score", ["prob", "logit"])
@pytest.mark.parametrize("window, stride, baseline", [
    (5, 3, 0.0),  # the last window is cut at the border
    (4, 2, 0.5),
    ((3, 5), (2, 1), 0.25),
    (4, 4, 1.0),
    (16, 1, 0.0),  # the whole image
    (2, 2, 0.0),
])
@pytest.mark.parametrize("kind", ["inplace", "functional"])
def test_equals_captum(kind, window, stride, baseline, score, x):
    model = make(kind)
    target = torch.tensor([0, 3, 4])
    ours = occlusion(model, x, target, window=window, stride=stride, baseline=baseline, score=score)
    torch.testing.assert_close(ours, captum_occlusion(model, x, target, window, stride, baseline, score))


def test_image_baseline_batch_size_and_single_image(x):
    model = make("inplace")
    blurred = torch.nn.functional.avg_pool2d(x[:1], 5, 1, 2)[0]
    ours = occlusion(model, x, 2, window=4, stride=2, baseline=blurred, batch_size=5)
    theirs = captum_occlusion(model, x, 2, 4, 2, blurred[None].expand_as(x), "prob", per_eval=7)
    torch.testing.assert_close(ours, theirs)
    torch.testing.assert_close(occlusion(model, x, 2, window=4, stride=2, batch_size=1),
                               occlusion(model, x, 2, window=4, stride=2))
    single = occlusion(model, x[1], 2, window=4)
    assert single.shape == (3, 16, 16)
    torch.testing.assert_close(single, occlusion(model, x, 2, window=4)[1])


def test_default_stride_is_half_the_window(x):
    model = make("inplace")
    torch.testing.assert_close(occlusion(model, x, 1, window=5), occlusion(model, x, 1, window=5, stride=3))
    torch.testing.assert_close(occlusion(model, x, 1, window=(4, 6)),
                               occlusion(model, x, 1, window=(4, 6), stride=(2, 3)))


def test_window_starts_like_captum():
    assert window_starts(28, 5, 3).tolist() == [0, 3, 6, 9, 12, 15, 18, 21, 24]
    assert window_starts(16, 4, 4).tolist() == [0, 4, 8, 12]
    assert window_starts(16, 16, 1).tolist() == [0]


def test_occluding_the_object_lowers_the_probability():
    # a model that only looks at the centre: occluding the centre must lower the class probability, the border not
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 16 * 16, 2)).eval()
    with torch.no_grad():
        model[1].weight.zero_()
        model[1].bias.zero_()
        weight = model[1].weight.view(2, 3, 16, 16)
        weight[0, :, 6:10, 6:10] = 1.0
    image = torch.full((3, 16, 16), 0.8)
    drop = occlusion(model, image, 0, window=4, stride=2)
    assert drop[:, 7, 7].min() > 0.1 and drop[:, 0, 0].abs().max() == 0


def test_model_and_input_unchanged(x):
    model = make("inplace").train()
    before = model_state(model)
    image = x.clone()
    occlusion(model, image, [1, 2, 3], window=4)
    assert model_state(model) == before and model.training and torch.equal(image, x)


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(target=1, window=17), ValueError, "larger than the images"),
    (dict(target=1, window=(4, 20)), ValueError, "larger than the images"),
    (dict(target=1, window=3, stride=4), ValueError, "stride"),
    (dict(target=1, window=0), ValueError, "window"),
    (dict(target=5, window=4), ValueError, r"\[0, 4\]"),
    (dict(target=[0, 1], window=4), ValueError, "one entry per image"),
    (dict(target=1, window=4, score="probability"), ValueError, "score"),
    (dict(target=1, window=4, baseline=2.0), ValueError, "baseline"),
    (dict(target=1, window=4, batch_size=0), ValueError, "batch_size"),
    (dict(target=1, window=2.5), ValueError, "positive int or a pair"),
    (dict(target=1, window=4, stride="2"), ValueError, "positive int or a pair"),
    (dict(target=1, window=4, baseline=torch.full((3, 1, 1), 3.0)), ValueError, r"baseline image.*\[0, 1\]"),
])
def test_clear_errors(kwargs, error, match, x):
    model = make("inplace").train()
    before = model_state(model)
    with pytest.raises(error, match=match):
        occlusion(model, x, **kwargs)
    assert model_state(model) == before


def test_rejects_non_images(x):
    model = make("inplace")
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        occlusion(model, x - 0.5, 1, window=4)
    with pytest.raises(ValueError, match="shape"):
        occlusion(model, x.flatten(), 1, window=4)


class ViewNet(torch.nn.Module):
    """Calls .view on its feature maps, which fails for channels-last tensors."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 5, stride=5)
        self.fc = torch.nn.Linear(4 * 20 * 20, 3)
        self.seen = 0

    def forward(self, x):
        self.seen += len(x)
        x = torch.relu(self.conv(x))
        return self.fc(x.view(x.size(0), -1))


def test_large_images_equal_captum_also_for_models_that_use_view():
    torch.manual_seed(4)
    model = ViewNet().eval()
    x = torch.rand(1, 3, 100, 100)
    torch.testing.assert_close(occlusion(model, x, 2, window=20, stride=10),
                               captum_occlusion(model, x, 2, 20, 10, 0.0, "prob"))
    torchvision = pytest.importorskip("torchvision")
    net = torchvision.models.resnet18(num_classes=4).eval()
    torch.testing.assert_close(occlusion(net, x, 1, window=40, stride=30, baseline=0.5),
                               captum_occlusion(net, x, 1, 40, 30, 0.5, "prob"))


def test_windows_that_change_no_pixel_are_not_evaluated():
    torch.manual_seed(5)
    model = ViewNet().eval()
    x = torch.zeros(3, 100, 100)
    x[:, 40:60, 40:60] = 0.7          # the only pixels a black window can change
    drop = occlusion(model, x, 0, window=20, stride=20)
    # the original (tried in channels-last layout, which .view refuses, then again), and the one window
    assert model.seen == 2 + 1
    assert drop[:, :40].abs().max() == 0 and drop[:, 40:60, 40:60].abs().min() > 0
    torch.testing.assert_close(drop, captum_occlusion(model, x[None], 0, 20, 20, 0.0, "prob")[0])


# --- any model: dtype, output=, progress, sizes, bounded memory ------------------------------------------------

pytestmark = pytest.mark.usefixtures("one_thread")


def test_output_picks_the_scores_of_tuple_and_dict_models(x):
    model = make("inplace")
    expected = occlusion(model, x, 1, window=4, progress=False)
    torch.testing.assert_close(occlusion(TupleOut(model), x, 1, window=4, output=0, progress=False), expected)
    torch.testing.assert_close(occlusion(DictOut(model), x, 1, window=4, output="logits", progress=False), expected)
    with pytest.raises(TypeError, match="output="):
        occlusion(TupleOut(model), x, 1, window=4, progress=False)


def test_single_output_classifier_needs_logit_scores(x):
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 16 * 16, 1)).eval()
    with pytest.raises(ValueError, match="single score"):
        occlusion(model, x, 0, window=4, progress=False)
    assert occlusion(model, x, 0, window=4, score="logit", progress=False).shape == x.shape


@pytest.mark.parametrize("dtype, tolerance", [(torch.float64, 1e-5), (torch.bfloat16, 0.05)])
def test_inputs_follow_the_model_dtype_and_results_the_input_dtype(dtype, tolerance, x):
    model = make("inplace")
    expected = occlusion(model, x, 2, window=4, progress=False)
    result = occlusion(make("inplace").to(dtype), x, 2, window=4, progress=False)
    assert result.dtype == x.dtype and result.device == x.device
    torch.testing.assert_close(result, expected, rtol=0, atol=tolerance)
    assert occlusion(make("inplace").to(dtype), x.double(), 2, window=4, progress=False).dtype == torch.float64


class InPlaceNormalizer(torch.nn.Module):
    """Normalizes its input in place: it must never receive the caller's tensor."""

    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x):
        return self.net(x.sub_(0.5))


def test_a_model_that_changes_its_input_in_place_cannot_reach_the_caller(x):
    model = make("inplace")
    image = x.clone()
    result = occlusion(InPlaceNormalizer(model), image, 1, window=4, progress=False)
    assert torch.equal(image, x)
    reference = occlusion(torch.nn.Sequential(Shift(), model), x, 1, window=4, progress=False)
    torch.testing.assert_close(result, reference)


class Shift(torch.nn.Module):
    def forward(self, x):
        return x - 0.5


def test_progress_bar_over_the_forward_passes(x, monkeypatch):
    occlude = importlib.import_module("dlviz.attribution.occlusion")  # the module: its function shadows the name

    bar = RecordingBar()
    monkeypatch.setattr(occlude, "progress_bar", bar)
    model = make("inplace")
    occlusion(model, x[:2], 1, window=8, stride=8, batch_size=3)  # 4 windows per image: 2 passes each
    occlusion(model, x[:1], 1, window=8, stride=8, progress=False)
    assert [(c["total"], c["updates"], c["enabled"]) for c in bar.calls] == [(4, 4, True), (1, 1, False)]


def test_integer_sizes_numpy_ints_accepted_floats_refused(x):
    np = pytest.importorskip("numpy")
    model = make("inplace")
    expected = occlusion(model, x, 1, window=4, stride=2, batch_size=3, progress=False)
    torch.testing.assert_close(occlusion(model, x, 1, window=np.int64(4), stride=(np.int32(2), 2),
                                         batch_size=np.int64(3), progress=False), expected)
    for kwargs, name in [(dict(window=4.0), "window"), (dict(window=4, stride=2.0), "stride"),
                         (dict(window=(4, 4.0)), "window"), (dict(window=4, batch_size=2.0), "batch_size"),
                         (dict(window=4, batch_size=True), "batch_size"), (dict(window=True), "window")]:
        with pytest.raises(ValueError, match=name):
            occlusion(model, x, 1, progress=False, **kwargs)


def test_memory_is_bounded_by_the_batch_size_not_the_number_of_windows():
    """448 px at stride 8: 3136 windows. A (windows, H, W) mask array alone would be 600 MiB; the largest
    allocation must stay near batch_size copies of the image (4 x 2.3 MiB)."""
    from torch.profiler import ProfilerActivity, profile

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 2, 8, stride=8), torch.nn.Flatten(),
                                torch.nn.Linear(2 * 56 * 56, 3)).eval()
    image = torch.zeros(3, 448, 448)
    image[:, 200:216, 200:216] = 0.5  # only the windows over this patch change a pixel: few forward passes
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        drop = occlusion(model, image, 1, window=8, stride=8, batch_size=4, progress=False)
    largest = max(event.cpu_memory_usage for event in prof.events())
    assert largest < 32 * 2**20, f"an operation allocated {largest / 2**20:.0f} MiB"
    assert drop[:, 200:216, 200:216].abs().sum() > 0 and drop[:, :200].abs().max() == 0
