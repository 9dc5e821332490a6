"""FGSM, PGD, the L-BFGS attack and fooling images: agreement with torchattacks, budgets, state, errors."""
import pathlib

import pytest
import torch
from torch import nn

from dlviz.models import zoo
from dlviz.adversarial.fooling import FoolingInfo, fooling_images
from dlviz.adversarial.attacks import LBFGSInfo, fgsm, lbfgs_attack, pgd


pytestmark = pytest.mark.usefixtures("one_thread")


def small_cnn(seed=0, scale=1.0):
    """A small classifier with dropout and batch norm (so that eval mode matters), for (N, 1, 12, 12) images."""
    torch.manual_seed(seed)
    model = nn.Sequential(
        nn.Conv2d(1, 6, 3), nn.BatchNorm2d(6), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Dropout(0.3), nn.Linear(6 * 5 * 5, 10),
    )
    with torch.no_grad():
        model[-1].weight.mul_(scale)
        model[1].running_mean.uniform_(-0.1, 0.1)
        model[1].running_var.uniform_(0.5, 1.5)
    return model


@pytest.fixture
def model():
    return small_cnn()


@pytest.fixture
def images():
    torch.manual_seed(1)
    x = torch.rand(16, 1, 12, 12)
    return x, torch.randint(0, 10, (16,))


def state(model):
    return ([m.training for m in model.modules()], [p.requires_grad for p in model.parameters()],
            sum(len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks) for m in model.modules()),
            {k: v.clone() for k, v in model.state_dict().items()})


def assert_same_state(before, after):
    assert before[:3] == after[:3]
    for key in before[3]:
        assert torch.equal(before[3][key], after[3][key]), key


# --- agreement with torchattacks ------------------------------------------------------------------------------
# torchattacks cannot share the course's environment (it pins requests~=2.25, which JupyterLab's server cannot use),
# so its outputs for a fixed model and fixed images are stored in tests/data/ by tools/make_reference_outputs.py
# (torchattacks 3.5.1). The file holds the weights, images and labels too: the comparison is exact, independent of
# how this PyTorch initializes layers. FGSM and PGD only add signs of gradients and clamp, so the images are exact.

REFERENCE = pathlib.Path(__file__).resolve().parents[1] / "data" / "torchattacks_reference.pt"


@pytest.fixture(scope="module")
def reference():
    return torch.load(REFERENCE, weights_only=True)


def reference_model(reference):
    model = small_cnn()
    model.load_state_dict(reference["state_dict"])
    return model


def attack_like_torchattacks(model, reference, case):
    """dlviz's call for one stored torchattacks case (same arguments, same random start)."""
    kwargs, targeted = case["kwargs"], case["targeted"]
    x, labels = reference["x"], reference["targets"] if targeted else reference["labels"]
    if case["attack"] == "FGSM":
        return fgsm(model, x, labels, kwargs["eps"], targeted=targeted)
    if case["seed"] is not None:
        torch.manual_seed(case["seed"])
    return pgd(model, x, labels, kwargs["eps"], kwargs["alpha"], kwargs["steps"],
               random_start=kwargs["random_start"], targeted=targeted)


def test_reference_covers_fgsm_and_pgd_targeted_untargeted_and_random_start(reference):
    cases = reference["cases"]
    assert {(c["attack"], c["targeted"]) for c in cases} == {("FGSM", False), ("FGSM", True), ("PGD", False),
                                                             ("PGD", True)}
    assert any(c["attack"] == "PGD" and c["kwargs"]["random_start"] for c in cases)
    assert reference["made_with"]["torchattacks"] == "3.5.1"
    assert REFERENCE.stat().st_size < 200_000


@pytest.mark.parametrize("name", ["fgsm_eps0", "fgsm_eps1", "fgsm_eps2", "fgsm_eps3", "fgsm_targeted", "pgd_0",
                                  "pgd_1", "pgd_2", "pgd_targeted", "pgd_random_start"])
