"""dlviz.zoo.imagenet: torchvision classifiers taking [0, 1] pixels; offline, a quick and helpful error."""
import time

import pytest
import torch

torchvision = pytest.importorskip("torchvision")

from dlviz import imagenet as imagenet_module  # noqa: E402
from dlviz.imagenet import WeightsNotFoundError, cached_weights_path, imagenet  # noqa: E402
from dlviz.zoo import imagenet as from_zoo  # noqa: E402

MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)


@pytest.fixture
def hub(tmp_path, monkeypatch):
    """An empty torch hub cache."""
    monkeypatch.setattr(torch.hub, "_hub_dir", str(tmp_path / "hub"))
    return tmp_path / "hub"


def test_random_weights_normalize_inside_and_keep_torchvision_names(hub):
    torch.manual_seed(0)
    model = from_zoo("alexnet", weights=None)
    assert not model.training and model.weights is None
    assert "features.7" in dict(model.named_modules()) and "normalize" in dict(model.named_modules())
    reference = torchvision.models.alexnet().eval()
    reference.load_state_dict(model.state_dict())  # same keys: the normalization's buffers are not saved
    x = torch.rand(2, 3, 224, 224)
    with torch.no_grad():
        torch.testing.assert_close(model(x), reference((x - MEAN) / STD))
    assert len(model.categories) == 1000 and model.categories[0] == "tench"
    assert not list(hub.glob("**/*.pth")), "random weights must not download anything"


def test_preprocess_gives_pixels_in_0_1():
    from PIL import Image

    model = imagenet("resnet18", weights=None)
    image = Image.new("RGB", (320, 240), (255, 128, 0))
    x = model.preprocess(image)
    assert x.shape == (3, 224, 224) and x.min() >= 0 and x.max() <= 1
    torch.testing.assert_close(x[:, 100, 100], torch.tensor([1.0, 128 / 255, 0.0]))
    assert model.preprocess(torch.rand(3, 300, 400)).shape == (3, 224, 224)


def test_cached_weights_are_used_without_a_network(hub, monkeypatch):
    weights = torchvision.models.SqueezeNet1_1_Weights.DEFAULT
    torch.manual_seed(1)
    state = torchvision.models.squeezenet1_1().state_dict()
    path = cached_weights_path(weights)
    path.parent.mkdir(parents=True)
    torch.save(state, path)
    monkeypatch.setattr(imagenet_module, "_download", lambda *a, **k: pytest.fail("must not download"))
    model = imagenet("squeezenet1_1")
    assert model.weights == weights
    torch.testing.assert_close(model.state_dict()["features.0.weight"], state["features.0.weight"])


def test_missing_weights_without_download_say_how_to_get_them(hub):
    with pytest.raises(WeightsNotFoundError) as info:
        imagenet("vgg16", download=False)
    message = str(info.value)
    assert "vgg16-397923af.pth" in message and "https://download.pytorch.org/models/" in message
    assert "weights=None" in message and str(hub / "checkpoints") in message


def test_an_unreachable_network_fails_in_bounded_time(hub, monkeypatch):
    monkeypatch.setattr(imagenet_module, "NETWORK_TIMEOUT_S", 1.0)
    weights = torchvision.models.AlexNet_Weights.DEFAULT
    # a non-routable address: the connection can only time out
    monkeypatch.setattr(type(weights), "url", property(lambda self: "http://10.255.255.1/alexnet-owt-7be5be79.pth"))
    start = time.monotonic()
    with pytest.raises(WeightsNotFoundError, match="download failed"):
        imagenet("alexnet")
    assert time.monotonic() - start < 15
    assert not list(hub.glob("**/*.part")) and not list(hub.glob("**/*.pth"))


def test_unknown_names_and_weights():
    with pytest.raises(KeyError, match="close matches: alexnet"):
        imagenet("alexnett", weights=None)
    with pytest.raises(ValueError, match="IMAGENET1K_V1"):
        imagenet("alexnet", weights="V3")


def test_pickles_with_its_class():
    import io

    model = imagenet("squeezenet1_1", weights=None)
    buffer = io.BytesIO()
    torch.save(model, buffer)
    buffer.seek(0)
    again = torch.load(buffer, weights_only=False)
    assert type(again).__name__ == "NormalizedSqueezeNet"
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(again(x), model(x))
