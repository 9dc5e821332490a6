"""Fooling images on any model: dtypes, inference mode, output=, progress bars, and pixels that start at 0 or 1."""
import pytest
import torch
from torch import nn

import dlviz.adversarial.fooling
from dlviz.adversarial.fooling import FoolingInfo, fooling_images

pytestmark = pytest.mark.usefixtures("one_thread")


def foolable_mlp(dtype=torch.float32):
    """A small MLP for (1, 6, 6) images whose scores span a wide range, so that every class can be reached."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(36, 16), nn.ReLU(), nn.Linear(16, 4))
    with torch.no_grad():
        model[3].weight.mul_(30)
    return model.eval().to(dtype)


@pytest.mark.parametrize("dtype", [torch.float64, torch.bfloat16])
@pytest.mark.parametrize("method", ["gradient", "evolution"])
def test_noise_started_images_are_float32_on_the_models_device_for_any_model_dtype(dtype, method):
    model = foolable_mlp(dtype)
    images, info = fooling_images(model, [0, 3], method=method, confidence=0.9, steps=200, population=16,
                                  shape=(1, 6, 6), progress=False, generator=torch.Generator().manual_seed(0),
                                  return_info=True)
    assert images.dtype == torch.float32 and images.shape == (2, 1, 6, 6)
    assert torch.equal(images, torch.round(images * 255) / 255)
    with torch.no_grad():
        expected = torch.softmax(model(images.to(dtype)).float(), 1)[[0, 1], [0, 3]]
    torch.testing.assert_close(info.confidences, expected)
    assert bool(info.reached.all())


def test_works_inside_inference_mode_and_with_a_dict_output():
    model = foolable_mlp()
    expected = fooling_images(model, [1, 2], steps=5, progress=False, shape=(1, 6, 6),
                              generator=torch.Generator().manual_seed(0))

    class Pair(nn.Module):
        def __init__(self):
            super().__init__()
            self.net = model

        def forward(self, x):
            return {"features": x.flatten(1), "logits": self.net(x)}

    with torch.inference_mode():
        got = fooling_images(Pair(), [1, 2], steps=5, progress=False, output="logits", shape=(1, 6, 6),
                             generator=torch.Generator().manual_seed(0))
        evolved = fooling_images(model, [1, 2], method="evolution", steps=3, population=4, progress=False,
                                 shape=(1, 6, 6))
    torch.testing.assert_close(got, expected, rtol=0, atol=0)
    assert evolved.shape == (2, 1, 6, 6)
    with pytest.raises(TypeError, match="output="):
        fooling_images(Pair(), 1, steps=1, progress=False, shape=(1, 6, 6))


def test_returns_images_and_info_one_way():
    model = foolable_mlp()
    images = fooling_images(model, 2, steps=3, progress=False, shape=(1, 6, 6))
    assert isinstance(images, torch.Tensor) and images.shape == (1, 1, 6, 6)
    images, info = fooling_images(model, 2, steps=3, progress=False, shape=(1, 6, 6), return_info=True)
    assert isinstance(info, FoolingInfo) and info.labels.tolist() == [2]
    with pytest.raises(AttributeError):
        info.method = "other"  # frozen
    assert not hasattr(dlviz.adversarial.fooling, "FoolingResult")


@pytest.mark.parametrize("method", ["gradient", "evolution"])
def test_progress_bar_on_by_default(capsys, method):
    model = foolable_mlp()
    fooling_images(model, 1, method=method, steps=2, population=4, shape=(1, 6, 6))
    assert f"fooling ({method})" in capsys.readouterr().err
    fooling_images(model, 1, method=method, steps=2, population=4, shape=(1, 6, 6), progress=False)
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("start,sign", [(0.0, 1.0), (1.0, -1.0)])
def test_gradient_method_moves_pixels_that_start_at_the_bounds(monkeypatch, start, sign):
    """Every pixel starts at 0 (1) and raising the class means raising (lowering) every pixel: all must move."""
    model = nn.Sequential(nn.Flatten(), nn.Linear(36, 2, bias=False))
    with torch.no_grad():
        model[1].weight.copy_(torch.stack([torch.full((36,), sign), torch.zeros(36)]))
    monkeypatch.setattr(dlviz.adversarial.fooling, "_start_noise", lambda task, n: torch.full((n, *task.shape), start))
    images = fooling_images(model, 0, shape=(1, 6, 6), steps=3, lr=0.05, confidence=0.999999, progress=False)
    assert bool((images != start).all()), images
