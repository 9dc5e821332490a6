#!/usr/bin/env python3
"""Every dlviz benchmark side by side in one process: dlviz's time, its peer's (Captum) or a plain-PyTorch
baseline's, and the ratio; occlusion's peak memory; the machine's peak GFLOP/s and the fraction of it reached by
training and by style transfer.

    python benchmarks/run.py --threads 1      # the full run (a few minutes on one core)
    python benchmarks/run.py --quick          # small cases only (seconds; what tests/test_benchmarks.py runs)

Method: each case builds its inputs once, checks that both sides give the same result, runs each side once to
warm up, then runs the two sides alternately ``--repeats`` times (the order flips every round, so a busy moment of
a shared machine hits both). It prints the best time of each side and two ratios, baseline / dlviz of the best
times and of the medians: above 1 means dlviz is faster. Models have random weights (seed 0) except where the
shipped LeNet is named; data come from DLVIZ_DATA (or random digits, with a note, when MNIST is missing).
The output is Markdown, ready for benchmarks/RESULTS.md.
"""
from __future__ import annotations

import argparse
import copy
import datetime
import os
import platform
import statistics
import sys
import time
import warnings

import torch
import torch.nn.functional as F
from torch import nn

import dlviz
from dlviz.attribution.occlusion import window_starts
from dlviz.synthesis import style as dstyle

NOTES: list[str] = []


# --- measuring ----------------------------------------------------------------------------------------------------

def side_by_side(ours, theirs, repeats: int) -> tuple[list[float], list[float]]:
    """Times of ``ours()`` and ``theirs()``: one warm-up call each, then ``repeats`` alternating rounds."""
    ours(), theirs()
    times = ([], [])
    for r in range(repeats):
        order = [(0, ours), (1, theirs)] if r % 2 == 0 else [(1, theirs), (0, ours)]
        for side, fn in order:
            start = time.perf_counter()
            fn()
            times[side].append(time.perf_counter() - start)
    return times


def agreement(a, b, rtol=1e-4, atol=1e-5) -> str:
    """'yes' when two results are close, else the largest difference (relative to the largest value)."""
    a, b = torch.as_tensor(a).detach().double(), torch.as_tensor(b).detach().double()
    if a.shape != b.shape:
        if a.numel() != b.numel():
            return f"shapes differ {tuple(a.shape)} vs {tuple(b.shape)}"
        a, b = a.reshape(-1), b.reshape(-1)
    if torch.allclose(a, b, rtol=rtol, atol=atol):
        return "yes"
    scale = max(float(b.abs().max()), 1e-12)
    return f"max diff {float((a - b).abs().max()) / scale:.1e} of max"


class Table:
    def __init__(self):
        self.rows = []

    def add(self, case, ours, baseline, theirs, same):
        best = min(theirs) / min(ours)
        median = statistics.median(theirs) / statistics.median(ours)
        self.rows.append((case, min(ours), baseline, min(theirs), best, median, same))
        print(f"  {case}: dlviz {min(ours):.4f} s, {baseline} {min(theirs):.4f} s, ratio {best:.2f}", file=sys.stderr)

    def markdown(self) -> str:
        lines = ["| benchmark | dlviz s | baseline | baseline s | ratio (best) | ratio (median) | same result |",
                 "|---|---|---|---|---|---|---|"]
        for case, ours, baseline, theirs, best, median, same in self.rows:
            lines.append(f"| {case} | {ours:.4f} | {baseline} | {theirs:.4f} | {best:.2f} | {median:.2f} | {same} |")
        return "\n".join(lines)


def quiet(fn):
    def run(*args, **kwargs):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return fn(*args, **kwargs)
    return run


# --- inputs -------------------------------------------------------------------------------------------------------

def digits(n: int, train: bool = False):
    """n MNIST digits (N, 1, 28, 28) and labels; random digits with a note when the data are missing."""
    try:
        return dlviz.data.tensors(dlviz.data.mnist(train=train, download=False), limit=n)
    except Exception as error:  # no data folder: random digits take the same time
        note = f"MNIST not found ({type(error).__name__}): random tensors stand in for digits (same shapes, same cost)"
        if note not in NOTES:
            NOTES.append(note)
        g = torch.Generator().manual_seed(1 if train else 2)
        return torch.rand(n, 1, 28, 28, generator=g), torch.randint(0, 10, (n,), generator=g)


