"""top_activations streams with bounded memory and agrees with ranking every activation at once;
receptive fields match the conv/pool arithmetic."""
import importlib
import pytest
import torch
from torch import nn

from dlviz import activations, top_activations
from dlviz.attribution.receptive_field import receptive_field
from relu_models import make, model_state


def lenet():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 6, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(6, 16, 5), nn.ReLU(),
                         nn.MaxPool2d(2), nn.Flatten(), nn.Linear(256, 10)).eval()


@pytest.fixture(scope="module")
def images():
    torch.manual_seed(3)
    return torch.rand(70, 1, 28, 28)


def brute_force(model, layer, images, channel):
    act = activations(model, images, layer)[layer][:, channel]
    flat = act.reshape(len(images), -1)
    values, where = flat.max(1)
    order = torch.sort(values, descending=True, stable=True).indices
    return order, values[order], where[order]


@pytest.mark.parametrize("layer, channel", [("0", 2), ("3", 5), ("4", 0), ("5", 15), ("7", 3)])
def test_agrees_with_ranking_everything(layer, channel, images):
    model = lenet()
    top = top_activations(model, images, layer=layer, channel=channel, k=9, batch_size=16)
    order, values, where = brute_force(model, layer, images, channel)
    assert top.indices.tolist() == order[:9].tolist()
    torch.testing.assert_close(top.values, values[:9])
    if top.positions.shape[-1] == 2 and layer != "7":
        width = activations(model, images[:1], layer)[layer].shape[-1]
        assert (top.positions[:, 0] * width + top.positions[:, 1]).tolist() == where[:9].tolist()


def test_all_channels_at_once_match_one_at_a_time(images):
    model = lenet()
    everything = top_activations(model, images, layer="3", k=5, batch_size=32)
    assert everything.indices.shape == (16, 5) and everything.boxes.shape == (16, 5, 4)
    assert everything.crops.shape == (16, 5, 1, 14, 14)
    for channel in (0, 7, 15):
        one = top_activations(model, images, layer="3", channel=channel, k=5)
        assert one.indices.tolist() == everything.indices[channel].tolist()
        torch.testing.assert_close(one.crops, everything.crops[channel])


