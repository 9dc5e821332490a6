"""Exercises of notebook 02 (backpropagation and optimizers)."""
import math

from . import register
from ._answers import number

# --- 02.1 a backward rule for the engine ------------------------------------------------------------------------


def _sigmoid_solution():
    import math

    from dlviz.course.engine import Value

    def sigmoid(a):
        out = Value(1.0 / (1.0 + math.exp(-a.data)), (a,), "sigmoid")

        def _backward():                 # d sigma(a) = sigma(a) (1 - sigma(a)) da
            a.grad += out.data * (1.0 - out.data) * out.grad
        out._backward = _backward
        return out

    return sigmoid


def _sigmoid_check(answer):
    import torch

    from dlviz.course.engine import Value

    if not callable(answer):
        return False, "expected a function that takes a Value and returns a Value"
    worst = 0.0
    for x0 in (-2.0, -0.3, 0.0, 0.7, 3.0):
        # sigmoid of a value that is also used elsewhere, so that gradients must accumulate (+=, not =)
        x = Value(x0)
        u = x * x + x
        s = answer(u)
        if not isinstance(s, Value):
            return False, f"sigmoid(Value) returned a {type(s).__name__}, expected a Value"
        out = s * x + u
        out.backward()
        tx = torch.tensor(x0, dtype=torch.float64, requires_grad=True)
        tu = tx * tx + tx
        tout = torch.sigmoid(tu) * tx + tu
        tout.backward()
        if abs(s.data - torch.sigmoid(tu).item()) > 1e-9:
            return False, f"the forward value is wrong: sigmoid({tu.item():.3g}) should be {torch.sigmoid(tu).item():.6g}, got {s.data:.6g}"
        scale = max(abs(tx.grad.item()), 1e-12)
        worst = max(worst, abs(x.grad - tx.grad.item()) / scale)
    if worst < 1e-6:
        return True, (f"value and gradient match torch.autograd (relative error {worst:.1e}) on a graph where the "
                      "sigmoid's input is also used elsewhere: the rule accumulates with +=")
    return False, (f"the gradient differs from torch.autograd by a relative {worst:.2g}: the local derivative is "
                   "sigma (1 - sigma) times out.grad, added (+=) to the input's grad")


def _sigmoid_wrong_derivative(a):
    from dlviz.course.engine import Value
    out = Value(1.0 / (1.0 + math.exp(-a.data)), (a,), "sigmoid")

    def _backward():
        a.grad += out.data * out.grad                # forgot the (1 - sigma) factor
    out._backward = _backward
    return out


def _sigmoid_overwrites(a):
    from dlviz.course.engine import Value
    out = Value(1.0 / (1.0 + math.exp(-a.data)), (a,), "sigmoid")

    def _backward():
        a.grad = out.data * (1.0 - out.data) * out.grad   # = instead of +=: loses the other uses of a
    out._backward = _backward
    return out


def _sigmoid_no_graph(a):
    from dlviz.course.engine import Value
    return Value(1.0 / (1.0 + math.exp(-a.data)))     # right value, but no parents: no gradient flows


register("02.1", "A backward rule: sigmoid", check=_sigmoid_check, solution=_sigmoid_solution,
         wrong=[_sigmoid_wrong_derivative, _sigmoid_overwrites, _sigmoid_no_graph])


# --- 02.2 momentum's stability limit ----------------------------------------------------------------------------

def _heavy_ball_converges(lr, momentum, curvature, steps=4000):
    x, v = 1.0, 0.0
    for _ in range(steps):
        v = momentum * v - lr * curvature * x
        x = x + v
        if abs(x) > 1e12:
            return False
    return abs(x) < 1e-3


def _limit_solution():
    # bisection on the learning rate: heavy-ball momentum 0.5 on f(x) = 40 x^2 / 2
    lo, hi = 1e-4, 1.0
    for _ in range(40):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if _heavy_ball_converges(mid, 0.5, 40.0) else (lo, mid)
    return lo          # theory: 2 (1 + momentum) / curvature = 0.075


def _limit_check(answer):
    value = number(answer)
    expected = 2 * (1 + 0.5) / 40.0
    if abs(value - expected) <= 0.02 * expected:
        return True, (f"{value:.4g}: momentum converges for lr * curvature < 2 (1 + momentum), i.e. lr < "
                      f"{expected:.4g}, 1.5 times plain descent's limit 2 / 40 = 0.05")
    hint = ""
    if abs(value - 0.05) < 1e-3:
        hint = " 0.05 is plain gradient descent's limit 2 / curvature; momentum's is larger."
    elif abs(value - 0.15) < 2e-3:
        hint = " 0.15 is the limit on the effective step lr / (1 - momentum); the question asks for lr itself."
    return False, f"{value:.4g} is not the largest learning rate that converges (within 2%).{hint}"


register("02.2", "Momentum's stability limit", check=_limit_check, solution=_limit_solution,
         wrong=[0.05, 0.1, 0.15, 0.5])


# --- 02.3 Adam's first steps, bias correction included ----------------------------------------------------------

_ADAM_GRADS = (0.5, -0.1, 0.2)