def lenet(shipped: bool = True):
    if shipped:
        try:
            return dlviz.models.zoo.load("lenet_mnist").eval(), "LeNet (shipped weights)"
        except Exception:
            pass
    torch.manual_seed(0)
    return dlviz.models.zoo.LeNet().eval(), "LeNet (random weights)"


def resnet18():
    import torchvision

    torch.manual_seed(0)
    model = torchvision.models.resnet18(weights=None).eval()
    return model, torch.rand(1, 3, 224, 224, generator=torch.Generator().manual_seed(0))


def captum_available() -> bool:
    try:
        import captum  # noqa: F401
        return True
    except ImportError:
        NOTES.append("Captum is not installed: the Captum comparisons are skipped (pip install captum)")
        return False


# --- cases --------------------------------------------------------------------------------------------------------

@quiet
def bench_occlusion(table, args, have_captum):
    if not have_captum:
        return
    from captum.attr import Occlusion

    model, name = lenet()
    x, y = digits(1)
    cases = [(f"occlusion, {name}, a digit, window 6, stride 2", model, x[:1], int(y[0]), 6, 2)]
    if not args.quick:
        model, x = resnet18()
        cases.append(("occlusion, ResNet-18, 224 px, window 48, stride 24", model, x, 1, 48, 24))
    for case, model, x, target, window, stride in cases:
        channels = x.shape[1]
        forward = lambda z, model=model: torch.softmax(model(z), dim=1)  # noqa: E731
        occ = Occlusion(forward)

        def ours():
            return dlviz.occlusion(model, x, target, window=window, stride=stride, progress=False)

        def theirs():
            return occ.attribute(x, target=target, sliding_window_shapes=(channels, window, window),
                                 strides=(channels, stride, stride), baselines=0.0, perturbations_per_eval=16)

        same = agreement(ours(), theirs())
        t_ours, t_theirs = side_by_side(ours, theirs, args.repeats)
        table.add(case, t_ours, "Captum Occlusion (16 per pass)", t_theirs, same)


@quiet
def bench_gradients(table, args, have_captum):
    if not have_captum:
        return
    from captum.attr import GuidedBackprop, IntegratedGradients, LayerGradCam, Saliency

    model, name = lenet()
    n = 16 if args.quick else 64
    x, y = digits(n)
    cases = [(f"{name}, {n} digits", model, x, y, model.features[3], "features.3")]
    if not args.quick:
        model, x = resnet18()
        cases.append(("ResNet-18, 224 px, 1 image", model, x, torch.tensor([1]), model.layer4, "layer4"))
    for what, model, x, target, layer_module, layer_name in cases:
        methods = [
            ("saliency", lambda: dlviz.saliency(model, x, target),
             "Captum Saliency", lambda: Saliency(model).attribute(x, target=target, abs=True)),
            ("guided backprop", lambda: dlviz.guided_backprop(model, x, target),
             "Captum GuidedBackprop", lambda: GuidedBackprop(model).attribute(x, target=target)),
            ("Integrated Gradients (50 steps)",
             lambda: dlviz.integrated_gradients(model, x, target, steps=50, progress=False),
             "Captum IntegratedGradients", lambda: IntegratedGradients(model).attribute(x, target=target, n_steps=50)),
            ("Grad-CAM", lambda: dlviz.grad_cam(model, x, target, layer=layer_name, upsample=False),
             "Captum LayerGradCam",
             lambda: LayerGradCam(model, layer_module).attribute(x, target=target, relu_attributions=True)),
        ]
        for method, ours, baseline, theirs in methods:
            same = agreement(ours(), theirs(), rtol=1e-3, atol=1e-5)
            t_ours, t_theirs = side_by_side(ours, theirs, args.repeats)
            table.add(f"{method}, {what}", t_ours, baseline, t_theirs, same)


