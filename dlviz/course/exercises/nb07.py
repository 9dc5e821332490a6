"""Exercises of notebook 07 (recurrent networks and the LSTM)."""
import math

from . import register
from ._answers import number


# --- 05.1 the parameters of an LSTM layer -----------------------------------------------------------------------

_EMBED, _HIDDEN, _LAYERS = 48, 256, 2          # the LSTM inside the course's shipped character model


def _lstm_params_solution():
    # each layer has 4 gates (input, forget, candidate, output); each gate has a weight for the layer's input,
    # a weight for h_{t-1}, and (in PyTorch) two bias vectors, b_ih and b_hh
    embed, hidden = 48, 256
    layer1 = 4 * hidden * (embed + hidden) + 2 * 4 * hidden       # reads the 48-dim embedding
    layer2 = 4 * hidden * (hidden + hidden) + 2 * 4 * hidden      # reads layer 1's 256-dim h_t
    return layer1 + layer2


def _lstm_params_check(answer):
    import torch

    expected = sum(p.numel() for p in torch.nn.LSTM(_EMBED, _HIDDEN, num_layers=_LAYERS).parameters())
    value = number(answer)
    if value == expected:
        return True, (f"{expected:,}: per layer 4 gates x hidden x (input + hidden) weights plus two bias vectors of "
                      "4 x hidden (PyTorch keeps b_ih and b_hh); layer 2's input is layer 1's h, 256 wide")
    hints = {4 * _HIDDEN * (_EMBED + _HIDDEN) + 2 * 4 * _HIDDEN: "that is layer 1 only; layer 2 reads 256 inputs",
             expected - 2 * 4 * _HIDDEN: "PyTorch has two bias vectors per layer (b_ih and b_hh), not one",
             expected - 4 * 4 * _HIDDEN: "count the biases: two vectors of 4 x hidden per layer",
             2 * 4 * _HIDDEN * (_EMBED + _HIDDEN) + 4 * 4 * _HIDDEN:
                 "layer 2 reads layer 1's h_t (256 wide), not the 48-dim embedding"}
    hint = hints.get(value, "per layer: 4 x hidden x (input size + hidden) weights + 2 x 4 x hidden biases")
    return False, f"expected {expected:,}, got {value:,.0f}: {hint}"


