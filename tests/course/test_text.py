"""dlviz.course.text.loss_per_char against a direct computation: the chunked, state-carrying evaluation is plain
cross-entropy of next-character prediction, whatever the chunk size and the number of streams."""
import math

import pytest
import torch
from torch.nn import functional as F

from dlviz.course import text
from dlviz.models import zoo

pytestmark = pytest.mark.usefixtures("one_thread")

# Richard III, act 1, scene 1 (public domain)
PASSAGE = """GLOUCESTER:
Now is the winter of our discontent
Made glorious summer by this sun of York;
And all the clouds that lour'd upon our house
In the deep bosom of the ocean buried.
Now are our brows bound with victorious wreaths;
Our bruised arms hung up for monuments;
Our stern alarums changed to merry meetings,
Our dreadful marches to delightful measures.
"""


@pytest.fixture(scope="module")
def model():
    return zoo.load("charlstm_shakespeare")


@torch.no_grad()
def direct_loss(model, codes):
    """Mean cross-entropy of predicting codes[t+1] from all of codes[:t+1], in one forward pass."""
    logits, _ = model(codes[None, :-1])
    return float(F.cross_entropy(logits[0], codes[1:]))


def test_one_stream_is_plain_cross_entropy(model):
    codes = model.encode(PASSAGE)
    expected = direct_loss(model, codes)
    assert 0.5 < expected < 3.0                       # a trained model on Shakespeare: far below ln 65 = 4.17
    assert text.loss_per_char(model, codes, streams=1) == pytest.approx(expected, abs=1e-5)


@pytest.mark.parametrize("chunk", [1, 7, 100, 10_000])
def test_chunk_size_does_not_change_the_loss(model, chunk):
    codes = model.encode(PASSAGE)
    expected = direct_loss(model, codes)
    assert text.loss_per_char(model, codes, streams=1, chunk=chunk) == pytest.approx(expected, abs=1e-5)
    assert text.loss_per_char(model, codes, streams=3, chunk=chunk) == pytest.approx(
        text.loss_per_char(model, codes, streams=3, chunk=len(codes)), abs=1e-5)


def test_the_state_is_carried_across_chunks(model):
    # the check above can fail: reading each chunk from a fresh state gives a clearly higher loss
    codes = model.encode(PASSAGE)
    chunks = [codes[i:i + 8] for i in range(0, len(codes) - 1, 7)]          # overlapping by one: all targets once
    forgetful = sum(direct_loss(model, c) * (len(c) - 1) for c in chunks) / (len(codes) - 1)
    assert forgetful > text.loss_per_char(model, codes, streams=1, chunk=7) + 0.1


def test_streams_average_their_own_losses(model):
    codes = model.encode(PASSAGE)
    streams = 4
    per_stream = (len(codes) - 1) // streams
    pieces = [codes[s * per_stream:(s + 1) * per_stream + 1] for s in range(streams)]
    expected = sum(direct_loss(model, p) for p in pieces) / streams          # equal lengths: mean of the means
    assert text.loss_per_char(model, codes, streams=streams, chunk=50) == pytest.approx(expected, abs=1e-5)


def test_eval_mode_inside_and_caller_mode_restored():
    torch.manual_seed(0)
    net = zoo.CharLSTM(12, hidden=16, layers=2, embed=8, dropout=0.5)      # dropout: train mode would be random
    codes = torch.randint(0, 12, (200,))
    net.eval()
    expected = direct_loss(net, codes)
    net.train()
    first = text.loss_per_char(net, codes, streams=1, chunk=30)
    assert first == pytest.approx(expected, abs=1e-5) and first == text.loss_per_char(net, codes, streams=1, chunk=30)
    assert net.training and all(p.requires_grad for p in net.parameters())
    assert math.log(12) - 0.5 < first < math.log(12) + 0.5                 # untrained: about uniform guessing


def test_too_short_text_raises(model):
    with pytest.raises(ValueError, match="too short"):
        text.loss_per_char(model, model.encode("abc"), streams=4)