@quiet
def bench_inference_precision(table, args):
    """The inference-heavy paths in bfloat16 (precision="bf16") against their float32 default, on the course's
    models: the same call twice, so the ratio is what bfloat16 buys; the last column says how far the results
    moved."""
    if not native_bf16():
        NOTES.append("no native bfloat16 here: the precision='bf16' rows are skipped (bf16 would fall back to fp32)")
        return
    model, name = lenet()
    n = 512 if args.quick else 10_000
    x, _ = digits(n)

    def top(precision):
        return dlviz.top_activations(model, x, layer="features.3", k=9, progress=False, precision=precision)

    exact, rounded = top("fp32"), top("bf16")
    shared = sum(len(set(a.tolist()) & set(b.tolist())) for a, b in zip(exact.indices, rounded.indices))
    t_ours, t_theirs = side_by_side(lambda: top("bf16"), lambda: top("fp32"), args.repeats)
    table.add(f"top_activations bf16, {name} conv2, {n:,} digits", t_ours, "dlviz fp32", t_theirs,
              f"{shared / exact.indices.numel():.0%} of the top-9 images the same")

    cases = [(f"{name}, a digit, window 6, stride 2", model, x[:1], 3, 6, 2)]
    if not args.quick:
        net, image = resnet18()
        cases.append(("ResNet-18, 224 px, window 48, stride 24", net, image, 1, 48, 24))
    for what, net, image, target, window, stride in cases:
        def occlude(precision, net=net, image=image, target=target, window=window, stride=stride):
            return dlviz.occlusion(net, image, target, window=window, stride=stride, score="logit", progress=False,
                                   precision=precision)

        a, b = occlude("bf16"), occlude("fp32")
        r = float(torch.corrcoef(torch.stack([a.flatten(), b.flatten()]))[0, 1])
        t_ours, t_theirs = side_by_side(lambda: occlude("bf16"), lambda: occlude("fp32"), args.repeats)
        table.add(f"occlusion bf16 (logit), {what}", t_ours, "dlviz fp32", t_theirs,
                  f"maps correlate {r:.4f}; {agreement(a, b, rtol=1e-2, atol=1e-2)}")

    steps = 20 if args.quick else 500

    def fool(precision):
        return dlviz.fooling_images(model, range(10), steps=steps, progress=False, precision=precision,
                                    generator=torch.Generator().manual_seed(0), return_info=True)[1]

    a, b = fool("bf16"), fool("fp32")
    t_ours, t_theirs = side_by_side(lambda: fool("bf16"), lambda: fool("fp32"), args.repeats)
    table.add(f"fooling_images bf16, {name}, 10 digits, up to {steps} steps", t_ours, "dlviz fp32", t_theirs,
              f"labels reached {int(a.reached.sum())} vs {int(b.reached.sum())} of 10")


def plain_fgsm(model, x, labels, eps):
    x = x.clone().requires_grad_(True)
    loss = F.cross_entropy(model(x), labels)
    grad, = torch.autograd.grad(loss, x)
    return torch.clamp(x + eps * grad.sign(), 0, 1).detach()


def plain_pgd(model, x, labels, eps, alpha, steps):
    adv = x.clone()
    for _ in range(steps):
        adv.requires_grad_(True)
        grad, = torch.autograd.grad(F.cross_entropy(model(adv), labels), adv)
        adv = adv.detach() + alpha * grad.sign()
        adv = torch.clamp(x + torch.clamp(adv - x, -eps, eps), 0, 1).detach()
    return adv


