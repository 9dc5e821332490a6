"""Every dlviz tool on models that are not the course's: an output object instead of a tensor, a float64 model, a
model that normalizes its input in place, a call inside ``torch.inference_mode()``. One table of calls, so that a
new tool cannot forget one of these cases."""
import pytest
import torch
from torch import nn

import dlviz

pytestmark = pytest.mark.usefixtures("one_thread")


class Net(nn.Module):
    """A small CNN of (N, 3, 16, 16) images; ``returns`` picks a tensor, a tuple or a dict as its forward output, and
    ``in_place`` makes it normalize its input in place (as some users' preprocessing layers do)."""

    def __init__(self, returns: str = "tensor", in_place: bool = False):
        super().__init__()
        self.returns, self.in_place = returns, in_place
        self.features = nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                                      nn.Conv2d(6, 8, 3, padding=1), nn.ReLU())
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 4))

    def forward(self, x):
        if self.in_place:
            x.sub_(0.5).div_(0.25)
        scores = self.head(self.features(x))
        if self.returns == "tuple":
            return scores, scores.detach() * 0
        if self.returns == "dict":
            return {"logits": scores}
        return scores


def net(**kwargs) -> Net:
    torch.manual_seed(0)
    return Net(**kwargs).eval()


G = torch.Generator
# name -> call(model, x, **output_kwargs); every call returns images/attributions shaped like x (or a record)
CALLS = {
    "saliency": lambda m, x, **o: dlviz.saliency(m, x, 1, **o),
    "guided_backprop": lambda m, x, **o: dlviz.guided_backprop(m, x, 1, **o),
    "deconvnet": lambda m, x, **o: dlviz.deconvnet(m, x, 1, **o),
    "integrated_gradients": lambda m, x, **o: dlviz.integrated_gradients(m, x, 1, steps=8, progress=False, **o),
    "smoothgrad": lambda m, x, **o: dlviz.smoothgrad(m, x, 1, samples=3, generator=G().manual_seed(0),
                                                     progress=False, **o),
    "grad_cam": lambda m, x, **o: dlviz.grad_cam(m, x, 1, layer="features.3", **o),
    "occlusion": lambda m, x, **o: dlviz.occlusion(m, x, 1, window=8, progress=False, **o),
    "fgsm": lambda m, x, **o: dlviz.fgsm(m, x, 1, 4 / 255, **o),
    "pgd": lambda m, x, **o: dlviz.pgd(m, x, 1, 4 / 255, steps=2, generator=G().manual_seed(0), **o),
    "lbfgs_attack": lambda m, x, **o: dlviz.lbfgs_attack(m, x, 2, search_steps=1, max_iter=3, **o),
}
NEEDS_NO_OUTPUT = {  # tools that read a layer, not the class scores
    "deepdream": lambda m, x: dlviz.deepdream(m, x, layer="features.1", octaves=1, steps=2, jitter=0, progress=False),
    "activations": lambda m, x: dlviz.activations(m, x, "features.3")["features.3"],
    "deconvnet_layer": lambda m, x: dlviz.deconvnet(m, x, layer="features.3", channel=2),
}


@pytest.fixture
def x():
    return torch.rand(2, 3, 16, 16, generator=G().manual_seed(1))


@pytest.mark.parametrize("name", CALLS)
def test_a_model_returning_a_tuple_or_dict_needs_and_accepts_output(name, x):
    call = CALLS[name]
    expected = call(net(), x)
    with pytest.raises(TypeError, match="output="):
        call(net(returns="tuple"), x)
    for returns, output in (("tuple", 0), ("dict", "logits"), ("dict", lambda out: out["logits"])):
        assert torch.allclose(call(net(returns=returns), x, output=output), expected, atol=1e-6), (returns, output)


@pytest.mark.parametrize("name", [*CALLS, *NEEDS_NO_OUTPUT])
def test_a_model_that_normalizes_in_place_never_changes_the_callers_images(name, x):
    call = CALLS.get(name) or NEEDS_NO_OUTPUT[name]
    before = x.clone()
    call(net(in_place=True), x)
    assert torch.equal(x, before)


@pytest.mark.parametrize("name", [*CALLS, *NEEDS_NO_OUTPUT])
def test_a_float64_model_gets_float64_inputs_and_results_come_back_in_the_callers_dtype(name, x):
    call = CALLS.get(name) or NEEDS_NO_OUTPUT[name]
    model = net().double()
    result = call(model, x)
    assert result.dtype == torch.float32 and result.device == x.device
    assert next(model.parameters()).dtype == torch.float64
    assert call(model, x.double()).dtype == torch.float64


@pytest.mark.parametrize("name", [*CALLS, *NEEDS_NO_OUTPUT])
def test_works_inside_inference_mode_and_no_grad(name, x):
    call = CALLS.get(name) or NEEDS_NO_OUTPUT[name]
    model = net()
    expected = call(model, x)
    with torch.inference_mode():
        images = x.clone()                      # an inference tensor, as data loaded in inference mode would be
        assert torch.allclose(call(model, images), expected, atol=1e-6)
    with torch.no_grad():
        assert torch.allclose(call(model, x), expected, atol=1e-6)


@pytest.mark.parametrize("name", [*CALLS, *NEEDS_NO_OUTPUT])
def test_the_model_is_left_as_it_was(name, x):
    call = CALLS.get(name) or NEEDS_NO_OUTPUT[name]
    model = net().train()
    model.features[0].eval()
    model.head[2].weight.requires_grad_(False)
    hooks = (len(model._forward_hooks), len(model._forward_pre_hooks))
    state = {k: v.clone() for k, v in model.state_dict().items()}
    call(model, x)
    assert model.training and not model.features[0].training and model.features[1].training
    assert not model.head[2].weight.requires_grad and model.head[2].bias.requires_grad
    assert (len(model._forward_hooks), len(model._forward_pre_hooks)) == hooks
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())
    assert all(p.grad is None for p in model.parameters())


@pytest.mark.parametrize("name", ["fgsm", "pgd", "lbfgs_attack", "occlusion"])
def test_a_single_output_classifier_gets_a_clear_error_where_probabilities_are_needed(name, x):
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 16 * 16, 1))
    call = {"fgsm": lambda: dlviz.fgsm(model, x, 0, 0.1), "pgd": lambda: dlviz.pgd(model, x, 0, 0.1, steps=1),
            "lbfgs_attack": lambda: dlviz.lbfgs_attack(model, x, 0, max_iter=2, search_steps=1),
            "occlusion": lambda: dlviz.occlusion(model, x, 0, window=8, progress=False)}[name]
    with pytest.raises(ValueError, match="single score per image"):
        call()
