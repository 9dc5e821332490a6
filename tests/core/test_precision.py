"""precision= in fit and evaluate: fp32 forced is plain float32, bf16 where the CPU has it, the fallback where it does
not, what "auto" picks per kind of model, and a model left as it was (dtype, memory layout, modes)."""
import copy
import warnings

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import dlviz
from dlviz import _precision
from dlviz import train as dtrain

pytestmark = pytest.mark.usefixtures("one_thread")
NATIVE = _precision.cpu_native_bf16()
needs_bf16 = pytest.mark.skipif(not NATIVE, reason="this CPU has no avx512_bf16 or amx_bf16 (bfloat16 is emulated)")


def digits(n=256, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 1, 28, 28, generator=g), torch.randint(0, 10, (n,), generator=g)


def mlp():
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 32), nn.ReLU(), nn.Linear(32, 10))


def lenet():
    torch.manual_seed(0)
    return dlviz.models.zoo.LeNet(dropout=0.0)


class ViewNet(nn.Module):
    """A conv net that calls .view on its feature maps: it cannot run in channels-last layout."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3)
        self.bn = nn.BatchNorm2d(4)
        self.fc = nn.Linear(4 * 26 * 26, 10)

    def forward(self, x):
        h = self.bn(self.conv(x))
        return self.fc(h.view(h.shape[0], -1))


def manual_loop(model, x, y, batch_size, channels_last=False):
    """A plain float32 Adam loop over the batches fit takes (torch.randperm drawn from the global generator)."""
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    model.train()
    losses = []
    for idx in torch.randperm(len(x)).split(batch_size):
        inputs = x[idx].contiguous(memory_format=torch.channels_last) if channels_last else x[idx]
        optimizer.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(inputs), y[idx])
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    return losses


def patched_native(monkeypatch, native: bool):
    monkeypatch.setattr(_precision, "cpu_native_bf16", lambda: native)
    monkeypatch.delenv("DLVIZ_PRECISION", raising=False)   # the default choice, whatever this shell says


# --- fp32 forced --------------------------------------------------------------------------------------------------

def test_fp32_is_exactly_a_plain_float32_loop_for_an_mlp():
    x, y = digits()
    ours, theirs = mlp(), mlp()
    torch.manual_seed(1)
    history = dlviz.fit(ours, (x, y), epochs=1, batch_size=64, precision="fp32", progress=False)
    torch.manual_seed(1)
    losses = manual_loop(theirs, x, y, 64)
    assert history.batch_loss == losses
    for a, b in zip(ours.parameters(), theirs.parameters()):
        assert torch.equal(a, b)
    assert history.precision == "fp32" and history.channels_last is False


def test_fp32_conv_net_is_the_plain_loop_in_channels_last_layout_and_close_to_the_default_layout():
    x, y = digits()
    ours, same_layout, default_layout = lenet(), lenet(), lenet()
    torch.manual_seed(1)
    history = dlviz.fit(ours, (x, y), epochs=1, batch_size=64, precision="fp32", progress=False)
    torch.manual_seed(1)
    losses = manual_loop(same_layout, x, y, 64, channels_last=True)
    torch.manual_seed(1)
    plain = manual_loop(default_layout, x, y, 64)
    assert history.precision == "fp32" and history.channels_last is True
    assert history.batch_loss == losses
    assert history.batch_loss == pytest.approx(plain, rel=1e-4)
    for a, b, c in zip(ours.parameters(), same_layout.parameters(), default_layout.parameters()):
        assert torch.equal(a, b)
        torch.testing.assert_close(a, c, rtol=1e-3, atol=1e-4)


# --- bf16 ---------------------------------------------------------------------------------------------------------

def _forward_dtypes(model):
    seen = []
    handles = [m.register_forward_hook(lambda m, i, o: seen.append(o.dtype))
               for m in model.modules() if isinstance(m, (nn.Linear, nn.Conv2d))]
    return seen, handles


@needs_bf16
def test_bf16_runs_the_forward_in_bfloat16_and_keeps_float32_weights():
    x, y = digits()
    model = lenet()
    before = copy.deepcopy(model)
    seen, handles = _forward_dtypes(model)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    history = dlviz.fit(model, (x, y), epochs=1, batch_size=64, optimizer=optimizer, precision="bf16",
                        progress=False)
    for h in handles:
        h.remove()
    assert set(seen) == {torch.bfloat16}
    assert history.precision == "bf16" and history.channels_last
    assert all(isinstance(v, float) for v in history.batch_loss)
    assert all(p.dtype == torch.float32 for p in model.parameters())
    assert all(s["exp_avg"].dtype == torch.float32 for s in optimizer.state.values())
    assert any(not torch.equal(a, b) for a, b in zip(model.parameters(), before.parameters()))
    assert history.train_loss[0] < 2.4
    metrics = dlviz.evaluate(model, (x, y), precision="bf16")
    assert torch.isfinite(torch.tensor(metrics["loss"]))


@needs_bf16
def test_bf16_loss_is_float32_and_close_to_fp32():
    x, y = digits(128)
    model = lenet().eval()
    fp32 = dlviz.evaluate(model, (x, y), precision="fp32")
    bf16 = dlviz.evaluate(model, (x, y), precision="bf16")
    assert bf16["loss"] == pytest.approx(fp32["loss"], rel=2e-2)


# --- fallback without native bfloat16 -----------------------------------------------------------------------------

def test_bf16_without_native_support_warns_and_runs_float32(monkeypatch):
    patched_native(monkeypatch, False)
    x, y = digits(128)
    model = mlp()
    seen, handles = _forward_dtypes(model)
    with pytest.warns(UserWarning, match="no native bfloat16"):
        history = dlviz.fit(model, (x, y), epochs=1, batch_size=64, precision="bf16", progress=False)
    assert set(seen) == {torch.float32} and history.precision == "fp32"
    with pytest.warns(UserWarning, match="no native bfloat16"):
        dlviz.evaluate(model, (x, y), precision="bf16")


def test_auto_without_native_support_is_fp32_silently(monkeypatch):
    patched_native(monkeypatch, False)
    x, y = digits(128)
    for model in (mlp(), lenet()):
        seen, handles = _forward_dtypes(model)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            history = dlviz.fit(model, (x, y), epochs=1, batch_size=64, progress=False)
        assert set(seen) == {torch.float32} and history.precision == "fp32"


def test_detection_reads_cpu_flags(monkeypatch):
    assert isinstance(_precision.cpu_native_bf16(), bool)
    patched_native(monkeypatch, True)
    assert _precision.native_bf16("cpu") is True
    assert _precision.native_bf16(torch.device("meta")) is False


# --- auto's choice per kind of model -------------------------------------------------------------------------------

@pytest.mark.parametrize("native", [True, False])
def test_auto_choice_per_kind(monkeypatch, native):
    patched_native(monkeypatch, native)
    bf16 = "bf16" if native else "fp32"
    cases = {
        "conv": (lenet(), bf16, True),
        "mlp": (mlp(), bf16, False),
        "recurrent": (nn.LSTM(4, 8, batch_first=True), "fp32", False),
        "recurrent ": (dlviz.models.zoo.CharLSTM(20, hidden=8, layers=1), "fp32", False),
        "float64 mlp": (mlp().double(), "fp64", False),
        "float64 conv": (lenet().double(), "fp64", True),
        "other": (nn.Sequential(nn.Flatten(), nn.LayerNorm(784)), "fp32", False),
        "attention": (nn.TransformerEncoderLayer(8, 2, 16), "fp32", False),
    }
    for name, (model, precision, channels_last) in cases.items():
        plan = _precision.plan("auto", model, "cpu")
        assert (plan.precision, plan.channels_last) == (precision, channels_last), name
        assert _precision.plan("fp32", model, "cpu").precision == ("fp64" if "float64" in name else "fp32")


def test_model_kinds():
    assert _precision.model_kind(lenet()) == "conv"
    assert _precision.model_kind(mlp()) == "mlp"
    assert _precision.model_kind(nn.GRU(2, 2)) == "recurrent"
    assert _precision.model_kind(nn.ReLU()) == "other"


# --- bad values -----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("bad", ["fp16", "BF16", "float32", "", None, 16, torch.bfloat16])
def test_bad_precision_is_a_clear_value_error(bad):
    x, y = digits(8)
    model = mlp()
    before = copy.deepcopy(model.state_dict())
    with pytest.raises(ValueError, match="precision must be one of 'auto', 'fp32', 'bf16'"):
        dlviz.fit(model, (x, y), epochs=1, precision=bad, progress=False)
    with pytest.raises(ValueError, match="precision must be one of"):
        dlviz.evaluate(model, (x, y), precision=bad)
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())


def test_bf16_for_a_float64_model_is_a_value_error():
    x, y = digits(8)
    with pytest.raises(ValueError, match="float64"):
        dlviz.fit(mlp().double(), (x.double(), y), epochs=1, precision="bf16", progress=False)


def test_float64_model_stays_float64_under_auto():
    x, y = digits(64)
    model = lenet().double()
    history = dlviz.fit(model, (x.double(), y), epochs=1, batch_size=32, progress=False)
    assert history.precision == "fp64"
    assert all(p.dtype == torch.float64 for p in model.parameters())


# --- the model is left as it was -------------------------------------------------------------------------------------

def _layout(model):
    return {name: (t.dtype, t.stride()) for name, t in list(model.named_parameters()) + list(model.named_buffers())}


@pytest.mark.parametrize("precision", ["auto", "fp32", "bf16"])
def test_model_keeps_dtype_layout_and_mode(precision):
    x, y = digits(128)
    model = lenet().eval()
    layout = _layout(model)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # bf16 on a CPU without it
        dlviz.fit(model, (x, y), epochs=1, batch_size=64, precision=precision, progress=False)
        dlviz.evaluate(model, (x, y), precision=precision)
    assert _layout(model) == layout
    assert not model.training and not any(m.training for m in model.modules())
    assert all(p.grad is None or p.grad.stride() == p.stride() for p in model.parameters())
    # a model its user put in channels-last layout stays so
    model = lenet().to(memory_format=torch.channels_last)
    layout = _layout(model)
    dlviz.fit(model, (x, y), epochs=1, batch_size=64, precision="auto", progress=False)
    assert _layout(model) == layout


def test_layout_is_restored_when_fit_raises():
    x, y = digits(128)
    x[100] = float("nan")
    model = lenet()
    layout = _layout(model)
    with pytest.raises(ValueError, match="NaN"):
        dlviz.fit(model, (x, y), epochs=1, batch_size=32, progress=False)
    assert _layout(model) == layout


def test_a_model_that_cannot_run_channels_last_falls_back_to_the_usual_layout():
    torch.manual_seed(0)
    model = ViewNet()
    x, y = digits(64)
    layout = _layout(model)
    history = dlviz.fit(model, (x, y), epochs=2, batch_size=32, progress=False, val_data=(x, y))
    assert history.channels_last is False and len(history.val_loss) == 2
    assert int(model.bn.num_batches_tracked) == 4  # 2 epochs of 2 batches: the failed first pass left no trace
    assert _layout(model) == layout
    assert dlviz.evaluate(model, (x, y))["loss"] == pytest.approx(history.val_loss[-1], rel=2e-2)


# --- shown in the progress bars ---------------------------------------------------------------------------------------

def test_choice_shows_in_the_progress_bars(monkeypatch):
    descriptions = []
    real = dtrain._StoredBar

    def recording(*args, **kwargs):
        descriptions.append(kwargs.get("desc"))
        return real(*args, **{**kwargs, "disable": True})

    monkeypatch.setattr(dtrain, "_StoredBar", recording)
    x, y = digits(64)
    history = dlviz.fit(lenet(), (x, y), epochs=1, batch_size=32, progress=True)
    label = f"({history.precision}, channels-last)"
    assert descriptions == [f"epochs {label}", f"batches {label}"]
    descriptions.clear()
    dlviz.fit(mlp(), (x, y), epochs=1, batch_size=32, precision="fp32", progress=True)
    assert descriptions == ["epochs (fp32)", "batches (fp32)"]


# --- same accuracy ---------------------------------------------------------------------------------------------------

@pytest.mark.slow
def test_lenet_test_accuracy_after_two_epochs_is_the_same_for_auto_and_fp32(data_dir):
    train = dlviz.data.tensors(dlviz.data.mnist(root=data_dir, train=True, download=False), limit=4000)
    test = dlviz.data.tensors(dlviz.data.mnist(root=data_dir, train=False, download=False), limit=1000)
    accuracy = {}
    for precision in ("auto", "fp32"):
        model = lenet()
        torch.manual_seed(1)
        history = dlviz.fit(model, train, epochs=2, batch_size=64, precision=precision, progress=False)
        accuracy[precision] = dlviz.evaluate(model, test, precision="fp32")["accuracy"]
        assert history.precision == ("bf16" if NATIVE and precision == "auto" else "fp32")
    print(accuracy)
    assert accuracy["fp32"] > 0.9
    assert abs(accuracy["auto"] - accuracy["fp32"]) < 0.02, accuracy


# --- DLVIZ_PRECISION: another machine's choice on this one ----------------------------------------------------------

def test_the_environment_can_rule_bfloat16_out_of_auto(monkeypatch):
    """DLVIZ_PRECISION=fp32 makes "auto" choose float32 as on a machine without bfloat16; explicit choices and the
    layout are unchanged; "auto" (or unset, or empty) is the default; anything else is a clear error."""
    patched_native(monkeypatch, True)
    for setting in (None, "auto", "AUTO", ""):
        if setting is None:
            monkeypatch.delenv("DLVIZ_PRECISION", raising=False)
        else:
            monkeypatch.setenv("DLVIZ_PRECISION", setting)
        assert _precision.plan("auto", lenet(), "cpu").precision == "bf16"
    monkeypatch.setenv("DLVIZ_PRECISION", "fp32")
    assert _precision.plan("auto", lenet(), "cpu") == _precision.Plan("fp32", True, "cpu")
    assert _precision.plan("auto", mlp(), "cpu").precision == "fp32"
    assert _precision.plan("bf16", lenet(), "cpu").precision == "bf16"   # an explicit request is honoured
    x, y = digits(64)
    assert dlviz.fit(mlp(), (x, y), epochs=1, batch_size=64, progress=False).precision == "fp32"
    for bad in ("bf16", "float32", "1"):
        monkeypatch.setenv("DLVIZ_PRECISION", bad)
        with pytest.raises(ValueError, match="DLVIZ_PRECISION must be 'auto' or 'fp32'"):
            _precision.plan("auto", mlp(), "cpu")


def test_style_transfer_follows_the_same_switch(monkeypatch):
    from dlviz.synthesis import style
    patched_native(monkeypatch, True)
    extractor = style.vgg19_features(None)
    monkeypatch.setenv("DLVIZ_PRECISION", "fp32")
    assert style._resolve_precision("auto", extractor) == "fp32"
    monkeypatch.setenv("DLVIZ_PRECISION", "auto")
    assert style._resolve_precision("auto", extractor) == "bf16"