@quiet
def bench_attacks(table, args):
    try:
        import torchattacks  # noqa: F401
        NOTES.append("torchattacks is installed but not timed here: FGSM and PGD are compared with a plain-PyTorch "
                     "loop of torchattacks' arithmetic")
    except ImportError:
        NOTES.append("torchattacks is not installed (it cannot share the course's environment): FGSM and PGD are "
                     "compared with a plain-PyTorch loop of the same arithmetic; tests/test_adversarial.py checks "
                     "dlviz's outputs against stored torchattacks 3.5.1 references")
    model, name = lenet()
    n = 32 if args.quick else 256
    x, y = digits(n)
    cases = [(f"{name}, {n} digits", model, x, y, 0.2)]
    if not args.quick:
        model, x = resnet18()
        cases.append(("ResNet-18, 224 px, 1 image", model, x, torch.tensor([1]), 8 / 255))
    for what, model, x, y, eps in cases:
        model.eval()
        alpha = 2.5 * eps / 10
        ours = lambda: dlviz.fgsm(model, x, y, eps)  # noqa: E731
        theirs = lambda: plain_fgsm(model, x, y, eps)  # noqa: E731
        same = agreement(ours(), theirs())
        t_ours, t_theirs = side_by_side(ours, theirs, args.repeats)
        table.add(f"FGSM, {what}", t_ours, "plain PyTorch", t_theirs, same)
        ours = lambda: dlviz.pgd(model, x, y, eps, alpha=alpha, steps=10, random_start=False,  # noqa: E731
                                 progress=False)
        theirs = lambda: plain_pgd(model, x, y, eps, alpha, 10)  # noqa: E731
        same = agreement(ours(), theirs())
        t_ours, t_theirs = side_by_side(ours, theirs, args.repeats)
        table.add(f"PGD (10 steps), {what}", t_ours, "plain PyTorch", t_theirs, same)


def plain_train(model, x, y, batch_size, generator):
    """The baseline: a bare float32 Adam loop over shuffled in-memory batches, default memory layout."""
    model.train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    for idx in torch.randperm(len(x), generator=generator).split(batch_size):
        optimizer.zero_grad(set_to_none=True)
        F.cross_entropy(model(x[idx]), y[idx]).backward()
        optimizer.step()


def training_step_flops(model, x, y) -> float:
    """Matmul and convolution FLOPs of one training step (forward and backward), counted by torch's
    FlopCounterMode; elementwise operations, pooling and the optimizer are not counted."""
    from torch.utils.flop_counter import FlopCounterMode

    model = copy.deepcopy(model).train()
    with FlopCounterMode(display=False) as counter:
        F.cross_entropy(model(x), y).backward()
    return float(counter.get_total_flops())


def test_accuracy(model, x, y) -> float:
    """Accuracy of ``model`` on ``(x, y)``, evaluated plainly in float32 (eval mode, default layout)."""
    model.eval()
    with torch.no_grad():
        hits = sum(int((model(xb).argmax(1) == yb).sum()) for xb, yb in zip(x.split(1000), y.split(1000)))
    model.train()
    return hits / len(y)


@quiet
def bench_training(table, args, peak, fractions):
    """dlviz.fit(precision="auto") -- bfloat16 autocast and channels-last where the CPU has native bfloat16 --
    against a bare float32 default-layout Adam loop, same batches, same batch size. Both sides train one epoch per
    call, so after the warm-up and the timed rounds both models have made the same number of passes; their test
    accuracies (evaluated in float32) are printed in the last column."""
    cases = [(10, 64)] if args.quick else [(200, 64), (128, 100), (100, 128)]  # the course uses 64, 100 and 128
    test_x, test_y = digits(500 if args.quick else 2000)
    for batches, batch_size in cases:
        x, y = digits(batches * batch_size, train=True)
        torch.manual_seed(0)
        ours_model = dlviz.models.zoo.LeNet()
        theirs_model = copy.deepcopy(ours_model)
        g_theirs = torch.Generator().manual_seed(0)
        chosen = []

        def ours():
            torch.manual_seed(len(chosen))  # fit shuffles with torch's global generator
            history = dlviz.fit(ours_model, (x, y), epochs=1, batch_size=batch_size, progress=False,
                                precision="auto")
            chosen.append(history.precision + (", channels-last" if history.channels_last else ""))

        def theirs():
            plain_train(theirs_model, x, y, batch_size, g_theirs)

        t_ours, t_theirs = side_by_side(ours, theirs, args.repeats)
        passes = len(t_ours) + 1
        accuracy = (test_accuracy(ours_model, test_x, test_y), test_accuracy(theirs_model, test_x, test_y))
        case = (f"LeNet training, {batches} batches of {batch_size}, Adam: dlviz.fit(precision='auto') "
                f"ran {chosen[-1]}")
        same = (f"test accuracy after {passes} passes ({len(test_y)} digits): dlviz {accuracy[0]:.2%}, "
                f"plain {accuracy[1]:.2%}")
        table.add(case, t_ours, "plain float32 Adam loop, default layout", t_theirs, same)
        flops = training_step_flops(theirs_model, x[:batch_size], y[:batch_size]) * batches
        fractions.append((f"LeNet training, batch {batch_size}, dlviz.fit ({chosen[-1]})", flops, min(t_ours),
                          peak))
        fractions.append((f"LeNet training, batch {batch_size}, plain float32 loop", flops, min(t_theirs), peak))


