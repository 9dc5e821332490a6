"""Saliency, guided backprop and deconvnet against Captum 0.9, on every kind of ReLU and on overlapping pools."""
import warnings

import pytest
import torch
import torch.nn.functional as F
from torch import nn

captum_attr = pytest.importorskip("captum.attr")

import dlviz  # noqa: E402
from dlviz import deconvnet, guided_backprop, saliency  # noqa: E402
from relu_models import DictOut, ObjectOut, TupleOut, distinct_twin, make, model_state  # noqa: E402

warnings.filterwarnings("ignore", message=".*backward hook.*")
warnings.filterwarnings("ignore", message=".*Setting backward hooks.*")


@pytest.fixture(scope="module")
def x():
    torch.manual_seed(1)
    return torch.rand(4, 3, 16, 16)


TARGET = torch.tensor([0, 1, 2, 3])


def captum(method, model, x, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return method(model).attribute(x.clone(), **kwargs)


def differs(a, b) -> bool:
    """Clearly different, relative to the larger map's scale."""
    scale = max(a.abs().max(), b.abs().max())
    return bool((a - b).abs().max() > 1e-3 * scale)


@pytest.mark.parametrize("kind", ["inplace", "functional", "reused", "distinct"])
@pytest.mark.parametrize("abs_", [True, False])
def test_saliency_equals_captum(kind, abs_, x):
    model = make(kind)
    torch.testing.assert_close(saliency(model, x, TARGET, abs=abs_),
                               captum(captum_attr.Saliency, model, x, target=TARGET, abs=abs_))


@pytest.mark.parametrize("ours, theirs", [(guided_backprop, "GuidedBackprop"), (deconvnet, "Deconvolution")])
@pytest.mark.parametrize("kind", ["inplace", "reused", "distinct"])
def test_modified_backprop_equals_captum_on_relu_modules(ours, theirs, kind, x):
    # distinct in-place modules, one module reused four times, and plain distinct modules: Captum's hooks see them
    model = make(kind)
    torch.testing.assert_close(ours(model, x, TARGET), captum(getattr(captum_attr, theirs), model, x, target=TARGET))


@pytest.mark.parametrize("ours, theirs", [(guided_backprop, "GuidedBackprop"), (deconvnet, "Deconvolution")])
def test_functional_relus_equal_captum_on_the_module_twin_and_captum_misses_them(ours, theirs, x):
    model = make("functional")
    twin = distinct_twin(model)
    with torch.no_grad():
        torch.testing.assert_close(model(x), twin(x))
    result = ours(model, x, TARGET)
    torch.testing.assert_close(result, captum(getattr(captum_attr, theirs), twin, x, target=TARGET))
    on_original = captum(getattr(captum_attr, theirs), model, x, target=TARGET)
    assert differs(on_original, result), "Captum's module hooks should miss the functional ReLUs"
    # what Captum computes there is the plain gradient: no ReLU was overridden
    torch.testing.assert_close(on_original, saliency(model, x, TARGET, abs=False))


@pytest.mark.slow
def test_torchvision_resnet_with_its_reused_inplace_relu_equals_captum():
    torchvision = pytest.importorskip("torchvision")
    torch.manual_seed(0)
    model = torchvision.models.resnet18(num_classes=10).eval()
    x = torch.rand(2, 3, 48, 48)
    t = torch.tensor([1, 7])
    torch.testing.assert_close(guided_backprop(model, x, t), captum(captum_attr.GuidedBackprop, model, x, target=t))
    torch.testing.assert_close(deconvnet(model, x, t), captum(captum_attr.Deconvolution, model, x, target=t))


def test_torchvision_googlenet_functional_relus_are_all_overridden():
    torchvision = pytest.importorskip("torchvision")
    torch.manual_seed(0)
    model = torchvision.models.googlenet(num_classes=10, aux_logits=False, init_weights=True).eval()
    x = torch.rand(1, 3, 64, 64)
    calls = []
    with dlviz.hooks.relu_backward("guided") as mode, torch.no_grad():
        model(x)
        calls.append(mode.calls)
    assert calls[0] == 57  # every BasicConv2d ends with F.relu(..., inplace=True)
    assert not any(isinstance(m, nn.ReLU) for m in model.modules())
    ours = guided_backprop(model, x, 3)
    theirs = captum(captum_attr.GuidedBackprop, model, x, target=3)
    torch.testing.assert_close(theirs, saliency(model, x, 3, abs=False))  # Captum overrides nothing here
    assert differs(ours, theirs)


def neuron_selector(channel, max_only=False):
    def select(out):
        a = out[:, channel].reshape(len(out), -1)
        keep = torch.ones_like(a)
        if max_only:
            keep = torch.zeros_like(a).scatter_(1, a.argmax(1, keepdim=True), 1.0)
        return (a * a.detach() * keep).sum(1)
    return select


LAYERS = {"inplace": ["features.0", "features.3", "features.4", "features.5", "classifier.1"],
          "reused": ["c2", "p2", "c3", "fc1"], "distinct": ["c1", "r2", "p2", "fc1"]}


@pytest.mark.parametrize("kind, layer", [(k, layer) for k, layers in LAYERS.items() for layer in layers])
@pytest.mark.parametrize("max_only", [False, True])
def test_layer_deconvnet_equals_captum_neuron_deconvolution(kind, layer, max_only, x):
    model = make(kind)
    module = dict(model.named_modules())[layer]
    for channel in (0, 5):
        ours = deconvnet(model, x, layer=layer, channel=channel, max_only=max_only)
        theirs = captum(lambda m: captum_attr.NeuronDeconvolution(m, module), model, x,
                        neuron_selector=neuron_selector(channel, max_only))
        torch.testing.assert_close(ours, theirs)


@pytest.mark.parametrize("layer", ["c2", "p2", "fc1"])
def test_layer_deconvnet_with_functional_relus_equals_captum_on_the_twin(layer, x):
    model = make("functional")
    twin = distinct_twin(model)
    ours = deconvnet(model, x, layer=layer, channel=2)
    theirs = captum(lambda m: captum_attr.NeuronDeconvolution(m, dict(m.named_modules())[layer]), twin, x,
                    neuron_selector=neuron_selector(2))
    torch.testing.assert_close(ours, theirs)
    on_original = captum(lambda m: captum_attr.NeuronDeconvolution(m, dict(m.named_modules())[layer]), model, x,
                         neuron_selector=neuron_selector(2))
    assert differs(on_original, ours)


def test_layer_deconvnet_all_channels_and_module_spec(x):
    model = make("inplace")
    ours = deconvnet(model, x, layer=model.features[3])
    theirs = captum(lambda m: captum_attr.NeuronDeconvolution(m, m.features[3]), model, x,
                    neuron_selector=lambda out: (out * out.detach()).flatten(1).sum(1))
    torch.testing.assert_close(ours, theirs)


def test_overlapping_max_pool_unpooling_adds():
    # one bright pixel is the maximum of all four 3x3 windows (stride 2) of a 5x5 image: the deconvnet sends
    # all four pooled activations back to it, and they add up (max-unpooling that overwrites would send one)
    image = torch.full((1, 1, 5, 5), 0.1)
    image[0, 0, 2, 2] = 0.9
    model = nn.Sequential(nn.MaxPool2d(3, 2), nn.Flatten(), nn.Linear(4, 2))
    with pytest.warns(UserWarning, match="no ReLU"):  # nothing to override: deconvnet is the plain gradient here
        projection = deconvnet(model, image, layer="0", channel=0)
    assert projection[0, 0, 2, 2].item() == pytest.approx(4 * 0.9)
    assert projection.abs().sum().item() == pytest.approx(4 * 0.9)
    pooled, where = F.max_pool2d(image, 3, 2, return_indices=True)
    overwrite = F.max_unpool2d(pooled, where, 3, 2, output_size=image.shape[-2:])
    assert overwrite[0, 0, 2, 2].item() == pytest.approx(0.9)  # what an overwriting unpooling would give
    theirs = captum(lambda m: captum_attr.NeuronDeconvolution(m, m[0]), model, image,
                    neuron_selector=neuron_selector(0))
    torch.testing.assert_close(projection, theirs)


def test_guided_backprop_is_sparser_than_saliency(x):
    model = make("inplace")
    gb = guided_backprop(model, x, TARGET)
    sal = saliency(model, x, TARGET)
    assert (gb != 0).float().mean() < (sal != 0).float().mean()


@pytest.mark.parametrize("call", [
    lambda m, x: saliency(m, x, 2),
    lambda m, x: guided_backprop(m, x, [0, 1, 2, 3]),
    lambda m, x: deconvnet(m, x, 4),
    lambda m, x: deconvnet(m, x, layer="features.3", channel=1, max_only=True),
])
def test_model_and_input_unchanged(call, x):
    model = make("inplace").train()
    model.features[1].eval()
    before = model_state(model)
    image = x.clone().requires_grad_(False)
    copy = image.clone()
    result = call(model, image)
    assert result.shape == image.shape
    assert model_state(model) == before and model.training
    assert torch.equal(image, copy) and not image.requires_grad and image.grad is None
    leaf = x.clone().requires_grad_(True)
    call(model, leaf)
    assert leaf.requires_grad and leaf.grad is None


@pytest.mark.parametrize("call, error, match", [
    (lambda m, x: saliency(m, x, 5), ValueError, r"\[0, 4\]"),
    (lambda m, x: guided_backprop(m, x, [0, 1, -1, 2]), ValueError, r"\[0, 4\]"),
    (lambda m, x: deconvnet(m, x, 7), ValueError, r"\[0, 4\]"),
    (lambda m, x: deconvnet(m, x, layer="features.33"), KeyError, "close matches"),
    (lambda m, x: deconvnet(m, x, layer="features.3", channel=12), ValueError, r"\[0, 11\]"),
    (lambda m, x: deconvnet(m, x, 1, layer="features.3"), ValueError, "exactly one"),
    (lambda m, x: deconvnet(m, x), ValueError, "exactly one"),
    (lambda m, x: deconvnet(m, x, 1, channel=2), ValueError, "layer="),
    (lambda m, x: saliency(m, x * 3, 1), ValueError, r"\[0, 1\]"),
    (lambda m, x: saliency(m, x[0, 0], 1), ValueError, "shape"),
    (lambda m, x: saliency(m, (x * 255).byte(), 1), TypeError, "floating"),
    (lambda m, x: saliency(m, x.numpy(), 1), TypeError, "torch.Tensor"),
])
def test_clear_errors_leave_everything_unchanged(call, error, match, x):
    model = make("inplace").train()
    before = model_state(model)
    image = x.clone()
    with pytest.raises(error, match=match):
        call(model, image)
    assert model_state(model) == before and torch.equal(image, x)


def test_reused_layer_is_refused_for_deconvnet(x):
    with pytest.raises(ValueError, match="ran 4 times"):
        deconvnet(make("reused"), x, layer="relu", channel=0)


def test_single_image_in_single_image_out(x):
    model = make("inplace")
    for result in (saliency(model, x[0], 1), guided_backprop(model, x[0], 1), deconvnet(model, x[0], 1),
                   deconvnet(model, x[0], layer="features.3", channel=2)):
        assert result.shape == (3, 16, 16)
    torch.testing.assert_close(saliency(model, x[0], 1), saliency(model, x, 1)[0])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_device_follows_the_model(x):
    model = make("inplace").cuda()
    result = guided_backprop(model, x, TARGET)
    assert result.device == x.device
    torch.testing.assert_close(result, guided_backprop(make("inplace"), x, TARGET), rtol=1e-4, atol=1e-6)


def _googlenet_with_relu_modules(model: nn.Module) -> nn.Module:
    """A copy of torchvision's GoogLeNet whose BasicConv2d blocks call an nn.ReLU module instead of F.relu."""
    import copy
    twin = copy.deepcopy(model)
    for block in twin.modules():
        if type(block).__name__ == "BasicConv2d":
            block.relu = nn.ReLU(inplace=True)
            block.forward = (lambda b: lambda x: b.relu(b.bn(b.conv(x))))(block)
    return twin.eval()


def test_torchvision_googlenet_equals_captum_on_its_relu_module_twin():
    torchvision = pytest.importorskip("torchvision")
    torch.manual_seed(0)
    model = torchvision.models.googlenet(num_classes=10, aux_logits=False, init_weights=True).eval()
    twin = _googlenet_with_relu_modules(model)
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(model(x), twin(x))
    torch.testing.assert_close(guided_backprop(model, x, 3), captum(captum_attr.GuidedBackprop, twin, x, target=3))
    torch.testing.assert_close(deconvnet(model, x, 3), captum(captum_attr.Deconvolution, twin, x, target=3))


@pytest.mark.parametrize("call", [
    lambda m, x: saliency(m, x, 1),
    lambda m, x: guided_backprop(m, x, 1),
    lambda m, x: deconvnet(m, x, 1),
    lambda m, x: deconvnet(m, x, layer="classifier.1", channel=0),
    lambda m, x: dlviz.occlusion(m, x, 1, window=4),
    lambda m, x: dlviz.top_activations(m, x, layer="classifier.1", channel=0, k=1),
])
def test_state_is_restored_when_the_forward_pass_raises(call):
    """8x8 images pass the ReLUs and pools, then break the classifier's Linear layer: every override, hook and mode
    set by the call must be undone, and the caller's own hooks must still be there and still run."""
    model = make("inplace").train()
    seen = []
    handle = model.features[0].register_forward_hook(lambda *args: seen.append(1))
    before = model_state(model)
    with pytest.raises(RuntimeError):
        call(model, torch.rand(2, 3, 8, 8))
    assert model_state(model) == before and model.training
    assert torch._C._len_torch_function_stack() == 0  # no ReLU override left active
    seen.clear()
    model.eval()(torch.rand(1, 3, 16, 16))
    assert seen == [1]
    handle.remove()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
@pytest.mark.parametrize("call", [
    lambda m, x: saliency(m, x, TARGET),
    lambda m, x: deconvnet(m, x, TARGET),
    lambda m, x: deconvnet(m, x, layer="features.3", channel=1),
    lambda m, x: dlviz.occlusion(m, x, TARGET, window=4),
])
def test_every_method_follows_the_model_to_the_gpu(call, x):
    result = call(make("inplace").cuda(), x)
    assert result.device == x.device
    torch.testing.assert_close(result, call(make("inplace"), x), rtol=1e-4, atol=1e-5)


# --- any model: output=, dtype, inference mode, and no silent plain gradient ----------------------------------

CLASS_METHODS = {
    "saliency": lambda m, x, **kw: saliency(m, x, TARGET, **kw),
    "signed saliency": lambda m, x, **kw: saliency(m, x, TARGET, abs=False, **kw),
    "guided_backprop": lambda m, x, **kw: guided_backprop(m, x, TARGET, **kw),
    "deconvnet": lambda m, x, **kw: deconvnet(m, x, TARGET, **kw),
}


@pytest.mark.parametrize("method", list(CLASS_METHODS))
def test_output_picks_the_class_scores(method, x):
    call = CLASS_METHODS[method]
    model = make("inplace")
    expected = call(model, x)
    torch.testing.assert_close(call(TupleOut(model), x, output=0), expected)
    torch.testing.assert_close(call(DictOut(model), x, output="logits"), expected)
    torch.testing.assert_close(call(ObjectOut(model), x, output="logits"), expected)
    torch.testing.assert_close(call(TupleOut(model), x, output=lambda out: out[0]), expected)
    with pytest.raises(TypeError, match="output="):
        call(TupleOut(model), x)


def test_layer_deconvnet_refuses_output(x):
    with pytest.raises(ValueError, match="output="):
        deconvnet(make("inplace"), x, layer="features.3", output=0)


DTYPE_CALLS = {
    "saliency": lambda m, x: saliency(m, x, TARGET),
    "guided_backprop": lambda m, x: guided_backprop(m, x, TARGET),
    "deconvnet": lambda m, x: deconvnet(m, x, TARGET),
    "layer deconvnet": lambda m, x: deconvnet(m, x, layer="features.3", channel=2),
}


@pytest.mark.parametrize("method", list(DTYPE_CALLS))
@pytest.mark.parametrize("dtype", [torch.float64, torch.bfloat16])
def test_inputs_follow_the_model_dtype_and_results_the_input_dtype(method, dtype, x):
    call = DTYPE_CALLS[method]
    expected = call(make("inplace"), x)
    result = call(make("inplace").to(dtype), x)
    assert result.dtype == x.dtype and result.device == x.device
    if dtype == torch.float64:
        torch.testing.assert_close(result, expected, rtol=1e-4, atol=1e-6)
    else:  # 8 bits of mantissa flip a few ReLUs: the maps agree in direction, not to the last digit
        assert F.cosine_similarity(result.flatten(), expected.flatten(), dim=0) > 0.95
    assert call(make("inplace").to(dtype), x.double()).dtype == torch.float64


@pytest.mark.parametrize("method", list(DTYPE_CALLS))
@pytest.mark.parametrize("mode", [torch.no_grad, torch.inference_mode])
def test_works_inside_no_grad_and_inference_mode(method, mode, x):
    call = DTYPE_CALLS[method]
    model = make("inplace")
    expected = call(model, x)
    with mode():
        inside = call(model, x)
    torch.testing.assert_close(inside, expected)
    with torch.inference_mode():
        frozen = x.clone()  # an inference tensor, as made by code running under inference_mode
    torch.testing.assert_close(call(model, frozen), expected)


def _only(activation):
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3), activation, nn.Flatten(), nn.Linear(4 * 14 * 14, 5)).eval()


