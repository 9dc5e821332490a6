"""The figures of notebook 08: filter mosaics, heatmap overlays, attribution grids and the feature explorer."""
import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch

from dlviz.models import zoo
from dlviz.plot import attribution_grid, attribution_map, filter_mosaic, heatmap_overlay
from dlviz.widgets import feature_explorer
from relu_models import model_state


@pytest.fixture(scope="module")
def lenet():
    torch.manual_seed(0)
    return zoo.LeNet().eval()


def test_attribution_map_reduces_channels():
    a = torch.tensor([[[1.0, -2.0]], [[-3.0, 1.0]]])  # (2, 1, 2)
    assert attribution_map(a).tolist() == [[4.0, 3.0]]
    assert attribution_map(a, signed=True).tolist() == [[-2.0, -1.0]]
    with pytest.raises(ValueError, match="shape"):
        attribution_map(torch.zeros(1, 2, 3, 4))


def test_filter_mosaic_takes_a_layer_or_weights(lenet):
    fig = filter_mosaic(lenet.features[0], title="conv1")
    assert len([ax for ax in fig.axes if ax.images]) == 20
    plt.close(fig)
    fig = filter_mosaic(torch.randn(6, 3, 5, 5), ncols=3)
    assert fig.axes[0].images[0].get_array().shape == (5, 5, 3)
    plt.close(fig)
    with pytest.raises(ValueError, match="conv weight"):
        filter_mosaic(torch.randn(4, 5))


def test_overlay_and_grid():
    images = torch.rand(3, 1, 12, 12)
    ax = heatmap_overlay(images[0], torch.randn(1, 12, 12), signed=True, title="t")
    assert len(ax.images) == 2
    plt.close(ax.figure)
    maps = {"a": torch.rand(3, 1, 12, 12), "b": torch.randn(3, 1, 12, 12)}
    fig = attribution_grid(images, maps, labels=["x", "y", "z"], signed={"b"})
    assert len(fig.axes) == 9 and fig.axes[1].get_title() == "a"
    assert fig.axes[2].images[0].get_cmap().name == "RdBu_r"
    plt.close(fig)
    with pytest.raises(ValueError, match="entries"):
        attribution_grid(images, {"a": torch.rand(2, 1, 12, 12)})


def test_feature_explorer_draws_without_a_front_end_and_leaves_the_model(lenet):
    before = model_state(lenet)
    images = torch.rand(4, 1, 28, 28)
    explorer = feature_explorer(lenet, images, ["features.0", "features.3"], labels=list("abcd"))
    assert explorer.figure is not None and len(explorer.figure.axes) == 4
    figure = explorer.redraw(image=2, layer="features.3", channel=55)  # wraps around the 50 channels
    assert "ch 5/50" in figure.axes[1].get_title()
    assert np.isfinite(figure.axes[1].images[0].get_array()).all()
    assert model_state(lenet) == before
    with pytest.raises(ValueError, match="feature maps"):
        feature_explorer(lenet, images, ["classifier.0"])
