"""The input shape of a model, for the tools that start from noise: checked when given, right when probed."""
import numpy as np
import pytest
import torch
from torch import nn

from dlviz._model import input_shape

pytestmark = pytest.mark.usefixtures("one_thread")


class Broadcasting(nn.Module):
    """``(x - mean) / std`` with a 3-channel mean and no channel check: a grey image becomes three channels."""

    def __init__(self):
        super().__init__()
        self.register_buffer("mean", torch.tensor([0.5, 0.4, 0.3]).view(1, 3, 1, 1))

    def forward(self, x):
        return (x - self.mean) / 0.25


def cifar_cnn(classes=10):
    torch.manual_seed(0)
    return nn.Sequential(Broadcasting(), nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(4, classes))


@pytest.mark.parametrize("shape", [(1, 28.0, 28), (1.0, 28, 28), (1, 28, True), (1, 0, 28), (1, -2, 28),
                                   (1, 28), (1, 28, 28, 1), 28, "1x28x28", (1, "28", 28)])
def test_bad_shapes_get_a_clear_error(shape):
    with pytest.raises(ValueError, match=r"shape must be \(C, H, W\)"):
        input_shape(nn.Identity(), shape)


def test_float_entries_are_named():
    with pytest.raises(ValueError, match=r"H is 28\.0 \(float\)"):
        input_shape(nn.Identity(), (1, 28.0, 28))


def test_integer_like_entries_are_accepted():
    assert input_shape(nn.Identity(), (np.int64(3), torch.tensor(8), 8)) == (3, 8, 8)
    assert input_shape(nn.Identity(), torch.Size([1, 4, 5])) == (1, 4, 5)


def test_a_declared_shape_is_checked_too():
    model = nn.Identity()
    model.input_shape = (3, 224.0, 224)
    with pytest.raises(ValueError, match="H is 224.0"):
        input_shape(model)


def test_probing_ignores_channels_that_only_work_by_broadcasting():
    model = cifar_cnn()
    with torch.no_grad():
        model(torch.zeros(1, 1, 28, 28))  # runs: the normalization broadcasts one channel to three
    assert input_shape(model) == (3, 32, 32)


def test_probing_a_model_of_other_channels_uses_its_first_convolution():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(4, 2, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(2, 3))
    assert input_shape(model) == (4, 28, 28)


def test_probing_follows_the_models_dtype():
    torch.manual_seed(0)
    assert input_shape(nn.Sequential(nn.Flatten(), nn.Linear(784, 10)).double()) == (1, 28, 28)


def test_dlvizs_own_imagenet_models_take_their_crop_size():
    from dlviz.models.imagenet import imagenet

    assert input_shape(imagenet("resnet18", weights=None)) == (3, 224, 224)


def test_a_normalized_torchvision_imagenet_model_gets_imagenet_images():
    import torchvision

    from dlviz.models.normalize import normalized

    torch.manual_seed(0)
    model = normalized(torchvision.models.resnet18(), (0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    # it would run on 1-channel images without the wrapper's channel check, and on 32x32 ones: 1000 classes say
    # ImageNet
    assert input_shape(model) == (3, 224, 224)
    assert input_shape(cifar_cnn(classes=1000)) == (3, 224, 224)


def test_feature_extractors_need_not_return_scores():
    torch.manual_seed(0)
    extractor = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU())
    assert input_shape(extractor, scores=False) == (3, 32, 32)
    with pytest.raises(ValueError, match="could not tell"):
        input_shape(extractor)


def test_a_tuple_output_needs_output():
    class Pair(nn.Module):
        def __init__(self):
            super().__init__()
            self.net = nn.Sequential(nn.Flatten(), nn.Linear(784, 10))

        def forward(self, x):
            return self.net(x), x

    assert input_shape(Pair(), output=0) == (1, 28, 28)
    with pytest.raises(TypeError, match="output="):
        input_shape(Pair())