def test_attacks_identical_to_torchattacks(reference, name):
    (case,) = [c for c in reference["cases"] if c["name"] == name]
    model = reference_model(reference)
    model.train()  # torchattacks switches to eval mode for the attack and back: so must dlviz
    x = reference["x"].clone()
    ours = attack_like_torchattacks(model, reference, case)
    assert model.training
    assert torch.equal(reference["x"], x)
    torch.testing.assert_close(ours, reference["outputs"][name], rtol=0, atol=0)
    # the stored images are real attacks: within budget, in range, and not all equal to the input (except eps=0)
    theirs, eps = reference["outputs"][name], case["kwargs"]["eps"]
    assert float((theirs - x).abs().max()) <= eps + 1e-6 and 0 <= float(theirs.min()) <= float(theirs.max()) <= 1
    assert torch.equal(theirs, x) == (eps == 0)


# --- what the attacks guarantee -------------------------------------------------------------------------------

def test_budget_range_and_effect(model, images):
    x, y = images
    model.eval()
    with torch.no_grad():
        clean = model(x).argmax(1)
    for adv in (fgsm(model, x, clean, 0.2), pgd(model, x, clean, 0.2, 0.02, 20)):
        assert adv.shape == x.shape and adv.dtype == x.dtype
        assert float((adv - x).abs().max()) <= 0.2 + 1e-6
        assert float(adv.min()) >= 0 and float(adv.max()) <= 1
    with torch.no_grad():
        fooled = (model(pgd(model, x, clean, 0.2, 0.02, 20)).argmax(1) != clean).float().mean()
    assert fooled > 0.5
    target = (clean + 1) % 10
    adv = pgd(model, x, target, 0.3, 0.02, 40, random_start=False, targeted=True)
    with torch.no_grad():
        assert (model(adv).argmax(1) == target).float().mean() > 0.5
    assert torch.equal(pgd(model, x, y, 0.1, 0.01, 0, random_start=False), x)  # no steps: the input itself


def test_single_image_and_generator(model, images):
    x, y = images
    single = fgsm(model, x[0], int(y[0]), 0.1)
    assert single.shape == x[0].shape
    assert torch.equal(single, fgsm(model, x[:1], y[:1], 0.1)[0])
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    assert torch.equal(pgd(model, x, y, 0.1, generator=g1), pgd(model, x, y, 0.1, generator=g2))


@pytest.mark.filterwarnings("ignore:lbfgs_attack")
def test_model_and_input_unchanged(model, images):
    x, y = images
    model.train()
    model[0].weight.requires_grad_(False)
    before, x_before = state(model), x.clone()
    fgsm(model, x, y, 0.1)
    pgd(model, x, y, 0.1, 0.01, 3)
    lbfgs_attack(model, x[:2], 3, search_steps=1, max_iter=5)
    fooling_images(model, [1, 2], shape=(1, 12, 12), steps=3, progress=False)
    fooling_images(model, [1, 2], method="evolution", shape=(1, 12, 12), steps=3, progress=False)
    assert_same_state(before, state(model))
    assert torch.equal(x, x_before) and not x.requires_grad
    with pytest.raises(ValueError):
        fgsm(model, x, torch.full((16,), 12), 0.1)  # a class the model does not have: error, state restored
    assert_same_state(before, state(model))


