"""dlviz.models.imagenet.imagenet: torchvision classifiers taking [0, 1] pixels; offline, a quick and helpful error."""
import time

import pytest
import torch

torchvision = pytest.importorskip("torchvision")

from dlviz.course import imagenet as switch  # noqa: E402
from dlviz.models import imagenet as imagenet_module  # noqa: E402
from dlviz.models.imagenet import WeightsNotFoundError, cached_weights_path, imagenet  # noqa: E402
from dlviz.models.imagenet import imagenet as from_zoo  # noqa: E402

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


# --- the course's switch: dlviz.course.imagenet.enabled, fetch, genuine and tools/fetch_weights.py


def test_switch_is_off_without_the_weights_and_names_the_one_command(hub, monkeypatch, capsys):
    monkeypatch.delenv("DLVIZ_IMAGENET", raising=False)
    monkeypatch.setattr(switch, "_download", lambda *a, **k: pytest.fail("auto must not download"))
    assert switch.enabled("googlenet") is False
    message = capsys.readouterr().out
    assert "GoogLeNet's ImageNet weights (50 MB) are not in torch's cache" in message and "skipped" in message
    assert "python tools/fetch_weights.py" in message and "DLVIZ_IMAGENET=download" in message
    assert "AlexNet 233 MB, GoogLeNet 50 MB, VGG-19 548 MB" in message


def test_course_sizes_are_torchvision_s():
    sizes = {name: torchvision.models.get_model_weights(name).DEFAULT.meta["_file_size"]
             for name in switch.COURSE_MODELS}
    assert {name: round(size) for name, size in sizes.items()} == {"alexnet": 233, "googlenet": 50, "vgg19": 548}
    # the file vgg19_features("imagenet") reads is the one the switch looks for
    from dlviz.models.vgg import _vgg19_weights_file

    assert _vgg19_weights_file() == cached_weights_path(torchvision.models.get_model_weights("vgg19").DEFAULT)


def test_switch_is_on_when_the_weights_are_cached_and_off_when_asked(hub, monkeypatch, capsys):
    path = cached_weights_path(torchvision.models.SqueezeNet1_1_Weights.DEFAULT)
    path.parent.mkdir(parents=True)
    torch.save(torchvision.models.squeezenet1_1().state_dict(), path)
    monkeypatch.delenv("DLVIZ_IMAGENET", raising=False)
    assert switch.enabled("squeezenet1_1") is True
    assert f"ImageNet weights {path.name}" in capsys.readouterr().out
    assert imagenet("squeezenet1_1").weights is not None            # what the sections do next, offline
    monkeypatch.setenv("DLVIZ_IMAGENET", "off")
    assert switch.enabled("squeezenet1_1") is False
    assert "DLVIZ_IMAGENET=off" in capsys.readouterr().out
    assert switch.enabled("squeezenet1_1", mode="auto") is True   # mode= overrides the variable
    monkeypatch.setenv("DLVIZ_IMAGENET", "yes")
    with pytest.raises(ValueError, match="auto, download, off"):
        switch.enabled("squeezenet1_1")


def test_switch_downloads_when_asked(hub, monkeypatch, capsys):
    calls = []

    def fake_download(url, target, progress):
        calls.append(url)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(b"weights")

    monkeypatch.setattr(switch, "_download", fake_download)
    monkeypatch.setenv("DLVIZ_IMAGENET", "download")
    assert switch.enabled("alexnet") is True
    assert calls == ["https://download.pytorch.org/models/alexnet-owt-7be5be79.pth"]
    assert "found in torch's cache" in capsys.readouterr().out

    def offline(url, target, progress):
        raise switch.urllib.error.URLError("Name or service not known")

    monkeypatch.setattr(switch, "_download", offline)
    assert switch.enabled("googlenet") is False
    message = capsys.readouterr().out
    assert "the download failed: Name or service not known" in message and "skipped" in message


def test_fetch_gets_what_is_missing_and_stops_at_the_first_failure(hub, monkeypatch, capsys):
    fetched = []

    def fake_download(url, target, progress):
        if "vgg19" in url:
            raise switch.urllib.error.URLError("Name or service not known")
        fetched.append(target.name)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(b"weights")

    monkeypatch.setattr(switch, "_download", fake_download)
    assert [p.name for p in switch.fetch(["alexnet", "googlenet"])] == [
        "alexnet-owt-7be5be79.pth", "googlenet-1378be20.pth"]
    printed = capsys.readouterr().out
    assert "alexnet" in printed and "233 MB" in printed and "googlenet" in printed and "50 MB" in printed
    switch.fetch(["alexnet"])
    assert fetched == ["alexnet-owt-7be5be79.pth", "googlenet-1378be20.pth"]    # cached: not fetched again
    assert "already in" in capsys.readouterr().out
    assert switch.main(["--no-progress"]) == 1                         # alexnet, googlenet cached; vgg19 fails
    captured = capsys.readouterr()
    assert "548 MB" in captured.out and "could not download" in captured.err and "vgg19-dcbb9e9d.pth" in captured.err


@pytest.mark.slow
def test_fetch_command_fails_quickly_offline(tmp_path):
    import os
    import pathlib
    import subprocess
    import sys

    script = pathlib.Path(__file__).resolve().parents[2] / "tools" / "fetch_weights.py"
    # every request goes through a proxy that refuses connections: offline, even on a machine with a network
    env = {k: v for k, v in os.environ.items() if k.lower() not in ("no_proxy", "http_proxy", "https_proxy")}
    env.update(TORCH_HOME=str(tmp_path), http_proxy="http://127.0.0.1:9", https_proxy="http://127.0.0.1:9")
    start = time.monotonic()
    child = subprocess.run([sys.executable, str(script), "alexnet"], env=env, capture_output=True, text=True,
                           timeout=120)
    assert child.returncode == 1, child.stderr
    assert "alexnet-owt-7be5be79.pth" in child.stdout and "233 MB" in child.stdout
    assert "could not download" in child.stderr and "Traceback" not in child.stderr
    assert not list(tmp_path.glob("**/*.pth")) and time.monotonic() - start < 60   # the import of torch included


def test_genuine_checks_the_hash_in_the_file_name(hub, monkeypatch):
    import hashlib

    content = b"torchvision's weights"
    prefix = hashlib.sha256(content).hexdigest()[:8]
    path = hub / "checkpoints" / f"model-{prefix}.pth"
    path.parent.mkdir(parents=True)
    monkeypatch.setattr(switch, "cached_weights_path", lambda weights: path)
    assert not switch.genuine("alexnet")                 # missing
    path.write_bytes(content)
    assert switch.genuine("alexnet")
    path.write_bytes(b"stand-in weights of the right shapes")
    assert not switch.genuine("alexnet")
