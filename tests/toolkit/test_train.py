import copy
import math

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import dlviz
from dlviz import train

pytestmark = pytest.mark.usefixtures("one_thread")


def blobs(n=400, seed=0):
    """Two well separated Gaussian blobs in 2-D: any linear classifier reaches ~100%."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 2, (n,), generator=g)
    x = torch.randn(n, 2, generator=g) * 0.5 + (y.float() * 4 - 2).unsqueeze(1)
    return x, y


def test_fit_learns_and_records_history():
    dlviz.seed(0)
    model = nn.Linear(2, 2)
    history = dlviz.fit(model, blobs(), epochs=5, lr=0.05, batch_size=32, val_data=blobs(seed=1), progress=False)
    assert history.epochs == 5 and len(history.val_accuracy) == 5
    assert history.val_accuracy[-1] > 0.98
    assert history.train_loss[-1] < history.train_loss[0]
    assert len(history.batch_loss) == 5 * math.ceil(400 / 32)
    assert history.seconds > 0
    assert "val_accuracy" in repr(history)


@pytest.mark.parametrize("wrap", [lambda d: TensorDataset(*d), lambda d: DataLoader(TensorDataset(*d), batch_size=50),
                                  lambda d: list(zip(*d))])
def test_fit_accepts_datasets_and_loaders(wrap):
    dlviz.seed(0)
    model = nn.Linear(2, 2)
    data = blobs()
    if isinstance(wrap(data), list):  # a plain list of pairs is a valid map-style Dataset only when wrapped
        with pytest.raises(TypeError, match="Dataset, a DataLoader or a pair of tensors"):
            dlviz.fit(model, wrap(data), epochs=1, progress=False)
        return
    history = dlviz.fit(model, wrap(data), epochs=3, lr=0.05, progress=False)
    assert dlviz.evaluate(model, data)["accuracy"] > 0.98
    assert history.epochs == 3


def test_seed_makes_runs_repeatable():
    runs = []
    for _ in range(2):
        dlviz.seed(123)
        model = nn.Sequential(nn.Linear(2, 8), nn.ReLU(), nn.Linear(8, 2))
        dlviz.fit(model, blobs(), epochs=2, progress=False)
        runs.append(torch.cat([p.detach().flatten() for p in model.parameters()]))
    torch.testing.assert_close(runs[0], runs[1], rtol=0, atol=0)


def test_fit_and_evaluate_restore_the_mode():
    model = nn.Sequential(nn.Linear(2, 8), nn.Dropout(0.5), nn.Linear(8, 2)).eval()
    dlviz.fit(model, blobs(), epochs=1, progress=False)
    assert not model.training
    model.train()
    dlviz.evaluate(model, blobs())
    assert model.training


def test_evaluate_uses_eval_mode():
    """Dropout would make two evaluations differ; in eval mode they agree exactly."""
    model = nn.Sequential(nn.Linear(2, 64), nn.Dropout(0.9), nn.Linear(64, 2)).train()
    first, second = dlviz.evaluate(model, blobs()), dlviz.evaluate(model, blobs())
    assert first == second


def test_evaluate_known_values():
    scores = torch.tensor([[2.0, 0.0], [0.0, 2.0], [2.0, 0.0], [0.0, 1.0]])

    class Fixed(nn.Module):
        def forward(self, x):
            return scores[x.long().flatten()]

    result = dlviz.evaluate(Fixed(), (torch.arange(4.0).unsqueeze(1), torch.tensor([0, 1, 1, 1])))
    assert result["accuracy"] == pytest.approx(0.75)
    assert result["loss"] == pytest.approx(float(nn.functional.cross_entropy(scores, torch.tensor([0, 1, 1, 1]))))


def test_sequence_outputs_are_flattened():
    """A per-step classifier (N, T, C) against labels (N, T), as a character model produces."""
    model = nn.Sequential(nn.Embedding(5, 5))
    x = torch.randint(0, 5, (20, 7))
    history = dlviz.fit(model, (x, x), epochs=30, lr=0.1, progress=False)
    assert history.train_accuracy[-1] == 1.0


def test_clip_grad_norm_bounds_the_update():
    model = nn.Linear(2, 2, bias=False)
    before = model.weight.detach().clone()
    x, y = blobs(8)
    dlviz.fit(model, (x * 1e6, y), epochs=1, batch_size=8, optimizer=torch.optim.SGD(model.parameters(), lr=1.0),
              clip_grad_norm=0.01, progress=False)
    assert float((model.weight.detach() - before).norm()) <= 0.01 + 1e-6


def test_diverging_loss_raises_and_names_the_batch():
    dlviz.seed(0)
    model = nn.Linear(2, 2)
    x, y = blobs()
    message = r"epoch 1 of 1, batch \d+ of 50: the training loss is .*learning rate"
    with pytest.raises(FloatingPointError, match=message):
        dlviz.fit(model, (x * 1e5, y), epochs=1, batch_size=8, optimizer=torch.optim.SGD(model.parameters(), lr=1e30),
                  progress=False)
    assert all(torch.isfinite(p).all() for p in model.parameters())  # the step that would make them inf is not taken


def _recording_steps(optimizer, model):
    """Snapshots of the weights and the optimizer's state after every step (the last one: before the next batch)."""
    snapshots = [(copy.deepcopy(model.state_dict()), copy.deepcopy(optimizer.state_dict()))]
    optimizer.register_step_post_hook(
        lambda *_: snapshots.append((copy.deepcopy(model.state_dict()), copy.deepcopy(optimizer.state_dict()))))
    return snapshots