class BatchRecorder(nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model, self.sizes = model, []

    def forward(self, x):
        self.sizes.append(len(x))
        return self.model(x)


def test_streams_in_bounded_batches_from_a_dataset(images):
    labels = torch.arange(len(images)) % 10
    dataset = torch.utils.data.TensorDataset(images, labels)
    model = BatchRecorder(lenet())
    top = top_activations(model, dataset, layer="model.3", channel=4, k=9, batch_size=8)
    streamed = model.sizes[:9]  # 70 images in batches of 8; later calls find receptive fields
    assert max(streamed) <= 8 and sum(streamed) == len(images)
    assert top.indices.tolist() == top_activations(model.model, images, layer="3", channel=4).indices.tolist()


def test_ties_keep_the_lower_index():
    model = lenet()
    same = torch.full((20, 1, 28, 28), 0.5)
    top = top_activations(model, same, layer="0", channel=1, k=4, batch_size=3)
    assert top.indices.tolist() == [0, 1, 2, 3]


def test_crops_are_the_receptive_field_of_the_max_unit(images):
    model = lenet()
    top = top_activations(model, images, layer="3", channel=9, k=9)
    assert top.field_size == (14, 14)
    for rank in range(9):
        row, col = top.positions[rank].tolist()
        # conv5 -> pool2 -> conv5: unit (row, col) sees input rows 2*row .. 2*row + 13
        assert top.boxes[rank].tolist() == [2 * row, 2 * col, 2 * row + 14, 2 * col + 14]
        image = images[top.indices[rank]]
        torch.testing.assert_close(top.crops[rank], image[:, 2 * row:2 * row + 14, 2 * col:2 * col + 14])


def test_receptive_fields_of_conv_pool_stacks():
    model = lenet()
    assert receptive_field(model, (1, 28, 28), layer="0").tolist() == [12, 12, 17, 17]
    assert receptive_field(model, (1, 28, 28), layer="2", positions=torch.tensor([[0, 0], [11, 11]])).tolist() == [
        [0, 0, 6, 6], [22, 22, 28, 28]]
    assert receptive_field(model, (1, 28, 28), layer="7").tolist() == [0, 0, 28, 28]
    torchvision = pytest.importorskip("torchvision")
    alexnet = torchvision.models.alexnet()
    sizes = [int(b[2] - b[0])
             for b in (receptive_field(alexnet, (3, 224, 224), layer=f"features.{i}") for i in (0, 2, 5))]
    assert sizes == [11, 19, 67]  # 11x11/4 conv; 3x3/2 pool; 5x5 pad-2 conv and 3x3/2 pool at stride 8


def test_border_crops_are_padded_on_the_outside():
    model = nn.Sequential(nn.Conv2d(1, 1, 5, padding=2)).eval()
    with torch.no_grad():
        model[0].weight.fill_(1.0)
        model[0].bias.zero_()
    images = torch.zeros(2, 1, 10, 10)
    images[1, 0, 0, 0] = 1.0  # the strongest unit sits at the top-left corner
    top = top_activations(model, images, layer="0", channel=0, k=1)
    assert top.indices.tolist() == [1] and top.positions.tolist() == [[0, 0]]
    assert top.boxes.tolist() == [[0, 0, 3, 3]] and top.crops.shape == (1, 1, 5, 5)
    assert top.crops[0, 0, 2, 2] == 1.0 and top.crops[0, 0, :2].abs().sum() == 0


def test_model_unchanged_and_clear_errors(images):
    model = make("reused").train()
    before = model_state(model)
    rgb = torch.rand(10, 3, 16, 16)
    top_activations(model, rgb, layer="c2", channel=1, k=3)
    assert model_state(model) == before
    with pytest.raises(ValueError, match="ran 4 times"):
        top_activations(model, rgb, layer="relu", channel=0)
    with pytest.raises(KeyError, match="close matches"):
        top_activations(model, rgb, layer="c22")
    with pytest.raises(ValueError, match=r"\[0, 11\]"):
        top_activations(model, rgb, layer="c2", channel=12)
    with pytest.raises(ValueError, match="k must"):
        top_activations(model, rgb, layer="c2", k=11)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        top_activations(model, rgb * 2, layer="c2", k=2)
    with pytest.raises(TypeError, match="dataset"):
        top_activations(model, [1, 2, 3], layer="c2", k=2)
    assert model_state(model) == before


def test_memory_does_not_grow_with_the_dataset(monkeypatch):
    """Only the running top-k is kept: when a batch is loaded, at most the previous batch's activations are alive."""
    import weakref

    top_inputs = importlib.import_module(
        "dlviz.attribution.top_activations")  # the module: its function shadows the name

    alive, most_alive = [], [0]
    real_maxima = top_inputs._map_maxima

    def recording_maxima(act):
        alive.append(weakref.ref(act))
        return real_maxima(act)

    class Streaming(torch.utils.data.Dataset):
        def __len__(self):
            return 400

        def __getitem__(self, i):
            most_alive[0] = max(most_alive[0], sum(ref() is not None for ref in alive))
            return torch.rand(1, 28, 28, generator=torch.Generator().manual_seed(i)), 0

    monkeypatch.setattr(top_inputs, "_map_maxima", recording_maxima)
    top = top_activations(lenet(), Streaming(), layer="3", channel=2, k=5, batch_size=10)
    assert len(alive) == 40 and most_alive[0] <= 2
    assert top.indices.shape == (5,)


def test_a_tensor_dataset_must_be_a_batch_of_images():
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        top_activations(lenet(), torch.rand(20, 28, 28), layer="0", channel=0)


# --- DataLoaders, progress, k, dtype, and never an empty crop ---------------------------------------------------

def test_a_sequential_dataloader_equals_the_tensor_and_gives_crops(images):
    model = lenet()
    expected = top_activations(model, images, layer="3", channel=5, k=6, progress=False)
    labelled = torch.utils.data.TensorDataset(images, torch.arange(len(images)) % 10)
    for dataset in (labelled, ImagesOnly(images)):
        loader = torch.utils.data.DataLoader(dataset, batch_size=16)
        top = top_activations(model, loader, layer="3", channel=5, k=6, progress=False)
        assert top.indices.tolist() == expected.indices.tolist()
        torch.testing.assert_close(top.values, expected.values)
        torch.testing.assert_close(top.crops, expected.crops)


class ImagesOnly(torch.utils.data.Dataset):
    """Items are bare images, so the loader's batches are image tensors."""

    def __init__(self, images):
        self.images = images

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        return self.images[i]


def test_a_shuffling_dataloader_numbers_images_in_iteration_order_and_refuses_crops(images):
    model = lenet()
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(images), batch_size=16, shuffle=True,
                                         generator=torch.Generator().manual_seed(0))
    order = torch.cat([batch for (batch,) in loader])  # the same generator state gives the same order again
    loader.generator.manual_seed(0)
    top = top_activations(model, loader, layer="3", channel=5, k=4, progress=False)
    assert top.indices.tolist() == top_activations(model, order, layer="3", channel=5, k=4,
                                                   progress=False).indices.tolist()
    with pytest.raises(ValueError, match="shuffle"):
        top.crops
    with pytest.raises(ValueError, match="batch_size"):
        top_activations(model, loader, layer="3", channel=5, batch_size=8, progress=False)


