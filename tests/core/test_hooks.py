"""dlviz.hooks: capturing activations and overriding the backward pass of every kind of ReLU."""
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from dlviz.hooks import activations, capture, relu_backward, resolve_layer
from dlviz._model import preserved
from relu_models import make, model_state


@pytest.fixture
def x():
    torch.manual_seed(1)
    return torch.rand(3, 3, 16, 16)


def test_activations_by_name_module_and_list(x):
    model = make("inplace")
    acts = activations(model, x, ["features.0", model.features[2], "classifier.1"])
    assert list(acts) == ["features.0", "features.2", "classifier.1"]
    assert acts["features.0"].shape == (3, 8, 16, 16)
    assert acts["features.2"].shape == (3, 8, 7, 7)
    assert acts["classifier.1"].shape == (3, 16)
    with torch.no_grad():
        conv = model.features[0](x)
        torch.testing.assert_close(acts["features.0"], conv)
        torch.testing.assert_close(acts["features.2"], model.features[2](conv.relu()))
    assert not acts["features.0"].requires_grad


def test_activations_survive_a_following_inplace_relu(x):
    model = make("inplace")  # features.1 is ReLU(inplace=True) and overwrites the conv's output tensor
    conv = activations(model, x, "features.0")["features.0"]
    assert bool((conv < 0).any()), "the captured conv output must keep its negative values"


def test_activations_of_a_single_image_and_grad(x):
    model = make("inplace")
    single = activations(model, x[0], "features.3")["features.3"]
    assert single.shape == (12, 7, 7)
    torch.testing.assert_close(single, activations(model, x, "features.3")["features.3"][0])
    image = x[:1].clone().requires_grad_(True)
    act = activations(model, image, "features.3", grad=True)["features.3"]
    act.sum().backward()
    assert image.grad is not None and image.grad.abs().sum() > 0


def test_capture_repeated_with_graph_and_early_stop(x):
    model = make("inplace")
    seen = []
    model.classifier.register_forward_hook(lambda m, i, o: seen.append(1))
    with preserved(model), capture(model, "features.3", detach=False, stop=True) as cap:
        for i in range(2):
            image = x[i:i + 1].clone().requires_grad_(True)
            out = cap(image)
            (grad,) = torch.autograd.grad(out["features.3"].square().sum(), image)
            assert grad.abs().sum() > 0
    assert seen == [], "stop=True must end the forward pass at the layer"
    assert len(model.classifier._forward_hooks) == 1 and len(model.features[3]._forward_hooks) == 0


def test_reused_module_counts_calls_and_keeps_the_first(x):
    model = make("reused")
    with capture(model, "relu") as cap:
        with torch.no_grad():
            model(x)
    assert cap.calls["relu"] == 4 and cap["relu"].shape == (3, 8, 16, 16)


def test_state_restored_also_when_the_forward_raises():
    model = make("inplace").train()
    model.features[0].eval()  # a mixed state must come back exactly
    before = model_state(model)
    with pytest.raises(RuntimeError):
        activations(model, torch.rand(2, 3, 20, 20), "classifier.3")  # wrong size: the Linear layer fails
    assert model_state(model) == before
    with pytest.raises(KeyError, match="features.3"):
        activations(model, torch.rand(2, 3, 16, 16), "feature.3")
    assert model_state(model) == before
    activations(model, torch.rand(2, 3, 16, 16), "features.3")
    assert model_state(model) == before


def test_unknown_layer_lists_close_matches():
    with pytest.raises(KeyError, match="close matches: features.3"):
        resolve_layer(make("inplace"), "feature.3")


def test_bad_images_are_rejected():
    model = make("inplace")
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        activations(model, torch.rand(1, 3, 16, 16) * 2, "features.0")
    with pytest.raises(ValueError, match="shape"):
        activations(model, torch.rand(16, 16), "features.0")
    with pytest.raises(TypeError):
        activations(model, [[0.5]], "features.0")


RELU_CALLS = {
    "F.relu": lambda t: F.relu(t),
    "F.relu inplace": lambda t: F.relu(t, inplace=True),
    "torch.relu": torch.relu,
    "torch.relu_": torch.relu_,
    "Tensor.relu": lambda t: t.relu(),
    "Tensor.relu_": lambda t: t.relu_(),
    "F.relu_": F.relu_,
    "nn.ReLU": nn.ReLU(),
    "nn.ReLU inplace": nn.ReLU(inplace=True),
}
EXPECTED = {  # for x = [-1, -0.5, 0.5, 1] and a gradient coming down of [1, -1, 1, -1]
    "guided": [0.0, 0.0, 1.0, 0.0],
    "deconvnet": [1.0, 0.0, 1.0, 0.0],
    "identity": [1.0, -1.0, 1.0, -1.0],
}


@pytest.mark.parametrize("call", list(RELU_CALLS))
@pytest.mark.parametrize("rule", list(EXPECTED))
def test_relu_backward_covers_every_form(call, rule):
    x = torch.tensor([-1.0, -0.5, 0.5, 1.0], requires_grad=True)
    with relu_backward(rule) as mode:
        y = RELU_CALLS[call](x * 1)  # x * 1: in-place forms need a non-leaf
    assert mode.calls == 1
    torch.testing.assert_close(y, torch.tensor([0.0, 0.0, 0.5, 1.0]))
    (grad,) = torch.autograd.grad(y, x, torch.tensor([1.0, -1.0, 1.0, -1.0]))
    assert grad.tolist() == EXPECTED[rule]


def test_relu_backward_ends_with_the_block_also_on_error():
    x = torch.tensor([-1.0, 1.0], requires_grad=True)
    with pytest.raises(ZeroDivisionError):
        with relu_backward("deconvnet"):
            1 / 0
    (grad,) = torch.autograd.grad(F.relu(x), x, torch.tensor([1.0, 1.0]))
    assert grad.tolist() == [0.0, 1.0]  # the ordinary ReLU gradient again
    with pytest.raises(ValueError, match="guided"):
        with relu_backward("gided"):
            pass


def test_each_forward_pass_replaces_the_last(x):
    model = make("reused")
    with torch.no_grad(), capture(model, ["c1", "relu"]) as cap:
        model(x[:1])
        first = cap["c1"].clone()
        model(x[1:2])
        assert cap.calls == {"c1": 1, "relu": 4}
        assert not torch.equal(cap["c1"], first)
        torch.testing.assert_close(cap["c1"], model.c1(x[1:2]))


class InPlaceNormalizer(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 2, 3)

    def forward(self, x):
        return self.conv(x.sub_(0.5))


def test_activations_never_hand_the_callers_tensor_to_the_model(x):
    model = InPlaceNormalizer().eval()
    image = x.clone()
    acts = activations(model, image, "conv")["conv"]
    assert torch.equal(image, x)
    with torch.no_grad():
        torch.testing.assert_close(acts, model.conv(x - 0.5))


def test_activations_of_a_float64_model_come_back_in_the_input_dtype(x):
    model = make("inplace")
    expected = activations(model, x, "features.3")["features.3"]
    result = activations(make("inplace").double(), x, "features.3")["features.3"]
    assert result.dtype == torch.float32
    torch.testing.assert_close(result, expected)
    image = x[:1].clone().requires_grad_(True)
    act = activations(make("inplace").double(), image, "features.3", grad=True)["features.3"]
    act.sum().backward()
    assert image.grad is not None and image.grad.dtype == torch.float32 and image.grad.abs().sum() > 0
