"""The shipped course models: they load, take raw inputs, and are as accurate as the course claims; and the
command that retrains them (tools/train_zoo.py) runs end to end."""
import importlib.util
import math
import pathlib

import pytest
import torch

import dlviz
from dlviz.course import text
from dlviz.models import zoo

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def mnist_test(data_dir):
    return dlviz.data.tensors(dlviz.data.mnist(train=False, root=data_dir))


def test_available_names():
    assert zoo.available() == ["mlp_mnist", "lenet_mnist", "charlstm_shakespeare"]


def test_unknown_name_lists_the_models():
    with pytest.raises(KeyError) as error:
        zoo.load("lenet_mnits")
    message = str(error.value)
    assert "lenet_mnist" in message and "mlp_mnist" in message and "charlstm_shakespeare" in message


@pytest.mark.parametrize("name", ["mlp_mnist", "lenet_mnist"])
def test_image_models_shapes_and_mode(name):
    model = zoo.load(name)
    assert not model.training and all(not m.training for m in model.modules())
    x = torch.rand(3, 1, 28, 28)
    before = x.clone()
    out = model(x)
    assert out.shape == (3, 10) and out.dtype == torch.float32
    assert torch.equal(x, before)
    assert isinstance(model.normalize, zoo.Normalize)
    # normalization inside the model: a model without it on normalized inputs gives the same scores
    assert torch.allclose(model.normalize(x), (x - zoo.MNIST_MEAN) / zoo.MNIST_STD)
    for key in ("test_accuracy", "seed", "epochs"):
        assert key in model.metadata


def test_lenet_layer_names():
    model = zoo.load("lenet_mnist")
    modules = dict(model.named_modules())
    assert isinstance(modules["features.0"], torch.nn.Conv2d) and modules["features.0"].out_channels == 20
    assert isinstance(modules["features.3"], torch.nn.Conv2d) and modules["features.3"].out_channels == 50
    assert isinstance(modules["features.1"], torch.nn.ReLU) and not modules["features.1"].inplace
    assert isinstance(modules["classifier.0"], torch.nn.Linear) and modules["classifier.0"].out_features == 256
    assert model.metadata["epochs"] <= 5


@pytest.mark.parametrize("name, max_error", [("lenet_mnist", 0.0079), ("mlp_mnist", 0.0183)])
def test_test_error(name, max_error, mnist_test):
    model = zoo.load(name)
    error = 1 - dlviz.evaluate(model, mnist_test)["accuracy"]
    assert error <= max_error, f"{name}: test error {error:.4%} > {max_error:.2%}"
    assert error == pytest.approx(1 - model.metadata["test_accuracy"], abs=2e-4)


def test_fresh_models_train_mode():
    for model in (zoo.MLP(), zoo.LeNet(), zoo.CharLSTM(10)):
        assert model.training


def test_weights_are_small():
    total = sum(zoo.weights_path(name).stat().st_size for name in zoo.available())
    assert total < 8 * 2**20


def test_charlstm_round_trip_and_shapes():
    model = zoo.load("charlstm_shakespeare")
    assert not model.training
    line = "ROMEO:\nBut soft, what light through yonder window breaks?"
    codes = model.encode(line)
    assert codes.dtype == torch.long and codes.shape == (len(line),)
    assert model.decode(codes) == line
    assert model.decode(codes.tolist()) == line
    logits, (h, c) = model(codes[None])
    assert logits.shape == (1, len(line), len(model.vocab))
    assert h.shape == c.shape == (model.num_layers, 1, model.hidden)
    assert math.isfinite(model.metadata["val_loss_nats_per_char"])
    with pytest.raises(KeyError, match="not in the vocabulary"):
        model.encode("emoji \u2603")


def test_charlstm_sampling_is_repeatable():
    model = zoo.load("charlstm_shakespeare")
    a = zoo.sample(model, "KING:", 60, temperature=0.8, seed=3)
    b = zoo.sample(model, "KING:", 60, temperature=0.8, seed=3)
    c = zoo.sample(model, "KING:", 60, temperature=0.8, seed=4)
    assert a == b and a != c and len(a) == 60
    assert set(a) <= set(model.vocab.chars)
    greedy = zoo.sample(model, "KING:", 30, temperature=0)
    assert greedy == zoo.sample(model, "KING:", 30, temperature=0, seed=123)
    with pytest.raises(ValueError):
        zoo.sample(model, "KING:", 10, temperature=-1)
    assert not model.training


def test_charlstm_validation_loss_matches_metadata():
    model = zoo.load("charlstm_shakespeare")
    _, val = text.split(dlviz.data.tiny_shakespeare(), 0.9)
    loss = text.loss_per_char(model, model.encode(val))
    assert loss == pytest.approx(model.metadata["val_loss_nats_per_char"], abs=5e-3)
    assert loss < 1.7


def test_sequence_pairs_and_vocab():
    vocab = text.CharVocab("abcab")
    assert len(vocab) == 3 and vocab.decode(vocab.encode("cab")) == "cab"
    x, y = text.sequence_pairs(vocab.encode("abcabcabca"), 3)
    assert x.shape == y.shape == (3, 3)
    assert torch.equal(x[:, 1:], y[:, :-1])
    with pytest.raises(ValueError):
        text.sequence_pairs(vocab.encode("ab"), 3)
    with pytest.raises(ValueError):
        text.split("abc", 1.5)