@pytest.mark.parametrize("call,match", [
    (lambda m, x, y: fgsm(m, x, y, -0.1), ">= 0"),
    (lambda m, x, y: pgd(m, x, y, -1 / 255), ">= 0"),
    (lambda m, x, y: pgd(m, x, y, 0.1, alpha=-0.01), "alpha"),
    (lambda m, x, y: fgsm(m, x, y, 8), "8/255"),
    (lambda m, x, y: fgsm(m, x, y, float("nan")), ">= 0"),
    (lambda m, x, y: pgd(m, x, y, 0.1, 0.01, steps=-1), "steps"),
    (lambda m, x, y: fgsm(m, x[0, 0], y, 0.1), "shape"),
    (lambda m, x, y: fgsm(m, x * 255, y, 0.1), r"\[0, 1\]"),
    (lambda m, x, y: fgsm(m, x.numpy(), y, 0.1), "torch.Tensor"),
    (lambda m, x, y: fgsm(m, x, y[:3], 0.1), "one entry per image"),
    (lambda m, x, y: fgsm(m, x, y + 20, 0.1), r"\[0, 9\]"),
    (lambda m, x, y: fgsm(m, x, y.float(), 0.1), "int"),
    (lambda m, x, y: lbfgs_attack(m, x, 1, c=0), "c must be"),
    (lambda m, x, y: fooling_images(m, [1], method="magic", shape=(1, 12, 12)), "method"),
    (lambda m, x, y: fooling_images(m, [1], confidence=1.5, shape=(1, 12, 12)), "confidence"),
    (lambda m, x, y: fooling_images(m, [10], shape=(1, 12, 12)), r"\[0, 9\]"),
    (lambda m, x, y: fooling_images(m, [1], shape=(12, 12)), r"\(C, H, W\)"),
    (lambda m, x, y: fooling_images(m, [], shape=(1, 12, 12)), "empty"),
    (lambda m, x, y: fooling_images(m, [1], steps=-3, shape=(1, 12, 12)), "steps"),
    (lambda m, x, y: fooling_images(m, [1], lr=-0.5, shape=(1, 12, 12)), "lr"),
    (lambda m, x, y: fooling_images(m, [1], method="evolution", halve_every=0, shape=(1, 12, 12)), "halve_every"),
    (lambda m, x, y: fooling_images(m, [1], method="evolution", population=True, shape=(1, 12, 12)), "population"),
    (lambda m, x, y: fooling_images(m, [1], method="evolution", mutation_rate=0, shape=(1, 12, 12)), "mutation"),
])
def test_clear_errors(model, images, call, match):
    x, y = images
    with pytest.raises((ValueError, TypeError), match=match):
        call(model, x, y)


# --- Szegedy's L-BFGS attack ----------------------------------------------------------------------------------

def test_lbfgs_attack_reaches_target_with_small_change():
    model = small_cnn(scale=3.0).eval()
    torch.manual_seed(2)
    x = torch.rand(3, 1, 12, 12)
    with torch.no_grad():
        target = (model(x).argmax(1) + 1) % 10
    adv, info = lbfgs_attack(model, x, target, search_steps=3, max_iter=25, return_info=True)
    assert adv.shape == x.shape and float(adv.min()) >= 0 and float(adv.max()) <= 1
    with torch.no_grad():
        reached = model(adv).argmax(1) == target
    assert isinstance(info, LBFGSInfo) and bool(info.success.all()) and bool(reached.all())
    torch.testing.assert_close(info.l2, (adv - x).flatten(1).norm(dim=1))
    # the search over c buys a smaller change than a single attempt with a small weight on the distortion
    _, eager = lbfgs_attack(model, x, target, c=1e-3, search_steps=1, max_iter=25, return_info=True)
    assert bool(eager.success.all()) and bool((info.l2 <= eager.l2 + 1e-6).all())


# --- fooling images -------------------------------------------------------------------------------------------

def _confidence_after_rounding(model, images, targets):
    with torch.no_grad():
        rounded = torch.round(images * 255) / 255
        return torch.softmax(model(rounded), 1)[torch.arange(len(targets)), targets]


