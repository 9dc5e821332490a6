"""dlviz.normalized: a classifier of [0, 1] images for a model trained on normalized inputs, with the model's own
layer names, and the channel check that keeps normalization from broadcasting a grey image into colours."""
import pytest
import torch
import torchvision
from torch import nn

import dlviz
from dlviz._model import preserved
from dlviz.models.normalize import Normalized, normalized

pytestmark = pytest.mark.usefixtures("one_thread")
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


@pytest.fixture(scope="module")
def resnet():
    torch.manual_seed(0)
    return torchvision.models.resnet18(num_classes=5).eval()


def test_computes_the_model_on_normalized_pixels(resnet):
    x = torch.rand(2, 3, 32, 32)
    expected = resnet((x - torch.tensor(MEAN).view(1, 3, 1, 1)) / torch.tensor(STD).view(1, 3, 1, 1))
    assert torch.allclose(normalized(resnet, MEAN, STD)(x), expected, atol=1e-6)


def test_layer_and_parameter_names_are_the_models_own(resnet):
    net = normalized(resnet, MEAN, STD)
    names = dict(net.named_modules())
    assert names["layer2.0.conv1"] is resnet.layer2[0].conv1
    assert not any(name.startswith(("1.", "model.")) for name in names)
    assert [n for n, _ in net.named_parameters()] == [n for n, _ in resnet.named_parameters()]
    assert list(net.state_dict()) == list(resnet.state_dict())          # checkpoints load unchanged
    net.load_state_dict(resnet.state_dict())
    assert dlviz.hooks.resolve_layer(net, "layer4")[1] is resnet.layer4


def test_shares_parameters_and_modes_are_restored_per_module(resnet):
    net = normalized(resnet, MEAN, STD)
    assert all(a is b for a, b in zip(net.parameters(), resnet.parameters()))
    resnet.train()
    resnet.bn1.eval()                                                   # a module the user froze
    with preserved(net):
        assert not resnet.training and not resnet.layer1[0].bn1.training
    assert resnet.training and not resnet.bn1.training
    resnet.eval()


def test_layer_tools_work_through_the_wrapper(resnet):
    net = normalized(resnet, MEAN, STD)
    x = torch.rand(1, 3, 32, 32)
    acts = dlviz.activations(net, x, "layer2.0.conv1")
    assert acts["layer2.0.conv1"].shape[1] == 128


def test_rejects_images_whose_channels_only_broadcast(resnet):
    with pytest.raises(ValueError, match=r"3 channels.*\(2, 1, 32, 32\)"):
        normalized(resnet, MEAN, STD)(torch.rand(2, 1, 32, 32))


def test_rejects_bad_statistics(resnet):
    with pytest.raises(ValueError, match="equal length"):
        normalized(resnet, MEAN, (0.2, 0.2))
    with pytest.raises(ValueError, match="positive"):
        normalized(resnet, MEAN, (0.2, 0.0, 0.2))
    with pytest.raises(TypeError, match="nn.Module"):
        normalized(lambda x: x, MEAN, STD)


def test_follows_the_models_dtype():
    net = normalized(nn.Sequential(nn.Flatten(), nn.Linear(12, 2)), 0.5, 0.25).double()
    assert net(torch.rand(1, 3, 2, 2, dtype=torch.float64)).dtype == torch.float64
    assert isinstance(net, Normalized) and net.mean.dtype == torch.float64


def test_course_and_imagenet_normalization_check_channels():
    from dlviz.models.zoo import Normalize
    with pytest.raises(ValueError, match="3 channels"):
        Normalize(MEAN, STD)(torch.rand(1, 1, 8, 8))
    assert Normalize(0.5, 0.5)(torch.ones(1, 1, 2, 2)).eq(1).all()      # one channel: nothing to broadcast wrongly
    model = dlviz.models.imagenet.imagenet("resnet18", weights=None)
    assert model.input_shape == (3, 224, 224)
    with pytest.raises(ValueError, match="3 channels"):
        model(torch.rand(1, 1, 64, 64))


def test_range_error_names_the_wrapper_and_the_real_extremes():
    model = nn.Sequential(nn.Flatten(), nn.Linear(4, 2))
    x = torch.full((1, 1, 2, 2), 0.5)
    x[0, 0, 0, 0] = 1.0000001
    with pytest.raises(ValueError, match=r"1\.0000001.*dlviz\.normalized"):
        dlviz.saliency(model, x, 0)
    with pytest.raises(ValueError, match=r"-2\.1"):
        dlviz.saliency(model, x - 2.6, 0)