class PlainGatys:
    """The baseline: Gatys et al.'s loss written plainly in float32 -- a VGG-19 stack (the same random weights as
    dlviz's extractor, average pooling, replicate padding) run up to conv5_1, Gram matrices, squared errors."""

    def __init__(self, extractor, style_image, content_image, style_weight):
        self.net = copy.deepcopy(extractor.features).float()
        positions = extractor._positions
        self.style_at = [positions[n] for n in dstyle.STYLE_LAYERS]
        self.content_at = positions[dstyle.CONTENT_LAYER]
        self.last = max(self.style_at + [self.content_at])
        self.mean, self.std = extractor.mean.float(), extractor.std.float()
        self.style_weight = style_weight
        with torch.no_grad():
            feats = self.features(style_image)
            self.grams = [self.gram(feats[i]) for i in self.style_at]
            self.content = self.features(content_image)[self.content_at]

    def features(self, x):
        out, h = {}, (x - self.mean) / self.std
        for i, module in enumerate(self.net):
            h = module(h)
            out[i] = h
            if i == self.last:
                break
        return out

    @staticmethod
    def gram(f):
        n, c, hh, ww = f.shape
        f = f.reshape(n, c, hh * ww)
        return torch.bmm(f, f.transpose(1, 2)) / (hh * ww)

    def __call__(self, x):
        feats = self.features(x)
        style = sum(((self.gram(feats[i]) - g) ** 2).sum((1, 2)) / (g ** 2).sum()
                    for i, g in zip(self.style_at, self.grams)) / len(self.grams)
        content = ((feats[self.content_at] - self.content) ** 2).flatten(1).sum(1) / (self.content ** 2).sum()
        return (self.style_weight * style + content).sum()


@quiet
def bench_style(table, args, peak, fractions):
    """One style-transfer evaluation (loss + gradient) at 256 px: dlviz with ``precision="auto"`` (bfloat16
    convolutions where the CPU has native bfloat16, float32 Gram matrices and losses) and with ``precision="fp32"``,
    each against the plain float32 Gatys loss. With bfloat16 the loss and gradient are not equal to float32's to
    1e-3; the row says how close they are (loss within 1%, gradients' cosine above 0.99 count as the same)."""
    from torch.utils.flop_counter import FlopCounterMode

    size = 64 if args.quick else 256
    g = torch.Generator().manual_seed(0)
    painting, content = torch.rand(1, 3, size, size, generator=g), torch.rand(1, 3, size, size, generator=g)
    extractor = dstyle.vgg19_features(None, up_to="conv5_1")
    plain = PlainGatys(extractor, painting, content, 10.0)
    # halfway between the photo and noise: both terms non-zero
    x0 = 0.5 * content + 0.5 * torch.rand(1, 3, size, size, generator=g)

    def theirs():
        x = x0.clone().requires_grad_(True)
        total = plain(x)
        total.backward()
        return total.detach(), x.grad

    flops = None
    for precision in ("auto", "fp32"):
        loss = dstyle.StyleLoss(extractor, painting, content, style_weight=10.0, precision=precision)

        def ours():
            x = x0.clone().requires_grad_(True)
            total, _ = loss(x)
            total.backward()
            return total.detach(), x.grad

        (a_loss, a_grad), (b_loss, b_grad) = ours(), theirs()
        if loss.precision == "bf16":
            relative = abs(float(a_loss) - float(b_loss)) / abs(float(b_loss))
            cosine = float(F.cosine_similarity(a_grad.flatten().double(), b_grad.flatten().double(), dim=0))
            verdict = "yes" if relative < 1e-2 and cosine > 0.99 else "no"
            same = f"{verdict} (bf16: loss {relative:.1e} apart, gradient cosine {cosine:.4f})"
        else:
            same_loss = agreement(a_loss, b_loss, rtol=1e-3)
            same_grad = agreement(a_grad, b_grad, rtol=1e-2, atol=1e-6 * float(b_grad.abs().max()))
            same = "yes" if same_loss == same_grad == "yes" else f"loss: {same_loss}; gradient: {same_grad}"
        t_ours, t_theirs = side_by_side(ours, theirs, args.repeats)
        table.add(f"style transfer, one evaluation (loss + gradient), {size} px, VGG-19 random weights, "
                  f"dlviz precision={precision!r} (ran {loss.precision})", t_ours, "plain float32 Gatys loss",
                  t_theirs, same)
        if flops is None:
            with FlopCounterMode(display=False) as counter:
                theirs()
            flops = float(counter.get_total_flops())
            fractions.append((f"style evaluation {size} px, plain float32", flops, min(t_theirs), peak))
        fractions.append((f"style evaluation {size} px, dlviz {loss.precision}", flops, min(t_ours), peak))


