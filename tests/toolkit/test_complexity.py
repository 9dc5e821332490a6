"""dlviz.complexity: multiply-adds and parameters checked against counts made by hand."""
import pytest
import torch
from torch import nn

from dlviz.models import zoo
from dlviz.complexity import count_parameters, multiply_adds


def test_lenet_matches_the_hand_count():
    # conv1 20x24x24 outputs x 25, conv2 50x8x8 x (20x25), fc1 800x256, fc2 256x10
    total, info = multiply_adds(zoo.LeNet(), torch.rand(3, 1, 28, 28), return_info=True)
    assert list(info.by_layer.values()) == [288_000, 1_600_000, 204_800, 2_560]
    assert total == 2_095_360 and info.examples == 3
    assert count_parameters(zoo.LeNet()) == 520 + 25_050 + 205_056 + 2_570


def test_grouped_strided_dilated_and_transposed_convolutions():
    grouped = nn.Conv2d(96, 256, 5, padding=2, groups=2)          # AlexNet's conv2 on a 27x27 map
    assert multiply_adds(grouped, torch.rand(1, 96, 27, 27)) == 256 * 27 * 27 * 48 * 25
    strided = nn.Conv2d(3, 96, 11, stride=4)                      # 227 -> 55
    assert multiply_adds(strided, torch.rand(2, 3, 227, 227)) == 96 * 55 * 55 * 3 * 121
    dilated = nn.Conv2d(2, 4, 3, dilation=2)                      # 10 -> 6, still 3x3 weights per channel
    assert multiply_adds(dilated, torch.rand(1, 2, 10, 10)) == 4 * 6 * 6 * 2 * 9
    up = nn.ConvTranspose2d(8, 4, 2, stride=2)                    # every input value meets 4 x 2 x 2 weights
    assert multiply_adds(up, torch.rand(2, 8, 5, 5)) == 8 * 5 * 5 * 4 * 4
    one_d = nn.Conv1d(4, 6, 3)
    assert multiply_adds(one_d, torch.rand(2, 4, 10)) == 6 * 8 * 4 * 3


def test_a_layer_used_twice_counts_twice_and_biases_do_not_count():
    class Twice(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(5, 5)

        def forward(self, x):
            return self.fc(torch.relu(self.fc(x)))

    total, info = multiply_adds(Twice(), torch.rand(7, 5), return_info=True)
    assert total == 2 * 25 and info.by_layer == {"fc": 50}
    assert multiply_adds(nn.Linear(5, 5, bias=False), torch.rand(1, 5)) == 25
    assert count_parameters(Twice()) == 30


def test_the_1x1_reduction_saving():
    # a 5x5 branch on 192 channels of 7x7, with and without a 1x1 reduction to 16 channels
    direct = nn.Conv2d(192, 32, 5, padding=2)
    reduced = nn.Sequential(nn.Conv2d(192, 16, 1), nn.ReLU(), nn.Conv2d(16, 32, 5, padding=2))
    x = torch.rand(1, 192, 7, 7)
    assert multiply_adds(direct, x) == 49 * 32 * 192 * 25
    assert multiply_adds(reduced, x) == 49 * (16 * 192 + 32 * 16 * 25)


def test_model_input_and_hooks_unchanged_also_when_it_raises():
    net = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Dropout(), nn.Flatten(), nn.Linear(2 * 6 * 6, 3)).train()
    net[0].weight.requires_grad_(False)
    marker = net[0].register_forward_hook(lambda *args: None)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    x = torch.rand(2, 1, 8, 8)
    x_before = x.clone()
    multiply_adds(net, x)
    assert torch.equal(x, x_before)
    assert net.training and net[1].training and not net[0].weight.requires_grad and net[3].weight.requires_grad
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())
    assert list(net[0]._forward_hooks) == [marker.id] and not net[3]._forward_hooks
    with pytest.raises(RuntimeError):
        multiply_adds(net, torch.rand(2, 1, 9, 9))                # wrong size for the linear layer
    assert list(net[0]._forward_hooks) == [marker.id] and not net[3]._forward_hooks
    assert net.training and not net[0].weight.requires_grad and net[3].weight.requires_grad


def test_bad_input_gets_clear_errors():
    net = nn.Linear(3, 2)
    with pytest.raises(TypeError, match="torch.Tensor"):
        multiply_adds(net, [[1.0, 2.0, 3.0]])
    with pytest.raises(TypeError, match="floating-point"):
        multiply_adds(net, torch.ones(1, 3, dtype=torch.long))
    with pytest.raises(ValueError, match="NaN"):
        multiply_adds(net, torch.full((1, 3), float("nan")))
    with pytest.raises(ValueError, match="shape"):
        multiply_adds(net, torch.ones(3))
    with pytest.raises(ValueError, match="empty"):
        multiply_adds(net, torch.ones(0, 3))
    with pytest.raises(TypeError, match="nn.Module"):
        count_parameters("lenet")


def test_shared_and_frozen_parameters():
    shared = nn.Linear(4, 4)
    net = nn.Sequential(shared, nn.ReLU(), shared)
    assert count_parameters(net) == 20
    shared.bias.requires_grad_(False)
    assert count_parameters(net, trainable_only=True) == 16