def _assert_state_equal(before, after):
    assert before.keys() == after.keys()
    for key in before:
        if isinstance(before[key], torch.Tensor):
            assert torch.equal(before[key], after[key]), key
        elif isinstance(before[key], dict):
            _assert_state_equal(before[key], after[key])
        else:
            assert before[key] == after[key], key


def _check_untouched(snapshots, model, optimizer, steps_taken):
    assert len(snapshots) == steps_taken + 1
    weights, state = snapshots[-1]
    _assert_state_equal(weights, model.state_dict())
    _assert_state_equal(state, optimizer.state_dict())


def test_non_finite_inputs_stop_before_the_step_and_name_the_batch():
    x, y = blobs(24)
    x[10, 1] = float("nan")  # in the second batch of 8
    model = nn.Sequential(nn.BatchNorm1d(2), nn.Linear(2, 2))
    optimizer = torch.optim.Adam(model.parameters(), lr=0.1)
    snapshots = _recording_steps(optimizer, model)
    loader = DataLoader(TensorDataset(x, y), batch_size=8)
    with pytest.raises(ValueError, match="epoch 1 of 2, batch 2 of 3: the inputs hold 1 NaN"):
        dlviz.fit(model, loader, epochs=2, optimizer=optimizer, progress=False)
    _check_untouched(snapshots, model, optimizer, steps_taken=1)


class _Explodes(nn.Module):
    """BatchNorm (whose running statistics a forward pass changes), then scores that overflow for large inputs."""

    def __init__(self):
        super().__init__()
        self.norm, self.linear = nn.BatchNorm1d(2), nn.Linear(2, 2)

    def forward(self, x):
        scores = self.linear(self.norm(x))
        return scores * float("inf") if x.abs().max() > 100 else scores


def test_non_finite_loss_leaves_weights_buffers_and_optimizer_state():
    x, y = blobs(24)
    x[20] = 1000.0  # finite input, infinite scores, in the third batch
    model = _Explodes()
    optimizer = torch.optim.Adam(model.parameters(), lr=0.1)
    snapshots = _recording_steps(optimizer, model)
    loader = DataLoader(TensorDataset(x, y), batch_size=8)
    with pytest.raises(FloatingPointError, match="epoch 1 of 1, batch 3 of 3: the training loss is nan"):
        dlviz.fit(model, loader, epochs=1, optimizer=optimizer, progress=False)
    _check_untouched(snapshots, model, optimizer, steps_taken=2)  # running_mean/var and num_batches_tracked too


