"""precision= on the inference-heavy paths (occlusion, top_activations, fooling_images): float32 by default and
unchanged, bfloat16 when asked where the CPU has it (and close to float32), the fallback where it does not, bad
values refused, and the model left as it was."""
import contextlib
import copy
import warnings

import pytest
import torch
from torch import nn

import dlviz
from dlviz import _precision

pytestmark = pytest.mark.usefixtures("one_thread")
NATIVE = _precision.cpu_native_bf16()
needs_bf16 = pytest.mark.skipif(not NATIVE, reason="this CPU has no avx512_bf16 or amx_bf16 (bfloat16 is emulated)")


def lenet():
    torch.manual_seed(0)
    return dlviz.models.zoo.LeNet(dropout=0.0).eval()


def digits(n=64, seed=0):
    return torch.rand(n, 1, 28, 28, generator=torch.Generator().manual_seed(seed))


@contextlib.contextmanager
def recording(model):
    """Yields a list that collects the (dtype, batch size) of every output of the model's convolutions and linear
    layers inside the block; the hooks are removed afterwards."""
    seen = []
    handles = [m.register_forward_hook(lambda m, i, o: seen.append((o.dtype, o.shape[0])))
               for m in model.modules() if isinstance(m, (nn.Linear, nn.Conv2d))]
    try:
        yield seen
    finally:
        for handle in handles:
            handle.remove()


# the batch size of the passes that compute each call's result: top_activations's receptive-field probes (which
# locate the boxes) and fooling_images's one-image probe of the class count run in float32, in other batch sizes
SEARCH_BATCH = {"top_activations": 64, "fooling_images": 2}


def dtypes(name, seen):
    """The dtypes of the passes that compute the call's result."""
    return {dtype for dtype, n in seen if name not in SEARCH_BATCH or n == SEARCH_BATCH[name]}


CALLS = {
    "occlusion": lambda model, precision: dlviz.occlusion(model, digits(2), [3, 7], window=8, stride=4,
                                                           progress=False, precision=precision),
    "top_activations": lambda model, precision: dlviz.top_activations(model, digits(64), layer="features.0", k=5,
                                                                       progress=False, precision=precision),
    "fooling_images": lambda model, precision: dlviz.fooling_images(
        model, [1, 2], steps=3, confidence=0.99, progress=False, generator=torch.Generator().manual_seed(0),
        precision=precision),
}


@pytest.mark.parametrize("name", CALLS)
def test_fp32_is_the_default_and_runs_in_float32(name):
    model = lenet()
    with recording(model) as seen:
        CALLS[name](model, "fp32")
    assert dtypes(name, seen) == {torch.float32}


@pytest.mark.parametrize("name", CALLS)
def test_bad_precision_is_refused(name):
    with pytest.raises(ValueError, match="precision must be one of"):
        CALLS[name](lenet(), "half")


@needs_bf16
@pytest.mark.parametrize("name", CALLS)
def test_bf16_runs_in_bfloat16_and_leaves_the_model_as_it_was(name):
    model = lenet()
    before = copy.deepcopy(model.state_dict())
    with recording(model) as seen:
        CALLS[name](model, "bf16")
    if name == "fooling_images":  # the search in bfloat16; the last pass measures the confidences in float32
        assert [dtype for dtype, _ in seen[-4:]] == [torch.float32] * 4
        seen = seen[:-4]
    assert dtypes(name, seen) == {torch.bfloat16}
    assert not model.training
    for key, value in model.state_dict().items():
        assert value.dtype == before[key].dtype and torch.equal(value, before[key])
        assert value.is_contiguous()


@pytest.mark.parametrize("name", CALLS)
def test_bf16_without_native_support_warns_and_runs_float32(monkeypatch, name):
    monkeypatch.setattr(_precision, "cpu_native_bf16", lambda: False)
    model = lenet()
    with recording(model) as seen, pytest.warns(UserWarning, match="no native bfloat16"):
        CALLS[name](model, "bf16")
    assert dtypes(name, seen) == {torch.float32}


@pytest.mark.parametrize("name", CALLS)
def test_auto_without_native_support_is_float32_silently(monkeypatch, name):
    monkeypatch.setattr(_precision, "cpu_native_bf16", lambda: False)
    model = lenet()
    with recording(model) as seen, warnings.catch_warnings():
        warnings.simplefilter("error")
        CALLS[name](model, "auto")
    assert dtypes(name, seen) == {torch.float32}


@needs_bf16
def test_bf16_occlusion_is_close_to_float32():
    model, x = lenet(), digits(2)
    exact = dlviz.occlusion(model, x, [3, 7], window=8, stride=4, score="logit", progress=False)
    rounded = dlviz.occlusion(model, x, [3, 7], window=8, stride=4, score="logit", progress=False, precision="bf16")
    assert rounded.dtype == exact.dtype == torch.float32
    # logits of a few units; bfloat16 keeps about 3 significant digits of each
    with torch.no_grad():
        scale = float(model(x).abs().max())
    assert float((rounded - exact).abs().max()) < 0.03 * scale
    assert float(torch.corrcoef(torch.stack([rounded.flatten(), exact.flatten()]))[0, 1]) > 0.99


@needs_bf16
def test_bf16_top_activations_are_close_to_float32():
    model, images = lenet(), digits(256)
    exact = dlviz.top_activations(model, images, layer="features.0", k=9, progress=False)
    rounded = dlviz.top_activations(model, images, layer="features.0", k=9, progress=False, precision="bf16")
    assert rounded.values.dtype == torch.float32
    # values within bfloat16's rounding of the inputs, weights and sums; rankings may swap near-ties only
    assert torch.allclose(rounded.values, exact.values, rtol=0.02, atol=0.02)
    same = [len(set(a.tolist()) & set(b.tolist())) for a, b in zip(rounded.indices, exact.indices)]
    assert sum(same) >= 0.8 * exact.indices.numel()


@needs_bf16
def test_bf16_fooling_reaches_its_labels_and_reports_float32_confidences():
    model = dlviz.models.zoo.load("lenet_mnist")   # trained: an untrained net's flat scores reach no label
    images, info = dlviz.fooling_images(model, [0, 1, 2], confidence=0.9, progress=False, precision="bf16",
                                        generator=torch.Generator().manual_seed(0), return_info=True)
    with torch.no_grad():
        confidences = model(images).softmax(1)[torch.arange(3), torch.tensor([0, 1, 2])]
    # the report is measured in float32, whatever the search ran in
    assert torch.allclose(info.confidences, confidences, atol=1e-6)
    assert bool(info.reached.all()) and bool((confidences >= 0.9).all())