@pytest.mark.parametrize("activation", [nn.ReLU6(), nn.GELU(), nn.SiLU(), nn.LeakyReLU(0.1), nn.Hardswish()],
                         ids=lambda a: type(a).__name__)
@pytest.mark.parametrize("method", ["guided_backprop", "deconvnet", "layer deconvnet"])
def test_warns_when_no_relu_was_overridden_and_the_result_is_the_plain_gradient(activation, method, x):
    model = _only(activation)
    call = {"guided_backprop": lambda: guided_backprop(model, x, TARGET),
            "deconvnet": lambda: deconvnet(model, x, TARGET),
            "layer deconvnet": lambda: deconvnet(model, x, layer="1", channel=0)}[method]
    with pytest.warns(UserWarning, match="no ReLU.*plain gradient"):
        result = call()
    if method != "layer deconvnet":
        torch.testing.assert_close(result, saliency(model, x, TARGET, abs=False))


def test_torchscript_model_warns_that_its_relus_are_invisible(x):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit.script is deprecated, but such models exist
        scripted = torch.jit.script(make("distinct"))
    for call in (lambda: guided_backprop(scripted, x, TARGET), lambda: deconvnet(scripted, x, TARGET)):
        with pytest.warns(UserWarning, match="TorchScript"):
            result = call()
        torch.testing.assert_close(result, saliency(scripted, x, TARGET, abs=False))


@pytest.mark.parametrize("kind", ["inplace", "functional", "reused"])
def test_no_warning_when_relus_were_overridden(kind, x):
    model = make(kind)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        guided_backprop(model, x, TARGET)
        deconvnet(model, x, TARGET)


def test_single_output_model_works_for_gradients(x):
    # gradients of a single score need no class probabilities: target 0 is the only class
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 16 * 16, 1)).eval()
    torch.testing.assert_close(saliency(model, x, 0, abs=False), model[1].weight.detach().view(1, 3, 16, 16)
                               .expand_as(x))


def test_layer_deconvnet_channel_numpy_int_accepted_float_refused(x):
    np = pytest.importorskip("numpy")
    model = make("inplace")
    torch.testing.assert_close(deconvnet(model, x, layer="features.3", channel=np.int64(2)),
                               deconvnet(model, x, layer="features.3", channel=2))
    with pytest.raises(ValueError, match="channel must be an int"):
        deconvnet(model, x, layer="features.3", channel=2.0)