class _SqrtAtZero(nn.Module):
    """A finite loss whose gradient is NaN: d sqrt(z) / dz is infinite at z = 0."""

    def __init__(self):
        super().__init__()
        self.linear, self.z = nn.Linear(2, 2), nn.Parameter(torch.zeros(()))

    def forward(self, x):
        return self.linear(x) + 0 * self.z.sqrt()


def test_non_finite_gradient_stops_before_the_step():
    model = _SqrtAtZero()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    snapshots = _recording_steps(optimizer, model)
    with pytest.raises(FloatingPointError, match="batch 1 of 1: the gradient of 'z'"):
        dlviz.fit(model, blobs(8), epochs=1, batch_size=8, optimizer=optimizer, progress=False)
    _check_untouched(snapshots, model, optimizer, steps_taken=0)
    assert all(p.grad is None for p in model.parameters())


@pytest.mark.parametrize("value", [0, -1, 1.5, True, "2", None])
@pytest.mark.parametrize("name", ["epochs", "batch_size"])
def test_bad_arguments(name, value):
    kwargs = {"epochs": 1, name: value}
    with pytest.raises(ValueError, match=f"{name} must be a positive int"):
        dlviz.fit(nn.Linear(2, 2), blobs(), progress=False, **kwargs)


class _Empty(torch.utils.data.Dataset):
    def __len__(self):
        return 0

    def __getitem__(self, i):
        raise IndexError(i)


EMPTY = {
    "tensors": (torch.zeros(0, 2), torch.zeros(0, dtype=torch.long)),
    "TensorDataset": TensorDataset(torch.zeros(0, 2), torch.zeros(0, dtype=torch.long)),
    "Dataset": _Empty(),
    "DataLoader": DataLoader(_Empty(), batch_size=4),
}


@pytest.mark.parametrize("kind", EMPTY)
def test_empty_data_gets_its_own_message(kind):
    with pytest.raises(ValueError, match=r"fit\(\)'s train_data is empty \(0 items\)"):
        dlviz.fit(nn.Linear(2, 2), EMPTY[kind], epochs=1, progress=False)
    with pytest.raises(ValueError, match=r"fit\(\)'s val_data is empty"):
        dlviz.fit(nn.Linear(2, 2), blobs(), val_data=EMPTY[kind], epochs=1, progress=False)
    with pytest.raises(ValueError, match=r"evaluate\(\)'s data is empty"):
        dlviz.evaluate(nn.Linear(2, 2), EMPTY[kind])


def test_a_loader_without_full_batches_is_named():
    loader = DataLoader(TensorDataset(*blobs(3)), batch_size=4, drop_last=True)
    with pytest.raises(ValueError, match="yields no batch.*drop_last"):
        dlviz.fit(nn.Linear(2, 2), loader, epochs=1, progress=False)


class _Stream(torch.utils.data.IterableDataset):
    def __init__(self, n):
        self.x, self.y = blobs(n) if n else (torch.zeros(0, 2), torch.zeros(0, dtype=torch.long))

    def __iter__(self):
        return iter(zip(self.x, self.y))


def test_iterable_datasets_train_and_an_empty_one_is_named():
    history = dlviz.fit(nn.Linear(2, 2), _Stream(40), epochs=1, batch_size=8, progress=False)
    assert len(history.batch_loss) == 5
    with pytest.raises(ValueError, match="train_data yielded no batch in epoch 1"):
        dlviz.fit(nn.Linear(2, 2), _Stream(0), epochs=1, progress=False)
    with pytest.raises(ValueError, match="yielded no batch"):
        dlviz.evaluate(nn.Linear(2, 2), _Stream(0))


def _modes(model):
    return {name: m.training for name, m in model.named_modules()}


def _mixed_model(train):
    """A model in train (eval) mode with one BatchNorm set the other way by its user."""
    model = nn.Sequential(nn.Linear(2, 4), nn.BatchNorm1d(4), nn.Dropout(0.1), nn.Linear(4, 2)).train(train)
    model[1].train(not train)
    return model


