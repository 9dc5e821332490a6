"""Grad-CAM against Captum 0.9's LayerGradCam(relu_attributions=True), on every kind of ReLU and torchvision models."""
import warnings

import pytest
import torch
import torch.nn.functional as F
from torch import nn

captum_attr = pytest.importorskip("captum.attr")

from dlviz.attribution.grad_cam import grad_cam  # noqa: E402
from relu_models import TupleOut, make, model_state  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")

TARGET = torch.tensor([0, 2, 4])


@pytest.fixture(scope="module")
def x():
    torch.manual_seed(1)
    return torch.rand(3, 3, 16, 16)


def captum_cam(model, layer, x, target):
    module = dict(model.named_modules())[layer]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return captum_attr.LayerGradCam(model, module).attribute(x.clone(), target, relu_attributions=True).detach()


def assert_close_to_scale(ours, theirs, rtol=1e-5):
    assert theirs.abs().max() > 0, "a map of zeros compares nothing"
    error = float((ours - theirs).abs().max() / theirs.abs().max())
    assert error < rtol, f"max abs error {error:.2e} of the scale"


@pytest.mark.parametrize("kind, layer", [
    ("inplace", "features.0"),   # a convolution followed by an in-place ReLU, and the model's first layer
    ("inplace", "features.1"),   # the in-place ReLU module itself
    ("inplace", "features.3"),
    ("functional", "c3"),        # followed by F.relu(inplace=True)
    ("reused", "c2"),
    ("distinct", "r3"),
    ("distinct", "p2"),
])
def test_equals_captum_without_upsampling(kind, layer, x):
    model = make(kind)
    ours = grad_cam(model, x, TARGET, layer=layer, upsample=False)
    theirs = captum_cam(model, layer, x, TARGET)
    assert ours.shape == theirs.shape
    assert_close_to_scale(ours, theirs)


@pytest.mark.parametrize("name, layer", [("resnet18", "layer3"), ("resnet18", "layer4.1.conv2"),
                                         ("mobilenet_v3_small", "features.9")])
def test_torchvision_models_equal_captum(name, layer):
    torchvision = pytest.importorskip("torchvision")
    torch.manual_seed(0)
    model = getattr(torchvision.models, name)(num_classes=10).eval()
    x = torch.rand(2, 3, 64, 64)
    target = torch.tensor([1, 7])
    theirs = captum_cam(model, layer, x, target)
    assert_close_to_scale(grad_cam(model, x, target, layer=layer, upsample=False), theirs)
    upsampled = captum_attr.LayerAttribution.interpolate(theirs, (64, 64), interpolate_mode="bilinear")
    assert_close_to_scale(grad_cam(model, x, target, layer=layer), upsampled)


def test_upsampled_is_bilinear_at_the_images_size(x):
    model = make("inplace")
    small = grad_cam(model, x, TARGET, layer="features.3", upsample=False)
    large = grad_cam(model, x, TARGET, layer="features.3")
    assert large.shape == (3, 1, 16, 16)
    torch.testing.assert_close(large, F.interpolate(small, size=(16, 16), mode="bilinear", align_corners=False))
    assert bool((large >= 0).all())


def test_layer_given_as_a_module(x):
    model = make("distinct")
    torch.testing.assert_close(grad_cam(model, x, TARGET, layer=model.c3), grad_cam(model, x, TARGET, layer="c3"))


def test_reused_layer_gets_a_clear_error_and_the_model_is_left_clean(x):
    model = make("reused")
    before = model_state(model)
    with pytest.raises(ValueError, match="ran 4 times in one forward pass"):
        grad_cam(model, x, TARGET, layer="relu")
    assert model_state(model) == before


def test_resnets_shared_block_relu_gets_a_clear_error():
    torchvision = pytest.importorskip("torchvision")
    model = torchvision.models.resnet18(num_classes=10).eval()
    with pytest.raises(ValueError, match="ran 2 times"):
        grad_cam(model, torch.rand(1, 3, 32, 32), 0, layer="layer1.0.relu")


@pytest.mark.parametrize("layer, match", [("fc1", r"outputs \(3, 16\)"), ("r4", "feature maps")])
def test_layer_without_feature_maps_gets_a_clear_error(layer, match, x):
    with pytest.raises(ValueError, match=match):
        grad_cam(make("distinct"), x, TARGET, layer=layer)


def test_layer_that_does_not_run_gets_a_clear_error(x):
    model = make("distinct")
    model.unused = nn.Conv2d(3, 3, 1)
    with pytest.raises(ValueError, match="did not run"):
        grad_cam(model, x, TARGET, layer="unused")


def test_unknown_layer_and_bad_target_get_clear_errors(x):
    model = make("distinct")
    with pytest.raises(KeyError, match="close matches"):
        grad_cam(model, x, TARGET, layer="c33")
    with pytest.raises(ValueError, match=r"class indices in \[0, 4\]"):
        grad_cam(model, x, 7, layer="c3")
    with pytest.raises(TypeError, match="upsample"):
        grad_cam(model, x, 1, layer="c3", upsample="yes")


def test_single_image_gives_one_hw_map(x):
    model = make("distinct")
    single = grad_cam(model, x[2], 4, layer="c3")
    assert single.shape == (1, 16, 16)
    torch.testing.assert_close(single, grad_cam(model, x[2:], [4], layer="c3")[0])
    assert grad_cam(model, x[2], 4, layer="c3", upsample=False).shape == (1, 7, 7)


def test_float64_model_gets_float64_inputs_and_results_follow_x(x):
    model = make("inplace").double()
    seen = []
    handle = model.register_forward_pre_hook(lambda module, args: seen.append(args[0].dtype))
    try:
        ours = grad_cam(model, x, TARGET, layer="features.3", upsample=False)
    finally:
        handle.remove()
    assert set(seen) == {torch.float64} and ours.dtype == torch.float32
    assert_close_to_scale(ours.double(), captum_cam(model, "features.3", x.double(), TARGET), rtol=1e-6)
    assert grad_cam(model, x.double(), TARGET, layer="features.3").dtype == torch.float64


def test_works_inside_inference_mode_and_no_grad(x):
    model = make("reused")
    expected = grad_cam(model, x, TARGET, layer="c3")
    with torch.inference_mode():
        inside = x + 0  # an inference tensor
        torch.testing.assert_close(grad_cam(model, inside, TARGET, layer="c3"), expected)
    with torch.no_grad():
        torch.testing.assert_close(grad_cam(model, x, TARGET, layer="c3"), expected)


def test_model_and_images_are_unchanged(x):
    model = make("inplace")
    model.train()
    before, copy = model_state(model), x.clone()
    grad_cam(model, x, TARGET, layer="features.3")
    assert model_state(model) == before and torch.equal(x, copy)


def test_output_argument_picks_the_scores(x):
    model = make("distinct")

    torch.testing.assert_close(grad_cam(TupleOut(model), x, TARGET, layer="net.c3", output=0),
                               grad_cam(model, x, TARGET, layer="c3"))
    with pytest.raises(TypeError, match="output="):
        grad_cam(TupleOut(model), x, TARGET, layer="net.c3")