# --- tools/train_zoo.py: the documented retraining command runs end to end ---------------------------------------

TRAIN_ZOO = pathlib.Path(__file__).resolve().parents[2] / "tools" / "train_zoo.py"


@pytest.fixture
def train_zoo(monkeypatch, tmp_path):
    """tools/train_zoo.py as a module, with the package's weights folder replaced by an empty decoy folder (so that a
    run which ignored --output-dir would be caught instead of overwriting the shipped weights)."""
    spec = importlib.util.spec_from_file_location("train_zoo", TRAIN_ZOO)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    decoy = tmp_path / "package_weights"
    monkeypatch.setattr(zoo, "WEIGHTS_DIR", decoy)
    threads = torch.get_num_threads()
    yield module
    torch.set_num_threads(threads)
    assert not decoy.exists(), "train_zoo.py wrote into the package's weights folder despite --output-dir"


def _load_from(monkeypatch, folder, name):
    monkeypatch.setattr(zoo, "WEIGHTS_DIR", folder)
    return zoo.load(name)


def test_train_zoo_mlp_smoke(train_zoo, monkeypatch, tmp_path, mnist_test):
    images, labels = mnist_test
    train, test = (images[:1000], labels[:1000]), (images[1000:1500], labels[1000:1500])
    monkeypatch.setattr(train_zoo, "_mnist_tensors", lambda: (train, test))   # a small stand-in for MNIST
    out = tmp_path / "out"
    train_zoo.main(["mlp_mnist", "--steps", "3", "--output-dir", str(out), "--device", "cpu"])
    assert [p.name for p in out.iterdir()] == ["mlp_mnist.pt"]

    model = _load_from(monkeypatch, out, "mlp_mnist")
    meta = model.metadata
    assert not model.training
    assert meta["steps"] == 3 and meta["epochs"] == round(3 / 8, 3)    # 1,000 images in batches of 128: 8 a pass
    assert meta["seed"] == 0 and meta["seconds"] >= 0 and "shift" not in meta
    assert meta["threads"] == torch.get_num_threads() and meta["precision"] == "fp32"   # the recipe: plain float32
    assert "1,000 training images" in meta["data"] and "500 test images" in meta["data"]
    # the stored metrics are those of the stored weights
    metrics = dlviz.evaluate(model, test)
    assert metrics["accuracy"] == pytest.approx(meta["test_accuracy"], abs=1e-6)
    assert metrics["loss"] == pytest.approx(meta["test_loss"], abs=1e-4)
    assert meta["test_error_percent"] == pytest.approx(100 * (1 - meta["test_accuracy"]), abs=1e-3)
    # three steps did change the weights: they are not the seeded initialization
    dlviz.seed(0)
    fresh = zoo.build("mlp_mnist", {"hidden": [256, 256], "dropout": 0.2})
    assert not torch.equal(fresh.layers[0].weight, model.layers[0].weight)


def test_train_zoo_charlstm_smoke(train_zoo, monkeypatch, tmp_path, data_dir):
    short = dlviz.data.tiny_shakespeare(root=data_dir)[:40_000]  # a small stand-in for Tiny Shakespeare
    monkeypatch.setattr(dlviz.data, "tiny_shakespeare", lambda *args, **kwargs: short)
    out = tmp_path / "out"
    train_zoo.main(["charlstm_shakespeare", "--steps", "2", "--output-dir", str(out), "--device", "cpu"])
    assert [p.name for p in out.iterdir()] == ["charlstm_shakespeare.pt"]
    stored = torch.load(out / "charlstm_shakespeare.pt", weights_only=True)["state_dict"]
    assert stored["head.weight"].dtype == torch.float16                  # stored in half precision: small files

    model = _load_from(monkeypatch, out, "charlstm_shakespeare")
    meta = model.metadata
    assert not model.training and model.vocab.chars == text.CharVocab(short).chars
    assert meta["steps"] == 2 and meta["seed"] == 0 and meta["seconds"] >= 0
    assert meta["epochs"] == round(2 * 32 * 128 / 36_000, 3)
    # two steps from a random start: still close to uniform guessing, and the stored loss is the stored model's
    val = model.encode(text.split(short, 0.9)[1])
    loss = text.loss_per_char(model, val)
    assert 3.0 < meta["val_loss_nats_per_char"] < math.log(len(model.vocab)) + 0.3
    assert loss == pytest.approx(meta["val_loss_nats_per_char"], abs=5e-3)
    assert meta["val_bits_per_char"] == pytest.approx(meta["val_loss_nats_per_char"] / math.log(2), abs=1e-3)


@pytest.mark.parametrize("name", ["lenet_mnist", "mlp_mnist"])
def test_shipped_training_time_records(name):
    # re-measured on 2026-11-29 with the same recipe, one thread, float32; the weights were kept
    meta = zoo.metadata(name)
    assert 0 < meta["cpu_seconds"] <= meta["seconds"] < 600
    assert meta["threads"] == 1 and meta["precision"] == "fp32"
    assert "2026-11-29" in meta["timing_note"] and str(meta["seconds"]) in meta["timing_note"]
