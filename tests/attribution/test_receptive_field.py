"""receptive_field is exact for any layer stack -- activations flat where the probe sits, dilated and padded
pooling, strided and dilated convolutions, zero weights -- or raises; it never returns an empty box."""
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from dlviz.attribution.receptive_field import receptive_field

pytestmark = pytest.mark.usefixtures("one_thread")


def conv(cin=1, cout=2, k=3, bias=0.0, **kwargs):
    layer = nn.Conv2d(cin, cout, k, **kwargs)
    with torch.no_grad():
        layer.bias.fill_(bias)
    return layer


# activations whose gradient is 0 where the conv's output sits (bias far into a flat part), or never 0
FLAT = {
    "ReLU6 saturated": (nn.ReLU6(), 10.0),
    "Hardtanh saturated": (nn.Hardtanh(), 5.0),
    "GELU far left": (nn.GELU(), -30.0),
    "Hardswish far left": (nn.Hardswish(), -10.0),
    "ReLU off": (nn.ReLU(), -50.0),
    "LeakyReLU": (nn.LeakyReLU(0.1), -5.0),
    "Sigmoid saturated": (nn.Sigmoid(), 200.0),
}


@pytest.mark.parametrize("name", list(FLAT))
def test_activations_flat_where_the_probe_sits(name):
    activation, bias = FLAT[name]
    torch.manual_seed(0)
    model = nn.Sequential(conv(bias=bias), activation, conv(2, 2, 3)).eval()
    # 3x3 then 3x3: unit (r, c) of the second conv sees input rows r..r+4
    assert receptive_field(model, (1, 12, 12), layer="2", positions=[[0, 0], [3, 5], [7, 7]]).tolist() == [
        [0, 0, 5, 5], [3, 5, 8, 10], [7, 7, 12, 12]]


def test_dilated_and_padded_max_pool():
    model = nn.Sequential(conv(padding=1), nn.ReLU6(),
                          nn.MaxPool2d(3, stride=2, padding=1, dilation=2, ceil_mode=True), conv(2, 2, 1)).eval()
    # pool unit o reads conv positions 2o-1, 2o+1, 2o+3 (inside the map); conv position q reads q-1..q+1
    boxes = receptive_field(model, (1, 16, 16), layer="3", positions=[[0, 0], [1, 1], [6, 6], [7, 7], [0, 7]]).tolist()
    assert boxes == [[0, 0, 5, 5], [0, 0, 7, 7], [10, 10, 16, 16], [12, 12, 16, 16], [0, 12, 5, 16]]


def test_dilated_pool_window_is_spread_not_averaged_over_a_smaller_square():
    model = nn.Sequential(nn.MaxPool2d(2, stride=1, dilation=3)).eval()
    assert receptive_field(model, (1, 10, 10), layer="0", positions=[[2, 4]]).tolist() == [[2, 4, 6, 8]]


def test_max_pools_with_indices_and_adaptive():
    pool = nn.Sequential(nn.AdaptiveMaxPool2d(3), nn.Conv2d(1, 1, 1)).eval()
    assert receptive_field(pool, (1, 9, 9), layer="1", positions=[[1, 2]]).tolist() == [[3, 6, 6, 9]]

    class WithIndices(nn.Module):
        def __init__(self):
            super().__init__()
            self.pool, self.conv = nn.MaxPool2d(2, return_indices=True), nn.Conv2d(1, 1, 3)

        def forward(self, x):
            values, _ = self.pool(x)
            return self.conv(values)

    assert receptive_field(WithIndices().eval(), (1, 12, 12), layer="conv", positions=[[1, 1]]).tolist() == [
        [2, 2, 8, 8]]