def test_k_larger_than_what_a_dataloader_gives_is_refused(images):
    loader = torch.utils.data.DataLoader(images[:5], batch_size=2)
    with pytest.raises(ValueError, match="k must"):
        top_activations(lenet(), loader, layer="3", channel=0, k=6, progress=False)


@pytest.mark.parametrize("k", [0, -1, 2.0, True, "3"])
def test_k_must_be_a_positive_int(k, images):
    with pytest.raises(ValueError, match="k must be"):
        top_activations(lenet(), images, layer="3", channel=0, k=k, progress=False)


def test_numpy_ints_are_sizes(images):
    np = pytest.importorskip("numpy")
    top = top_activations(lenet(), images, layer="3", channel=np.int64(2), k=np.int64(3), batch_size=np.int32(16),
                          progress=False)
    assert top.indices.shape == (3,)


def test_progress_bar_on_by_default(images, monkeypatch):
    top_inputs = importlib.import_module(
        "dlviz.attribution.top_activations")  # the module: its function shadows the name
    from recording_bar import RecordingBar

    bar = RecordingBar()
    monkeypatch.setattr(top_inputs, "progress_bar", bar)
    top_activations(lenet(), images, layer="3", channel=0, k=2, batch_size=32)
    top_activations(lenet(), images, layer="3", channel=0, k=2, batch_size=32, progress=False)
    assert [(c["total"], c["updates"], c["enabled"]) for c in bar.calls] == [(3, 3, True), (3, 3, False)]


def test_crops_are_never_empty_with_activations_flat_at_the_probe(images):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 5), nn.ReLU6(), nn.MaxPool2d(2), nn.Conv2d(4, 4, 5)).eval()
    with torch.no_grad():
        model[0].bias.fill_(10.0)  # ReLU6 saturated wherever the receptive-field probe sits
    top = top_activations(model, images, layer="3", channel=1, k=3, progress=False)
    assert top.field_size == (14, 14)
    assert all(b[2] - b[0] == 14 and b[3] - b[1] == 14 for b in top.boxes.tolist())
    assert top.crops.shape == (3, 1, 14, 14)


def test_a_float64_model_takes_float32_images(images):
    model = lenet()
    expected = top_activations(model, images, layer="3", channel=3, k=5, progress=False)
    top = top_activations(lenet().double(), images, layer="3", channel=3, k=5, progress=False)
    assert top.indices.tolist() == expected.indices.tolist()
    torch.testing.assert_close(top.values, expected.values)


def test_a_dataloader_of_non_images_gets_a_clear_error():
    loader = torch.utils.data.DataLoader([{"image": torch.rand(1, 28, 28)}] * 4, batch_size=2)
    with pytest.raises(TypeError, match="DataLoader batches"):
        top_activations(lenet(), loader, layer="3", channel=0, k=2, progress=False)