def _adam_solution():
    import torch
    w = torch.tensor([1.0], dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.Adam([w], lr=0.1)            # betas (0.9, 0.999), eps 1e-8
    for g in (0.5, -0.1, 0.2):
        w.grad = torch.tensor([g], dtype=torch.float64)  # the given gradients, whatever w is
        optimizer.step()
    return w.item()


def _adam_reference(bias_correction=True):
    m = v = 0.0
    w = 1.0
    for t, g in enumerate(_ADAM_GRADS, start=1):
        m = 0.9 * m + 0.1 * g
        v = 0.999 * v + 0.001 * g * g
        m_hat, v_hat = (m / (1 - 0.9 ** t), v / (1 - 0.999 ** t)) if bias_correction else (m, v)
        w -= 0.1 * m_hat / (math.sqrt(v_hat) + 1e-8)
    return w


def _adam_check(answer):
    value = number(answer)
    expected = _adam_reference()
    if abs(value - expected) < 1e-6:
        return True, f"w = {expected:.6f}; the first step alone is lr * g1 / |g1| = 0.1: Adam's first step has size lr"
    if abs(value - _adam_reference(bias_correction=False)) < 1e-6:
        return False, ("that is Adam without bias correction: m and v start at 0, so divide them by (1 - beta1^t) "
                       "and (1 - beta2^t)")
    return False, f"{value:.6g} is not w after three Adam steps (expected to within 1e-6)"


register("02.3", "Adam's first steps", check=_adam_check, solution=_adam_solution,
         wrong=[_adam_reference(bias_correction=False), 1 - 0.1 * sum(_ADAM_GRADS), 0.9, 0.7])


# --- 02.4 learning-rate schedules -------------------------------------------------------------------------------

def _schedule_solution():
    import torch
    answers = []
    for make in (lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=1000),
                 lambda o: torch.optim.lr_scheduler.StepLR(o, step_size=100, gamma=0.5)):
        optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
        schedule = make(optimizer)
        for _ in range(250):
            optimizer.step()
            schedule.step()
        answers.append(optimizer.param_groups[0]["lr"])
    return tuple(answers)


def _schedule_check(answer):
    cosine, step = (float(a) for a in answer)
    want_cosine, want_step = 0.1 * (1 + math.cos(math.pi * 250 / 1000)) / 2, 0.1 * 0.5 ** (250 // 100)
    wrong = []
    if abs(cosine - want_cosine) > 1e-6:
        wrong.append(f"cosine: {cosine:.6g} (lr_t = lr (1 + cos(pi t / T)) / 2)")
    if abs(step - want_step) > 1e-6:
        wrong.append(f"step decay: {step:.6g} (lr_t = lr * gamma ** (t // step_size): two halvings by step 250)")
    if not wrong:
        return True, f"cosine {want_cosine:.5f}, step decay {want_step:.4g}"
    return False, "not yet: " + "; ".join(wrong)


register("02.4", "A schedule's learning rate at step t", check=_schedule_check, solution=_schedule_solution,
         wrong=[(0.075, 0.025), (0.0853553, 0.0125), (0.0146447, 0.025)])


# --- 02.5 weight decay: SGD versus Adam's L2 --------------------------------------------------------------------

def _decay_solution():
    import torch
    results = []
    for make, steps in ((lambda p: torch.optim.SGD(p, lr=0.1, weight_decay=5e-3), 1000),
                        (lambda p: torch.optim.Adam(p, lr=1e-3, weight_decay=5e-3), 100)):
        w = torch.tensor([1.0], dtype=torch.float64, requires_grad=True)
        optimizer = make([w])
        for _ in range(steps):
            w.grad = torch.zeros(1, dtype=torch.float64)   # the data's gradient is zero: only the decay acts
            optimizer.step()
        results.append(w.item())
    return tuple(results)


def _decay_check(answer):
    sgd, adam = (float(a) for a in answer)
    want_sgd = (1 - 0.1 * 5e-3) ** 1000
    ok_sgd, ok_adam = abs(sgd - want_sgd) < 2e-3, abs(adam - 0.9017) < 2e-3
    if ok_sgd and ok_adam:
        return True, (f"SGD multiplies w by (1 - lr lambda) each step: {want_sgd:.4f} after 1000 steps. Adam divides "
                      "the penalty's gradient lambda w by its own size, so w moves by about lr per step whatever "
                      "lambda is: 1 - 100 * 0.001 = 0.90")
    why = []
    if not ok_sgd:
        why.append(f"SGD: {sgd:.4g}, expected (1 - lr * weight_decay) ** 1000 = {want_sgd:.4f}")
    if not ok_adam:
        why.append(f"Adam: {adam:.4g}; Adam's L2 gradient lambda w is normalized by its root mean square, so each step "
                   "is close to lr, not lr * lambda * w")
    return False, "; ".join(why)


register("02.5", "Weight decay: SGD versus Adam's L2 penalty", check=_decay_check, solution=_decay_solution,
         wrong=[(0.5, 0.9), ((1 - 5e-4) ** 1000, (1 - 1e-3 * 5e-3) ** 100), (0.6065, 0.99)])
