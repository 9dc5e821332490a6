"""dlviz.course.augment: batched random affine + elastic distortions."""
import functools
import math

import pytest
import torch

from dlviz.course.augment import collate, distort, gaussian_blur


def _images(n=6, c=1, size=20, seed=0):
    return torch.rand(n, c, size, size, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("shape", [(5, 1, 28, 28), (3, 3, 16, 24), (1, 28, 28)])
def test_shape_dtype_and_range(shape):
    x = torch.rand(*shape)
    out = distort(x, generator=torch.Generator().manual_seed(1))
    assert out.shape == x.shape and out.dtype == x.dtype
    assert float(out.min()) >= 0 and float(out.max()) <= 1
    assert not torch.equal(out, x)


def test_float64_keeps_dtype():
    x = _images().double()
    out = distort(x, generator=torch.Generator().manual_seed(0))
    assert out.dtype == torch.float64 and 0 <= float(out.min()) and float(out.max()) <= 1


def test_same_generator_state_same_result_and_images_differ():
    x = _images()
    a = distort(x, generator=torch.Generator().manual_seed(3))
    b = distort(x, generator=torch.Generator().manual_seed(3))
    c = distort(x, generator=torch.Generator().manual_seed(4))
    assert torch.equal(a, b) and not torch.equal(a, c)
    same = distort(x[:1].expand(4, -1, -1, -1).contiguous(), generator=torch.Generator().manual_seed(3))
    assert not torch.equal(same[0], same[1]), "every image of the batch gets its own distortion"


def test_global_generator_follows_the_seed():
    x = _images()
    torch.manual_seed(7)
    a = distort(x)
    torch.manual_seed(7)
    assert torch.equal(a, distort(x))


def test_zero_strength_is_an_exact_copy_and_draws_nothing():
    x = _images()
    g = torch.Generator().manual_seed(0)
    state = g.get_state()
    out = distort(x, degrees=0, shift=0, zoom=0, alpha=0, generator=g)
    assert torch.equal(out, x) and out.data_ptr() != x.data_ptr()
    assert torch.equal(g.get_state(), state)


def test_shift_only_moves_the_centre_of_mass_within_the_bound():
    # a blob in the middle, shifted by up to 10% of 40 pixels in each direction, nothing else
    x = torch.zeros(8, 1, 40, 40)
    x[:, :, 17:23, 17:23] = 1
    out = distort(x, degrees=0, shift=0.1, zoom=0, alpha=0, generator=torch.Generator().manual_seed(0))
    coords = torch.arange(40.0)
    def centre(images):
        mass = images.sum((1, 2, 3))
        return torch.stack([(images.sum((1, 3)) * coords).sum(1) / mass,
                            (images.sum((1, 2)) * coords).sum(1) / mass], 1)
    moved = (centre(out) - centre(x)).abs()
    assert bool((moved <= 4 + 1e-3).all()) and bool((moved.sum(1) > 0.1).all())
    assert torch.allclose(out.sum((1, 2, 3)), x.sum((1, 2, 3)), rtol=1e-4)      # nothing falls off the edge


def test_input_left_unchanged_and_no_graph():
    x = _images().requires_grad_()
    before = x.detach().clone()
    out = distort(x, generator=torch.Generator().manual_seed(0))
    assert torch.equal(x.detach(), before) and x.grad is None and not out.requires_grad


def test_small_strengths_move_little():
    x = _images(n=4, size=28)
    gentle = distort(x, degrees=1, shift=0.01, zoom=0.01, alpha=0.5, generator=torch.Generator().manual_seed(0))
    strong = distort(x, generator=torch.Generator().manual_seed(0))
    assert (gentle - x).abs().mean() < (strong - x).abs().mean()


@pytest.mark.parametrize("kwargs, error", [
    (dict(x=[[0.5]]), TypeError),
    (dict(x=torch.zeros(2, 1, 4, 4, dtype=torch.uint8)), TypeError),
    (dict(x=torch.rand(4, 4)), ValueError),
    (dict(x=torch.rand(1, 1, 4, 4) + 1), ValueError),
    (dict(x=torch.full((1, 1, 4, 4), math.nan)), ValueError),
    (dict(degrees=-1), ValueError),
    (dict(degrees=181), ValueError),
    (dict(shift=1.5), ValueError),
    (dict(zoom=1.0), ValueError),
    (dict(alpha=math.inf), ValueError),
    (dict(sigma=0), ValueError),
    (dict(degrees=True), ValueError),
    (dict(generator=0), TypeError),
])
def test_clear_errors(kwargs, error):
    kwargs = {"x": torch.rand(2, 1, 8, 8), **kwargs}
    with pytest.raises(error) as info:
        distort(kwargs.pop("x"), **kwargs)
    name = next(iter(set(kwargs) - {"x"}), "x")
    assert name in str(info.value)


def test_gaussian_blur_keeps_mass_and_shape():
    maps = torch.zeros(2, 3, 31, 31)
    maps[:, :, 15, 15] = 1
    out = gaussian_blur(maps, 2.0)
    assert out.shape == maps.shape
    assert torch.allclose(out.sum((2, 3)), torch.ones(2, 3), atol=1e-5)
    assert torch.allclose(out, out.transpose(2, 3), atol=1e-7)        # isotropic
    with pytest.raises(ValueError, match="sigma"):
        gaussian_blur(maps, -1.0)
    with pytest.raises(ValueError, match="maps"):
        gaussian_blur(torch.zeros(3, 4, 4), 1.0)


def test_collate_in_a_dataloader():
    data = torch.utils.data.TensorDataset(_images(n=10), torch.arange(10))
    loader = torch.utils.data.DataLoader(data, batch_size=4, collate_fn=functools.partial(collate, alpha=10.0))
    images, labels = next(iter(loader))
    assert images.shape == (4, 1, 20, 20) and labels.tolist() == [0, 1, 2, 3]
    assert float(images.min()) >= 0 and float(images.max()) <= 1
