import math

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import dlviz
from dlviz import train


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


def test_diverging_loss_raises():
    model = nn.Linear(2, 2)
    x, y = blobs()
    with pytest.raises(FloatingPointError, match="learning rate"):
        dlviz.fit(model, (x * float("inf"), y), epochs=1, progress=False)


@pytest.mark.parametrize("kwargs, message", [({"epochs": 0}, "epochs"), ({"epochs": 1, "batch_size": 0}, "batch_size")])
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        dlviz.fit(nn.Linear(2, 2), blobs(), **kwargs)


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