class RowAndColumnPools(nn.Module):
    """A 1-d max-pool along the width, then a 3-d one along the height: a 3 x 3 window in all."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 1, 1)

    def forward(self, x):
        n, c, h, w = x.shape
        rows = F.max_pool1d(x.reshape(n, c * h, w), 3, 1, 1)
        both = F.max_pool3d(rows.reshape(n, 1, c, h, w), (1, 3, 1), 1, (0, 1, 0))
        return self.conv(both.reshape(n, c, h, w))


def test_1d_and_3d_max_pools():
    assert receptive_field(RowAndColumnPools().eval(), (1, 8, 8), layer="conv",
                           positions=[[4, 4], [0, 7]]).tolist() == [[3, 3, 6, 6], [0, 6, 2, 8]]


def test_strided_and_dilated_convolutions():
    model = nn.Sequential(conv(stride=2), nn.Hardtanh(), conv(2, 2, 3, stride=2), nn.GELU(),
                          conv(2, 2, 3, dilation=2)).eval()
    # conv1 q -> input 2q..2q+2; conv2 r -> conv1 2r..2r+2 -> input 4r..4r+6
    assert receptive_field(model, (1, 32, 32), layer="2", positions=[[0, 0], [2, 3]]).tolist() == [[0, 0, 7, 7],
                                                                                   [8, 12, 15, 19]]
    # conv3 (dilated 2) u -> conv2 u, u+2, u+4 -> input 4u..4u+22
    assert receptive_field(model, (1, 32, 32), layer="4", positions=[[0, 1]]).tolist() == [[0, 4, 23, 27]]


def test_zero_weights_and_a_zero_batch_norm_scale_do_not_cut_connections():
    torch.manual_seed(0)
    model = nn.Sequential(conv(), nn.BatchNorm2d(2), nn.ReLU(), conv(2, 2, 3)).eval()
    with torch.no_grad():
        model[1].weight.zero_()  # torchvision's zero_init_residual does this to the last BN of every block
        model[3].weight.zero_()
    assert receptive_field(model, (1, 10, 10), layer="3", positions=[[2, 2]]).tolist() == [[2, 2, 7, 7]]


def test_residual_branches():
    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b, self.out = conv(1, 1, 3, padding=1), conv(1, 1, 5, padding=2), conv(1, 1, 1)

        def forward(self, x):
            return self.out(F.relu6(self.a(x)) + self.b(x) + x)

    assert receptive_field(Block().eval(), (1, 12, 12), layer="out", positions=[[6, 6]]).tolist() == [[4, 4, 9, 9]]


def test_float64_and_bfloat16_models():
    for dtype in (torch.float64, torch.bfloat16):
        model = nn.Sequential(conv(bias=10.0), nn.ReLU6(), nn.MaxPool2d(2), conv(2, 2, 3)).to(dtype).eval()
        assert receptive_field(model, (1, 16, 16), layer="3").tolist() == [4, 4, 12, 12]


class Constant(nn.Module):
    """A layer whose value does not depend on the image."""

    def __init__(self):
        super().__init__()
        self.conv = conv()

    def forward(self, x):
        return self.conv(torch.zeros_like(x))


def test_never_an_empty_box():
    with pytest.raises(ValueError, match="no input pixel"):
        receptive_field(Constant().eval(), (1, 8, 8), layer="conv")


class TakesMax(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = conv()

    def forward(self, x):
        return self.conv(torch.maximum(x, x.flip(-1)))


def test_operations_it_cannot_follow_exactly_raise():
    with pytest.raises(ValueError, match="cannot be exact.*maximum"):
        receptive_field(TakesMax().eval(), (1, 8, 8), layer="conv")
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit.script is deprecated, but such models exist
        scripted = torch.jit.script(nn.Sequential(conv(), nn.ReLU6()))
    outer = nn.Sequential(scripted, conv(2, 2, 3))
    with pytest.raises(ValueError, match="TorchScript"):
        receptive_field(outer, (1, 8, 8), layer="1")


def test_clear_errors_for_positions_and_shapes():
    model = nn.Sequential(conv()).eval()
    with pytest.raises(ValueError, match=r"6 x 6 map"):
        receptive_field(model, (1, 8, 8), layer="0", positions=[[0, 6]])
    with pytest.raises(ValueError, match="positions"):
        receptive_field(model, (1, 8, 8), layer="0", positions=[[0.5, 1.0]])
    with pytest.raises(ValueError, match="image_shape"):
        receptive_field(model, (1, 8.0, 8), layer="0")


def test_model_state_restored():
    from relu_models import model_state

    model = nn.Sequential(conv(), nn.BatchNorm2d(2), nn.ReLU6(inplace=True), conv(2, 2, 3)).train()
    model[1].eval()
    before = model_state(model)
    receptive_field(model, (1, 10, 10), layer="3")
    assert model_state(model) == before and torch._C._len_torch_function_stack() == 0