def foolable_mlp():
    """A small MLP whose scores span a wide range, so that every class can be reached with confidence."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(144, 32), nn.ReLU(), nn.Linear(32, 10))
    with torch.no_grad():
        model[3].weight.mul_(30)
    return model.eval()


@pytest.mark.parametrize("method", ["gradient", "evolution"])
def test_fooling_images_reach_confidence_after_8_bit_rounding(method):
    model = foolable_mlp()
    images, info = fooling_images(model, range(10), method=method, shape=(1, 12, 12), confidence=0.95,
                                  generator=torch.Generator().manual_seed(0), progress=False, return_info=True)
    assert isinstance(images, torch.Tensor) and isinstance(info, FoolingInfo) and info.method == method
    assert images.shape == (10, 1, 12, 12) and images.dtype == torch.float32
    assert torch.equal(images, torch.round(images * 255) / 255)  # 8-bit exact
    torch.testing.assert_close(info.confidences, _confidence_after_rounding(model, images, torch.arange(10)))
    assert bool(info.reached.all()) and float(info.confidences.min()) >= 0.95
    assert info.labels.tolist() == list(range(10)) and info.evaluations >= 10
    assert bool((info.iterations >= 0).all()) and bool(torch.isfinite(info.seconds).all())


def test_fooling_images_shape_from_model_and_duplicates():
    model = nn.Sequential(nn.Flatten(), nn.Linear(28 * 28, 10))  # (1, 28, 28) found by probing
    images, info = fooling_images(model, [3, 3, 5], steps=2, progress=False, return_info=True)
    assert images.shape == (3, 1, 28, 28) and info.labels.tolist() == [3, 3, 5]
    images = fooling_images(model, 4, method="evolution", steps=2, population=8, progress=False)
    assert images.shape == (1, 1, 28, 28)


zoo_weights = pytest.mark.skipif(not zoo.weights_path("lenet_mnist").exists(),
                                 reason="the shipped LeNet weights are not there yet")


@zoo_weights
@pytest.mark.parametrize("method", ["gradient", "evolution"])
def test_fooling_the_shipped_lenet(method):
    model = zoo.load("lenet_mnist")
    images, info = fooling_images(model, range(10), method=method, confidence=0.99,
                                  generator=torch.Generator().manual_seed(0), progress=False, return_info=True)
    assert bool(info.reached.all())
    confidences = _confidence_after_rounding(model, images, torch.arange(10))
    assert float(confidences.min()) >= 0.99
    # "well under a minute" each on a CPU (about 0.1 s by gradient, 3 s by evolution for all ten on one core)
    assert float(info.seconds.max()) < 60


def test_adversarial_explorer_draws_a_static_figure(model, images):
    from dlviz.widgets import adversarial_explorer

    x, y = images
    model.train()
    explorer = adversarial_explorer(model, x[:4], y[:4], eps=0.1)
    assert len(explorer.figure.axes) == 8 and "FGSM" in explorer.figure._suptitle.get_text()
    assert "PGD" in explorer.redraw(method="pgd", eps=0.2)._suptitle.get_text()
    assert model.training
    with pytest.raises(ValueError, match="method"):
        adversarial_explorer(model, x[:4], y[:4], method="cw")


# --- any model: dtypes, inference mode, output=, single-output classifiers, in-place models -------------------

class TupleModel(nn.Module):
    """Returns ``(scores, features)``, as GoogLeNet in train mode and many hub models do."""

    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x):
        return self.net(x), x.mean()


class Normalizing(nn.Module):
    """``net((x - 0.5) / 0.25)``, computed in place (writing into what it is given) or not."""

    def __init__(self, net, in_place):
        super().__init__()
        self.net, self.in_place = net, in_place

    def forward(self, x):
        return self.net(x.sub_(0.5).div_(0.25) if self.in_place else (x - 0.5) / 0.25)


@pytest.mark.parametrize("dtype", [torch.float64, torch.bfloat16])
@pytest.mark.filterwarnings("ignore:lbfgs_attack")
def test_attacks_follow_the_models_dtype(model, images, dtype):
    x, y = images
    x, y = x[:4], y[:4]
    typed = small_cnn().to(dtype)
    for adv in (fgsm(typed, x, y, 0.1), pgd(typed, x, y, 0.1, 0.02, 3),
                lbfgs_attack(typed, x[:2], 3, search_steps=1, max_iter=3)):
        assert adv.dtype == x.dtype and adv.device == x.device
        assert float(adv.min()) >= 0 and float(adv.max()) <= 1
    # the budget holds in the caller's precision, also when the model computes in bfloat16
    assert float((fgsm(typed, x, y, 0.1) - x).abs().max()) <= 0.1 + 1e-7
    assert float((pgd(typed, x, y, 0.05, 0.02, 3) - x).abs().max()) <= 0.05 + 1e-7
    if dtype == torch.float64:  # the same attack as on the float32 model, up to float32 rounding
        torch.testing.assert_close(pgd(typed, x, y, 0.1, 0.01, 2, random_start=False),
                                   pgd(model, x, y, 0.1, 0.01, 2, random_start=False), atol=1e-6, rtol=0)


@pytest.mark.filterwarnings("ignore:lbfgs_attack")
def test_attacks_work_inside_inference_mode(model, images):
    x, y = images
    expected = fgsm(model, x, y, 0.1), pgd(model, x, y, 0.1, 0.02, 2, random_start=False)
    with torch.inference_mode():
        inside = x.clone()  # an inference tensor, as the caller's would be
        got = fgsm(model, inside, y, 0.1), pgd(model, inside, y, 0.1, 0.02, 2, random_start=False)
        adv, info = lbfgs_attack(model, inside[:1], 2, search_steps=1, max_iter=3, return_info=True)
    torch.testing.assert_close(got[0], expected[0], rtol=0, atol=0)
    torch.testing.assert_close(got[1], expected[1], rtol=0, atol=0)
    assert adv.shape == (1, 1, 12, 12) and info.l2.shape == (1,)


@pytest.mark.filterwarnings("ignore:lbfgs_attack")
def test_output_picks_the_scores_of_a_tuple_or_dict(model, images):
    x, y = images
    wrapped = TupleModel(model)
    torch.testing.assert_close(fgsm(wrapped, x, y, 0.1, output=0), fgsm(model, x, y, 0.1), rtol=0, atol=0)
    as_dict = TupleModel(model)
    as_dict.forward = lambda inputs: {"logits": as_dict.net(inputs)}
    torch.testing.assert_close(pgd(as_dict, x, y, 0.1, 0.02, 2, random_start=False, output="logits"),
                               pgd(model, x, y, 0.1, 0.02, 2, random_start=False), rtol=0, atol=0)
    torch.testing.assert_close(lbfgs_attack(wrapped, x[:1], 4, search_steps=1, max_iter=3, output=lambda out: out[0]),
                               lbfgs_attack(model, x[:1], 4, search_steps=1, max_iter=3), rtol=0, atol=0)
    for call in (lambda: fgsm(wrapped, x, y, 0.1), lambda: pgd(wrapped, x, y, 0.1),
                 lambda: lbfgs_attack(wrapped, x[:1], 1, max_iter=2)):
        with pytest.raises(TypeError, match="output="):
            call()


def test_single_output_classifier_gets_a_clear_error(images):
    x, _ = images
    torch.manual_seed(0)
    single = nn.Sequential(nn.Flatten(), nn.Linear(144, 1))
    for call in (lambda: fgsm(single, x, 0, 0.1), lambda: pgd(single, x, 0, 0.1),
                 lambda: lbfgs_attack(single, x[:1], 0, max_iter=2),
                 lambda: fooling_images(single, 0, shape=(1, 12, 12), steps=1, progress=False)):
        with pytest.raises(ValueError, match="single score per image"):
            call()


@pytest.mark.filterwarnings("ignore:lbfgs_attack")
def test_a_model_that_works_in_place_changes_nothing(model, images):
    x, y = images
    copy = x.clone()
    in_place, plain = Normalizing(model, in_place=True), Normalizing(model, in_place=False)
    torch.testing.assert_close(fgsm(in_place, x, y, 0.1), fgsm(plain, x, y, 0.1), rtol=0, atol=0)
    torch.testing.assert_close(pgd(in_place, x, y, 0.1, 0.02, 3, random_start=False),
                               pgd(plain, x, y, 0.1, 0.02, 3, random_start=False), rtol=0, atol=0)
    lbfgs_attack(in_place, x[:2], 1, search_steps=1, max_iter=3)
    assert torch.equal(x, copy)


@pytest.mark.parametrize("kwargs,match", [
    ({"max_iter": -1}, "max_iter must be an int >= 1"),
    ({"max_iter": 0}, "max_iter must be an int >= 1"),
    ({"max_iter": 2.5}, "max_iter must be an int >= 1"),
    ({"max_iter": True}, "max_iter must be an int >= 1"),
    ({"search_steps": 0}, "search_steps must be an int >= 1"),
    ({"c": float("inf")}, "c must be"),
    ({"c": -1.0}, "c must be"),
])
def test_lbfgs_attack_checks_its_numbers(model, images, kwargs, match):
    with pytest.raises(ValueError, match=match):
        lbfgs_attack(model, images[0][:1], 1, **kwargs)
