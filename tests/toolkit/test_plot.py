import io

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from PIL import Image

from dlviz import plot


def test_to_numpy_image_shapes():
    assert plot.to_numpy_image(torch.rand(1, 5, 6)).shape == (5, 6)
    assert plot.to_numpy_image(torch.rand(3, 5, 6)).shape == (5, 6, 3)
    assert plot.to_numpy_image(np.zeros((5, 6))).shape == (5, 6)
    assert plot.to_numpy_image(Image.new("L", (6, 5))).shape == (5, 6, 3)


@pytest.mark.parametrize("shape", [(2, 5, 6), (4, 5, 6), (1, 1, 5, 6), (5,)])
def test_to_numpy_image_rejects_other_shapes(shape):
    with pytest.raises(ValueError, match="expected an image"):
        plot.to_numpy_image(torch.rand(*shape))


def test_image_grid_layout_and_labels():
    images = torch.rand(13, 1, 28, 28)
    fig = plot.image_grid(images, labels=list(range(13)), ncols=5)
    assert len(fig.axes) == 15  # 3 rows of 5
    shown = [ax for ax in fig.axes if ax.images]
    assert len(shown) == 13
    assert [ax.get_title() for ax in shown][:3] == ["0", "1", "2"]
    np.testing.assert_allclose(shown[4].images[0].get_array(), images[4, 0].numpy())
    plt.close(fig)


def test_image_grid_checks_label_count():
    with pytest.raises(ValueError, match="3 images but 2 labels"):
        plot.image_grid(torch.rand(3, 1, 4, 4), labels=["a", "b"])
    with pytest.raises(ValueError, match="at least one"):
        plot.image_grid([])


def test_image_grid_of_40_digits_is_small():
    """A notebook must stay well under 3 MB: a 40-image grid as an inline PNG takes under 150 kB even for incompressible
    noise (real digits: far less)."""
    fig = plot.image_grid(torch.rand(40, 1, 28, 28), labels=list(range(40)))
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    assert buffer.tell() < 150_000


def test_image_grid_refuses_values_it_would_clip():
    with pytest.raises(ValueError, match=r"outside the displayed range.*vmin=None"):
        plot.image_grid(torch.full((2, 1, 4, 4), 255.0))
    with pytest.raises(ValueError, match="image 1"):
        plot.image_grid([torch.zeros(1, 4, 4), -torch.ones(1, 4, 4)])
    fig = plot.image_grid(torch.full((2, 1, 4, 4), 255.0), vmin=None, vmax=None)  # own range: fine
    plt.close(fig)