# --- memory -------------------------------------------------------------------------------------------------------

def _rss_kib(field: str) -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def peak_rss_increase_mb(fn) -> float | None:
    """Peak resident memory during ``fn()`` above the resident memory just before it, in MB (Linux: the
    process's high-water mark is reset through /proc/self/clear_refs); None where that is not possible."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        return None
    before = _rss_kib("VmRSS")
    fn()
    peak = _rss_kib("VmHWM")
    if before is None or peak is None:
        return None
    return (peak - before) / 1024


@quiet
def bench_memory(args) -> list[str]:
    """Occlusion's peak memory on a tiny model (its own memory is negligible), stride 8, window 16."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.AdaptiveAvgPool2d(8), nn.Flatten(), nn.Linear(3 * 64, 10)).eval()
    lines = ["| occlusion, tiny model, stride 8, window 16 | windows | peak RSS above before the call | "
             "one forward pass of a batch of 64 | target (< 300 MB) |", "|---|---|---|---|---|"]
    for size in ([112] if args.quick else [224, 448]):
        x = torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(0))
        dlviz.occlusion(model, x[..., :32, :32], 1, window=16, stride=8, progress=False)  # warm-up
        own = peak_rss_increase_mb(lambda: model(x.expand(64, -1, -1, -1).clone()))
        used = peak_rss_increase_mb(lambda: dlviz.occlusion(model, x, 1, window=16, stride=8, progress=False))
        windows = len(window_starts(size, 16, 8)) ** 2
        if used is None:
            lines.append(f"| {size} px | {windows} | n/a (no /proc/self/clear_refs) | n/a | n/a |")
        else:
            lines.append(f"| {size} px | {windows} | {used:.0f} MB | {own:.0f} MB | "
                         f"{'met' if used < 300 else 'NOT met'} |")
        print(f"  occlusion memory {size} px: {lines[-1]}", file=sys.stderr)
    return lines


# --- the machine's peak -------------------------------------------------------------------------------------------

def best_rate(fn, flops: float, repeats: int) -> float:
    fn()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return flops / best / 1e9


