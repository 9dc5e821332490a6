"""The shipped course models: they load, take raw inputs, and are as accurate as the course claims."""
import math

import pytest
import torch

import dlviz
from dlviz import text, zoo


@pytest.fixture(scope="module")
def mnist_test():
    return dlviz.data.tensors(dlviz.data.mnist(train=False))


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