register("07.1", "Parameters of an LSTM", check=_lstm_params_check, solution=_lstm_params_solution,
         wrong=[313_344, 835_584, 831_488, 3 * 839_680 // 4, 839_680 + 1])


# --- 05.2 backpropagation through time in a linear RNN ----------------------------------------------------------

def _bptt_problem():
    import torch
    W = torch.tensor([[0.5, 0.9], [-0.3, 0.8]], dtype=torch.float64)
    return W, 12                                   # h_t = W h_{t-1} + x_t, h_0 = 0, t = 1..12; loss = h_12.sum()


def _bptt_solution():
    import torch
    W = torch.tensor([[0.5, 0.9], [-0.3, 0.8]], dtype=torch.float64)
    T = 12
    # h_T = sum_t W^(T-t) x_t, so d loss / d x_1 = (W^(T-1))^T 1: the error 1 sent back through W^T, T-1 times
    return torch.linalg.matrix_power(W.T, T - 1) @ torch.ones(2, dtype=torch.float64)


def _bptt_check(answer):
    import torch
    W, T = _bptt_problem()
    x = torch.zeros(T, 2, dtype=torch.float64, requires_grad=True)
    h = torch.zeros(2, dtype=torch.float64)
    for t in range(T):
        h = W @ h + x[t]
    h.sum().backward()
    expected = x.grad[0]
    got = torch.as_tensor(answer, dtype=torch.float64).reshape(-1)
    if got.shape != (2,):
        return False, f"expected a vector of 2 numbers (the gradient with respect to x_1), got shape {tuple(got.shape)}"
    error = float((got - expected).norm() / expected.norm())
    if error < 1e-6:
        return True, (f"d loss / d x_1 = {[round(v, 4) for v in expected.tolist()]} (relative error {error:.0e}): "
                      f"the error is sent back through W^T {T - 1} times")
    no_transpose = torch.linalg.matrix_power(W, T - 1) @ torch.ones(2, dtype=torch.float64)
    if float((got - no_transpose).norm()) < 1e-6 * float(no_transpose.norm()):
        return False, "that is W^(T-1) 1: backpropagation multiplies by the transpose, (W^T)^(T-1) 1"
    return False, (f"expected {[round(v, 4) for v in expected.tolist()]} (relative error {error:.2g}): x_1 reaches "
                   f"h_{T} through {T - 1} multiplications by W (not {T})")


def _bptt_wrongs():
    import torch
    W, T = _bptt_problem()
    one = torch.ones(2, dtype=torch.float64)
    return [torch.linalg.matrix_power(W, T - 1) @ one,           # forgot the transpose
            torch.linalg.matrix_power(W.T, T) @ one,             # one multiplication too many
            one]                                                  # as if the gradient did not change through time


register("07.2", "BPTT through a linear RNN", check=_bptt_check, solution=_bptt_solution, wrong=_bptt_wrongs())


# --- 05.3 the forget bias that keeps half the memory ------------------------------------------------------------

def _half_life_solution():
    import math
    # with a constant forget gate f = sigmoid(b), what was written at step 1 is multiplied by f at each of the 59
    # later steps: f^59 = 1/2  =>  f = 2^(-1/59)  =>  b = logit(f) = ln(f / (1 - f))
    f = 0.5 ** (1 / 59)
    return math.log(f / (1 - f))


def _half_life_check(answer):
    f = 0.5 ** (1 / 59)
    expected = math.log(f / (1 - f))
    value = number(answer)
    if abs(value - expected) < 0.005:
        return True, (f"b = {expected:.3f}: sigmoid(b) = {f:.4f} and {f:.4f}^59 = 0.5; a bias of 4 keeps "
                      f"{(1 / (1 + math.exp(-4))) ** 59:.0%} over the same 59 steps")
    if abs(value - f) < 0.005:
        return False, f"{value:.4f} is the forget gate's value f; the bias is logit(f) = ln(f / (1 - f))"
    kept = (1 / (1 + math.exp(-value))) ** 59
    return False, (f"with b = {value:.3g}, sigmoid(b)^59 = {kept:.3g} of the value is left, not 0.5; solve "
                   "sigmoid(b)^59 = 1/2 for b")


register("07.3", "The forget bias for a half-life of 59 steps", check=_half_life_check, solution=_half_life_solution,
         wrong=[4.0, math.log(59), 0.98832, 4.455])


# --- 05.4 gradient clipping by the global norm ------------------------------------------------------------------

def _clip_solution():
    import torch

    def clip(grads, max_norm):
        # one norm over all the tensors together; rescale them all by the same factor, only if it is too large
        total = torch.sqrt(sum((g ** 2).sum() for g in grads))
        scale = min(1.0, max_norm / (float(total) + 1e-12))
        return [g * scale for g in grads]

    return clip


def _clip_check(answer):
    import torch

    if not callable(answer):
        return False, "expected a function clip(grads, max_norm) that returns a list of tensors"
    generator = torch.Generator().manual_seed(0)
    cases = [([torch.randn(3, 4, generator=generator) * 10, torch.randn(5, generator=generator)], 1.0),
             ([torch.randn(2, 2, generator=generator) * 0.01, torch.randn(7, generator=generator) * 0.01], 1.0),
             ([torch.randn(6, generator=generator), torch.randn(1, 3, generator=generator) * 100], 5.0)]
    for grads, max_norm in cases:
        originals = [g.clone() for g in grads]
        got = answer([g.clone() for g in grads], max_norm)
        params = [torch.nn.Parameter(torch.zeros_like(g)) for g in originals]
        for p, g in zip(params, originals):
            p.grad = g.clone()
        norm_before = float(torch.nn.utils.clip_grad_norm_(params, max_norm))
        expected = [p.grad for p in params]
        got = list(got)
        if len(got) != len(expected) or any(tuple(a.shape) != tuple(b.shape) for a, b in zip(got, expected)):
            return False, "return one tensor per input tensor, each of the same shape"
        error = max(float((a - b).abs().max()) for a, b in zip(got, expected))
        if error > 1e-5 * max(1.0, max_norm):
            if norm_before <= max_norm:
                return False, (f"gradients of total norm {norm_before:.3g} under max_norm {max_norm} must be left "
                               "unchanged: clipping only ever shortens")
            return False, (f"for gradients of total norm {norm_before:.3g} and max_norm {max_norm}, the result differs "
                           f"by up to {error:.3g}: rescale every tensor by the same factor max_norm / (norm of all of "
                           "them together), which keeps the direction")
    return True, ("matches torch.nn.utils.clip_grad_norm_: one norm over all tensors, the same factor for every "
                  "tensor, and nothing changes when the norm is already under the threshold")


def _clip_per_tensor(grads, max_norm):              # clips each tensor on its own: changes the direction
    return [g * min(1.0, max_norm / float(g.norm())) for g in grads]


def _clip_values(grads, max_norm):                  # clamps each entry (clip_grad_value_): changes the direction
    return [g.clamp(-max_norm, max_norm) for g in grads]


def _clip_always(grads, max_norm):                  # rescales even small gradients up to the threshold
    import torch
    total = float(torch.sqrt(sum((g ** 2).sum() for g in grads)))
    return [g * max_norm / total for g in grads]


register("07.4", "Gradient clipping by the global norm", check=_clip_check, solution=_clip_solution,
         wrong=[_clip_per_tensor, _clip_values, _clip_always])


# --- 05.5 Adam's step after a gradient spike --------------------------------------------------------------------

def _adam_spike_expected():
    # Adam's update written out (Kingma and Ba 2015, defaults beta1 0.9, beta2 0.999, eps 1e-8), lr 1e-3:
    # 100 steps with gradient 1, then one step with gradient 1e6; the size of that last step
    lr, b1, b2, eps = 1e-3, 0.9, 0.999, 1e-8
    m = v = 0.0
    grads = [1.0] * 100 + [1e6]
    for t, g in enumerate(grads, start=1):
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        step = lr * (m / (1 - b1 ** t)) / (math.sqrt(v / (1 - b2 ** t)) + eps)
    return step


def _adam_spike_solution():
    import torch
    w = torch.zeros(1, requires_grad=True)
    optimizer = torch.optim.Adam([w], lr=1e-3)
    for g in [1.0] * 100 + [1e6]:
        before = float(w.detach())
        w.grad = torch.tensor([g])
        optimizer.step()
    return abs(float(w.detach()) - before)                  # the size of the last step


def _adam_spike_check(answer):
    expected = _adam_spike_expected()
    value = abs(number(answer))
    if abs(value - expected) < 1e-3 * expected:
        return True, (f"{expected:.4g}: about the learning rate, although the gradient jumped a million-fold "
                      f"(SGD at the same rate would step 1e-3 x 1e6 = 1000)")
    if abs(value - 1000) < 1:
        return False, "1000 is plain SGD's step, lr x gradient; Adam divides by the root of its running squared gradient"
    return False, (f"expected about {expected:.4g}, got {value:.4g}: run Adam's update (with its bias corrections) "
                   "for the 100 gradients of 1 and then the spike")


register("07.5", "Adam's step after a gradient spike", check=_adam_spike_check, solution=_adam_spike_solution,
         wrong=[1000.0, 1e-3 * (0.1 / math.sqrt(0.001)), 0.0])


# --- 05.6 perplexity and bits from a loss in nats ---------------------------------------------------------------

def _perplexity_solution():
    import math

    from dlviz.models import zoo

    nats = zoo.metadata("charlstm_shakespeare")["val_loss_nats_per_char"]   # mean -ln p(next character)
    perplexity = math.exp(nats)              # as unsure as a uniform choice among this many characters
    bits = nats / math.log(2)                # the same loss with log base 2: ln x = log2(x) ln 2
    return perplexity, bits


def _perplexity_check(answer):
    from dlviz.models import zoo

    nats = zoo.metadata("charlstm_shakespeare")["val_loss_nats_per_char"]
    perplexity, bits = math.exp(nats), nats / math.log(2)
    try:
        got_perplexity, got_bits = (number(a) for a in answer)
    except (TypeError, ValueError):
        return False, "expected a pair of numbers: (perplexity, bits per character)"
    ok_perplexity, ok_bits = abs(got_perplexity - perplexity) < 0.01, abs(got_bits - bits) < 0.005
    if ok_perplexity and ok_bits:
        return True, (f"perplexity e^{nats:.4f} = {perplexity:.3f}: as unsure as a uniform choice among about "
                      f"{perplexity:.0f} of the 65 characters; {bits:.3f} bits per character = nats / ln 2, and "
                      f"2^{bits:.3f} gives the same perplexity")
    if not ok_perplexity:
        if abs(got_perplexity - 2 ** nats) < 0.01:
            return False, "2^loss is the perplexity only for a loss in bits; this loss is in nats: use e^loss"
        return False, f"the perplexity should be e^{nats:.4f} = {perplexity:.3f}, got {got_perplexity:.4g}"
    if abs(got_bits - nats * math.log(2)) < 0.005:
        return False, "bits = nats / ln 2 (a bit is a larger unit than a nat), not nats x ln 2"
    return False, f"the loss in bits per character should be {nats:.4f} / ln 2 = {bits:.3f}, got {got_bits:.4g}"


_NATS = 1.6088     # the shipped model's validation loss (its metadata): the wrong answers below are built from it


register("07.6", "Perplexity and bits per character", check=_perplexity_check, solution=_perplexity_solution,
         wrong=[(math.exp(_NATS), _NATS), (2 ** _NATS, _NATS / math.log(2)), (math.exp(_NATS), _NATS * math.log(2)),
                (_NATS, _NATS / math.log(2)), math.exp(_NATS)])