def machine_peak(args) -> tuple[float, list[str]]:
    n = 512 if args.quick else 2048
    a, b = torch.randn(n, n), torch.randn(n, n)
    rates = {f"float32 matmul {n}x{n}": best_rate(lambda: a @ b, 2 * n ** 3, 5)}
    conv = nn.Conv2d(256, 256, 3, padding=1, bias=False).eval()
    batch = 2 if args.quick else 32
    x = torch.randn(batch, 256, 14, 14)
    conv_flops = 2 * 256 * 256 * 9 * 14 * 14 * batch
    with torch.no_grad():
        rates[f"float32 conv 3x3, 256->256 channels, {batch}x14x14, default layout"] = \
            best_rate(lambda: conv(x), conv_flops, 5)
        conv, x = conv.to(memory_format=torch.channels_last), x.contiguous(memory_format=torch.channels_last)
        rates[f"float32 conv 3x3, 256->256 channels, {batch}x14x14, channels-last"] = \
            best_rate(lambda: conv(x), conv_flops, 5)
    peak = max(rates.values())
    if native_bf16():
        a16, b16 = a.bfloat16(), b.bfloat16()
        rates[f"bfloat16 matmul {n}x{n} (not part of the float32 peak)"] = best_rate(lambda: a16 @ b16, 2 * n ** 3, 5)
    lines = ["| measurement | GFLOP/s |", "|---|---|"] + [f"| {k} | {v:.0f} |" for k, v in rates.items()]
    return peak, lines


def native_bf16() -> bool:
    """Whether the CPU computes bfloat16 natively (dlviz's own test: avx512_bf16 or amx_bf16 in /proc/cpuinfo)."""
    from dlviz._precision import cpu_native_bf16
    return cpu_native_bf16()


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


# --- main ---------------------------------------------------------------------------------------------------------

def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small cases only, one timed round (a smoke test)")
    parser.add_argument("--repeats", type=int, default=None, help="timed rounds per case (default 3; quick: 1)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.repeats is None:
        args.repeats = 1 if args.quick else 3
    started = time.perf_counter()
    have_captum = captum_available()
    versions = [f"torch {torch.__version__}"]
    for module in ("torchvision", "captum"):
        try:
            versions.append(f"{module} {__import__(module).__version__}")
        except ImportError:
            pass
    try:
        load = ", ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        load = "n/a"

    memory = bench_memory(args)  # first, while the process's heap is small
    peak, peak_lines = machine_peak(args)
    table, fractions = Table(), []
    bench_occlusion(table, args, have_captum)
    bench_gradients(table, args, have_captum)
    bench_attacks(table, args)
    bench_inference_precision(table, args)
    bench_training(table, args, peak, fractions)
    bench_style(table, args, peak, fractions)
    peak_after, _ = machine_peak(args) if not args.quick else (peak, None)

    print(f"# dlviz benchmarks{' (--quick)' if args.quick else ''}\n")
    print(f"- {datetime.date.today().isoformat()}, {cpu_name()}, {os.cpu_count()} logical CPUs, "
          f"{', '.join(versions)}, Python {platform.python_version()}")
    print(f"- torch threads: {torch.get_num_threads()}; native bfloat16 (avx512_bf16 or amx_bf16 in /proc/cpuinfo): "
          f"{'yes' if native_bf16() else 'no'}; CUDA available: {torch.cuda.is_available()} "
          "(everything ran on the CPU)")
    print(f"- load average at the start: {load}; at the end: "
          f"{', '.join(f'{v:.2f}' for v in os.getloadavg())}")
    print(f"- {args.repeats} timed rounds per case after one warm-up call per side, sides alternating; "
          "ratio = baseline time / dlviz time (above 1: dlviz faster), of the best times and of the medians")
    for note in NOTES:
        print(f"- {note}")
    print("\n## Time, side by side\n")
    print(table.markdown())
    print("\n## Occlusion peak memory\n")
    print("\n".join(memory))
    print("\n## The machine's peak and the fraction reached\n")
    print("\n".join(peak_lines))
    if not args.quick:
        print(f"\nPeak measured again after the benchmarks: {peak_after:.0f} GFLOP/s (the first one is used).")
    print("\nFLOPs are matmul and convolution FLOPs of forward and backward counted by torch's FlopCounterMode "
          "(elementwise operations, pooling and the optimizer are left out, so the fractions are slight "
          "underestimates); peak = the faster float32 measurement above.\n")
    print("| workload | GFLOP | best s | GFLOP/s | fraction of peak |")
    print("|---|---|---|---|---|")
    for name, flops, seconds, p in fractions:
        rate = flops / seconds / 1e9
        print(f"| {name} | {flops / 1e9:.1f} | {seconds:.3f} | {rate:.0f} | {rate / p:.0%} |")
    print(f"\nTotal time of this run: {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