@pytest.mark.parametrize("train_mode", [True, False])
def test_fit_and_evaluate_restore_every_submodules_mode(train_mode):
    model = _mixed_model(train_mode)
    before = _modes(model)
    dlviz.fit(model, blobs(40), epochs=1, val_data=blobs(20), progress=False)
    assert _modes(model) == before
    dlviz.evaluate(model, blobs(20))
    assert _modes(model) == before


def test_modes_are_restored_when_fit_raises():
    model = _mixed_model(True)
    before = _modes(model)
    x, y = blobs(40)
    x[0] = float("inf")
    with pytest.raises(ValueError, match="inputs"):
        dlviz.fit(model, (x, y), epochs=1, progress=False)
    assert _modes(model) == before
    with pytest.raises(TypeError):
        dlviz.evaluate(model, [1, 2, 3])
    assert _modes(model) == before


def test_a_frozen_batchnorm_stays_frozen_while_training():
    model = _mixed_model(True)
    stats = model[1].running_mean.clone()
    dlviz.fit(model, blobs(40), epochs=1, progress=False)
    assert torch.equal(model[1].running_mean, stats)
    assert not torch.equal(model[0].weight, _mixed_model(True)[0].weight)  # the rest was trained


class _DictModel(nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(2, 2)

    def forward(self, x):
        return {"logits": self.linear(x), "features": x}


@pytest.mark.parametrize("output", ["logits", lambda out: out["logits"]])
def test_output_picks_the_scores_of_a_dict_model(output):
    dlviz.seed(0)
    model = _DictModel()
    history = dlviz.fit(model, blobs(), epochs=3, lr=0.05, val_data=blobs(seed=1), progress=False, output=output)
    assert history.val_accuracy[-1] > 0.98
    assert dlviz.evaluate(model, blobs(seed=1), output=output)["accuracy"] == history.val_accuracy[-1]


def test_a_tuple_model_needs_output():
    model = nn.Sequential(nn.Linear(2, 2))
    model.forward = lambda x: (nn.Sequential.forward(model, x), x)
    with pytest.raises(TypeError, match="output="):
        dlviz.fit(model, blobs(), epochs=1, progress=False)
    with pytest.raises(TypeError, match="output="):
        dlviz.evaluate(model, blobs())
    assert dlviz.fit(model, blobs(), epochs=1, progress=False, output=0).epochs == 1


def test_fit_works_inside_no_grad_and_inference_mode():
    for context in (torch.no_grad, torch.inference_mode):
        model = nn.Linear(2, 2)
        before = model.weight.detach().clone()
        with context():
            dlviz.fit(model, blobs(40), epochs=1, progress=False)
        assert not torch.equal(model.weight.detach(), before)


def test_seed_rejects_what_a_generator_cannot_take_before_seeding_anything():
    import random

    import numpy as np
    states = random.getstate(), np.random.get_state(), torch.get_rng_state()
    for bad in (-1, 2**32, 1.0, True, "3", None):
        with pytest.raises(ValueError, match="0 <= seed < 2\\*\\*32"):
            dlviz.seed(bad)
    after = random.getstate(), np.random.get_state(), torch.get_rng_state()
    assert after[0] == states[0]
    assert all(np.array_equal(a, b) for a, b in zip(after[1], states[1]))
    assert torch.equal(after[2], states[2])
    dlviz.seed(2**32 - 1)  # the largest accepted seed
    dlviz.seed(np.int64(5))


def test_mismatched_lengths():
    x, y = blobs()
    with pytest.raises(ValueError, match="differ in length"):
        dlviz.fit(nn.Linear(2, 2), (x, y[:-1]), epochs=1, progress=False)


def test_progress_bars_show_live_metrics(capsys):
    dlviz.fit(nn.Linear(2, 2), blobs(), epochs=2, progress=True)
    err = capsys.readouterr().err
    assert "epochs" in err and "loss=" in err


def test_device_is_a_torch_device():
    assert train.device().type in ("cpu", "cuda", "mps")


def test_history_plot_draws_both_metrics():
    import matplotlib.pyplot as plt
    history = dlviz.fit(nn.Linear(2, 2), blobs(), epochs=3, val_data=blobs(seed=2), progress=False)
    fig = history.plot()
    loss_ax, acc_ax = fig.axes
    assert len(loss_ax.lines) == 2 and len(acc_ax.lines) == 2
    assert list(acc_ax.lines[1].get_ydata()) == history.val_accuracy
    plt.close(fig)


def test_progress_bars_cover_epochs_and_batches(capsys):
    dlviz.fit(nn.Linear(2, 2), blobs(), epochs=2, batch_size=8, progress=True)
    err = capsys.readouterr().err
    # both bars, and the epoch bar's live metrics (the batch bar's postfix only shows when the bar refreshes)
    assert "epochs" in err and "batches" in err and "train_loss=" in err and "train_accuracy=" in err
    dlviz.fit(nn.Linear(2, 2), blobs(), epochs=2, progress=False)
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("cuda, mps, expected", [(True, True, "cuda"), (False, True, "mps"), (False, False, "cpu")])
def test_device_prefers_cuda_then_mps(monkeypatch, cuda, mps, expected):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: mps)
    assert train.device().type == expected


