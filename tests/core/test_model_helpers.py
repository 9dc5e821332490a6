"""dlviz._model: how every dlviz function calls a user's model -- class scores out of any output, inputs in the
model's dtype and never the caller's tensor, results in the caller's dtype, gradients under inference_mode."""
from collections import namedtuple

import pytest
import torch
from torch import nn

from dlviz._model import class_scores, gradients_on, model_dtype, model_input, select_scores, to_caller
from dlviz._validate import as_int, check_count, check_targets

Output = namedtuple("Output", "logits aux")


def test_select_scores_from_a_tensor_tuple_dict_or_object():
    s = torch.randn(3, 4)
    assert select_scores(s) is s
    assert select_scores((s, 0), 0) is s
    assert select_scores({"logits": s}, "logits") is s
    assert select_scores(Output(s, None), "logits") is s
    assert select_scores([s], lambda out: out[0]) is s


@pytest.mark.parametrize("out", [(torch.zeros(2, 3),), {"logits": torch.zeros(2, 3)}, Output(torch.zeros(2, 3), 1)])
def test_a_non_tensor_output_without_output_says_what_to_pass(out):
    with pytest.raises(TypeError, match="output="):
        select_scores(out)


def test_bad_output_selectors_are_named():
    s = torch.zeros(2, 3)
    with pytest.raises(IndexError, match="2 values"):
        select_scores((s, s), 2)
    with pytest.raises(KeyError, match="keys"):
        select_scores({"a": s}, "logits")
    with pytest.raises(AttributeError, match="without that attribute"):
        select_scores(Output(s, 1), "scores")
    with pytest.raises(TypeError, match="indexes a tuple"):
        select_scores({"a": s}, 0)
    with pytest.raises(TypeError, match="output must be"):
        select_scores(s, 1.5)


def test_scores_must_be_one_row_per_image_and_classes_when_needed():
    with pytest.raises(ValueError, match=r"N = 3"):
        select_scores(torch.zeros(2, 3), n=3)
    with pytest.raises(ValueError, match=r"\(N, classes\)"):
        select_scores(torch.zeros(2, 3, 4))
    with pytest.raises(ValueError, match="single score per image"):
        class_scores(nn.Linear(4, 1), torch.zeros(2, 4), need_classes=True)
    assert class_scores(nn.Linear(4, 1), torch.zeros(2, 4)).shape == (2, 1)


def test_model_input_is_a_copy_in_the_models_dtype_and_to_caller_undoes_it():
    model = nn.Linear(2, 2).double()
    assert model_dtype(model) == torch.float64 and model_dtype(nn.ReLU()) == torch.float32
    x = torch.rand(1, 4, 4)
    batch, single = model_input(model, x)
    assert single and batch.shape == (1, 1, 4, 4) and batch.dtype == torch.float64
    batch.add_(1)                                             # what an in-place normalizing model would do
    assert float(x.max()) <= 1
    back = to_caller(batch, x, single)
    assert back.shape == x.shape and back.dtype == torch.float32


def test_gradients_on_works_inside_inference_mode():
    w = torch.ones(3, requires_grad=True)
    with torch.inference_mode():
        x = torch.rand(3)
        with gradients_on():
            copy = x.clone()
            (grad,) = torch.autograd.grad((copy * w).sum(), w)
    assert torch.equal(grad, x)


def test_empty_targets_are_rejected():
    with pytest.raises(ValueError, match="empty"):
        check_targets([], 2)


def test_integers_are_python_or_numpy_ints_never_bools_or_floats():
    np = pytest.importorskip("numpy")
    assert as_int(3) == 3 and as_int(np.int64(3)) == 3
    assert as_int(True) is None and as_int(3.0) is None and as_int("3") is None
    assert check_count(np.int32(2), "k") == 2 and check_count(0, "steps", 0) == 0
    for bad in (0, -1, 2.0, True, None):
        with pytest.raises(ValueError, match=r"k must be an int >= 1, got"):
            check_count(bad, "k")