def test_huge_but_finite_gradients_and_inputs_pass_the_finite_checks():
    # the checks screen with one float32 sum per tensor; a sum that overflows must fall back to the exact test
    model = nn.Linear(1000, 1)
    x, y = torch.full((4, 1000), 3e35), torch.zeros(4, 1)
    loss_fn = lambda out, labels: (out * 0).sum() + model.weight.sum() * 1e36  # noqa: E731
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0)
    history = dlviz.fit(model, (x, y), epochs=1, batch_size=4, loss_fn=loss_fn, optimizer=optimizer,
                        progress=False, precision="fp32")
    assert history.epochs == 1 and math.isfinite(history.train_loss[0])
    assert float(x.sum(dtype=torch.float32)) == float("inf")
    assert float(model.weight.grad.sum(dtype=torch.float32)) == float("inf")  # the screen overflowed, and passed


def test_shifted_moves_every_seed_by_the_offset_in_the_environment(monkeypatch):
    """DLVIZ_SEED_OFFSET shifts the course's seeds in one place; unset, a seed is itself (what a student runs)."""
    monkeypatch.delenv("DLVIZ_SEED_OFFSET", raising=False)
    assert [train.shifted(s) for s in (0, 1, 2)] == [0, 1, 2] and train.seed_offset() == 0
    monkeypatch.setenv("DLVIZ_SEED_OFFSET", "3")
    assert [train.shifted(s) for s in (0, 1, 2)] == [3, 4, 5] and train.seed_offset() == 3
    dlviz.seed(train.shifted(0)); a = torch.rand(3)
    dlviz.seed(3); b = torch.rand(3)
    assert torch.equal(a, b)
    monkeypatch.setenv("DLVIZ_SEED_OFFSET", " ")
    assert train.shifted(7) == 7


@pytest.mark.parametrize("offset", ["-1", "two", "1.5"])
def test_a_bad_seed_offset_is_a_clear_error(monkeypatch, offset):
    monkeypatch.setenv("DLVIZ_SEED_OFFSET", offset)
    with pytest.raises(ValueError, match="DLVIZ_SEED_OFFSET must be a non-negative integer"):
        train.shifted(0)


def test_shifted_rejects_what_is_not_a_seed(monkeypatch):
    monkeypatch.setenv("DLVIZ_SEED_OFFSET", "1")
    for bad in (-1, 1.0, True, "0", None):
        with pytest.raises(ValueError, match="non-negative int seed"):
            train.shifted(bad)
    with pytest.raises(ValueError, match="past 2\\*\\*32 - 1"):
        train.shifted(2**32 - 1)
